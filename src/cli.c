/* cli.c - command-line options and loading the configuration on every rank. */
#include "cli.h"

#include "fedmoe/data.h"
#include "fedmoe/fault.h"
#include "fedmoe/hf.h"
#include "fedmoe/log.h"
#include "fedmoe/suggest.h"

#include <stdlib.h>
#include <string.h>

/* Every subcommand: its arguments, what it does and its options, for `fedmoe --help`
 * (first two) and `fedmoe COMMAND --help` (all). */
typedef struct {
  const char *name, *args, *summary, *more, *options;
} command_t;

#define SET_OPT "  --set SECTION.KEY=VALUE   override a configuration key (repeatable; applied after\n" \
                "                            the file, in order: a later --set replaces an earlier one)\n"
static const command_t commands[] = {
  {"run", "CONFIG [options]", "run the experiment the INI file CONFIG describes",
   "Under mpirun: rank 0 is the server, ranks 1..P-1 host the clients (P >= 2).\n",
   SET_OPT
   "  --resume RUNFILE          continue a run from its latest checkpoint\n"
   "  --metrics-netcdf FILE     also write per-round metrics as NetCDF (CDF-5)\n"
   "  --overwrite               replace an existing run.output or NetCDF file (only\n"
   "                            fedmoe's own files; refused otherwise)\n"
   "  -q, --quiet               do not print the resolved configuration\n"},
  {"pretrain", "CONFIG [options]", "train a base model on a public corpus, written as a Hugging Face folder",
   "Data parallel over every rank (rank 0 included), bit-identical for any rank count. The [pretrain]\n"
   "keys set the steps, evaluations, checkpoints and the folder (pretrain.output, usable as model.init:\n"
   "config.json, model.safetensors and the tokenizer); run.output is its run file (metrics, checkpoints).\n",
   SET_OPT
   "  --resume                  continue run.output from its latest checkpoint\n"
   "  --overwrite               replace an existing run.output and pretrain.output (only fedmoe's own\n"
   "                            run files and model folders; refused otherwise)\n"
   "  -q, --quiet               do not print the resolved configuration\n"},
  {"data", "CONFIG [options]", "print the client partition: tokens per split, domain mix",
   "The corpus (domains, bytes, the server's public split) and each client's share.\n",
   SET_OPT
   "  -q, --quiet               do not print the resolved configuration\n"},
  {"eval", "--checkpoint RUNFILE | --model DIR, --text FILE [--client N] [--context N] [--tokenizer T] "
           "[--device D [--precision P]]",
   "mean next-token cross-entropy (nats) of a checkpoint, or of a Hugging Face folder, on a text file",
   "The model over consecutive blocks of N + 1 tokens of the text (N: --context, default the model's\n"
   "context; the last partial block dropped).\n",
   "  --checkpoint RUNFILE      the run file whose latest checkpoint is scored\n"
   "  --model DIR               a Hugging Face folder (config.json, model.safetensors)\n"
   "  --text FILE               the text\n"
   "  --client N                whose private state (local and comigs runs; default 0)\n"
   "  --context N               block length (default: the model's context)\n"
   "  --tokenizer T             read the text through T (default: the run's model.tokenizer, or\n"
   "                            the folder's own tokenizer; bytes when there is none)\n"
   "  --device DEVICE           cpu (default) or cuda: rank 0 scores on its GPU (a build\n"
   "                            configured --with-cuda)\n"
   "  --precision P             on cuda: fp32 (default), tf32 or bf16, as run.precision\n"},
  {"generate", "--checkpoint RUNFILE | --model DIR, --prompt TEXT [options]",
   "continue a prompt with a checkpoint's model, or a Hugging Face folder's",
   "The prompt is encoded by the run's or the folder's tokenizer and continued one token at a time\n"
   "(a key/value cache: the prefix is never recomputed), each token drawn from the softmax of the\n"
   "logits over the temperature, cut to its top-p nucleus, by a random stream of the seed and the\n"
   "token's position: the same seed gives the same text. It stops after N tokens, when the context\n"
   "is full, or at the tokenizer's end-of-text token (<|endoftext|>, <|end_of_text|>, </s>).\n"
   "stdout: the continuation and a newline; stderr: tokens, tokens/s and why it stopped.\n",
   "  --checkpoint RUNFILE      the run file whose latest checkpoint generates\n"
   "  --model DIR               a Hugging Face folder (config.json, model.safetensors)\n"
   "  --prompt TEXT             the text to continue (must give at least one token)\n"
   "  --client N                whose private state (local and comigs runs; default 0)\n"
   "  --tokens N                new tokens at most (default 64)\n"
   "  --temperature T           >= 0; 0 is greedy: the most likely token (default 1)\n"
   "  --top-p P                 in (0, 1]: draw from the fewest most likely tokens whose\n"
   "                            probabilities reach P (default 1: all)\n"
   "  --seed S                  the sampling seed, 0..2^64-1 (default 0)\n"
   "  --tokenizer T             encode and decode through T (default: the run's model.tokenizer,\n"
   "                            or the folder's own tokenizer; bytes when there is none)\n"},
  {"export", "--checkpoint RUNFILE [--client N] [--overwrite] OUTDIR",
   "write a checkpoint's model as a Hugging Face folder",
   "config.json and model.safetensors, loadable by transformers' from_pretrained.\n",
   "  --checkpoint RUNFILE      the run file whose latest checkpoint is exported\n"
   "  --client N                whose personalised model (local and comigs runs)\n"
   "  --overwrite               replace a folder that is not empty\n"},
  {"info", "RUNFILE [--rounds]", "summary of a run file: config, rounds, metrics, checkpoints", "",
   "  --rounds                  instead, one line per round: wall time and phase times (s), train loss\n"},
  {"bench", "[--profile] [--device cpu|cuda]", "training speed of the reference models on one thread or one GPU",
   "--device cuda: the GPU reference models (GPT-2-124M-sized and SmolLM-135M-sized full and LoRA\n"
   "fine-tuning, the 12-layer MoE, batch 8 x 128 and 8 x 1024, tokens/s per precision;\n"
   "FEDMOE_BENCH_BT=8x128,... and FEDMOE_BENCH_STEPS=N change the batches and the timed steps,\n"
   "FEDMOE_BENCH_ONLY=gpt2-124m/lora,moe-12x768,... the cases, FEDMOE_BENCH_PRECS=bf16,... the\n"
   "precisions).\n",
   "  --profile                 also time each layer type, forward and backward (CPU)\n"
   "  --device DEVICE           cpu (default) or cuda (a build configured --with-cuda)\n"},
  {"keys", "[SECTION|KEY] [--format=F]", "the configuration keys: type, default, range, meaning",
   "One line per key, grouped by section; only SECTION's keys, or only KEY, when given.\n",
   "  --format=FORMAT           text (default), markdown (the README's tables) or man\n"
   "                            (the man page's list)\n"},
  {"tokenize", "TOKENIZER FILE [--ids | --decode]", "token count of FILE through a tokenizer",
   "TOKENIZER: bytes, a tokenizer.json, a tokenizer.model, GPT-2's vocab.json, or a folder holding\n"
   "one. The whole file is tokenized once, with no special tokens added; prints 'tokens N'.\n",
   "  --ids                     also print the ids (space-separated, one line)\n"
   "  --decode                  FILE holds ids: print their text\n"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* Every option any command takes, for "did you mean" (the parser below decides). */
static const char *const known_options[] = {"--set", "--resume", "--metrics-netcdf", "--checkpoint", "--text",
                                            "--client", "--profile", "--quiet", "--format", "--help",
                                            "--overwrite", "--model", "--context", "--ids", "--decode",
                                            "--tokenizer", "--device", "--prompt", "--tokens", "--temperature",
                                            "--top-p", "--seed", "--rounds", "--precision"};
/* Options followed by a value (skipped when looking for --help). */
static int takes_value(const char *a, const char *cmd) {
  if (!strcmp(a, "--resume") && !strcmp(cmd, "pretrain")) return 0; /* a flag there: run.output is resumed */
  return !strcmp(a, "--set") || !strcmp(a, "--resume") || !strcmp(a, "--metrics-netcdf") ||
         !strcmp(a, "--checkpoint") || !strcmp(a, "--text") || !strcmp(a, "--client") || !strcmp(a, "--format") ||
         !strcmp(a, "--model") || !strcmp(a, "--context") || !strcmp(a, "--tokenizer") || !strcmp(a, "--device") ||
         !strcmp(a, "--prompt") || !strcmp(a, "--tokens") || !strcmp(a, "--temperature") || !strcmp(a, "--top-p") ||
         !strcmp(a, "--seed") || !strcmp(a, "--precision");
}

static const command_t *find_command(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (!strcmp(commands[i].name, name)) return &commands[i];
  return NULL;
}

void fm_cli_usage(FILE *out) {
  fprintf(out, "usage: fedmoe COMMAND [options]\n"
               "\n"
               "Simulate federated fine-tuning of Mixture-of-Experts language models on MPI.\n"
               "\n"
               "commands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++) {
    char head[80];
    snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].args);
    if (strlen(head) <= 24) fprintf(out, "  %-24s  %s\n", head, commands[i].summary);
    else fprintf(out, "  %s\n  %-24s  %s\n", head, "", commands[i].summary);
  }
  fprintf(out, "\n"
               "  -h, --help                this help; 'fedmoe COMMAND --help': the command's options\n"
               "  -V, --version             print the version\n"
               "\n"
               "'fedmoe keys' lists the configuration keys; fedmoe(1) and the README say more.\n");
}

