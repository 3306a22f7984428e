#!/usr/bin/env python3
"""make_corpus.py OUTDIR [--dict-bytes N] - the public pretraining corpus of the bases.

One file per domain in OUTDIR (docs/bases.md says which texts and why):
  fortunes-<name>  English fortunes domains (Debian's fortunes and fortunes-min)
                   that no federated client uses (the clients' are computers, de,
                   es, it: examples/*.ini data.domains), regular files only (the
                   top-level links of fortunes-it point into the Italian domain);
  dict-jargon, dict-foldoc, dict-gcide
                   the definitions of Debian's dictd dictionaries (dict-jargon,
                   dict-foldoc, dict-gcide), each at most --dict-bytes bytes.

A dictd dictionary is NAME.index, one line per headword "headword TAB offset TAB
length" with offset and length in dictd's base64 (A-Z a-z 0-9 + /, most
significant digit first), and NAME.dict.dz, the entries' text compressed by dictzip
(gzip with random access; any gzip reader reads it whole). An entry is the bytes
[offset, offset + length) of the decompressed text. Entries named 00-*
(00-database-info, 00databaseinfo, ...) describe the dictionary and are left out; headwords that share
an entry give it once. The markup is cleaned: {cross references} lose their braces,
GCIDE's pronunciations (\\Ac*cred"it\\, ([a^]k*kr[e^]d"[i^]t)) and its source lines
([1913 Webster], [PJC]) go, and lines lose their indentation. A dictionary larger
than --dict-bytes keeps every k-th entry (k the smallest that fits), so the sample
spans the alphabet.

Deterministic: the same packages give the same bytes (make-bases.sh keys its cache
by them). Only the standard library.
"""
import argparse
import gzip
import os
import re
import sys

FORTUNES = "/usr/share/games/fortunes"
DICTD = "/usr/share/dictd"
CLIENT_DOMAINS = {"computers", "de", "es", "it"}
# English domains of fortunes and fortunes-min (fortunes-mod); the others of that
# folder are other languages or links into them
ENGLISH = ["art", "cookie", "definitions", "disclaimer", "drugs", "education", "ethnic", "food",
           "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law", "linux", "linuxcookie",
           "literature", "love", "magic", "medicine", "men-women", "miscellaneous", "news", "paradoxum",
           "people", "perl", "pets", "platitudes", "politics", "riddles", "science", "songs-poems",
           "sports", "startrek", "translate-me", "wisdom", "work", "zippy"]
DICTS = ["jargon", "foldoc", "gcide"]
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(s):
    n = 0
    for ch in s:
        n = n * 64 + B64.index(ch)
    return n


def clean_fortune(text):
    # "%" lines separate fortunes: a blank line; backspace overstrikes keep the last
    text = re.sub(r"[^\n]\x08", "", text)
    return "\n".join("" if line.strip() == "%" else line for line in text.split("\n"))


PRON = re.compile(r"\\[^\\\n]{1,80}\\")                 # \Ac*cred"it\
PRON2 = re.compile(r"\(\[[^)\n]{0,80}\)")              # ([a^]k*kr[e^]d"[i^]t)
SOURCE = re.compile(r"^\s*(\[[^\]\n]{1,40}\]\s*)+$")    # [1913 Webster] [PJC]


def clean_entry(text):
    text = PRON.sub("", text)
    text = PRON2.sub("", text)
    text = text.replace("{", "").replace("}", "")
    lines = [line.strip() for line in text.split("\n") if not SOURCE.match(line)]
    out = "\n".join(lines).strip()
    return re.sub(r"\n{3,}", "\n\n", out)


def dictionary(name, limit):
    index = os.path.join(DICTD, name + ".index")
    with gzip.open(os.path.join(DICTD, name + ".dict.dz"), "rb") as f:
        data = f.read()
    spans = set()
    with open(index, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                sys.exit(f"{index}:{n}: not 'headword TAB offset TAB length'")
            if parts[0].startswith(("00-", "00database")):  # 00-database-info, 00-gcide-url, ...
                continue
            off, length = b64(parts[1]), b64(parts[2])
            if off + length > len(data):
                sys.exit(f"{index}:{n}: entry '{parts[0]}' ends at {off + length}, past the text's {len(data)} bytes")
            spans.add((off, length))
    entries = []
    for off, length in sorted(spans):
        e = clean_entry(data[off:off + length].decode("utf-8", errors="replace"))
        if e:
            entries.append(e)
    total = sum(len(e.encode()) + 2 for e in entries)
    k = 1
    while limit and total / k > limit:
        k += 1
    keep = entries[::k]
    text = "\n\n".join(keep) + "\n"
    while limit and len(text.encode()) > limit and len(keep) > 1:  # rounding: drop from the end
        keep.pop()
        text = "\n\n".join(keep) + "\n"
    return text, len(keep), len(entries)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--dict-bytes", type=int, default=3000000,
                    help="at most this many bytes of each dictionary (0: all)")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    total = 0
    for d in ENGLISH:
        if d in CLIENT_DOMAINS:
            continue
        p = os.path.join(FORTUNES, d)
        if not os.path.isfile(p) or os.path.islink(p):
            print(f"make_corpus: {p}: not installed (Debian packages fortunes, fortunes-min), skipped",
                  file=sys.stderr)
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            text = clean_fortune(f.read())
        with open(os.path.join(a.outdir, "fortunes-" + d), "w", encoding="utf-8") as f:
            f.write(text)
        total += len(text.encode())
    for d in DICTS:
        if not os.path.exists(os.path.join(DICTD, d + ".index")):
            sys.exit(f"make_corpus: {DICTD}/{d}.index missing: install the Debian package dict-{d}")
        text, kept, n = dictionary(d, a.dict_bytes)
        with open(os.path.join(a.outdir, "dict-" + d), "w", encoding="utf-8") as f:
            f.write(text)
        total += len(text.encode())
        print(f"make_corpus: dict-{d}: {kept} of {n} entries, {len(text.encode())} bytes", file=sys.stderr)
    print(f"make_corpus: {a.outdir}: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
