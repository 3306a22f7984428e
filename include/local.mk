# Public headers; each module's local.mk adds its own.
noinst_HEADERS = %reldir%/fedmoe/error.h %reldir%/fedmoe/log.h %reldir%/fedmoe/rng.h \
	%reldir%/fedmoe/timer.h %reldir%/fedmoe/config.h %reldir%/fedmoe/fault.h \
	%reldir%/fedmoe/suggest.h