int fm_cli_command_usage(const char *name, FILE *out) {
  const command_t *c = find_command(name);
  if (!c) return 0;
  fprintf(out, "usage: fedmoe %s %s\n\n%c%s.\n%s", c->name, c->args, c->summary[0] - 'a' + 'A', c->summary + 1,
          c->more);
  fprintf(out, "\noptions:\n%s", c->options);
  fprintf(out, "  -h, --help                this help\n");
  if (!strcmp(name, "run") || !strcmp(name, "data") || !strcmp(name, "pretrain"))
    fprintf(out, "\n'fedmoe keys' lists the configuration keys.\n");
  return 1;
}

const char *fm_cli_help_request(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "help")) return argv[2];
  if (argc < 2 || !find_command(argv[1])) return NULL;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return argv[1];
    if (takes_value(argv[i], argv[1])) i++; /* a value, even one spelled like an option */
  }
  return NULL;
}

static const char *command_suggestion(const char *word, char *out, size_t len) {
  fm_suggest s;
  fm_suggest_init(&s, word);
  for (size_t i = 0; i < NCOMMANDS; i++) fm_suggest_add(&s, commands[i].name);
  return fm_suggest_text(&s, out, len);
}

static const char *option_suggestion(const char *word, char *out, size_t len) {
  fm_suggest s;
  char stem[64];
  snprintf(stem, sizeof stem, "%.*s", (int)strcspn(word, "="), word); /* --formt=man: the option part */
  fm_suggest_init(&s, stem);
  for (size_t i = 0; i < sizeof known_options / sizeof known_options[0]; i++) fm_suggest_add(&s, known_options[i]);
  return fm_suggest_text(&s, out, len);
}

