/* error.h - one error mechanism for all of fedmoe.
 *
 * Every function that can fail returns an fm_err (0 = success). FM_ERROR sets the
 * message where the failure is found; FM_CHECK wraps each call and, on failure, adds
 * the call site (file:line, function) to the trace and returns the code upward, so the
 * message printed at the top names where the error started and the path it took.
 *
 * At the top, fm_fatal() ends the job: an error every rank detected the same way
 * (a bad config) is printed once by rank 0 and all ranks exit 1 together; an error
 * on one rank is printed by that rank and MPI_Abort ends the others, so a run never
 * hangs waiting on a rank that has failed. */
#ifndef FEDMOE_ERROR_H
#define FEDMOE_ERROR_H

#include <stddef.h>

typedef int fm_err;

enum {
  FM_OK = 0,
  FM_ERR_ARG,      /* bad command line or argument */
  FM_ERR_CONFIG,   /* bad configuration key or value */
  FM_ERR_IO,       /* file system */
  FM_ERR_MEM,      /* allocation */
  FM_ERR_MPI,      /* an MPI call failed, or another rank failed */
  FM_ERR_DATA,     /* bad data (corpus, partition) */
  FM_ERR_FORMAT,   /* a file that is not what it claims (run file, checkpoint) */
  FM_ERR_HDF5,     /* HDF5 library */
  FM_ERR_INTERNAL, /* a bug: an invariant did not hold */
  FM_ERR_TIMEOUT,  /* a collective did not complete within run.collective_timeout */
  FM_ERR_COUNT
};

/* Record a new error (resets the trace) and return its code. printf-style message. */
fm_err fm_error_set(const char *file, int line, const char *func, fm_err code,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Add a frame to the trace of the current error and return code unchanged. */
fm_err fm_error_trace(const char *file, int line, const char *func, fm_err code);

#define FM_ERROR(code, ...) \
  return fm_error_set(__FILE__, __LINE__, __func__, (code), __VA_ARGS__)
#define FM_CHECK(call)                                             \
  do {                                                             \
    fm_err fm_e_ = (call);                                         \
    if (fm_e_) return fm_error_trace(__FILE__, __LINE__, __func__, fm_e_); \
  } while (0)
/* Check an MPI return code (MPI_ERRORS_RETURN is set on our communicators). */
#define FM_MPI(call)                                                              \
  do {                                                                            \
    int fm_mpi_rc_ = (call);                                                      \
    if (fm_mpi_rc_ != 0) return fm_error_mpi(__FILE__, __LINE__, __func__, fm_mpi_rc_, #call); \
  } while (0)
fm_err fm_error_mpi(const char *file, int line, const char *func, int rc, const char *what);

/* Allocation that fails with FM_ERR_MEM naming the purpose. *p is zeroed memory. */
fm_err fm_calloc(void *p, size_t n, size_t size, const char *what);
#define FM_CALLOC(p, n, what) FM_CHECK(fm_calloc(&(p), (n), sizeof(*(p)), (what)))

/* After MPI_Init: the communicator (an MPI_Comm passed as void*) fm_fatal uses to
 * print an error that every rank found once. */
void fm_error_init(const void *comm);

const char *fm_error_message(void); /* message of the current error */
const char *fm_error_name(fm_err code);
void fm_error_clear(void);
/* The whole error: message and trace, one line each, into buf. */
void fm_error_format(char *buf, size_t len);

/* End the job on error err (nonzero) detected on THIS rank only: print with the
 * rank prefix and MPI_Abort (or exit when MPI is not running). When every rank
 * comes here within a moment (2 s), only the lowest prints and all end with its
 * status. Never returns. */
void fm_fatal(fm_err err) __attribute__((noreturn));

/* Collective error check: every rank calls it with its own err. If any rank failed,
 * the lowest failing rank's message is printed once (by that rank) and every rank
 * returns that rank's code, so the callers unwind and exit together with one status.
 * An error that went through an agreement already (every rank has it) is not printed
 * again. Returns 0 when all ranks are fine. comm is an MPI_Comm passed as void* to
 * keep mpi.h out of this header. */
fm_err fm_error_agree(fm_err err, const void *comm);
/* Whether the current error went through fm_error_agree (then fm_fatal exits
 * quietly on every rank instead of aborting). */
int fm_error_agreed(void);

#endif
