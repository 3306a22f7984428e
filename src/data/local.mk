noinst_HEADERS += include/fedmoe/data.h
