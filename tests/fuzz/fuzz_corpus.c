/* fuzz_corpus.c - the corpus loader over a directory the input describes.
 *
 * Input: a first byte of options (data.max_domain_bytes, data.min_domain_bytes,
 * data.domains), then records [kind][name][len lo][len hi][len bytes of content]:
 * files at the top or in sub-directories (nested, or named "off"), links to the
 * previous file or directory, all named from a small table that holds the names the
 * loader treats specially (".x", "x.dat", "x.u8" beside "x"). The loader must load
 * or refuse with a message, and what it loads must be consistent: domains sorted by
 * name, inside the text, within the caps. */
#include "fuzz.h"

#include "fedmoe/config.h"
#include "fedmoe/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const names[] = {"a", "b", "a.u8", "b.u8", "x.dat", ".hidden", "off", "sub", "c d", "a"};
#define NNAMES (sizeof names / sizeof names[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 1 << 16) return 0;
  static unsigned serial;
  char root[4096], dir[4096], last[4096] = "", path[4200];
  snprintf(root, sizeof root, "%s/c%u", fuzz_scratch(), serial++);
  if (mkdir(root, 0700)) abort();
  snprintf(dir, sizeof dir, "%s", root);
  uint8_t opt = data[0];
  size_t i = 1;
  while (i + 4 <= size) {
    uint8_t kind = data[i] % 6;
    const char *name = names[data[i + 1] % NNAMES];
    size_t len = (size_t)data[i + 2] | (size_t)data[i + 3] << 8;
    i += 4;
    if (len > size - i) len = size - i;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    switch (kind) {
    case 0: /* a file in the current directory */
    case 1:
      if (fuzz_write_file(path, data + i, len) == 0) snprintf(last, sizeof last, "%s", path);
      i += len;
      break;
    case 2: /* go into a (new) sub-directory */
      if ((mkdir(path, 0700) == 0 || access(path, F_OK) == 0) && strlen(path) < 200) snprintf(dir, sizeof dir, "%s", path);
      break;
    case 3: /* back to the top */
      snprintf(dir, sizeof dir, "%s", root);
      break;
    case 4: /* a link to the previous file */
      if (last[0] && symlink(last, path)) { /* the name exists: fine */ }
      break;
    case 5: /* a link to the current directory from the top (a loop when it is the top) */
      snprintf(path, sizeof path, "%s/%s", root, name);
      if (symlink(dir, path)) { /* fine */ }
      break;
    }
  }
  fm_config c;
  if (fm_config_init(&c)) abort();
  const char *dpath = (opt & 0x80) && last[0] ? last : root;
  if (strlen(dpath) >= sizeof c.data.path) abort();
  memcpy(c.data.path, dpath, strlen(dpath) + 1);
  c.data.max_domain_bytes = (opt & 3) == 0 ? 0 : (opt & 3) * 7;
  c.data.min_domain_bytes = (opt >> 2) & 7;
  if (opt & 0x20) snprintf(c.data.domains, sizeof c.data.domains, "a, sub");
  if (opt & 0x40) snprintf(c.data.domains, sizeof c.data.domains, " ,b,");
  fm_corpus cp;
  if (fm_corpus_load(&cp, &c) == FM_OK) {
    uint64_t total = 0;
    if (cp.ndomains < 1) abort();
    for (int d = 0; d < cp.ndomains; d++) {
      if (cp.domain_start[d] + cp.domain_len[d] > cp.size) abort();
      if (c.data.max_domain_bytes && cp.domain_len[d] > (uint64_t)c.data.max_domain_bytes) abort();
      if (cp.domain_len[d] < (uint64_t)c.data.min_domain_bytes) abort();
      if (d && strcmp(cp.domain_names[d - 1], cp.domain_names[d]) >= 0) abort();
      total += cp.domain_len[d];
    }
    if (total > cp.size) abort();
    fm_corpus_free(&cp);
  }
  fm_error_clear();
  fm_config_free(&c);
  if (fuzz_rmtree(root)) abort();
  return 0;
}
