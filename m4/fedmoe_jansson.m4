# jansson: config.json of Hugging Face model folders and the safetensors header.
AC_DEFUN([FEDMOE_CHECK_JANSSON], [
  FEDMOE_CHECK_LIB_WITH([jansson], [jansson.h], [jansson], [json_loadb],
    [Debian: apt-get install libjansson-dev])
])
