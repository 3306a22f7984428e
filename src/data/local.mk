noinst_HEADERS += include/fedmoe/data.h
libfedmoe_a_SOURCES += %reldir%/text.c %reldir%/corpus.c %reldir%/partition.c %reldir%/share.c \
	%reldir%/batch.c
