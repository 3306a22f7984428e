dist_noinst_DATA += %reldir%/demo.ini
dist_noinst_SCRIPTS += %reldir%/run-demo.sh
