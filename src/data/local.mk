noinst_HEADERS += include/fedmoe/data.h include/fedmoe/tokenizer.h %reldir%/tok_impl.h %reldir%/strmap.h \
	%reldir%/spm.h %reldir%/records.h %reldir%/bytebuf.h
libfedmoe_a_SOURCES += %reldir%/text.c %reldir%/corpus.c %reldir%/partition.c %reldir%/share.c \
	%reldir%/batch.c %reldir%/corpus_tokens.c %reldir%/jsonl.c %reldir%/bytebuf.c %reldir%/strmap.c %reldir%/tokenizer.c %reldir%/bpe.c %reldir%/bpe_load.c \
	%reldir%/spm.cc
