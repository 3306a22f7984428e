# Scaling studies (docs/scaling.md): jobs/sweep.sh runs a sweep over rank and client
# counts under Slurm (one job array per rank count) or as consecutive mpirun calls
# (--local); jobs/scaling-tables.py prints the tables of docs/scaling.md from the run
# files. Test: a 2-point local sweep on the tiny config, and the Slurm mode's dry run.
SCALING_TESTS = %reldir%/mpi/sweep.sh
TESTS += $(SCALING_TESTS)
dist_noinst_SCRIPTS += $(SCALING_TESTS) jobs/scaling-tables.py
jobsdir = $(pkgdatadir)/jobs
dist_jobs_SCRIPTS = jobs/sweep.sh
EXTRA_DIST += %reldir%/scaling.mk docs/scaling.md docs/scaling/weak.png docs/scaling/strong.png \
	docs/scaling/clients-count30.png docs/scaling/clients-frac1.png docs/scaling/weak.csv \
	docs/scaling/strong.csv docs/scaling/clients-count30.csv docs/scaling/clients-frac1.csv
