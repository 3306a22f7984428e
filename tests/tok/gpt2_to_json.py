"""gpt2_to_json.py ENCODER_JSON VOCAB_BPE OUT FORMAT - GPT-2's vocabulary and merges
as a Hugging Face tokenizer.json (model BPE, ByteLevel pre-tokenizer and decoder,
<|endoftext|> an added special token), merges written as "a b" strings
(FORMAT=strings, older files) or as ["a", "b"] pairs (FORMAT=pairs, newer files)."""
import json
import sys

enc, bpe, out, form = sys.argv[1:5]
vocab = json.load(open(enc, encoding="utf-8"))
lines = open(bpe, encoding="utf-8").read().split("\n")[1:]
merges = [m for m in lines if m]
if form == "pairs":
    merges = [m.split(" ") for m in merges]
tok = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": True, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": vocab, "merges": merges},
}
json.dump(tok, open(out, "w", encoding="utf-8"), ensure_ascii=False)
