noinst_HEADERS += include/fedmoe/model.h
