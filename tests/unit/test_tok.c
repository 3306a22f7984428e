/* test_tok.c - tokenizers on small hand-made files whose ids can be worked out by
 * hand (merge order, pre-tokenizer, added tokens, ignore_merges), their bad input,
 * and a corpus through a tokenizer and the token cache. The real tokenizers are
 * checked against independent implementations by tests/tok/. */
#include "cunit_main.h"

#include "fedmoe/data.h"
#include "fedmoe/model.h"
#include "fedmoe/tokenizer.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/fedmoe-tok-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpdir));
}

static const char *write_file(const char *name, const void *p, size_t n) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fwrite(p, 1, n, f);
  fclose(f);
  return path;
}

static void remove_tmpdir(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  CU_ASSERT_EQUAL(system(cmd), 0);
}

static int contains(const char *msg, const char *what) {
  if (strstr(msg, what)) return 1;
  fprintf(stderr, "message '%s' lacks '%s'\n", msg, what);
  return 0;
}

/* A tokenizer.json: letters a b c, space (\u0120 in GPT-2's byte table), newline
 * (\u010a), their merges MERGES, one added special token <|x|>. */
static const char *toy_json(const char *merges, const char *extra_model, const char *pre) {
  static char buf[4096];
  snprintf(buf, sizeof buf,
           "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 9, \"content\": \"<|x|>\", \"single_word\": false,"
           " \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}],"
           " \"normalizer\": null, \"pre_tokenizer\": %s,"
           " \"model\": {\"type\": \"BPE\", %s \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4,"
           " \"abc\": 5, \"\\u0120\": 6, \"\\u0120a\": 7, \"\\u010a\": 8}, \"merges\": %s}}",
           pre ? pre : "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}",
           extra_model ? extra_model : "", merges);
  return buf;
}

static fm_tokenizer *open_json(const char *json) {
  fm_tokenizer *t = NULL;
  const char *path = write_file("tokenizer.json", json, strlen(json));
  fm_err e = fm_tokenizer_open(&t, path);
  if (e) fprintf(stderr, "%s\n", fm_error_message());
  CU_ASSERT_EQUAL_FATAL(e, FM_OK);
  return t;
}

/* The ids of text, as a string "3 8 3". */
static const char *ids_of(fm_tokenizer *t, const char *text) {
  static char out[1024];
  fm_ids ids = {0};
  out[0] = 0;
  if (fm_tokenizer_encode(t, (const uint8_t *)text, strlen(text), &ids)) {
    snprintf(out, sizeof out, "error: %s", fm_error_message());
  } else {
    size_t k = 0;
    for (size_t i = 0; i < ids.n && k < sizeof out - 16; i++) k += (size_t)sprintf(out + k, i ? " %d" : "%d", ids.v[i]);
  }
  fm_ids_free(&ids);
  return out;
}

static void test_bytes(void) {
  fm_tokenizer *t;
  CU_ASSERT_EQUAL_FATAL(fm_tokenizer_open(&t, "bytes"), FM_OK);
  CU_ASSERT_EQUAL(fm_tokenizer_vocab(t), 256);
  CU_ASSERT_STRING_EQUAL(ids_of(t, "A\xc3\xa9"), "65 195 169");
  int32_t ids[] = {104, 105, 255};
  uint8_t *s;
  size_t n;
  CU_ASSERT_EQUAL(fm_tokenizer_decode(t, ids, 3, &s, &n), FM_OK);
  CU_ASSERT_EQUAL(n, 3);
  CU_ASSERT_EQUAL(memcmp(s, "hi\xff", 3), 0);
  free(s);
  int32_t bad[] = {104, 256};
  CU_ASSERT_EQUAL(fm_tokenizer_decode(t, bad, 2, &s, &n), FM_ERR_DATA);
  CU_ASSERT_TRUE(contains(fm_error_message(), "id 256 at position 1 is outside the vocabulary"));
  fm_tokenizer_free(t);
}

