/* test_model.c - the whole model (placeholder while written) */
#include "cunit_main.h"
int fm_test_register(void) { return 0; }
