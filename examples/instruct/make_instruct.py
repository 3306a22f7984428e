#!/usr/bin/env python3
"""make_instruct.py [FORTUNES_DIR] - the JSON Lines example's data: instruction records
(Alpaca style: instruction, input, output) made from the fortunes packages, one
"user" per fortune file, so that data.client_field = user gives one client per file,
and the record's "lang" as its domain (data.domain_field = lang).

    python3 examples/instruct/make_instruct.py > examples/instruct/fortunes.jsonl

Each record asks for a saying on the file's theme; some carry the saying's first
words as input ("continue this"). Deterministic: the first fortunes of each file."""
import json
import os
import sys

FILES = [("computers", "en", "computers"), ("linux", "en", "Linux"), ("startrek", "en", "Star Trek"),
         ("science", "en", "science"), ("zippy", "en", "Zippy the Pinhead"),
         ("de/computer", "de", "Computer"), ("de/wusstensie", "de", "erstaunliche Tatsachen"),
         ("de/murphy", "de", "Murphys Gesetze"), ("es/informatica.fortunes", "es", "informática"),
         ("it/computer", "it", "computer")]
PER_FILE = 40


def fortunes(path):
    with open(path, encoding="utf-8") as f:
        for text in f.read().split("\n%\n"):
            text = text.strip("\n")
            if 40 <= len(text) <= 600:
                yield text


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/games/fortunes"
    out = sys.stdout
    for name, lang, theme in FILES:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            sys.exit(f"make_instruct.py: {path} is missing (Debian: the fortunes packages)")
        for i, text in enumerate(fortunes(path)):
            if i == PER_FILE:
                break
            words = text.split()
            if i % 3 == 2 and len(words) > 8:  # a continuation: the input starts the saying
                head = " ".join(words[:4])
                rec = {"instruction": f"Continue this saying about {theme}.", "input": head,
                       "output": text[len(head):].lstrip()}
            else:
                rec = {"instruction": f"Tell me a saying about {theme}.", "input": "", "output": text}
            rec["user"] = name.replace("/", "-").replace(".fortunes", "")
            rec["lang"] = lang
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