static void test_merge_order(void) {
  make_tmpdir();
  /* b c first, then a b, then a bc: "abcab" = a b c a b -> a bc a b -> a bc ab -> abc ab */
  fm_tokenizer *t = open_json(toy_json("[\"b c\", \"a b\", \"a bc\", \"\\u0120 a\"]", NULL, NULL));
  CU_ASSERT_EQUAL(fm_tokenizer_vocab(t), 10);
  CU_ASSERT_STRING_EQUAL(ids_of(t, "abcab"), "5 3");
  /* a b first: "abc" = ab c (no merge "ab c") */
  fm_tokenizer_free(t);
  t = open_json(toy_json("[[\"a\", \"b\"], [\"b\", \"c\"], [\"a\", \"bc\"]]", NULL, NULL));
  CU_ASSERT_STRING_EQUAL(ids_of(t, "abc"), "3 2");
  /* pieces: "ab", " ab" (the space starts the next word), "\n" */
  CU_ASSERT_STRING_EQUAL(ids_of(t, "ab ab\n"), "3 6 3 8");
  /* the added token is matched before pre-tokenizing, and decodes to itself */
  CU_ASSERT_STRING_EQUAL(ids_of(t, "ab<|x|>ab"), "3 9 3");
  CU_ASSERT_EQUAL(fm_tokenizer_find(t, "<|x|>"), 9);
  CU_ASSERT_EQUAL(fm_tokenizer_nspecial(t), 1);
  int32_t ids[] = {5, 6, 9, 8};
  uint8_t *s;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(fm_tokenizer_decode(t, ids, 4, &s, &n), FM_OK);
  CU_ASSERT_EQUAL(n, 10);
  CU_ASSERT_EQUAL(memcmp(s, "abc <|x|>\n", n), 0);
  free(s);
  /* a byte without a token, and text that is not UTF-8 */
  CU_ASSERT_TRUE(contains(ids_of(t, "abz"), "byte 0x7a has no token"));
  CU_ASSERT_TRUE(contains(ids_of(t, "ab\nab\xff"), "invalid UTF-8 at byte 5 (line 2)"));
  fm_tokenizer_free(t);
  /* ignore_merges: a piece that is a token is that token, merges or not */
  t = open_json(toy_json("[\"a b\"]", "\"ignore_merges\": true,", NULL));
  CU_ASSERT_STRING_EQUAL(ids_of(t, "abc"), "5");
  CU_ASSERT_STRING_EQUAL(ids_of(t, "abab"), "3 3");
  fm_tokenizer_free(t);
  /* a Split step (Isolated) before a ByteLevel without its own pattern: "ab" "c" apart */
  t = open_json(toy_json("[\"a b\", \"b c\", \"ab c\"]", NULL,
                         "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                         "{\"Regex\": \"c\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": "
                         "\"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}"));
  CU_ASSERT_STRING_EQUAL(ids_of(t, "abcab"), "3 2 3");
  fm_tokenizer_free(t);
  /* add_prefix_space: "a" is " a" */
  t = open_json(toy_json("[\"\\u0120 a\"]", NULL, "{\"type\": \"ByteLevel\", \"add_prefix_space\": true}"));
  CU_ASSERT_STRING_EQUAL(ids_of(t, "a"), "7");
  fm_tokenizer_free(t);
  remove_tmpdir();
}

/* NFC: a decomposed e + U+0301 is the byte pair of U+00E9 (0xC3 0xA9) after it,
 * spelled in GPT-2's table as U+00C3 U+00A9; 0xCC 0x81 are U+00CC and U+0123. */
static void test_nfc(void) {
  make_tmpdir();
  static const char *fmt =
      "{\"normalizer\": %s, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", "
      "\"vocab\": {\"\\u00c3\": 0, \"\\u00a9\": 1, \"e\": 2, \"\\u00cc\": 3, \"\\u0123\": 4}, \"merges\": []}}";
  char json[1024];
  snprintf(json, sizeof json, fmt, "null");
  fm_tokenizer *t = open_json(json);
  CU_ASSERT_STRING_EQUAL(ids_of(t, "e\xcc\x81"), "2 3 4");
  fm_tokenizer_free(t);
  snprintf(json, sizeof json, fmt, "{\"type\": \"NFC\"}");
  t = open_json(json);
  CU_ASSERT_STRING_EQUAL(ids_of(t, "e\xcc\x81"), "0 1");
  CU_ASSERT_STRING_EQUAL(ids_of(t, "\xc3\xa9"), "0 1"); /* already NFC */
  fm_tokenizer_free(t);
  snprintf(json, sizeof json, fmt, "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}]}");
  t = open_json(json);
  CU_ASSERT_STRING_EQUAL(ids_of(t, "e\xcc\x81"), "0 1");
  fm_tokenizer_free(t);
  snprintf(json, sizeof json, fmt, "{\"type\": \"Lowercase\"}");
  t = NULL;
  const char *path = write_file("tokenizer.json", json, strlen(json));
  CU_ASSERT_NOT_EQUAL(fm_tokenizer_open(&t, path), FM_OK);
  CU_ASSERT_TRUE(contains(fm_error_message(), "normalizer: 'Lowercase' is not supported"));
  remove_tmpdir();
}

static void expect_open_error(const char *name, const char *content, const char *must1, const char *must2) {
  fm_tokenizer *t = NULL;
  const char *path = write_file(name, content, strlen(content));
  CU_ASSERT_NOT_EQUAL(fm_tokenizer_open(&t, path), FM_OK);
  CU_ASSERT_PTR_NULL(t);
  CU_ASSERT_TRUE(contains(fm_error_message(), must1));
  CU_ASSERT_TRUE(contains(fm_error_message(), must2));
}

static void test_bad_files(void) {
  make_tmpdir();
  expect_open_error("tokenizer.json", "{\"model\": {\n  \"type\": \"BPE\",,\n}}", "tokenizer.json:2:", "not valid JSON");
  expect_open_error("tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "model.type is 'Unigram'",
                    "not BPE");
  expect_open_error("tokenizer.json", toy_json("[\"a b\", \"a z\"]", NULL, NULL), "model.merges[1]",
                    "not in the vocabulary");
  expect_open_error("tokenizer.json", toy_json("[\"a c\"]", NULL, NULL), "model.merges[0]",
                    "makes 'ac', which is not in the vocabulary");
  expect_open_error("tokenizer.json", toy_json("[]", NULL, "{\"type\": \"Metaspace\"}"),
                    "pre_tokenizer.type: 'Metaspace' is not supported", "tokenizer.model");
  expect_open_error("tokenizer.json", toy_json("[]", NULL, "null"), "pre_tokenizer", "no ByteLevel");
  expect_open_error("tokenizer.json", toy_json("[]", NULL,
                    "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}"),
                    "pre_tokenizer.pattern", "does not compile");
  expect_open_error("tokenizer.model", "this is not a protobuf\n", "tokenizer.model",
                    "not a SentencePiece model that loads");
  mkdir(write_file("empty", "", 0), 0777); /* a file named empty, then a folder beside it */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/folder", tmpdir);
  mkdir(dir, 0777);
  fm_tokenizer *t = NULL;
  CU_ASSERT_NOT_EQUAL(fm_tokenizer_open(&t, dir), FM_OK);
  CU_ASSERT_TRUE(contains(fm_error_message(), "holds no tokenizer.json, tokenizer.model or vocab.json"));
  CU_ASSERT_NOT_EQUAL(fm_tokenizer_open(&t, "/nonexistent/tok.json"), FM_OK);
  CU_ASSERT_TRUE(contains(fm_error_message(), "No such file"));
  remove_tmpdir();
}

/* ---- a corpus through a tokenizer ---- */

static void corpus_config(fm_config *c, const char *tok) {
  CU_ASSERT_EQUAL_FATAL(fm_config_init(c), FM_OK);
  snprintf(c->data.path, sizeof c->data.path, "%s/corpus", tmpdir);
  snprintf(c->model.tokenizer, sizeof c->model.tokenizer, "%s", tok);
  snprintf(c->data.token_cache, sizeof c->data.token_cache, "%s/cache", tmpdir);
  c->model.vocab = 10;
  c->data.min_domain_bytes = 10;
}

static void test_corpus_cache(void) {
  make_tmpdir();
  char tok[512], sub[512];
  snprintf(tok, sizeof tok, "%s", write_file("tokenizer.json", toy_json("[\"a b\", \"ab c\", \"\\u0120 a\"]", NULL, NULL),
                                             strlen(toy_json("[\"a b\", \"ab c\", \"\\u0120 a\"]", NULL, NULL))));
  snprintf(sub, sizeof sub, "%s/corpus", tmpdir);
  mkdir(sub, 0777);
  char text[600] = "";
  for (int i = 0; i < 40; i++) strcat(text, i % 3 ? "abc ab " : "a\n");
  write_file("corpus/one", text, strlen(text));
  write_file("corpus/two", "abcabc abc\nabc abc abc\n", strlen("abcabc abc\nabc abc abc\n"));
  fm_config c;
  corpus_config(&c, tok);
  fm_corpus a, b;
  fm_err e = fm_corpus_load(&a, &c);
  if (e) fprintf(stderr, "%s\n", fm_error_message());
  CU_ASSERT_EQUAL_FATAL(e, FM_OK);
  CU_ASSERT_EQUAL(a.cache_hit, 0);
  CU_ASSERT_EQUAL(a.vocab, 10);
  CU_ASSERT_PTR_NOT_NULL(a.ids);
  CU_ASSERT_PTR_NULL(a.text);
  CU_ASSERT_EQUAL(a.ndomains, 2);
  CU_ASSERT_EQUAL(a.domain_bytes[1], 23);
  /* two: pieces "abcabc" " abc" "\n" "abc" " abc" " abc" "\n"; in " abc", a b (rank 0)
   * merges before the space and a (rank 2): abc abc, " " abc, \n, abc, " " abc, " " abc, \n */
  CU_ASSERT_EQUAL(a.domain_len[1], 11);
  CU_ASSERT_EQUAL(a.ids[a.domain_start[1]], 5);
  CU_ASSERT_EQUAL(a.ids[a.domain_start[1] + 2], 6);
  CU_ASSERT_EQUAL(a.ids[a.domain_start[1] + 4], 8);
  CU_ASSERT_TRUE(strstr(a.cache, "/cache/.fedmoe-tokens-") != NULL);
  /* the second load maps the cache: the same ids */
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&b, &c), FM_OK);
  CU_ASSERT_EQUAL(b.cache_hit, 1);
  CU_ASSERT_EQUAL(b.size, a.size);
  CU_ASSERT_EQUAL(memcmp(a.ids, b.ids, a.size * sizeof *a.ids), 0);
  CU_ASSERT_EQUAL(memcmp(a.domain_len, b.domain_len, 2 * sizeof *a.domain_len), 0);
  char cache[600];
  snprintf(cache, sizeof cache, "%s", a.cache);
  fm_corpus_free(&b);
  /* a damaged cache (truncated) is not used: tokenized again and rewritten */
  CU_ASSERT_EQUAL(truncate(cache, 50), 0);
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&b, &c), FM_OK);
  CU_ASSERT_EQUAL(b.cache_hit, 0);
  CU_ASSERT_EQUAL(memcmp(a.ids, b.ids, a.size * sizeof *a.ids), 0);
  fm_corpus_free(&b);
  /* other text: another key */
  write_file("corpus/two", "abcabc abc\nabc abc ab\n", strlen("abcabc abc\nabc abc ab\n"));
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&b, &c), FM_OK);
  CU_ASSERT_EQUAL(b.cache_hit, 0);
  CU_ASSERT_STRING_NOT_EQUAL(b.cache, cache);
  fm_corpus_free(&b);
  /* the partition and batches work in tokens */
  fm_dataset d;
  c.train.seq_len = 4;
  c.data.client_bytes = 60; /* tokens */
  c.data.public_frac = 0;
  c.fl.clients = 1;
  snprintf(c.data.domains, sizeof c.data.domains, "one");
  e = fm_dataset_load(&d, &c);
  if (e) fprintf(stderr, "%s\n", fm_error_message());
  CU_ASSERT_EQUAL_FATAL(e, FM_OK);
  const fm_split *tr = &d.clients[0].split[FM_SPLIT_TRAIN];
  CU_ASSERT_EQUAL(tr->tokens, 48); /* floor(60 x 0.8) tokens */
  int32_t tokens[8], targets[8];
  CU_ASSERT_EQUAL(fm_batch_sequential(&d.corpus, tr, 1, 1, 4, tokens, targets, NULL), 1);
  for (int t = 0; t < 4; t++) {
    CU_ASSERT_EQUAL(tokens[t], d.corpus.ids[tr->spans[0].start + 5 + t]);
    CU_ASSERT_EQUAL(targets[t], d.corpus.ids[tr->spans[0].start + 6 + t]);
  }
  c.data.domains[0] = 0;
  fm_dataset_free(&d);
  fm_corpus_free(&a);

  /* model.vocab must hold the ids; bytes want 256 */
  c.model.vocab = 9;
  CU_ASSERT_EQUAL(fm_corpus_load(&a, &c), FM_ERR_CONFIG);
  CU_ASSERT_TRUE(contains(fm_error_message(), "model.vocab"));
  CU_ASSERT_TRUE(contains(fm_error_message(), "fewer than the 10 ids"));
  snprintf(c.model.tokenizer, sizeof c.model.tokenizer, "bytes");
  CU_ASSERT_EQUAL(fm_corpus_load(&a, &c), FM_ERR_CONFIG);
  CU_ASSERT_TRUE(contains(fm_error_message(), "model.vocab"));
  CU_ASSERT_TRUE(contains(fm_error_message(), "the tokenizer is bytes (256 ids)"));
  /* a file that is not UTF-8, named with its line */
  c.model.vocab = 10;
  snprintf(c.model.tokenizer, sizeof c.model.tokenizer, "%s", tok);
  write_file("corpus/two", "abc\nab\xe9 c\n", strlen("abc\nab\xe9 c\n"));
  CU_ASSERT_EQUAL(fm_corpus_load(&a, &c), FM_ERR_DATA);
  CU_ASSERT_TRUE(contains(fm_error_message(), "corpus/two:2: invalid UTF-8"));
  /* off: nothing written */
  write_file("corpus/two", "abc abc\n", strlen("abc abc\n"));
  snprintf(c.data.token_cache, sizeof c.data.token_cache, "off");
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&a, &c), FM_OK);
  CU_ASSERT_STRING_EQUAL(a.cache, "");
  fm_corpus_free(&a);
  /* no model.tokenizer: model.init's folder's tokenizer would be used (when that key
   * exists), else bytes */
  c.model.tokenizer[0] = 0;
  char spec[512];
  fm_tokenizer_spec(&c, spec, sizeof spec);
  CU_ASSERT_STRING_EQUAL(spec, fm_config_find_key("model.init") ? spec : "bytes");
  fm_config_free(&c);
  remove_tmpdir();
}

