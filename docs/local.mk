dist_man_MANS += %reldir%/fedmoe.1
