#!/usr/bin/python3
"""torch_bench.py - the PyTorch side of `make bench`: the same models as
`fedmoe bench` (src/cmd_bench.c), trained the same way on one thread, timed the same way.

    /usr/bin/python3 bench/torch_bench.py [--only NAME] [--steps N]

Architecture (include/fedmoe/model.h): GPT-2 style, pre-LayerNorm, tanh-GELU, tied
head; MoE blocks route with a bias-free linear router, softmax, top-k renormalised,
full-FFN experts, each expert applied to its own tokens only (gather, expert,
index_add), plus the Switch load-balancing term. mixtral-d128: the llama family's
block instead (RMSNorm, rotary embeddings, 4 query heads on 2 key/value heads,
SwiGLU experts of 344, untied head), routed the same way.
gpt2-124m: GPT-2 124M's shape (D 768, 12 blocks, 12 heads, vocabulary 50257, tied head)
on B = 4 sequences of T = 256; smollm-135m: SmolLM-135M's (llama block, D 576, 30
blocks, 9 query heads on 3 key/value heads, SwiGLU 1536, vocabulary 49152, tied head,
rope_theta 10000), the same batch. Their -lora variants freeze every weight and train
rank-8 LoRA adapters (scale alpha / r = 2; A N(0, 0.02), B 0, as fedmoe) on c_attn and
c_proj (gpt2) or q_proj and v_proj (llama): y = x W^T + s (x A) B, so autograd computes
input gradients through the frozen weights and weight gradients of A and B only, the
tensors fedmoe trains. A step: zero_grad, forward, backward,
clip_grad_norm_(1.0), AdamW(lr 1e-3, betas (0.9, 0.99), eps 1e-8, no weight decay).
Prints one line per model: NAME tokens/s of the median step and of the best step.
FEDMOE_BENCH_CPU=1 times with the process's CPU clock, as it makes `fedmoe bench` do.
If torch cannot be imported it says so and exits with status 3.
"""
import argparse
import math
import os
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 - any import failure means: no torch column
    print("# torch: not importable with %s (%s)" % (sys.executable, e))
    sys.exit(3)

WARMUP, STEPS = 2, 8
# name: family, D, H, L, MoE, E, k, and for the real-sized ones vocabulary, T, B,
# key/value heads, FFN size, LoRA rank, warm-up and timed steps (configs[] in src/cmd_bench.c)
CONFIGS = {
    "dense-d128": dict(family="gpt2", D=128, H=4, L=4, moe=False),
    "moe-d128": dict(family="gpt2", D=128, H=4, L=4, moe=True),
    "moe-d256": dict(family="gpt2", D=256, H=4, L=4, moe=True),
    "mixtral-d128": dict(family="mixtral", D=128, H=4, L=4, moe=True, KVH=2, F=(8 * 128 // 3 + 7) // 8 * 8,
                         tied=False),
    "gpt2-124m": dict(family="gpt2", D=768, H=12, L=12, moe=False, V=50257, T=256, B=4, warmup=1, steps=3),
    "gpt2-124m-lora": dict(family="gpt2", D=768, H=12, L=12, moe=False, V=50257, T=256, B=4, lora=8, warmup=1,
                           steps=3),
    "smollm-135m": dict(family="llama", D=576, H=9, L=30, moe=False, KVH=3, F=1536, V=49152, T=256, B=4,
                        warmup=1, steps=3),
    "smollm-135m-lora": dict(family="llama", D=576, H=9, L=30, moe=False, KVH=3, F=1536, V=49152, T=256, B=4,
                             lora=8, warmup=1, steps=3),
}
DEFAULTS = dict(E=4, k=2, V=256, T=128, B=16, KVH=None, F=None, lora=0, tied=True, warmup=WARMUP, steps=STEPS)
LORA_ALPHA = 16.0
CPU_CLOCK = os.environ.get("FEDMOE_BENCH_CPU", "0") not in ("", "0")
clock = time.process_time if CPU_CLOCK else time.perf_counter


class LoRALinear(nn.Module):
    """A linear map plus a rank-r update: base(x) + (alpha / r) (x A) B, A [in,r], B [r,out]."""

    def __init__(self, base, r):
        super().__init__()
        self.base, self.scale = base, LORA_ALPHA / r
        self.lora_A = nn.Parameter(torch.randn(base.in_features, r) * 0.02)
        self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))

    def forward(self, x):
        return self.base(x) + ((x @ self.lora_A) @ self.lora_B) * self.scale


