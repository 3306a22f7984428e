#!/usr/bin/python3
"""torch_bench.py - the PyTorch side of `make bench`: the same four models as
`fedmoe bench` (src/cmd_bench.c), trained the same way on one thread, timed the same way.

    /usr/bin/python3 bench/torch_bench.py [--only NAME] [--steps N]

Architecture (include/fedmoe/model.h): GPT-2 style, pre-LayerNorm, tanh-GELU, tied
head; MoE blocks route with a bias-free linear router, softmax, top-k renormalised,
full-FFN experts, each expert applied to its own tokens only (gather, expert,
index_add), plus the Switch load-balancing term. mixtral-d128: the llama family's
block instead (RMSNorm, rotary embeddings, 4 query heads on 2 key/value heads,
SwiGLU experts of 344, untied head), routed the same way. A step: zero_grad, forward, backward,
clip_grad_norm_(1.0), AdamW(lr 1e-3, betas (0.9, 0.99), eps 1e-8, no weight decay).
Prints one line per model: NAME tokens/s of the median step and of the best step.
If torch cannot be imported it says so and exits with status 3.
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 - any import failure means: no torch column
    print("# torch: not importable with %s (%s)" % (sys.executable, e))
    sys.exit(3)

B, T, V = 16, 128, 256
WARMUP, STEPS = 2, 8
CONFIGS = [  # name, D, H, L, MoE, E, k  (as configs[] in src/cmd_bench.c)
    ("dense-d128", 128, 4, 4, False, 4, 2),
    ("moe-d128", 128, 4, 4, True, 4, 2),
    ("moe-d256", 256, 4, 4, True, 4, 2),
    ("mixtral-d128", 128, 4, 4, True, 4, 2),
]
KV_HEADS = 2  # mixtral-d128
SWIGLU_F = (8 * 128 // 3 + 7) // 8 * 8  # model.ffn = 0 for the llama family at D = 128


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


class Block(nn.Module):
    def __init__(self, D, H, moe, E, k):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.c_attn, self.c_proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.H = H
        self.ffn = MoE(D, E, k) if moe else FFN(D)
        self.moe = moe

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


class GPT(nn.Module):
    def __init__(self, D, H, L, moe, E, k):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
        self.h = nn.ModuleList([Block(D, H, moe, E, k) for _ in range(L)])
        self.ln_f = nn.LayerNorm(D)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).triu(1))
        for p in self.parameters():  # N(0, 0.02) matrices, as fm_model_init
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, tok, tgt):
        x = self.wte(tok) + self.wpe.weight[: tok.shape[1]]
        lbs = 0.0
        for blk in self.h:
            x, lb = blk(x, self.mask)
            if lb is not None:
                lbs = lbs + lb
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, V), tgt.view(-1)) + lbs


def rotate(x, cos, sin):  # rotate-half rotary embedding, x [B,H,T,hs]
    h2 = x.shape[-1] // 2
    x1, x2 = x[..., :h2], x[..., h2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class LlamaBlock(nn.Module):
    def __init__(self, D, H, KVH, E, k):
        super().__init__()
        hs = D // H
        self.ln_1, self.ln_2 = RMSNorm(D), RMSNorm(D)
        self.q = nn.Linear(D, H * hs, bias=False)
        self.kv = nn.ModuleList([nn.Linear(D, KVH * hs, bias=False) for _ in range(2)])
        self.o = nn.Linear(H * hs, D, bias=False)
        self.H, self.KVH, self.hs = H, KVH, hs
        self.ffn = MoE(D, E, k, expert=lambda d: SwiGLU(d, SWIGLU_F))

    def attn(self, x, mask, cos, sin):
        Bs, Ts, D = x.shape
        q = rotate(self.q(x).view(Bs, Ts, self.H, self.hs).transpose(1, 2), cos, sin)
        k = rotate(self.kv[0](x).view(Bs, Ts, self.KVH, self.hs).transpose(1, 2), cos, sin)
        v = self.kv[1](x).view(Bs, Ts, self.KVH, self.hs).transpose(1, 2)
        g = self.H // self.KVH
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        att = torch.softmax(((q @ k.transpose(-2, -1)) / math.sqrt(self.hs)).masked_fill(mask, float("-inf")), -1)
        return self.o((att @ v).transpose(1, 2).reshape(Bs, Ts, self.H * self.hs))

    def forward(self, x, mask, cos, sin):
        a = x + self.attn(self.ln_1(x), mask, cos, sin)
        Bs, Ts, D = a.shape
        y, lb = self.ffn(self.ln_2(a).view(Bs * Ts, D))
        return a + y.view(Bs, Ts, D), lb


class Mixtral(nn.Module):
    def __init__(self, D, H, L, E, k):
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.layers = nn.ModuleList([LlamaBlock(D, H, KV_HEADS, E, k) for _ in range(L)])
        self.norm, self.lm_head = RMSNorm(D), nn.Linear(D, V, bias=False)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).triu(1))
        hs = D // H
        ang = torch.arange(T, dtype=torch.float32)[:, None] * 10000.0 ** (-torch.arange(0, hs, 2) / hs)[None, :]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, tok, tgt):
        x = self.embed(tok)
        lbs = 0.0
        for blk in self.layers:
            x, lb = blk(x, self.mask, self.cos, self.sin)
            lbs = lbs + lb
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, V), tgt.view(-1)) + lbs


def bench(name, D, H, L, moe, E, k, steps):
    torch.manual_seed(1)
    model = Mixtral(D, H, L, E, k) if name.startswith("mixtral") else GPT(D, H, L, moe, E, k)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8,
                            weight_decay=0.0)
    data = torch.randint(0, V, (B, T + 1))
    tok, tgt = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    def step():
        opt.zero_grad(set_to_none=False)
        loss = model(tok, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = 0.5 * (times[(steps - 1) // 2] + times[steps // 2])
    print("%-11s %10.0f %10.0f" % (name, B * T / med, B * T / times[0]), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="run just this model")
    ap.add_argument("--steps", type=int, default=STEPS)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print("# torch %s, %d thread, B=%d T=%d: model, tokens/s median, best"
          % (torch.__version__, torch.get_num_threads(), B, T), flush=True)
    for c in CONFIGS:
        if a.only is None or a.only == c[0]:
            bench(*c, steps=a.steps)


if __name__ == "__main__":
    main()
