/* cli.c - command-line options and loading the configuration on every rank. */
#include "cli.h"

#include "fedmoe/data.h"
#include "fedmoe/log.h"

#include <stdlib.h>
#include <string.h>

void fm_cli_usage(FILE *out) {
  fprintf(out,
          "usage: fedmoe COMMAND [options]\n"
          "\n"
          "Simulate federated fine-tuning of Mixture-of-Experts language models on MPI.\n"
          "\n"
          "commands:\n"
          "  run CONFIG        run the experiment CONFIG describes (under mpirun: rank 0 is the\n"
          "                    server, the other ranks host the clients)\n"
          "  data CONFIG       print the client partition: tokens per split, domain mix\n"
          "  eval --checkpoint RUNFILE --text FILE [--client N]\n"
          "                    mean next-token cross-entropy (nats) of a checkpoint on a text file\n"
          "                    (--client: whose private state, for local and comigs runs)\n"
          "  info RUNFILE      summary of a run file: config, rounds, metrics, checkpoints\n"
          "  bench [--profile] training speed of the reference models on one thread\n"
          "  tokenize TOKENIZER FILE [--ids | --decode]\n"
          "                    token count of FILE (bytes, a tokenizer.json, tokenizer.model, GPT-2\n"
          "                    vocab.json or a folder); --ids: the ids too; --decode: FILE holds ids,\n"
          "                    print their text\n"
          "\n"
          "options:\n"
          "  --set SECTION.KEY=VALUE   override a configuration key (repeatable)\n"
          "  --resume RUNFILE          continue a run from its latest checkpoint\n"
          "  --metrics-netcdf FILE     also write per-round metrics as NetCDF (CDF-5)\n"
          "  -q, --quiet               do not print the resolved configuration\n"
          "  -h, --help                this help\n"
          "  -V, --version             print the version\n"
          "\n"
          "See fedmoe(1) and the README for the configuration keys.\n");
}

static int takes_config(const char *cmd) {
  return !strcmp(cmd, "run") || !strcmp(cmd, "data") || !strcmp(cmd, "eval");
}

fm_err fm_cli_parse(fm_cli *cli, int argc, char **argv) {
  memset(cli, 0, sizeof *cli);
  if (argc < 2) FM_ERROR(FM_ERR_ARG, "no command given (try 'fedmoe --help')");
  cli->command = argv[1];
  static const char *const commands[] = {"run", "data", "eval", "info", "bench", "tokenize"};
  int known = 0;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) known |= !strcmp(argv[1], commands[i]);
  if (!known) FM_ERROR(FM_ERR_ARG, "unknown command '%s' (try 'fedmoe --help')", argv[1]);
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
    } else if (!strcmp(a, "--resume")) slot = &cli->resume;
    else if (!strcmp(a, "--metrics-netcdf")) slot = &cli->netcdf;
    else if (!strcmp(a, "--checkpoint")) slot = &cli->checkpoint;
    else if (!strcmp(a, "--text")) slot = &cli->text;
    else if (!strcmp(a, "--client")) slot = &cli->client;
    else if (!strcmp(a, "--profile")) { cli->profile = 1; continue; }
    else if (!strcmp(a, "--ids")) { cli->ids = 1; continue; }
    else if (!strcmp(a, "--decode")) { cli->decode = 1; continue; }
    else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { cli->quiet = 1; continue; }
    else if (a[0] == '-' && a[1]) FM_ERROR(FM_ERR_ARG, "unknown option '%s' for '%s'", a, cli->command);
    if (slot) {
      if (i + 1 >= argc) FM_ERROR(FM_ERR_ARG, "%s needs an argument", a);
      *slot = argv[++i];
      continue;
    }
    if (takes_config(cli->command) && !cli->config) cli->config = a;
    else if (!cli->positional && !takes_config(cli->command)) cli->positional = a;
    else if (!cli->positional2 && !strcmp(cli->command, "tokenize")) cli->positional2 = a;
    else FM_ERROR(FM_ERR_ARG, "unexpected argument '%s'", a);
  }
  if ((!strcmp(cli->command, "run") || !strcmp(cli->command, "data")) && !cli->config)
    FM_ERROR(FM_ERR_ARG, "'fedmoe %s' needs a CONFIG file", cli->command);
  if (!strcmp(cli->command, "info") && !cli->positional)
    FM_ERROR(FM_ERR_ARG, "'fedmoe info' needs a RUNFILE");
  if (!strcmp(cli->command, "tokenize") && !cli->positional2)
    FM_ERROR(FM_ERR_ARG, "'fedmoe tokenize' needs a TOKENIZER (bytes or a path) and a FILE");
  if ((cli->ids || cli->decode) && strcmp(cli->command, "tokenize"))
    FM_ERROR(FM_ERR_ARG, "--ids and --decode are options of 'fedmoe tokenize'");
  if (cli->ids && cli->decode) FM_ERROR(FM_ERR_ARG, "'fedmoe tokenize' takes --ids or --decode, not both");
  return FM_OK;
}

/* Read on rank 0 only (one file-system access per job, not per rank) and broadcast. */
static fm_err read_and_share(const char *path, char **text, MPI_Comm comm) {
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
  return FM_OK;
}

static fm_err load_local(const fm_cli *cli, fm_config *cfg, MPI_Comm comm) {
  char *text = NULL;
  FM_CHECK(fm_config_init(cfg));
  if (cli->config) {
    fm_err err = read_and_share(cli->config, &text, comm);
    if (!err) err = fm_config_parse(cfg, text, cli->config);
    free(text);
    FM_CHECK(err);
  }
  for (int i = 0; i < cli->nsets; i++) FM_CHECK(fm_config_set(cfg, cli->sets[i], cli->set_where[i]));
  FM_CHECK(fm_config_validate(cfg));
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
