# The library every program links, and the fedmoe program itself.
noinst_LIBRARIES += libfedmoe.a
libfedmoe_a_SOURCES =

bin_PROGRAMS += fedmoe
fedmoe_SOURCES = %reldir%/main.c %reldir%/cli.c %reldir%/cli.h %reldir%/cmd_run.c
fedmoe_LDADD = libfedmoe.a $(FEDMOE_LIBS)
