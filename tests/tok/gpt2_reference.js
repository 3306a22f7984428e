// gpt2_reference.js - the reference ids of GPT-2's tokenizer: the npm package
// gpt-3-encoder's JavaScript encoder (an independent implementation, with GPT-2's
// real vocabulary and merges).
//   node gpt2_reference.js MODULE_DIR FILE...   prints, per FILE, one line of ids.
// The package joins ids with Array.concat per pre-token (quadratic in the length of
// the text), so each file is encoded in chunks cut where the cut cannot change the
// pre-tokens: at a single newline between two non-space characters (every pattern
// of GPT-2 ends there, and a lone newline is a piece of its own either way).
'use strict';
const fs = require('fs');
const path = require('path');
const enc = require(path.resolve(process.argv[2]));

function chunks(text, size) {
  const out = [];
  let start = 0;
  while (text.length - start > size) {
    let cut = -1;
    for (let i = start + size; i < text.length - 1; i++) {
      if (text[i] === '\n' && !/\s/.test(text[i - 1]) && !/\s/.test(text[i + 1])) { cut = i + 1; break; }
    }
    if (cut < 0) break;
    out.push(text.slice(start, cut));
    start = cut;
  }
  out.push(text.slice(start));
  return out;
}

for (const file of process.argv.slice(3)) {
  const text = fs.readFileSync(file, 'utf8');
  const ids = [];
  for (const c of chunks(text, 2048)) for (const id of enc.encode(c)) ids.push(id);
  process.stdout.write(ids.join(' ') + '\n');
}
