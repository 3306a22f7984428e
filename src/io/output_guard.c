/* output_guard.c - what a run may write: an exclusive lock on its run file for the
 * run's life, and no output file replaced by accident.
 *
 * The lock is a POSIX record lock (fcntl) on "<run file>.lock", taken by rank 0
 * before the run file is opened or created. The kernel drops it when the process
 * ends, however it ends, so a crashed run never blocks its own resume; the file holds
 * who took it (pid, host, start time) for the message another run gets. The run
 * file's .ckpt folder is named after the run file, so the one lock covers both. Only
 * rank 0 takes it: the other ranks open the run file only through the collective
 * calls rank 0 takes part in, after the lock was agreed. The lock is our own and not
 * HDF5's file locking (HDF5_USE_FILE_LOCKING), which the MPI-IO driver does not use. */
#include "fedmoe/io.h"

#include "fedmoe/log.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fm_output_lock {
  int fd;
  char path[2 * PATH_MAX + 8];
};

/* The file name with its folder made absolute and free of symbolic links (the file
 * itself need not exist): two spellings of one run file get one lock file. */
static void canonical(const char *path, char *out, size_t len) {
  char dir[PATH_MAX], real[PATH_MAX];
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && realpath(path, real)) { /* a link names its target */
    snprintf(out, len, "%s", real);
    return;
  }
  if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) > 0 ? (int)(slash - path) : 1, path);
  else snprintf(dir, sizeof dir, ".");
  if (realpath(dir, real)) snprintf(out, len, "%s%s%s", real, strcmp(real, "/") ? "/" : "", base);
  else snprintf(out, len, "%s", path);
}

/* Rank 0: take the lock or say who holds it. */
static fm_err lock_local(const char *runfile, fm_output_lock *lk) {
  char canon[2 * PATH_MAX];
  canonical(runfile, canon, sizeof canon);
  snprintf(lk->path, sizeof lk->path, "%s.lock", canon);
  /* retry when the file we locked was removed by the holder that just finished: a lock
   * on a removed file guards nothing */
  for (int attempt = 0; attempt < 100; attempt++) {
    int fd = open(lk->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
      FM_ERROR(FM_ERR_IO, "run file '%s': cannot create its lock file '%s': %s (is the folder writable?)", runfile,
               lk->path, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) < 0) {
      int e = errno;
      if (e == EACCES || e == EAGAIN) {
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        close(fd);
        FM_ERROR(FM_ERR_IO, "run file '%s' is in use by another fedmoe run (%s; lock file '%s'): wait for that "
                 "run to end, or choose another run.output", runfile, holder[0] ? holder : "holder unknown",
                 lk->path);
      }
      close(fd);
      if (e == ENOLCK || e == ENOSYS || e == EOPNOTSUPP || e == EINVAL) { /* a file system without locks */
        FM_WARN("cannot lock '%s' (%s): this file system has no file locks, so a second run on the same "
                "run file would not be refused\n", lk->path, strerror(e));
        lk->fd = -1;
        return FM_OK;
      }
      FM_ERROR(FM_ERR_IO, "cannot lock '%s': %s", lk->path, strerror(e));
    }
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(lk->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      char host[256] = "?", stamp[64], line[400];
      gethostname(host, sizeof host - 1);
      time_t now = time(NULL);
      strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
      int n = snprintf(line, sizeof line, "pid %ld on host %s, started %s\n", (long)getpid(), host, stamp);
      if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)n, 0) != n)
        FM_WARN("cannot write the holder into '%s': %s\n", lk->path, strerror(errno));
      lk->fd = fd;
      return FM_OK;
    }
    close(fd);
  }
  FM_ERROR(FM_ERR_IO, "cannot lock '%s': it keeps being replaced", lk->path);
}

fm_err fm_output_lock_take(fm_output_lock **out, const char *runfile, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  *out = NULL;
  fm_output_lock *lk = calloc(1, sizeof *lk);
  fm_err err = lk ? FM_OK : fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM, "out of memory");
  if (lk) lk->fd = -1;
  if (!err && rank == 0) err = lock_local(runfile, lk);
  err = fm_error_agree(err, &comm);
  if (err) {
    fm_output_lock_release(lk);
    return err;
  }
  *out = lk;
  return FM_OK;
}

