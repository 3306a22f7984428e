# FEDMOE_CHECK_HDF5_PARALLEL: find an HDF5 built with MPI-IO (H5_HAVE_PARALLEL).
# Search order: --with-hdf5=DIR, then Debian's openmpi flavour, then the default paths.
# A serial HDF5 is refused: the run file is written collectively.
AC_DEFUN([FEDMOE_CHECK_HDF5_PARALLEL], [
  AC_ARG_WITH([hdf5],
    [AS_HELP_STRING([--with-hdf5=DIR], [parallel HDF5 prefix (DIR/include, DIR/lib)])],
    [], [with_hdf5=check])
  fedmoe_hdf5_found=no
  fedmoe_save_CPPFLAGS=$CPPFLAGS
  fedmoe_save_LIBS=$LIBS
  fedmoe_save_LDFLAGS=$LDFLAGS
  AS_IF([test "x$with_hdf5" != xcheck && test "x$with_hdf5" != xyes],
    [fedmoe_hdf5_candidates="$with_hdf5"],
    [fedmoe_hdf5_candidates="debian-openmpi /usr /usr/local"])
  for fedmoe_c in $fedmoe_hdf5_candidates; do
    AS_CASE([$fedmoe_c],
      [debian-openmpi],
        [fedmoe_inc=/usr/include/hdf5/openmpi
         fedmoe_lib=`ls -d /usr/lib/*/hdf5/openmpi 2>/dev/null | head -n 1`],
      [fedmoe_inc=$fedmoe_c/include; fedmoe_lib=$fedmoe_c/lib
       test -d "$fedmoe_c/lib64" && fedmoe_lib=$fedmoe_c/lib64])
    test -f "$fedmoe_inc/hdf5.h" || continue
    AC_MSG_CHECKING([for parallel HDF5 in $fedmoe_inc])
    CPPFLAGS="$fedmoe_save_CPPFLAGS -I$fedmoe_inc"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <hdf5.h>
#ifndef H5_HAVE_PARALLEL
#error serial HDF5
#endif]], [[hid_t p = H5Pcreate(H5P_FILE_ACCESS); (void)p;]])],
      [AC_MSG_RESULT([yes])
       HDF5_CPPFLAGS="-I$fedmoe_inc"
       HDF5_LIBS="-L$fedmoe_lib -Wl,-rpath,$fedmoe_lib -lhdf5"
       fedmoe_hdf5_found=yes],
      [AC_MSG_RESULT([no (serial build: H5_HAVE_PARALLEL is not defined)])
       fedmoe_hdf5_serial_seen="$fedmoe_inc"])
    test "x$fedmoe_hdf5_found" = xyes && break
  done
  AS_IF([test "x$fedmoe_hdf5_found" != xyes],
    [AS_IF([test -n "$fedmoe_hdf5_serial_seen"],
      [AC_MSG_ERROR([HDF5 in $fedmoe_hdf5_serial_seen is a serial build; fedmoe writes its run file collectively and needs parallel HDF5 (Debian: apt-get install libhdf5-openmpi-dev, or --with-hdf5=DIR of an MPI-enabled build)])],
      [AC_MSG_ERROR([parallel HDF5 not found (Debian: apt-get install libhdf5-openmpi-dev, or --with-hdf5=DIR)])])])
  LIBS="$HDF5_LIBS $fedmoe_save_LIBS"
  CPPFLAGS="$fedmoe_save_CPPFLAGS $HDF5_CPPFLAGS"
  AC_MSG_CHECKING([whether parallel HDF5 links])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <hdf5.h>]],
      [[hid_t p = H5Pcreate(H5P_FILE_ACCESS); H5Pset_fapl_mpio(p, MPI_COMM_WORLD, MPI_INFO_NULL);]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no]); AC_MSG_ERROR([cannot link against parallel HDF5 with $HDF5_LIBS])])
  CPPFLAGS=$fedmoe_save_CPPFLAGS
  LIBS=$fedmoe_save_LIBS
  AC_PATH_PROGS([H5DUMP], [h5pdump h5dump], [])
  AC_PATH_PROGS([H5DIFF], [h5diff], [])
  AC_SUBST([HDF5_CPPFLAGS])
  AC_SUBST([HDF5_LIBS])
])
