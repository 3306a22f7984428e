/* test_input.c - strict reading of what users write: decimal numbers, lists without
 * holes, one value per key and file, no NUL bytes, and "did you mean". */
#include "cunit_main.h"

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/suggest.h"

#include <stdlib.h>
#include <string.h>

static int has(const char *needle) { return strstr(fm_error_message(), needle) != NULL; }

static void test_decimal_only(void) {
  int64_t i;
  double d;
  CU_ASSERT(fm_parse_int64("012", &i) && i == 12); /* not octal 10 */
  CU_ASSERT(!fm_parse_int64("0x10", &i));          /* not hex 16 */
  CU_ASSERT(!fm_parse_int64("12abc", &i));
  CU_ASSERT(fm_parse_int64("-7 ", &i) && i == -7);
  CU_ASSERT(fm_parse_real("2e10", &d) && d == 2e10);
  CU_ASSERT(!fm_parse_real("0x1p4", &d));
  CU_ASSERT(!fm_parse_real("nan", &d));
  CU_ASSERT(!fm_parse_real("-inf", &d));
  CU_ASSERT(!fm_parse_real("1e999", &d));
  fm_config c;
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.clients=012", "x"), FM_OK);
  CU_ASSERT_EQUAL(c.fl.clients, 12);
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.clients=0x10", "x"), FM_ERR_CONFIG);
  CU_ASSERT(has("fl.clients"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "run.seed=0x10", "x"), FM_ERR_CONFIG);
  CU_ASSERT_EQUAL(fm_config_set(&c, "train.lr=0x1p-10", "x"), FM_ERR_CONFIG);
  CU_ASSERT_EQUAL(fm_config_set(&c, "comigs.specialists=1,010", "x"), FM_OK);
  CU_ASSERT_EQUAL(c.comigs.specialists.v[1], 10);
  fm_config_free(&c);
}

static void test_list_holes(void) {
  fm_config c;
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_set(&c, "system.share=1,,1", "--set (argument 3)"), FM_ERR_CONFIG);
  CU_ASSERT(has("argument 3") && has("system.share") && has("entry 2"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "system.share=1,2,", "x"), FM_ERR_CONFIG);
  CU_ASSERT(has("entry 3"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "system.share=,1", "x"), FM_ERR_CONFIG);
  CU_ASSERT(has("entry 1"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "system.share= ", "x"), FM_ERR_CONFIG);
  CU_ASSERT(has("empty list"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "data.domains=a,,b", "--set (argument 5)"), FM_OK);
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_ERR_CONFIG);
  CU_ASSERT(has("argument 5") && has("data.domains") && has("entry 2"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "data.domains=a, b", "x"), FM_OK);
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_OK);
  CU_ASSERT_EQUAL(fm_config_set(&c, "data.domains=", "x"), FM_OK); /* empty: every domain */
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_OK);
  CU_ASSERT_EQUAL(fm_config_set(&c, "system.share=1, 2 ,3", "x"), FM_OK);
  CU_ASSERT_EQUAL(c.system.share.n, 3);
  CU_ASSERT_EQUAL(c.system.share.v[2], 3.0);
  fm_config_free(&c);
}

static void test_duplicates(void) {
  fm_config c;
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_parse(&c, "[fl]\nrounds = 2\n[run]\nseed = 1\n[fl]\nrounds = 3\n", "d.ini"),
                  FM_ERR_CONFIG);
  CU_ASSERT(has("fl.rounds") && has("d.ini:2") && has("d.ini:6"));
  fm_config_free(&c);
  /* --set replaces a file's value, and a later --set an earlier one */
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_parse(&c, "[fl]\nrounds = 2\n", "d.ini"), FM_OK);
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.rounds=5", "a"), FM_OK);
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.rounds=6", "b"), FM_OK);
  CU_ASSERT_EQUAL(c.fl.rounds, 6);
  fm_config_free(&c);
}

static void test_nul(void) {
  const char text[] = "[fl]\nrounds = 2\n\0clients = 3\n";
  CU_ASSERT_EQUAL(fm_text_refuse_nul(text, sizeof text - 1, "n.ini"), FM_ERR_CONFIG);
  CU_ASSERT(has("n.ini:3") && has("NUL"));
  CU_ASSERT_EQUAL(fm_text_refuse_nul(text, 16, "n.ini"), FM_OK);
}

static void test_suggest(void) {
  CU_ASSERT_EQUAL(fm_edit_distance("rouns", "rounds"), 1);
  CU_ASSERT_EQUAL(fm_edit_distance("ruonds", "rounds"), 1); /* a swap is one edit */
  CU_ASSERT_EQUAL(fm_edit_distance("", "abc"), 3);
  CU_ASSERT_EQUAL(fm_edit_distance("kitten", "sitting"), 3);
  fm_config c;
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.rouns=3", "x"), FM_ERR_CONFIG);
  CU_ASSERT(has("did you mean 'fl.rounds'?"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.seed=3", "x"), FM_ERR_CONFIG); /* right key, wrong section */
  CU_ASSERT(has("did you mean 'run.seed'"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "rounds=3", "x"), FM_ERR_CONFIG); /* no section */
  CU_ASSERT(has("did you mean 'fl.rounds'"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "zzzzzzzz.qqqqq=3", "x"), FM_ERR_CONFIG); /* nothing close */
  CU_ASSERT(!has("did you mean"));
  CU_ASSERT_EQUAL(fm_config_parse(&c, "[hfedmo]\nbeta = 1\n", "s.ini"), FM_ERR_CONFIG);
  CU_ASSERT(has("s.ini:1") && has("did you mean 'hfedmoe'"));
  fm_config_free(&c);
  fm_suggest s;
  char out[128];
  fm_suggest_init(&s, "bech");
  const char *cmds[] = {"run", "data", "eval", "info", "bench", "keys"};
  for (int i = 0; i < 6; i++) fm_suggest_add(&s, cmds[i]);
  CU_ASSERT_STRING_EQUAL(fm_suggest_text(&s, out, sizeof out), " (did you mean 'bench'?)");
  fm_suggest_init(&s, "ab");
  fm_suggest_add(&s, "ac");
  fm_suggest_add(&s, "ax");
  fm_suggest_add(&s, "zz");
  CU_ASSERT_STRING_EQUAL(fm_suggest_text(&s, out, sizeof out), " (did you mean 'ac' or 'ax'?)");
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"decimal only", test_decimal_only}, {"list holes", test_list_holes},
                                  {"duplicate keys", test_duplicates},  {"NUL bytes", test_nul},
                                  {"did you mean", test_suggest},       {NULL, NULL}};
  return fm_test_suite("input", tests);
}
