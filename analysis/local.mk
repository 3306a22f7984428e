# analysis/: fedmoe-analyze, the post-hoc tool over run files (Python: h5py, numpy,
# matplotlib). Its first line names the Python configure found with h5py
# (PYTHON_H5PY; /usr/bin/env python3 when none was found), substituted here.
bin_SCRIPTS = analysis/fedmoe-analyze
CLEANFILES += analysis/fedmoe-analyze
EXTRA_DIST += %reldir%/fedmoe-analyze.in %reldir%/README.md

analysis/fedmoe-analyze: $(srcdir)/analysis/fedmoe-analyze.in Makefile
	$(AM_V_GEN)$(MKDIR_P) analysis && rm -f $@ $@.tmp && \
	py='$(PYTHON_H5PY)'; test -n "$$py" || py='/usr/bin/env python3'; \
	sed -e "1s|@PYTHON_H5PY[@]|$$py|" $(srcdir)/analysis/fedmoe-analyze.in >$@.tmp && \
	chmod +x $@.tmp && mv $@.tmp $@

# Tests: every subcommand on synthetic run files (make_runfile.py) and, once the
# runtime writes them, on a real one; only where configure found h5py.
ANALYSIS_TESTS = tests/analysis/analyze.sh tests/analysis/real_run.sh tests/analysis/jobs_local.sh \
	tests/analysis/compare_seeds.sh tests/analysis/studies.sh \
	tests/analysis/examples.sh
if HAVE_PYTHON_H5PY
TESTS += $(ANALYSIS_TESTS)
endif
dist_noinst_SCRIPTS += $(ANALYSIS_TESTS)
dist_noinst_DATA += tests/analysis/make_runfile.py tests/analysis/check_compare.py tests/analysis/check_seeds.py
