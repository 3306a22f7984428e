# FEDMOE_CHECK_CUDA: --with-cuda[=DIR] builds the CUDA backend (src/nn/cuda) with nvcc,
# cuBLAS and cuBLASLt. Without the option nothing changes: no CUDA code is built.
# Sets NVCC, NVCCFLAGS, CUDA_CPPFLAGS, CUDA_LIBS, the conditional HAVE_CUDA and the
# C macro FEDMOE_HAVE_CUDA.
AC_DEFUN([FEDMOE_CHECK_CUDA], [
  AC_ARG_WITH([cuda],
    [AS_HELP_STRING([--with-cuda@<:@=DIR@:>@],
      [build the CUDA backend (toolkit in DIR, default /usr/local/cuda)])],
    [], [with_cuda=no])
  AC_ARG_VAR([NVCCFLAGS], [flags for nvcc (default: -O3 and the GPU architectures)])
  CUDA_CPPFLAGS=""
  CUDA_LIBS=""
  AS_IF([test "x$with_cuda" != xno], [
    AS_IF([test "x$with_cuda" = xyes], [cuda_home=/usr/local/cuda], [cuda_home=$with_cuda])
    AC_PATH_PROG([NVCC], [nvcc], [no], [$cuda_home/bin:$PATH])
    AS_IF([test "x$NVCC" = xno],
      [AC_MSG_ERROR([--with-cuda: no nvcc in $cuda_home/bin or on PATH; pass --with-cuda=DIR])])
    cuda_lib=$cuda_home/lib64
    test -d "$cuda_lib" || cuda_lib=$cuda_home/lib
    CUDA_CPPFLAGS="-I$cuda_home/include"
    CUDA_LIBS="-L$cuda_lib -Wl,-rpath,$cuda_lib -lcublasLt -lcublas -lcudart -lstdc++"
    fedmoe_save_CPPFLAGS=$CPPFLAGS
    fedmoe_save_LIBS=$LIBS
    CPPFLAGS="$CPPFLAGS $CUDA_CPPFLAGS"
    LIBS="$CUDA_LIBS $LIBS"
    AC_MSG_CHECKING([for cuBLAS and the CUDA runtime in $cuda_home])
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cublasLt.h>]], [[(void)cudaGetDeviceCount; (void)cublasCreate; (void)cublasLtCreate;]])],
      [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no]); AC_MSG_ERROR([--with-cuda: cuda_runtime.h/cublas_v2.h or -lcublas not usable under $cuda_home])])
    CPPFLAGS=$fedmoe_save_CPPFLAGS
    LIBS=$fedmoe_save_LIBS
    # Hopper (H100/H200) and Ampere machine code, plus PTX for newer GPUs.
    AS_IF([test "x$NVCCFLAGS" = x],
      [NVCCFLAGS="-O3 -std=c++17 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90"])
    AC_DEFINE([FEDMOE_HAVE_CUDA], [1], [Define to 1 when the CUDA backend is built.])
  ])
  AM_CONDITIONAL([HAVE_CUDA], [test "x$with_cuda" != xno])
  AC_SUBST([CUDA_CPPFLAGS])
  AC_SUBST([CUDA_LIBS])
  AC_SUBST([NVCCFLAGS])
])
