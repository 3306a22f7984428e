noinst_HEADERS += include/fedmoe/fl.h include/fedmoe/system.h %reldir%/client_state.h %reldir%/report.h \
	%reldir%/toolkit_run.h include/fedmoe/toolkit.h
libfedmoe_a_SOURCES += %reldir%/sample.c %reldir%/deal.c %reldir%/aggregate.c %reldir%/client.c \
	%reldir%/client_state.c %reldir%/system.c %reldir%/run.c %reldir%/report.c %reldir%/server_model.c \
	%reldir%/toolkit.c %reldir%/toolkit_config.c %reldir%/server_opt.c %reldir%/prox.c %reldir%/accountant.c \
	%reldir%/secagg.c %reldir%/compress.c %reldir%/finetune.c %reldir%/ditto.c %reldir%/pretrain.c %reldir%/train_scope.c \
	%reldir%/client_batch.c