/* ---- JSON Lines ---- */

static void jsonl_config(fm_config *c) {
  CU_ASSERT_EQUAL_FATAL(fm_config_init(c), FM_OK);
  snprintf(c->data.path, sizeof c->data.path, "%s/data.jsonl", tmpdir);
  snprintf(c->model.tokenizer, sizeof c->model.tokenizer, "bytes");
  c->data.min_domain_bytes = 10;
  c->data.public_frac = 0;
  c->train.seq_len = 8;
}

static void expect_error(const fm_config *c, const char *must1, const char *must2) {
  fm_dataset d;
  fm_err e = fm_dataset_load(&d, c);
  CU_ASSERT_NOT_EQUAL(e, FM_OK);
  if (!e) { fm_dataset_free(&d); return; }
  CU_ASSERT_TRUE(contains(fm_error_message(), must1));
  CU_ASSERT_TRUE(contains(fm_error_message(), must2));
}

/* The text of a record repeated: long enough for a window per split. */
static void add_record(char *buf, const char *user, const char *lang, const char *word) {
  char text[600] = "";
  for (int i = 0; i < 24; i++) { strcat(text, word); strcat(text, " "); }
  sprintf(buf + strlen(buf), "{\"text\": \"%s\", \"user\": \"%s\", \"lang\": \"%s\", \"n\": 1}\n", text, user, lang);
}