class FFN(nn.Module):
    def __init__(self, D):
        super().__init__()
        self.c_fc = nn.Linear(D, 4 * D)
        self.c_proj = nn.Linear(4 * D, D)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class SwiGLU(nn.Module):
    def __init__(self, D, Fi):
        super().__init__()
        self.w1, self.w3 = nn.Linear(D, Fi, bias=False), nn.Linear(D, Fi, bias=False)
        self.w2 = nn.Linear(Fi, D, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class RMSNorm(nn.Module):
    def __init__(self, D, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(D)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MoE(nn.Module):
    def __init__(self, D, E, k, lb_coef=0.01, expert=FFN):
        super().__init__()
        self.router = nn.Linear(D, E, bias=False)
        self.experts = nn.ModuleList([expert(D) for _ in range(E)])
        self.E, self.k, self.lb_coef = E, k, lb_coef

    def forward(self, x):  # x [N,D] -> out [N,D], load-balancing term
        probs = torch.softmax(self.router(x), dim=-1)
        topv, topi = probs.topk(self.k, dim=-1)
        w = topv / topv.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e in range(self.E):
            rows, slot = (topi == e).nonzero(as_tuple=True)
            if rows.numel():
                y = self.experts[e](x.index_select(0, rows))
                out.index_add_(0, rows, y * w[rows, slot].unsqueeze(1))
        f = torch.bincount(topi[:, 0], minlength=self.E).to(x.dtype) / x.shape[0]
        lb = self.lb_coef * self.E * (f * probs.mean(0)).sum()
        return out, lb


def lora(lin, c):  # the linear map, with a LoRA adapter when the config asks for one
    return LoRALinear(lin, c["lora"]) if c["lora"] else lin


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c["D"]
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.c_attn, self.c_proj = lora(nn.Linear(D, 3 * D), c), lora(nn.Linear(D, D), c)
        self.H = c["H"]
        self.ffn = MoE(D, c["E"], c["k"]) if c["moe"] else FFN(D)
        self.moe = c["moe"]

    def attn(self, x, mask):
        Bs, Ts, D = x.shape
        hs = D // self.H
        q, k, v = self.c_attn(x).split(D, dim=2)
        q, k, v = (t.view(Bs, Ts, self.H, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = torch.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(Bs, Ts, D)
        return self.c_proj(y)

    def forward(self, x, mask):
        a = x + self.attn(self.ln_1(x), mask)
        Bs, Ts, D = a.shape
        if self.moe:
            y, lb = self.ffn(self.ln_2(a).view(Bs * Ts, D))
            return a + y.view(Bs, Ts, D), lb
        return a + self.ffn(self.ln_2(a)), None


def init_matrices(model):  # N(0, 0.02) matrices, as fm_model_init (LoRA B stays 0)
    for name, p in model.named_parameters():
        if p.dim() == 2 and not name.endswith("lora_A") and not name.endswith("lora_B"):
            nn.init.normal_(p, 0.0, 0.02)


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, T, self.V = c["D"], c["T"], c["V"]
        self.wte, self.wpe = nn.Embedding(self.V, D), nn.Embedding(T, D)
        self.h = nn.ModuleList([Block(c) for _ in range(c["L"])])
        self.ln_f = nn.LayerNorm(D)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).triu(1))
        init_matrices(self)

    def forward(self, tok, tgt):
        x = self.wte(tok) + self.wpe.weight[: tok.shape[1]]
        lbs = 0.0
        for blk in self.h:
            x, lb = blk(x, self.mask)
            if lb is not None:
                lbs = lbs + lb
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, self.V), tgt.view(-1)) + lbs


