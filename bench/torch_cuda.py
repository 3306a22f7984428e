"""torch_cuda.py - the reference for bench_cuda: the same GPT-2-124M-sized model
(transformers' GPT2LMHeadModel from a config, random weights, SDPA attention), the same
full fine-tuning step (forward, backward, fused AdamW) at batch B x T, in PyTorch on the
same GPU. Prints tokens/s of the median step for fp32, tf32 and bf16 autocast.
usage: python3 bench/torch_cuda.py [B T [steps]]"""
import sys, time, statistics
import torch
from transformers import GPT2Config, GPT2LMHeadModel

B = int(sys.argv[1]) if len(sys.argv) > 2 else 8
T = int(sys.argv[2]) if len(sys.argv) > 2 else 128
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
cfg = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024,
                 resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
print(f"torch_cuda: torch {torch.__version__}, GPT-2-124M-sized, full fine-tuning, batch {B} x {T}, {steps} steps")
for prec in ("fp32", "tf32", "bf16"):
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
    torch.backends.cudnn.allow_tf32 = prec == "tf32"
    model = GPT2LMHeadModel(cfg).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    x = torch.randint(0, 50257, (B, T), device="cuda")
    times = []
    for k in range(steps + 3):
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
    print(f"  {prec:5s} {B * T / med:10.0f} tokens/s  (best {B * T / min(times):.0f})  step {med * 1e3:.2f} ms  loss {loss.item():.3f}")
    del model, opt
    torch.cuda.empty_cache()
