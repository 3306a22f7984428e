# nn: kernels (forward/backward pairs), the MoE layer, the model, AdamW.
noinst_HEADERS += include/fedmoe/model.h include/fedmoe/nn_threads.h %reldir%/nn.h \
	%reldir%/model_impl.h %reldir%/vmath.h %reldir%/backend.h include/fedmoe/decode.h %reldir%/decode_impl.h
libfedmoe_a_SOURCES += %reldir%/gemm.c %reldir%/linear.c %reldir%/layernorm.c %reldir%/gelu.c \
	%reldir%/ffn.c %reldir%/attention.c %reldir%/embed.c %reldir%/crossentropy.c \
	%reldir%/router.c %reldir%/loadbalance.c %reldir%/moe.c %reldir%/model_shape.c \
	%reldir%/model.c %reldir%/model_pass.c %reldir%/adamw.c %reldir%/clip.c %reldir%/schedule.c \
	%reldir%/profile.c %reldir%/rmsnorm.c %reldir%/rope.c %reldir%/swiglu.c \
	%reldir%/shared_expert.c %reldir%/model_llama.c %reldir%/moe_swiglu_lora.c %reldir%/lora.c %reldir%/lora_grouped.c %reldir%/model_slots.c \
	%reldir%/backend_cpu.c %reldir%/backend_mirror.c %reldir%/model_device.c \
	%reldir%/model_decode.c %reldir%/attention_cached.c %reldir%/sample.c %reldir%/generate.c

# The kernels' element-wise loops are written to vectorise: -O2 vectorises only loops
# whose trip count is a known multiple of the vector width, and these run over D, 4D,
# T or V, so they ask for the ordinary cost model. -fno-trapping-math lets GCC
# if-convert the clamps of vmath.h, -fno-math-errno lets sqrtf become an instruction;
# neither changes a result. (Without -ffast-math no sum is reassociated.)
# FM_VEC kernels are also compiled for AVX2+FMA and chosen at load time (vmath.h).
NN_VECTOR_OBJS = %reldir%/linear.$(OBJEXT) %reldir%/layernorm.$(OBJEXT) %reldir%/gelu.$(OBJEXT) \
	%reldir%/attention.$(OBJEXT) %reldir%/embed.$(OBJEXT) %reldir%/crossentropy.$(OBJEXT) \
	%reldir%/router.$(OBJEXT) %reldir%/loadbalance.$(OBJEXT) %reldir%/moe.$(OBJEXT) \
	%reldir%/adamw.$(OBJEXT) %reldir%/clip.$(OBJEXT) %reldir%/rmsnorm.$(OBJEXT) \
	%reldir%/rope.$(OBJEXT) %reldir%/swiglu.$(OBJEXT) %reldir%/shared_expert.$(OBJEXT) \
	%reldir%/moe_swiglu_lora.$(OBJEXT) %reldir%/attention_cached.$(OBJEXT)
$(NN_VECTOR_OBJS): AM_CFLAGS += -ftree-loop-vectorize -fvect-cost-model=dynamic \
	-fno-trapping-math -fno-math-errno

# a hosted client's private state in a device model's memory (run.device_state_mb)
libfedmoe_a_SOURCES += %reldir%/model_stash.c