static void test_jsonl_clients(void) {
  make_tmpdir();
  char buf[16384] = "";
  add_record(buf, "bob", "en", "hello");
  add_record(buf, "amy", "de", "hallo");
  strcat(buf, "\n"); /* a blank line separates nothing */
  add_record(buf, "bob", "de", "tschuess");
  add_record(buf, "amy", "en", "goodbye");
  add_record(buf, "cat", "en", "meow");
  write_file("data.jsonl", buf, strlen(buf));
  fm_config c;
  jsonl_config(&c);
  snprintf(c.data.client_field, sizeof c.data.client_field, "user");
  snprintf(c.data.domain_field, sizeof c.data.domain_field, "lang");
  c.fl.clients = 2;
  expect_error(&c, "fl.clients", "data.client_field 'user' has 3 distinct values");
  int n = 0;
  CU_ASSERT_EQUAL(fm_data_count_clients(&c, &n), FM_OK);
  CU_ASSERT_EQUAL(n, 3);
  c.fl.clients = 3;
  fm_dataset d;
  fm_err e = fm_dataset_load(&d, &c);
  if (e) fprintf(stderr, "%s\n", fm_error_message());
  CU_ASSERT_EQUAL_FATAL(e, FM_OK);
  const fm_corpus *cp = &d.corpus;
  CU_ASSERT_EQUAL(cp->ndomains, 2);
  CU_ASSERT_STRING_EQUAL(cp->domain_names[0], "de");
  CU_ASSERT_STRING_EQUAL(cp->domain_names[1], "en");
  CU_ASSERT_EQUAL(cp->nclient_names, 3); /* in value order: amy bob cat */
  CU_ASSERT_STRING_EQUAL(cp->client_names[0], "amy");
  CU_ASSERT_STRING_EQUAL(cp->client_names[2], "cat");
  /* every span of a client holds its own words only */
  static const char *const words[3][2] = {{"hallo", "goodbye"}, {"tschuess", "hello"}, {"meow", "meow"}};
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(d.clients[i].split[FM_SPLIT_TRAIN].nspans, i == 2 ? 1 : 2);
    for (int s = 0; s < 3; s++)
      for (int k = 0; k < d.clients[i].split[s].nspans; k++) {
        const fm_span *sp = &d.clients[i].split[s].spans[k];
        char piece[2000];
        size_t len = sp->len < sizeof piece - 1 ? (size_t)sp->len : sizeof piece - 1;
        memcpy(piece, cp->text + sp->start, len);
        piece[len] = 0;
        CU_ASSERT_TRUE(strstr(piece, words[i][0]) || strstr(piece, words[i][1]));
        for (int j = 0; j < 3; j++)
          if (j != i) CU_ASSERT_PTR_NULL(strstr(piece, words[j][0]));
      }
  }
  fm_dataset_free(&d);
  fm_config_free(&c);
  remove_tmpdir();
}

