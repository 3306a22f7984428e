noinst_HEADERS = %reldir%/fedmoe/error.h %reldir%/fedmoe/log.h %reldir%/fedmoe/rng.h \
	%reldir%/fedmoe/timer.h %reldir%/fedmoe/config.h
