# jobs/: Slurm and PBS batch scripts, installed under $(pkgdatadir)/jobs.
# `make check-slurm` runs them under a real single-node Slurm (installed and started
# here when none answers; root and apt-get needed then). Not part of `make check`.
jobsslurmdir = $(pkgdatadir)/jobs/slurm
dist_jobsslurm_SCRIPTS = %reldir%/slurm/run.sbatch %reldir%/slurm/sweep.sbatch \
	%reldir%/slurm/analyze.sbatch %reldir%/slurm/submit-sweep.sh %reldir%/slurm/long.sbatch \
	%reldir%/slurm/gpu.sbatch
jobspbsdir = $(pkgdatadir)/jobs/pbs
dist_jobspbs_SCRIPTS = %reldir%/pbs/run.pbs %reldir%/pbs/sweep.pbs
dist_noinst_SCRIPTS += %reldir%/check-slurm.sh

check-slurm: fedmoe$(EXEEXT) analysis/fedmoe-analyze
	FEDMOE=$(abs_top_builddir)/fedmoe$(EXEEXT) \
	FEDMOE_ANALYZE=$(abs_top_builddir)/analysis/fedmoe-analyze \
	top_srcdir=$(abs_top_srcdir) bash $(srcdir)/jobs/check-slurm.sh
.PHONY: check-slurm