static void test_jsonl_instructions(void) {
  make_tmpdir();
  const char *lines =
      "{\"instruction\": \"Add\", \"input\": \"1 2\", \"output\": \"3 is the sum of one and two\"}\n"
      "{\"instruction\": \"Greet\", \"output\": \"hello there, my good friend\"}\n";
  write_file("data.jsonl", lines, strlen(lines));
  fm_config c;
  jsonl_config(&c);
  snprintf(c.data.prompt_template, sizeof c.data.prompt_template, "Q: {instruction} {input}\\nA: ");
  c.fl.clients = 1;
  c.data.client_bytes = 64;
  c.data.train_frac = 1;
  c.data.val_frac = c.data.test_frac = 0;
  fm_corpus cp;
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&cp, &c), FM_OK);
  const char *want = "Q: Add 1 2\nA: 3 is the sum of one and two\nQ: Greet \nA: hello there, my good friend\n";
  CU_ASSERT_EQUAL_FATAL(cp.size, strlen(want));
  CU_ASSERT_EQUAL(memcmp(cp.text, want, cp.size), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cp.target_mask);
  for (size_t i = 0; i < cp.size; i++) { /* the prompts "Q: ...A: " are not targets */
    const char *p2 = strstr(want + 42, "A: ") + 3; /* the second response */
    int response = (i >= 14 && i < 42) || (i >= (size_t)(p2 - want));
    CU_ASSERT_EQUAL(cp.target_mask[i], response);
  }
  fm_corpus_free(&cp);
  /* batches: targets -1 inside prompts; the loss is the mean over the response targets */
  fm_dataset d;
  c.data.client_bytes = 80;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  enum { B = 8, T = 8 };
  int32_t tok[B * T], tgt[B * T];
  int nb = fm_batch_sequential(&d.corpus, &d.clients[0].split[FM_SPLIT_TRAIN], 0, B, T, tok, tgt, NULL);
  CU_ASSERT_EQUAL_FATAL(nb, B);
  int masked = 0, counted = 0;
  for (int i = 0; i < B * T; i++) {
    masked += tgt[i] == -1;
    counted += tgt[i] >= 0;
  }
  CU_ASSERT_TRUE(masked > 0 && counted > 0);
  fm_model_shape s = {.vocab = 256, .context = T, .d = 8, .heads = 2, .layers = 1, .moe_mask = 1, .experts = 2,
                      .top_k = 1, .expert_type = FM_EXPERT_FULL, .init_std = 0.3f, .load_balance = 0};
  fm_model *m = NULL;
  CU_ASSERT_EQUAL_FATAL(fm_model_create(&m, &s, B, T, 1, NULL, NULL), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_model_init(m, 7), FM_OK);
  float ce, one;
  CU_ASSERT_EQUAL_FATAL(fm_model_forward(m, tok, tgt, B, T, &ce, NULL), FM_OK);
  double sum = 0;
  int32_t single[B * T];
  for (int i = 0; i < B * T; i++) {
    if (tgt[i] < 0) continue;
    for (int j = 0; j < B * T; j++) single[j] = j == i ? tgt[j] : -1;
    CU_ASSERT_EQUAL_FATAL(fm_model_forward(m, tok, single, B, T, &one, NULL), FM_OK);
    sum += one;
  }
  FM_ASSERT_CLOSE(ce, sum / counted, 1e-5, 1e-6);
  fm_model_free(m);
  fm_dataset_free(&d);
  fm_config_free(&c);
  remove_tmpdir();
}

