# The library every program links, and the fedmoe program itself.
noinst_LIBRARIES += libfedmoe.a
libfedmoe_a_SOURCES =

bin_PROGRAMS += fedmoe
fedmoe_SOURCES = %reldir%/main.c %reldir%/cli.c %reldir%/cli.h %reldir%/cmd_run.c \
	%reldir%/cmd_data.c %reldir%/cmd_eval.c %reldir%/cmd_model.c %reldir%/cmd_export.c %reldir%/cmd_bench.c \
	%reldir%/cmd_info.c %reldir%/cmd_keys.c %reldir%/cmd_tokenize.c %reldir%/device.c \
	%reldir%/bench_gpu.c %reldir%/cmd_generate.c %reldir%/cmd_pretrain.c
if HAVE_CUDA
# run.device = cuda: the CUDA backend (it calls into libfedmoe.a, so it comes first)
fedmoe_LDADD = libfedmoe_cuda.a libfedmoe.a $(FEDMOE_LIBS) $(CUDA_LIBS)
else
fedmoe_LDADD = libfedmoe.a $(FEDMOE_LIBS)
endif