static int takes_config(const char *cmd) { return !strcmp(cmd, "run") || !strcmp(cmd, "data") || !strcmp(cmd, "pretrain"); }

fm_err fm_cli_parse(fm_cli *cli, int argc, char **argv) {
  char hint[160];
  memset(cli, 0, sizeof *cli);
  if (argc < 2) FM_ERROR(FM_ERR_ARG, "no command given (try 'fedmoe --help')");
  cli->command = argv[1];
  if (!find_command(argv[1]))
    FM_ERROR(FM_ERR_ARG, "unknown command '%s'%s; try 'fedmoe --help'", argv[1],
             command_suggestion(argv[1], hint, sizeof hint));
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = NULL;
    if (!strcmp(a, "--set")) {
      if (i + 1 >= argc) FM_ERROR(FM_ERR_ARG, "--set needs SECTION.KEY=VALUE");
      if (cli->nsets == FM_CLI_MAX_SETS) FM_ERROR(FM_ERR_ARG, "more than %d --set options", FM_CLI_MAX_SETS);
      snprintf(cli->set_where[cli->nsets], sizeof cli->set_where[0], "--set (argument %d)", i + 1);
      cli->sets[cli->nsets++] = argv[++i];
      continue;
    } else if (!strncmp(a, "--set=", 6)) {
      if (cli->nsets == FM_CLI_MAX_SETS) FM_ERROR(FM_ERR_ARG, "more than %d --set options", FM_CLI_MAX_SETS);
      snprintf(cli->set_where[cli->nsets], sizeof cli->set_where[0], "--set (argument %d)", i);
      cli->sets[cli->nsets++] = a + 6;
      continue;
    } else if (!strncmp(a, "--format=", 9)) {
      cli->format = a + 9;
      continue;
    } else if (!strcmp(a, "--resume") && !strcmp(cli->command, "pretrain")) {
      cli->resume_flag = 1;
      continue;
    } else if (!strcmp(a, "--resume")) slot = &cli->resume;
    else if (!strcmp(a, "--metrics-netcdf")) slot = &cli->netcdf;
    else if (!strcmp(a, "--checkpoint")) slot = &cli->checkpoint;
    else if (!strcmp(a, "--text")) slot = &cli->text;
    else if (!strcmp(a, "--client")) slot = &cli->client;
    else if (!strcmp(a, "--format")) slot = &cli->format;
    else if (!strcmp(a, "--model")) slot = &cli->model;
    else if (!strcmp(a, "--context")) slot = &cli->context;
    else if (!strcmp(a, "--tokenizer")) slot = &cli->tokenizer;
    else if (!strcmp(a, "--device")) slot = &cli->device;
    else if (!strcmp(a, "--precision")) slot = &cli->precision;
    else if (!strcmp(a, "--prompt")) slot = &cli->prompt;
    else if (!strcmp(a, "--tokens")) slot = &cli->tokens;
    else if (!strcmp(a, "--temperature")) slot = &cli->temperature;
    else if (!strcmp(a, "--top-p")) slot = &cli->top_p;
    else if (!strcmp(a, "--seed")) slot = &cli->seed;
    else if (!strcmp(a, "--profile")) { cli->profile = 1; continue; }
    else if (!strcmp(a, "--rounds")) { cli->rounds = 1; continue; }
    else if (!strcmp(a, "--ids")) { cli->ids = 1; continue; }
    else if (!strcmp(a, "--decode")) { cli->decode = 1; continue; }
    else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { cli->quiet = 1; continue; }
    else if (!strcmp(a, "--overwrite")) { cli->overwrite = 1; continue; }
    else if (a[0] == '-' && a[1])
      FM_ERROR(FM_ERR_ARG, "unknown option '%s' for '%s'%s; try 'fedmoe %s --help'", a, cli->command,
               option_suggestion(a, hint, sizeof hint), cli->command);
    if (slot) {
      if (i + 1 >= argc) FM_ERROR(FM_ERR_ARG, "%s needs an argument", a);
      *slot = argv[++i];
      continue;
    }
    if (takes_config(cli->command) && !cli->config) cli->config = a;
    else if (!cli->positional && !takes_config(cli->command) && strcmp(cli->command, "eval") &&
             strcmp(cli->command, "bench") && strcmp(cli->command, "generate"))
      cli->positional = a;
    else if (!cli->positional2 && !strcmp(cli->command, "tokenize")) cli->positional2 = a;
    else FM_ERROR(FM_ERR_ARG, "unexpected argument '%s'; try 'fedmoe %s --help'", a, cli->command);
  }
  if (takes_config(cli->command) && !cli->config)
    FM_ERROR(FM_ERR_ARG, "'fedmoe %s' needs a CONFIG file", cli->command);
  if (!strcmp(cli->command, "info") && !cli->positional)
    FM_ERROR(FM_ERR_ARG, "'fedmoe info' needs a RUNFILE");
  if (!strcmp(cli->command, "export") && !cli->positional)
    FM_ERROR(FM_ERR_ARG, "'fedmoe export' needs an OUTDIR (fedmoe export --checkpoint RUNFILE OUTDIR)");
  if (!strcmp(cli->command, "tokenize") && !cli->positional2)
    FM_ERROR(FM_ERR_ARG, "'fedmoe tokenize' needs a TOKENIZER (bytes or a path) and a FILE");
  if ((cli->ids || cli->decode) && strcmp(cli->command, "tokenize"))
    FM_ERROR(FM_ERR_ARG, "--ids and --decode are options of 'fedmoe tokenize'");
  if ((cli->prompt || cli->tokens || cli->temperature || cli->top_p || cli->seed) && strcmp(cli->command, "generate"))
    FM_ERROR(FM_ERR_ARG, "--prompt, --tokens, --temperature, --top-p and --seed are options of 'fedmoe generate'");
  if (cli->rounds && strcmp(cli->command, "info")) FM_ERROR(FM_ERR_ARG, "--rounds is an option of 'fedmoe info'");
  if (cli->device && strcmp(cli->command, "bench") && strcmp(cli->command, "eval"))
    FM_ERROR(FM_ERR_ARG, "--device is an option of 'fedmoe bench' and 'fedmoe eval'");
  if (cli->precision && strcmp(cli->command, "eval"))
    FM_ERROR(FM_ERR_ARG, "--precision is an option of 'fedmoe eval' (a run's is run.precision)");
  if (cli->ids && cli->decode) FM_ERROR(FM_ERR_ARG, "'fedmoe tokenize' takes --ids or --decode, not both");
  return FM_OK;
}