void fm_output_lock_release(fm_output_lock *lk) {
  if (!lk) return;
  if (lk->fd >= 0) { /* removed while still held: a run that opened it meanwhile retries on a new one */
    unlink(lk->path);
    close(lk->fd);
  }
  free(lk);
}

/* Whether a and b name one file: the same inode when both exist, else the same
 * canonical name. */
static int same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  char ca[2 * PATH_MAX], cb[2 * PATH_MAX];
  canonical(a, ca, sizeof ca);
  canonical(b, cb, sizeof cb);
  return !strcmp(ca, cb);
}

/* Whether path is a fedmoe run file (serial HDF5, rank 0); *why says what it is not. */
static int is_runfile(const char *path, const char **why) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (H5Fis_hdf5(path) <= 0) { *why = "not an HDF5 file"; return 0; }
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) { /* HDF5's own file locking refuses a file another program has open for writing */
    *why = "an HDF5 file that cannot be opened (truncated, damaged, or open for writing elsewhere)";
    return 0;
  }
  int ok = H5Aexists(f, "fedmoe_version") > 0 && H5Aexists(f, "config") > 0;
  H5Fclose(f);
  *why = "an HDF5 file but not a fedmoe run file";
  return ok;
}

/* Whether path starts like a NetCDF classic file (CDF-1, 2 or 5, what we write). */
static int is_netcdf(const char *path) {
  unsigned char m[4] = {0};
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(m, 1, 4, f) : 0;
  if (f) fclose(f);
  return n == 4 && m[0] == 'C' && m[1] == 'D' && m[2] == 'F' && (m[3] == 1 || m[3] == 2 || m[3] == 5);
}

static fm_err check_local(const char *runfile, int create, const char *netcdf, int overwrite, int *netcdf_new) {
  struct stat st;
  const char *why;
  if (create && lstat(runfile, &st) == 0) {
    if (!overwrite)
      FM_ERROR(FM_ERR_IO, "run.output: '%s' exists: pass --overwrite to replace it, or choose another run.output "
               "(--resume continues it)", runfile);
    if (!S_ISREG(st.st_mode) || !is_runfile(runfile, &why))
      FM_ERROR(FM_ERR_IO, "run.output: '%s' exists and is %s: fedmoe replaces only its own run files, even with "
               "--overwrite", runfile, S_ISREG(st.st_mode) ? why : "not a regular file");
  }
  if (!netcdf) return FM_OK;
  if (same_file(netcdf, runfile))
    FM_ERROR(FM_ERR_ARG, "--metrics-netcdf: '%s' is the run file itself; give the NetCDF file another name", netcdf);
  if (lstat(netcdf, &st) == 0) {
    if (!overwrite)
      FM_ERROR(FM_ERR_IO, "--metrics-netcdf: '%s' exists: pass --overwrite to replace it, or choose another name",
               netcdf);
    if (!S_ISREG(st.st_mode) || !is_netcdf(netcdf))
      FM_ERROR(FM_ERR_IO, "--metrics-netcdf: '%s' exists and is not a NetCDF file: fedmoe replaces only its own "
               "metrics files, even with --overwrite", netcdf);
    if (access(netcdf, W_OK) != 0)
      FM_ERROR(FM_ERR_IO, "--metrics-netcdf: '%s' is not writable: %s", netcdf, strerror(errno));
  } else {
    *netcdf_new = 1;
  }
  return FM_OK;
}

fm_err fm_output_check(const char *runfile, int create, const char *netcdf, int overwrite, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  int netcdf_new = 0;
  fm_err err = rank == 0 ? check_local(runfile, create, netcdf, overwrite, &netcdf_new) : FM_OK;
  FM_CHECK(fm_error_agree(err, &comm));
  /* a new NetCDF file that cannot be written is found now, not after the run; an
   * existing one (checked writable above) is replaced only at the end */
  MPI_Bcast(&netcdf_new, 1, MPI_INT, 0, comm);
  if (netcdf_new) FM_CHECK(fm_error_agree(fm_netcdf_write_rounds(netcdf, NULL, 0, "none", 0, "", comm), &comm));
  return FM_OK;
}
