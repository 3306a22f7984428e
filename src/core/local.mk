libfedmoe_a_SOURCES += %reldir%/error.c %reldir%/log.c %reldir%/rng.c %reldir%/timer.c \
	%reldir%/config.c %reldir%/config_keys.c %reldir%/fault.c %reldir%/watchdog.c \
	%reldir%/suggest.c
