# nn/cuda: the engine's kernels on NVIDIA GPUs (./configure --with-cuda). The .cu
# files are compiled by nvcc; the C files (context, cuBLAS GEMMs, attention, the
# kernels' C entry points) by the C compiler against the CUDA headers.
CUDA_KERNEL_SRCS = %reldir%/colsum.cu %reldir%/layernorm.cu %reldir%/gelu.cu \
	%reldir%/crossentropy.cu %reldir%/softmax.cu %reldir%/embed.cu %reldir%/adamw.cu \
	%reldir%/vecops.cu %reldir%/flash_attention.cu %reldir%/flash_attention_mma.cu \
	%reldir%/head_crossentropy.cu %reldir%/bf16_copy.cu
CUDA_HDRS = %reldir%/cuda_nn.h %reldir%/backend_cuda.h %reldir%/context.h %reldir%/kernels.h %reldir%/common.cuh
EXTRA_DIST += $(CUDA_KERNEL_SRCS) $(CUDA_HDRS) %reldir%/context.c %reldir%/gemm.c \
	%reldir%/attention.c %reldir%/head.c %reldir%/ops.c %reldir%/backend_cuda.c

# The llama and MoE families' kernels and LoRA (kernels_llama.h), their C entry points
# (llama_ops.c) and the MoE layer (moe_cuda.c).
CUDA_KERNEL_SRCS += %reldir%/dense.cu %reldir%/rmsnorm.cu %reldir%/rope.cu %reldir%/swiglu.cu \
	%reldir%/router.cu %reldir%/moe_dispatch.cu
CUDA_HDRS += %reldir%/kernels_llama.h
EXTRA_DIST += %reldir%/llama_ops.c %reldir%/moe_cuda.c
# client slots' grouped LoRA (run.client_batch)
EXTRA_DIST += %reldir%/lora_grouped.c

if HAVE_CUDA
noinst_LIBRARIES += libfedmoe_cuda.a
libfedmoe_cuda_a_SOURCES = %reldir%/context.c %reldir%/gemm.c %reldir%/attention.c %reldir%/head.c \
	%reldir%/ops.c %reldir%/backend_cuda.c
libfedmoe_cuda_a_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CPPFLAGS)

libfedmoe_cuda_a_SOURCES += %reldir%/llama_ops.c %reldir%/moe_cuda.c
libfedmoe_cuda_a_SOURCES += %reldir%/lora_grouped.c

CUDA_KERNEL_OBJS = $(CUDA_KERNEL_SRCS:.cu=.cu.$(OBJEXT))
libfedmoe_cuda_a_LIBADD = $(CUDA_KERNEL_OBJS)
libfedmoe_cuda_a_DEPENDENCIES = $(CUDA_KERNEL_OBJS)
CLEANFILES += $(CUDA_KERNEL_OBJS)

%.cu.$(OBJEXT): %.cu $(addprefix $(srcdir)/,$(filter %.h %.cuh,$(CUDA_HDRS)))
	@$(MKDIR_P) $(@D)
	$(AM_V_GEN)$(NVCC) $(NVCCFLAGS) -I$(srcdir)/%reldir% -Xcompiler -fPIC -c $< -o $@
endif
