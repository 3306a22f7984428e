"""check_fixtures.py TOK_IDS FIXTURE_DIR REPO - fedmoe's tokenizers against the
references of tests/fixtures/make_tokenizer_fixtures.py: for every tokenizer in
FIXTURE_DIR/expected.json, the ids of every sample and fixture text file are the
ones Hugging Face tokenizers or sentencepiece gave, and the ids decode to the text
they gave. A fixture listed but missing fails."""
import json
import os
import subprocess
import sys
import tempfile

tok_ids, fixdir, repo = sys.argv[1:4]
exp_path = os.path.join(fixdir, "expected.json")
if not os.path.isfile(exp_path):
    sys.exit(f"FAIL: {exp_path} is missing (run tests/fixtures/make_tokenizer_fixtures.py)")
with open(exp_path, encoding="utf-8") as f:
    expected = json.load(f)
with open(os.path.join(fixdir, "samples.json"), encoding="utf-8") as f:
    samples = json.load(f)
failed = 0
with tempfile.TemporaryDirectory() as tmp:
    sample_files = []
    for i, s in enumerate(samples):
        p = os.path.join(tmp, f"sample{i}.txt")
        with open(p, "wb") as f:
            f.write(s.encode("utf-8"))
        sample_files.append(p)
    for name, e in expected["tokenizers"].items():
        tokfile = os.path.join(fixdir, e["file"])
        if not os.path.isfile(tokfile):
            sys.exit(f"FAIL: {tokfile} is listed in expected.json but missing")
        if len(e["samples"]) != len(samples):
            sys.exit(f"FAIL: {name}: {len(e['samples'])} sample ids for {len(samples)} samples")
        files = [os.path.join(repo, p) for p in e["files"]]
        for p in files:
            if not os.path.isfile(p):
                sys.exit(f"FAIL: {p} (in expected.json) is missing")
        r = subprocess.run([tok_ids, "-v", tokfile], capture_output=True, text=True)
        if r.returncode or int(r.stdout) != e["vocab"]:
            print(f"FAIL: {name}: vocabulary {r.stdout.strip()} {r.stderr.strip()}, the reference {e['vocab']}")
            failed += 1
        r = subprocess.run([tok_ids, tokfile] + sample_files + files, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"FAIL: {name}: tok_ids: {r.stderr}")
        got = [[int(x) for x in line.split()] for line in r.stdout.split("\n")[:-1]]
        want = e["samples"] + list(e["files"].values())
        names = [f"sample {i} {samples[i][:30]!r}" for i in range(len(samples))] + list(e["files"])
        for n, g, w in zip(names, got, want):
            if g != w:
                k = next((i for i in range(min(len(g), len(w))) if g[i] != w[i]), min(len(g), len(w)))
                print(f"FAIL: {name}: {n}: ids differ at {k}: ours {g[k:k+8]}, reference {w[k:k+8]}")
                failed += 1
        if len(got) != len(want):
            sys.exit(f"FAIL: {name}: {len(got)} lines of ids for {len(want)} texts")
        # decoding the reference ids
        id_files = []
        for i, ids in enumerate(e["samples"]):
            p = os.path.join(tmp, f"{name}-ids{i}.txt")
            with open(p, "w") as f:
                f.write(" ".join(map(str, ids)))
            id_files.append(p)
        r = subprocess.run([tok_ids, "-d", tokfile] + id_files, capture_output=True)
        if r.returncode:
            sys.exit(f"FAIL: {name}: tok_ids -d: {r.stderr.decode()}")
        texts = r.stdout.split(b"\0")[:-1]
        for i, (t, d) in enumerate(zip(texts, e["decoded"])):
            if t.decode("utf-8", "replace") != d:
                print(f"FAIL: {name}: sample {i} decodes to {t[:60]!r}, the reference to {d[:60]!r}")
                failed += 1
        if not failed:
            print(f"ok: {name} ({e['file']}, vocab {e['vocab']}): {len(want)} texts, "
                  f"{sum(map(len, want))} ids as the reference, samples decode as the reference")
sys.exit(1 if failed else 0)
