# FEDMOE_CHECK_MPI: choose mpicc as the C compiler.
# --with-mpi=DIR looks for DIR/bin/mpicc; MPICC=... in the environment wins.
AC_DEFUN([FEDMOE_CHECK_MPI], [
  AC_ARG_WITH([mpi],
    [AS_HELP_STRING([--with-mpi=DIR], [Open MPI installation prefix (DIR/bin/mpicc)])],
    [], [with_mpi=check])
  AS_IF([test "x$with_mpi" = xno], [AC_MSG_ERROR([fedmoe cannot be built without MPI])])
  fedmoe_mpi_path=$PATH
  AS_IF([test "x$with_mpi" != xcheck && test "x$with_mpi" != xyes],
        [fedmoe_mpi_path="$with_mpi/bin"])
  AS_IF([test -z "$MPICC"],
        [AC_PATH_PROGS([MPICC], [mpicc], [], [$fedmoe_mpi_path])])
  AS_IF([test -z "$MPICC"],
        [AC_MSG_ERROR([mpicc not found. Install Open MPI (Debian: apt-get install libopenmpi-dev openmpi-bin) or pass --with-mpi=DIR])])
  CC=$MPICC
  AC_PATH_PROGS([MPIEXEC], [mpiexec mpirun], [], [$fedmoe_mpi_path])
  AS_IF([test -z "$MPIEXEC"],
        [AC_MSG_ERROR([mpiexec/mpirun not found next to $MPICC (Debian: apt-get install openmpi-bin)])])
  AC_SUBST([MPIEXEC])
])

# FEDMOE_CHECK_MPI_WORKS: mpicc compiles and links an MPI program; detect Open MPI.
AC_DEFUN([FEDMOE_CHECK_MPI_WORKS], [
  AC_MSG_CHECKING([whether $CC builds MPI programs])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <mpi.h>]],
                   [[MPI_Init(0, 0); MPI_Finalize();]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no]); AC_MSG_ERROR([$CC cannot link an MPI program])])
  AC_MSG_CHECKING([for Open MPI])
  AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <mpi.h>
#ifndef OPEN_MPI
#error not Open MPI
#endif]], [])],
    [AC_MSG_RESULT([yes]); fedmoe_open_mpi=yes],
    [AC_MSG_RESULT([no]); fedmoe_open_mpi=no
     AC_MSG_WARN([this MPI is not Open MPI; the tests' mpirun flags assume Open MPI])])
  MPIEXEC_FLAGS=""
  AS_IF([test "x$fedmoe_open_mpi" = xyes], [MPIEXEC_FLAGS="--oversubscribe"])
  AC_SUBST([MPIEXEC_FLAGS])
])
