libfedmoe_a_SOURCES += %reldir%/registry.c %reldir%/local.c %reldir%/fedavg.c %reldir%/comigs.c %reldir%/hfedmoe.c %reldir%/fedbiot.c
