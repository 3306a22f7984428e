/* cunit_main.h - shared runner of the CUnit test programs.
 * Each test program defines fm_test_register() adding its suites, and gets main(). */
#ifndef FEDMOE_CUNIT_MAIN_H
#define FEDMOE_CUNIT_MAIN_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

/* Add the program's suites to the registry; return 0 on success. */
int fm_test_register(void);

/* Add a suite with its tests from a NULL-terminated table. */
typedef struct { const char *name; CU_TestFunc fn; } fm_test;
int fm_test_suite(const char *name, const fm_test *tests);

/* Relative/absolute closeness, for float assertions with a message. */
#define FM_ASSERT_CLOSE(a, b, rtol, atol) \
  CU_ASSERT(fabs((double)(a) - (double)(b)) <= (atol) + (rtol) * fabs((double)(b)))

/* Path of a file under tests/fixtures (srcdir-aware, for make distcheck). */
const char *fm_fixture(const char *name);

#endif
