/* cunit_main.c - main() of every CUnit test program: MPI start-up (the library
 * uses MPI for errors and collectives), the CUnit run, and the summary printed to
 * the test log and, through fd 9 when make check opens it, to the terminal. */
#include "cunit_main.h"

#include "fedmoe/log.h"

#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fm_test_suite(const char *name, const fm_test *tests) {
  CU_pSuite s = CU_add_suite(name, NULL, NULL);
  if (!s) return 1;
  for (const fm_test *t = tests; t->name; t++)
    if (!CU_add_test(s, t->name, t->fn)) return 1;
  return 0;
}

const char *fm_fixture(const char *name) {
  static char path[8][1024];
  static int slot;
  const char *top = getenv("top_srcdir");
  char *p = path[slot++ & 7];
  snprintf(p, sizeof path[0], "%s/tests/fixtures/%s", top ? top : ".", name);
  return p;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  fm_log_set_level(FM_LOG_WARN);
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  if (fm_test_register()) {
    fprintf(stderr, "cannot register tests: %s\n", CU_get_error_msg());
    return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  unsigned run = CU_get_number_of_tests_run(), asserts = CU_get_number_of_asserts();
  unsigned failed_tests = CU_get_number_of_tests_failed();
  /* one line per program on the terminal: make check's own output is per program */
  if (fcntl(9, F_GETFD) != -1) {
    char line[256];
    int n = snprintf(line, sizeof line, "  CUnit %-22s tests run %4u  failed %3u   asserts %7u  failed %3u\n",
                     argv[0] ? strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0] : "?", run,
                     failed_tests, asserts, CU_get_number_of_failures());
    if (write(9, line, (size_t)n) < 0) { /* the summary is also in the log */ }
  }
  CU_cleanup_registry();
  MPI_Finalize();
  return fails ? 1 : 0;
}
