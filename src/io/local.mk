noinst_HEADERS += include/fedmoe/io.h include/fedmoe/hf.h include/fedmoe/pretrain.h %reldir%/runfile_impl.h
libfedmoe_a_SOURCES += %reldir%/safetensors.c %reldir%/hf_config.c %reldir%/hf_model.c %reldir%/runfile.c %reldir%/runfile_clients.c %reldir%/runfile_resume.c %reldir%/runfile_info.c %reldir%/runfile_index.c %reldir%/netcdf.c %reldir%/output_guard.c %reldir%/checksum.c %reldir%/h5attr.c %reldir%/runfile_describe.c \
	%reldir%/checkpoint_extra.c %reldir%/pretrain_file.c
