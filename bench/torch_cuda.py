"""torch_cuda.py - the PyTorch side of the GPU benchmarks (figures, not tests): the
models of bench_cuda / `fedmoe bench --device cuda`, trained the way a PyTorch user
would on the same GPU, tokens/s of the median step.

Models (random weights from a config, transformers' default attention - SDPA - no
dropout):
  gpt2    GPT-2-124M: GPT2LMHeadModel, d 768, 12 layers, 12 heads, vocabulary 50257, tied head
  smollm  SmolLM-135M: LlamaForCausalLM, d 576, 30 layers, 9 heads on 3 key/value heads,
          SwiGLU 1536, vocabulary 49152, tied head, RoPE
  moe     the 12-layer Mixtral-style MoE: MixtralForCausalLM, d 768, 12 heads on 4
          key/value heads, 8 SwiGLU experts of 2048, top-2, vocabulary 50257, with the
          router's load-balancing loss
Modes: full (every parameter, fused AdamW) and lora (PEFT LoRA r 8, alpha 16 on the
attention projections - GPT-2's c_attn and attn.c_proj, Llama's q_proj and v_proj as
fedmoe's model.attn_lora_rank and PEFT's default - base frozen,
AdamW on the adapters). A step: zero_grad, forward with labels (loss), backward,
optimizer step; bf16 is autocast (bf16 GEMMs, fp32 master weights), tf32 allows
TF32 matmuls, fp32 neither. Three warm-up steps, then the median of `steps`.

usage: python3 bench/torch_cuda.py [B T [steps]] [--models gpt2,smollm,moe]
                                   [--modes full,lora] [--precs fp32,bf16]
e.g. the issue's table: python3 bench/torch_cuda.py 8 1024 && python3 bench/torch_cuda.py 8 128
"""
import argparse
import statistics
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("B", type=int, nargs="?", default=8)
ap.add_argument("T", type=int, nargs="?", default=128)
ap.add_argument("steps", type=int, nargs="?", default=20)
ap.add_argument("--models", default="gpt2,smollm,moe")
ap.add_argument("--modes", default="full,lora")
ap.add_argument("--precs", default="fp32,bf16")
ap.add_argument("--lora-rank", type=int, default=8)
args = ap.parse_args()
B, T, STEPS = args.B, args.T, args.steps


def make(name):
    """the model (on the GPU) and its vocabulary size"""
    if name == "gpt2":
        cfg = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=max(1024, T),
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return GPT2LMHeadModel(cfg), 50257
    if name == "smollm":
        cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                          max_position_embeddings=max(2048, T),
                          tie_word_embeddings=True, attention_dropout=0.0)
        return LlamaForCausalLM(cfg), 49152
    if name == "moe":
        from transformers import MixtralConfig, MixtralForCausalLM
        cfg = MixtralConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                            num_attention_heads=12, num_key_value_heads=4, vocab_size=50257,
                            num_local_experts=8, num_experts_per_tok=2, max_position_embeddings=max(1024, T),
                            output_router_logits=True, router_aux_loss_coef=0.01,
                            tie_word_embeddings=False, attention_dropout=0.0)
        return MixtralForCausalLM(cfg), 50257
    raise SystemExit(f"torch_cuda.py: unknown model '{name}' (gpt2, smollm, moe)")


def lora(model, name):
    from peft import LoraConfig, get_peft_model
    if name == "gpt2":
        target, fan = r".*\.attn\.(c_attn|c_proj)", True  # GPT-2's Conv1D stores [in, out]
    else:
        target, fan = ["q_proj", "v_proj"], False  # PEFT's default for Llama, fedmoe's llama LoRA
    cfg = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, lora_dropout=0.0,
                     target_modules=target, fan_in_fan_out=fan, bias="none")
    return get_peft_model(model, cfg)


def run(name, mode, prec):
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
    torch.backends.cudnn.allow_tf32 = prec == "tf32"
    with torch.device("cuda"):  # initialised on the GPU: fast
        model, V = make(name)
    model = model.train()
    if mode == "lora":
        model = lora(model, name)
    params = [p for p in model.parameters() if p.requires_grad]
    ntrain = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    x = torch.randint(0, V, (B, T), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for k in range(STEPS + 3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16"):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if k >= 3:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"  {name:6s} {mode:4s} {prec:5s} {B * T / med:10.0f} tokens/s  (best {B * T / min(times):.0f})"
          f"  step {med * 1e3:7.2f} ms  loss {loss.item():.3f}  trained {ntrain / 1e6:.1f} M"
          f"  peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
          f"  attention {getattr(model.config, '_attn_implementation', '?')}", flush=True)
    del model, opt, params
    torch.cuda.empty_cache()


print(f"torch_cuda: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"{torch.cuda.get_device_name()}, batch {B} x {T}, {STEPS} steps (median)", flush=True)
for name in args.models.split(","):
    for mode in args.modes.split(","):
        for prec in args.precs.split(","):
            try:
                run(name, mode, prec)
            except Exception as e:  # noqa: BLE001 - one failing case must not hide the others
                print(f"  {name:6s} {mode:4s} {prec:5s} failed: {type(e).__name__}: {e}", flush=True)
                torch.cuda.empty_cache()