static void test_jsonl_bad(void) {
  make_tmpdir();
  fm_config c;
  jsonl_config(&c);
  c.fl.clients = 1;
  char path[512];
  snprintf(path, sizeof path, "%s/data.jsonl:", tmpdir);
  const char *bad[][3] = {
      {"{\"text\": \"fine\"}\n{\"text\": \"broken\"\n", "data.jsonl:2: not valid JSON", "column"},
      {"{\"text\": \"fine\"}\n\n{\"txt\": \"no text field\"}\n", "data.jsonl:3: the record has no field 'text'", ""},
      {"{\"text\": [\"a list\"]}\n", "data.jsonl:1: field 'text' is not a string", "array"},
      {"[1, 2]\n", "data.jsonl:1: a record must be a JSON object", ""},
      {"{\"text\": \"ok\"}\n{\"text\": \"caf\xe9\"}\n", "data.jsonl:2: invalid UTF-8 at column 14", ""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_file("data.jsonl", bad[i][0], strlen(bad[i][0]));
    expect_error(&c, bad[i][1], bad[i][2]);
  }
  /* an instruction record without its output */
  const char *no_output = "{\"instruction\": \"Say hi\", \"response\": \"hi\"}\n";
  write_file("data.jsonl", no_output, strlen(no_output));
  snprintf(c.data.prompt_template, sizeof c.data.prompt_template, "alpaca");
  expect_error(&c, "data.jsonl:1: the record has no field 'output'", "");
  snprintf(c.data.output_field, sizeof c.data.output_field, "response");
  fm_corpus cp;
  CU_ASSERT_EQUAL(fm_corpus_load(&cp, &c), FM_OK); /* with data.output_field = response it loads */
  CU_ASSERT_TRUE(cp.size > 0 && strstr((const char *)cp.text, "### Instruction:\nSay hi") != NULL);
  fm_corpus_free(&cp);
  fm_config_free(&c);
  remove_tmpdir();
}

int fm_test_register(void) {
  static const fm_test tok[] = {{"bytes", test_bytes},
                                {"BPE merges, pre-tokenizers, added tokens", test_merge_order},
                                {"NFC normalizer", test_nfc},
                                {"bad tokenizer files", test_bad_files},
                                {"corpus ids and the token cache", test_corpus_cache},
                                {"JSON Lines: domains and clients from fields", test_jsonl_clients},
                                {"JSON Lines: instruction records, masked prompts", test_jsonl_instructions},
                                {"JSON Lines: bad records", test_jsonl_bad},
                                {NULL, NULL}};
  return fm_test_suite("tokenizer", tok);
}
