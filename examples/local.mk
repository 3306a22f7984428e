dist_noinst_DATA += %reldir%/demo.ini %reldir%/base.ini %reldir%/local.ini %reldir%/fedavg.ini %reldir%/comigs.ini %reldir%/fedbiot.ini \
	%reldir%/hfedmoe.ini %reldir%/devices.csv %reldir%/instruct.ini \
	%reldir%/instruct/fortunes.jsonl
dist_noinst_SCRIPTS += %reldir%/run-demo.sh %reldir%/instruct/make_instruct.py %reldir%/bases/make-bases.sh \
	%reldir%/bases/make_corpus.py
dist_noinst_DATA += %reldir%/bases/dense.ini %reldir%/bases/moe-top1.ini %reldir%/bases/moe-top2.ini \
	%reldir%/bases/demo.ini %reldir%/demo-finetune.ini
