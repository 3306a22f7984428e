# The text libraries: JSON (tokenizer.json, JSON Lines), regular expressions (the
# pre-tokenizers' patterns) and SentencePiece (a C++ library, behind a C wrapper).

# FEDMOE_CHECK_JANSSON: jansson parses every JSON file fedmoe reads.
AC_DEFUN([FEDMOE_CHECK_JANSSON], [
  FEDMOE_CHECK_LIB_WITH([jansson], [jansson.h], [jansson], [json_loads],
    [Debian: apt-get install libjansson-dev])
])

# FEDMOE_CHECK_PCRE2: PCRE2 (8-bit code units) with Unicode support, for the
# pre-tokenizer patterns (\p{L}, \p{N}, lookahead).
AC_DEFUN([FEDMOE_CHECK_PCRE2], [
  AC_ARG_WITH([pcre2],
    [AS_HELP_STRING([--with-pcre2=DIR], [PCRE2 installation prefix (DIR/include, DIR/lib)])],
    [], [with_pcre2=check])
  PCRE2_CPPFLAGS=""
  PCRE2_LIBS="-lpcre2-8"
  AS_IF([test "x$with_pcre2" != xcheck && test "x$with_pcre2" != xyes],
    [PCRE2_CPPFLAGS="-I$with_pcre2/include"
     fedmoe_l=$with_pcre2/lib; test -d "$with_pcre2/lib64" && fedmoe_l=$with_pcre2/lib64
     PCRE2_LIBS="-L$fedmoe_l -Wl,-rpath,$fedmoe_l -lpcre2-8"])
  fedmoe_save_CPPFLAGS=$CPPFLAGS
  fedmoe_save_LIBS=$LIBS
  CPPFLAGS="$CPPFLAGS $PCRE2_CPPFLAGS"
  LIBS="$PCRE2_LIBS $LIBS"
  AC_MSG_CHECKING([for PCRE2 with Unicode (pcre2.h, -lpcre2-8)])
  AC_RUN_IFELSE([AC_LANG_PROGRAM([[#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>]], [[uint32_t u = 0;
    pcre2_config(PCRE2_CONFIG_UNICODE, &u);
    return u ? 0 : 1;]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no]); AC_MSG_ERROR([PCRE2 with Unicode support not found: Debian: apt-get install libpcre2-dev, or pass --with-pcre2=DIR])],
    [AC_MSG_RESULT([cross-compiling: assumed])])
  CPPFLAGS=$fedmoe_save_CPPFLAGS
  LIBS=$fedmoe_save_LIBS
  AC_SUBST([PCRE2_CPPFLAGS])
  AC_SUBST([PCRE2_LIBS])
])

# FEDMOE_CHECK_SENTENCEPIECE: libsentencepiece (C++), used through src/data/spm.cc.
# Needs AC_PROG_CXX first; the C++ runtime joins the link line, since fedmoe is
# linked by the C (MPI) compiler.
AC_DEFUN([FEDMOE_CHECK_SENTENCEPIECE], [
  AC_ARG_WITH([sentencepiece],
    [AS_HELP_STRING([--with-sentencepiece=DIR], [SentencePiece installation prefix])],
    [], [with_sentencepiece=check])
  SENTENCEPIECE_CPPFLAGS=""
  SENTENCEPIECE_LIBS="-lsentencepiece -lstdc++"
  AS_IF([test "x$with_sentencepiece" != xcheck && test "x$with_sentencepiece" != xyes],
    [SENTENCEPIECE_CPPFLAGS="-I$with_sentencepiece/include"
     fedmoe_l=$with_sentencepiece/lib; test -d "$with_sentencepiece/lib64" && fedmoe_l=$with_sentencepiece/lib64
     SENTENCEPIECE_LIBS="-L$fedmoe_l -Wl,-rpath,$fedmoe_l -lsentencepiece -lstdc++"])
  AC_LANG_PUSH([C++])
  fedmoe_save_CPPFLAGS=$CPPFLAGS
  fedmoe_save_LIBS=$LIBS
  CPPFLAGS="$CPPFLAGS $SENTENCEPIECE_CPPFLAGS"
  LIBS="$SENTENCEPIECE_LIBS $LIBS"
  AC_MSG_CHECKING([for SentencePiece (sentencepiece_processor.h, -lsentencepiece)])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <sentencepiece_processor.h>]],
                   [[sentencepiece::SentencePieceProcessor sp; (void)sp.GetPieceSize();]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no]); AC_MSG_ERROR([SentencePiece not found: Debian: apt-get install libsentencepiece-dev, or pass --with-sentencepiece=DIR])])
  CPPFLAGS=$fedmoe_save_CPPFLAGS
  LIBS=$fedmoe_save_LIBS
  AC_LANG_POP([C++])
  AC_SUBST([SENTENCEPIECE_CPPFLAGS])
  AC_SUBST([SENTENCEPIECE_LIBS])
])

# FEDMOE_CHECK_UTF8PROC: Unicode normalisation (NFC), for tokenizer.json files that
# normalise their text first (Qwen, GPT-NeoX and OLMoE).
AC_DEFUN([FEDMOE_CHECK_UTF8PROC], [
  FEDMOE_CHECK_LIB_WITH([utf8proc], [utf8proc.h], [utf8proc], [utf8proc_NFC],
    [Debian: apt-get install libutf8proc-dev])
])
