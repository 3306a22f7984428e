dist_noinst_DATA += %reldir%/demo.ini %reldir%/base.ini %reldir%/local.ini %reldir%/fedavg.ini %reldir%/comigs.ini %reldir%/fedbiot.ini \
	%reldir%/hfedmoe.ini %reldir%/devices.csv %reldir%/instruct.ini \
	%reldir%/instruct/fortunes.jsonl
dist_noinst_SCRIPTS += %reldir%/run-demo.sh %reldir%/instruct/make_instruct.py
