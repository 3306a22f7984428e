# FEDMOE_CHECK_LIB_WITH(NAME, HEADER, LIBRARY, FUNCTION, HINT)
# A library found in the default paths or under --with-NAME=DIR; sets NAME_CPPFLAGS
# and NAME_LIBS (upper case). HINT is the install advice printed on failure.
AC_DEFUN([FEDMOE_CHECK_LIB_WITH], [
  m4_pushdef([UP], m4_toupper([$1]))
  AC_ARG_WITH([$1],
    [AS_HELP_STRING([--with-$1=DIR], [$1 installation prefix (DIR/include, DIR/lib)])],
    [], [with_$1=check])
  UP[]_CPPFLAGS=""
  UP[]_LIBS="-l$3"
  AS_IF([test "x$with_$1" != xcheck && test "x$with_$1" != xyes],
    [UP[]_CPPFLAGS="-I$with_$1/include"
     fedmoe_l=$with_$1/lib; test -d "$with_$1/lib64" && fedmoe_l=$with_$1/lib64
     UP[]_LIBS="-L$fedmoe_l -Wl,-rpath,$fedmoe_l -l$3"])
  fedmoe_save_CPPFLAGS=$CPPFLAGS
  fedmoe_save_LIBS=$LIBS
  CPPFLAGS="$CPPFLAGS $UP[]_CPPFLAGS"
  LIBS="$UP[]_LIBS $LIBS"
  AC_MSG_CHECKING([for $1 ($2, -l$3)])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <$2>]], [[(void)$4;]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no]); AC_MSG_ERROR([$1 not found: $5, or pass --with-$1=DIR])])
  CPPFLAGS=$fedmoe_save_CPPFLAGS
  LIBS=$fedmoe_save_LIBS
  AC_SUBST(UP[]_CPPFLAGS)
  AC_SUBST(UP[]_LIBS)
  m4_popdef([UP])
])

# BLIS: every GEMM goes through it. No pkg-config file on Debian.
AC_DEFUN([FEDMOE_CHECK_BLIS], [
  FEDMOE_CHECK_LIB_WITH([blis], [blis.h], [blis], [bli_sgemm],
    [Debian: apt-get install libblis-dev])
])

# PnetCDF: the NetCDF export of the per-round metrics (CDF-5).
AC_DEFUN([FEDMOE_CHECK_PNETCDF], [
  FEDMOE_CHECK_LIB_WITH([pnetcdf], [pnetcdf.h], [pnetcdf], [ncmpi_create],
    [Debian: apt-get install libpnetcdf-dev])
])

# CUnit: the unit tests. Needed for make check only, but checked always so that
# a missing CUnit is found at configure time, not half-way through make check.
AC_DEFUN([FEDMOE_CHECK_CUNIT], [
  FEDMOE_CHECK_LIB_WITH([cunit], [CUnit/Basic.h], [cunit], [CU_initialize_registry],
    [Debian: apt-get install libcunit1-dev])
])
