noinst_HEADERS += include/fedmoe/fl.h include/fedmoe/system.h %reldir%/client_state.h %reldir%/report.h
libfedmoe_a_SOURCES += %reldir%/sample.c %reldir%/deal.c %reldir%/aggregate.c %reldir%/client.c \
	%reldir%/client_state.c %reldir%/system.c %reldir%/run.c %reldir%/report.c %reldir%/server_model.c