/* Read on rank 0 only (one file-system access per job, not per rank) and broadcast. */
static fm_err read_and_share(const char *path, char **text, size_t *n_out, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  long long len = 0;
  fm_err err = FM_OK;
  *text = NULL;
  if (rank == 0) {
    size_t n = 0;
    err = fm_read_file(path, text, &n);
    len = err ? -1 : (long long)n;
  }
  FM_MPI(MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, comm));
  if (len < 0) { /* rank 0 has the message; the others report that rank 0 failed */
    if (rank != 0) FM_ERROR(FM_ERR_IO, "rank 0 could not read '%s'", path);
    return err;
  }
  if (rank != 0) FM_CHECK(fm_calloc(text, (size_t)len + 1, 1, "configuration text"));
  FM_MPI(MPI_Bcast(*text, (int)len, MPI_CHAR, 0, comm));
  if (n_out) *n_out = (size_t)len;
  return FM_OK;
}

static fm_err load_local(const fm_cli *cli, fm_config *cfg, MPI_Comm comm) {
  char *text = NULL;
  FM_CHECK(fm_config_init(cfg));
  if (cli->config) {
    size_t len = 0;
    fm_err err = read_and_share(cli->config, &text, &len, comm);
    if (!err) err = fm_text_refuse_nul(text, len, cli->config);
    if (!err) err = fm_config_parse_file(cfg, text, cli->config);
    free(text);
    FM_CHECK(err);
  }
  for (int i = 0; i < cli->nsets; i++) FM_CHECK(fm_config_set(cfg, cli->sets[i], cli->set_where[i]));
  if (cfg->model.init[0]) { /* the folder's config.json fixes the shape keys */
    char path[FM_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.json", cfg->model.init);
    fm_err err = read_and_share(path, &text, NULL, comm);
    if (!err) err = fm_hf_config_apply(cfg, text);
    free(text);
    FM_CHECK(err);
  } else if (cfg->model.upcycle != FM_UPCYCLE_NONE) {
    FM_CONFIG_ERROR(cfg, "model.upcycle", "upcycling needs a dense checkpoint: set model.init = DIR");
  }
  FM_CHECK(fm_config_validate(cfg));
  if (!strcmp(cli->command, "run")) { /* an injected failure must be able to fire in this job */
    int size;
    MPI_Comm_size(comm, &size);
    FM_CHECK(fm_fault_validate_job(cfg, size));
  }
  fm_log_set_level((fm_log_level)cfg->run.log_level);
  return FM_OK;
}

/* data.client_field with fl.clients left out: as many clients as the field has
 * values, counted on rank 0 and broadcast, so every rank builds the same run. */
static fm_err clients_from_data(fm_config *cfg, MPI_Comm comm) {
  const fm_key *k = fm_config_find_key("fl.clients");
  if (!cfg->data.client_field[0] || strcmp(cfg->origin[k - fm_config_keys], "default")) return FM_OK;
  int rank, n = 0;
  MPI_Comm_rank(comm, &rank);
  FM_CHECK(fm_error_agree(rank == 0 ? fm_data_count_clients(cfg, &n) : FM_OK, &comm));
  FM_MPI(MPI_Bcast(&n, 1, MPI_INT, 0, comm));
  if (n < 1)
    FM_CONFIG_ERROR(cfg, "data.client_field", "'%s': no record of '%s' has this field", cfg->data.client_field,
                    cfg->data.path);
  char set[64], where[96];
  snprintf(set, sizeof set, "fl.clients=%d", n);
  snprintf(where, sizeof where, "data.client_field '%.60s'", cfg->data.client_field);
  FM_CHECK(fm_config_set(cfg, set, where));
  FM_CHECK(fm_config_validate(cfg));
  return FM_OK;
}

fm_err fm_cli_load_config(const fm_cli *cli, fm_config *cfg, MPI_Comm comm) {
  /* the same text on every rank gives the same error on every rank: agree, print once */
  fm_err err = fm_error_agree(load_local(cli, cfg, comm), &comm);
  if (!err) err = fm_error_agree(clients_from_data(cfg, comm), &comm);
  if (err) { /* the caller gets no configuration to free */
    fm_config_free(cfg);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  return FM_OK;
}
