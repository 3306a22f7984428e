dist_man_MANS += %reldir%/fedmoe.1
# The key lists in README.md and docs/fedmoe.1 are generated: `fedmoe keys
# --format=markdown|man` between their BEGIN KEYS / END KEYS lines. Run this after
# changing src/core/config_keys.c; tests/docs_keys.sh (make check) fails until then.
dist_noinst_SCRIPTS += %reldir%/key-docs.sh
EXTRA_DIST += %reldir%/strategies.md %reldir%/bases.md
update-key-docs: fedmoe$(EXEEXT)
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	  sh $(srcdir)/docs/key-docs.sh update $(abs_top_builddir)/fedmoe$(EXEEXT) $(srcdir)
.PHONY: update-key-docs
