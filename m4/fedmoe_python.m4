# FEDMOE_CHECK_PYTHON_H5PY: a Python interpreter that imports h5py and numpy,
# for analysis/ and the test oracles. PYTHON=... wins; then /usr/bin/python3
# (Debian's modules live there), then python3 on PATH. Not fatal: analysis and
# its tests are skipped at configure time with a notice when none is found.
AC_DEFUN([FEDMOE_CHECK_PYTHON_H5PY], [
  AC_ARG_VAR([PYTHON], [Python interpreter with h5py, numpy and matplotlib])
  PYTHON_H5PY=""
  for fedmoe_py in $PYTHON /usr/bin/python3 `command -v python3 2>/dev/null`; do
    AC_MSG_CHECKING([whether $fedmoe_py imports h5py and numpy])
    AS_IF([$fedmoe_py -c 'import h5py, numpy' >/dev/null 2>&1],
      [AC_MSG_RESULT([yes]); PYTHON_H5PY=$fedmoe_py; break],
      [AC_MSG_RESULT([no])])
  done
  AS_IF([test -z "$PYTHON_H5PY"],
    [AC_MSG_WARN([no Python with h5py and numpy: analysis tools will not run (Debian: apt-get install python3-h5py python3-numpy python3-matplotlib)])])
  AC_SUBST([PYTHON_H5PY])
  AM_CONDITIONAL([HAVE_PYTHON_H5PY], [test -n "$PYTHON_H5PY"])
])
