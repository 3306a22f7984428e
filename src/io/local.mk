noinst_HEADERS += include/fedmoe/io.h %reldir%/runfile_impl.h
libfedmoe_a_SOURCES += %reldir%/runfile.c %reldir%/runfile_clients.c %reldir%/runfile_resume.c %reldir%/runfile_info.c %reldir%/netcdf.c \
	%reldir%/checkpoint_extra.c