def rotate(x, cos, sin):  # rotate-half rotary embedding, x [B,H,T,hs]
    h2 = x.shape[-1] // 2
    x1, x2 = x[..., :h2], x[..., h2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class LlamaBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, H, KVH = c["D"], c["H"], c["KVH"]
        hs = D // H
        self.ln_1, self.ln_2 = RMSNorm(D), RMSNorm(D)
        self.q = lora(nn.Linear(D, H * hs, bias=False), c)
        self.k = nn.Linear(D, KVH * hs, bias=False)
        self.v = lora(nn.Linear(D, KVH * hs, bias=False), c)
        self.o = nn.Linear(H * hs, D, bias=False)
        self.H, self.KVH, self.hs = H, KVH, hs
        Fi = c["F"]
        self.moe = c["moe"]
        self.ffn = MoE(D, c["E"], c["k"], expert=lambda d: SwiGLU(d, Fi)) if self.moe else SwiGLU(D, Fi)

    def attn(self, x, mask, cos, sin):
        Bs, Ts, D = x.shape
        q = rotate(self.q(x).view(Bs, Ts, self.H, self.hs).transpose(1, 2), cos, sin)
        k = rotate(self.k(x).view(Bs, Ts, self.KVH, self.hs).transpose(1, 2), cos, sin)
        v = self.v(x).view(Bs, Ts, self.KVH, self.hs).transpose(1, 2)
        g = self.H // self.KVH
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        att = torch.softmax(((q @ k.transpose(-2, -1)) / math.sqrt(self.hs)).masked_fill(mask, float("-inf")), -1)
        return self.o((att @ v).transpose(1, 2).reshape(Bs, Ts, self.H * self.hs))

    def forward(self, x, mask, cos, sin):
        a = x + self.attn(self.ln_1(x), mask, cos, sin)
        Bs, Ts, D = a.shape
        if not self.moe:
            return a + self.ffn(self.ln_2(a)), None
        y, lb = self.ffn(self.ln_2(a).view(Bs * Ts, D))
        return a + y.view(Bs, Ts, D), lb


class Llama(nn.Module):
    """The llama family: the small mixtral (MoE, untied lm_head) or a dense tied one."""

    def __init__(self, c):
        super().__init__()
        D, H, T, self.V = c["D"], c["H"], c["T"], c["V"]
        self.embed = nn.Embedding(self.V, D)
        self.layers = nn.ModuleList([LlamaBlock(c) for _ in range(c["L"])])
        self.norm = RMSNorm(D)
        self.lm_head = None if c["tied"] else nn.Linear(D, self.V, bias=False)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).triu(1))
        hs = D // H
        ang = torch.arange(T, dtype=torch.float32)[:, None] * 10000.0 ** (-torch.arange(0, hs, 2) / hs)[None, :]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        init_matrices(self)

    def forward(self, tok, tgt):
        x = self.embed(tok)
        lbs = 0.0
        for blk in self.layers:
            x, lb = blk(x, self.mask, self.cos, self.sin)
            if lb is not None:
                lbs = lbs + lb
        h = self.norm(x)
        logits = self.lm_head(h) if self.lm_head is not None else h @ self.embed.weight.t()
        return F.cross_entropy(logits.view(-1, self.V), tgt.view(-1)) + lbs


def bench(name, c, steps):
    torch.manual_seed(1)
    model = GPT(c) if c["family"] == "gpt2" else Llama(c)
    if c["lora"]:  # LoRA fine-tuning: only the adapters train
        for pname, p in model.named_parameters():
            p.requires_grad_(pname.endswith("lora_A") or pname.endswith("lora_B"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    B, T = c["B"], c["T"]
    data = torch.randint(0, c["V"], (B, T + 1))
    tok, tgt = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    def step():
        opt.zero_grad(set_to_none=False)
        loss = model(tok, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(c["warmup"]):
        step()
    steps = steps or c["steps"]
    times = []
    for _ in range(steps):
        t0 = clock()
        step()
        times.append(clock() - t0)
    times.sort()
    med = 0.5 * (times[(steps - 1) // 2] + times[steps // 2])
    print("%-16s %10.0f %10.0f" % (name, B * T / med, B * T / times[0]), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="run just this model")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: the model's)")
    a = ap.parse_args()
    if a.only is not None and a.only not in CONFIGS:
        sys.exit("torch_bench.py: --only %s names no model; the models are: %s" % (a.only, " ".join(CONFIGS)))
    torch.set_num_threads(1)
    print("# torch %s, %d thread: model, tokens/s median, best%s"
          % (torch.__version__, torch.get_num_threads(), " (CPU clock)" if CPU_CLOCK else ""), flush=True)
    for name, c in CONFIGS.items():
        if a.only is None or a.only == name:
            bench(name, dict(DEFAULTS, **c), a.steps)


if __name__ == "__main__":
    main()
