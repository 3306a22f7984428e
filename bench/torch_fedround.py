"""torch_fedround.py - a federated round in PyTorch on one GPU (a benchmark, figures only):
the loop a Flower or FederatedScope-LLM user runs to fine-tune LoRA adapters on a
shared GPT-2-124M-sized base. A round: the server sends the global adapters to each of
C clients in turn; a client loads them into the one PEFT model, trains them for S local
steps (AdamW, fresh each round as a Flower client's optimizer is) on its own batches,
and returns them with its example count; the server averages them (FedAvg, weighted by
examples) into the next global adapters. Prints seconds per round (median over the
timed rounds) for two ways of moving the adapters:
  numpy     as Flower's NumPyClient: get/set_parameters through host numpy arrays
  resident  the adapters stay GPU tensors (the fastest this loop gets in PyTorch)
Model: GPT2LMHeadModel from a config (d 768, 12 layers, 12 heads, vocabulary 50257),
PEFT LoRA r 8 / alpha 16 on c_attn and attn.c_proj, base frozen; batch B x T random
tokens per client step; bf16 autocast unless --prec fp32.

usage: python3 bench/torch_fedround.py [--clients 16] [--steps 10] [--B 8] [--T 128]
                                       [--rounds 3] [--prec bf16|fp32]
"""
import argparse
import statistics
import time
from collections import OrderedDict

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import GPT2Config, GPT2LMHeadModel

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--clients", type=int, default=16)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--B", type=int, default=8)
ap.add_argument("--T", type=int, default=128)
ap.add_argument("--rounds", type=int, default=3, help="timed rounds, after one warm-up round")
ap.add_argument("--prec", default="bf16", choices=["bf16", "fp32"])
ap.add_argument("--rank", type=int, default=8)
args = ap.parse_args()

torch.manual_seed(0)
cfg = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=max(1024, args.T),
                 resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
with torch.device("cuda"):
    base = GPT2LMHeadModel(cfg)
model = get_peft_model(base, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                                        target_modules=r".*\.attn\.(c_attn|c_proj)",
                                        fan_in_fan_out=True, bias="none")).train()
gen = torch.Generator(device="cuda").manual_seed(1)
data = [torch.randint(0, 50257, (args.steps, args.B, args.T), device="cuda", generator=gen)
        for _ in range(args.clients)]  # each client's local batches


def train_local(c):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            betas=(0.9, 0.95), weight_decay=0.0, fused=True)
    for s in range(args.steps):
        x = data[c][s]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.prec == "bf16"):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
    return loss


def round_numpy(glob):
    """glob: list of numpy arrays (the global adapters, in state-dict order)"""
    keys = list(get_peft_model_state_dict(model).keys())
    results = []
    for c in range(args.clients):
        sd = OrderedDict((k, torch.from_numpy(v).cuda()) for k, v in zip(keys, glob))  # set_parameters
        set_peft_model_state_dict(model, sd)
        train_local(c)
        results.append(([v.detach().cpu().numpy() for v in get_peft_model_state_dict(model).values()],
                        args.steps * args.B))  # get_parameters, num_examples
    total = sum(n for _, n in results)
    return [sum(r[i] * (n / total) for r, n in results) for i in range(len(glob))]  # FedAvg


def round_resident(glob):
    """glob: OrderedDict of GPU tensors"""
    acc, total = None, 0
    for c in range(args.clients):
        set_peft_model_state_dict(model, glob)
        train_local(c)
        n = args.steps * args.B
        sd = get_peft_model_state_dict(model)
        acc = OrderedDict((k, v.detach() * n) for k, v in sd.items()) if acc is None else \
            OrderedDict((k, acc[k] + v.detach() * n) for k, v in sd.items())
        total += n
    return OrderedDict((k, v / total) for k, v in acc.items())


def timed(step, glob):
    times = []
    for r in range(args.rounds + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        glob = step(glob)
        torch.cuda.synchronize()
        if r > 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


print(f"torch_fedround: torch {torch.__version__}, {torch.cuda.get_device_name()}, GPT-2-124M-sized base, "
      f"LoRA r {args.rank}, {args.clients} clients x {args.steps} local steps of {args.B} x {args.T}, "
      f"{args.prec}, {args.rounds} timed rounds", flush=True)
init = get_peft_model_state_dict(model)
tokens = args.clients * args.steps * args.B * args.T
for name, step, glob in (("numpy", round_numpy, [v.detach().cpu().numpy() for v in init.values()]),
                         ("resident", round_resident, OrderedDict((k, v.detach().clone()) for k, v in init.items()))):
    med, best = timed(step, glob)
    print(f"  {name:8s} {med:8.3f} s/round  (best {best:.3f})  {tokens / med:10.0f} tokens/s", flush=True)
