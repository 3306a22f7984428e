# nn: kernels (forward/backward pairs), the MoE layer, the model, AdamW.
noinst_HEADERS += include/fedmoe/model.h include/fedmoe/nn_threads.h %reldir%/nn.h \
	%reldir%/model_impl.h
libfedmoe_a_SOURCES += %reldir%/gemm.c %reldir%/linear.c %reldir%/layernorm.c %reldir%/gelu.c \
	%reldir%/ffn.c %reldir%/attention.c %reldir%/embed.c %reldir%/crossentropy.c \
	%reldir%/router.c %reldir%/loadbalance.c %reldir%/moe.c %reldir%/model_shape.c \
	%reldir%/model.c %reldir%/model_pass.c %reldir%/adamw.c %reldir%/clip.c %reldir%/schedule.c

# GELU spends most of its time in tanhf. This file alone may call glibc's vector math
# library (libmvec, reached through -lm), which GCC uses only under -ffast-math, and
# asks for the loop vectoriser that -O2 keeps to trivial loops; the code clamps its
# argument, so nothing relies on infinities or NaNs. (A GNU make target variable.)
%reldir%/gelu.$(OBJEXT): AM_CFLAGS += -ffast-math -ftree-loop-vectorize -fvect-cost-model=dynamic

# -O2 vectorises only loops whose trip count is a known multiple of the vector width;
# the kernels' loops run over D, 4D, T or V, so they ask for the ordinary cost model.
# (Elementwise loops only: without -ffast-math no sum is reassociated, results stay.)
NN_VECTOR_OBJS = %reldir%/linear.$(OBJEXT) %reldir%/layernorm.$(OBJEXT) \
	%reldir%/attention.$(OBJEXT) %reldir%/embed.$(OBJEXT) %reldir%/crossentropy.$(OBJEXT) \
	%reldir%/router.$(OBJEXT) %reldir%/loadbalance.$(OBJEXT) %reldir%/moe.$(OBJEXT) \
	%reldir%/adamw.$(OBJEXT) %reldir%/clip.$(OBJEXT)
$(NN_VECTOR_OBJS): AM_CFLAGS += -ftree-loop-vectorize -fvect-cost-model=dynamic
