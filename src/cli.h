/* cli.h - the fedmoe program's command line: subcommands and shared options. */
#ifndef FEDMOE_CLI_H
#define FEDMOE_CLI_H

#include "fedmoe/config.h"
#include "fedmoe/model.h"

#include <mpi.h>

#define FM_CLI_MAX_SETS 256

typedef struct {
  const char *command;   /* run, data, eval, generate, export, bench, info, keys, tokenize */
  const char *config;    /* CONFIG positional argument, when the command takes one */
  const char *resume;    /* --resume RUNFILE */
  const char *netcdf;    /* --metrics-netcdf FILE */
  const char *checkpoint;/* --checkpoint FILE (eval, generate, export) */
  const char *text;      /* --text FILE (eval) */
  const char *client;    /* --client N (eval, export) */
  const char *model;     /* --model DIR (eval): a Hugging Face folder */
  const char *context;   /* --context N (eval) */
  const char *tokenizer; /* --tokenizer T (eval, generate) */
  const char *device;    /* --device cpu|cuda (bench, eval) */
  const char *precision; /* --precision fp32|tf32|bf16 (eval on cuda) */
  const char *prompt;    /* --prompt TEXT (generate) */
  const char *tokens;    /* --tokens N (generate) */
  const char *temperature, *top_p, *seed; /* --temperature, --top-p, --seed (generate) */
  const char *positional;/* other positional argument (info RUNFILE, keys NAME, export OUTDIR, tokenize TOKENIZER) */
  const char *format;    /* --format (keys) */
  const char *positional2;/* the second (tokenize FILE) */
  int profile;           /* --profile (bench) */
  int rounds;            /* --rounds (info) */
  int ids, decode;       /* --ids, --decode (tokenize) */
  int quiet;             /* -q: do not print the resolved configuration */
  int resume_flag;       /* --resume of pretrain: continue run.output */
  int overwrite;         /* --overwrite: replace an existing run file / NetCDF file (run) */
  int nsets;
  const char *sets[FM_CLI_MAX_SETS]; /* --set section.key=value, in order */
  char set_where[FM_CLI_MAX_SETS][32];
} fm_cli;

/* Parse argv after the subcommand. Same result on every rank (same argv). */
fm_err fm_cli_parse(fm_cli *cli, int argc, char **argv);
/* Rank 0 reads cli->config and broadcasts it; every rank parses it, applies the
 * --set overrides and validates. Collective: an error is agreed on by all ranks. */
fm_err fm_cli_load_config(const fm_cli *cli, fm_config *cfg, MPI_Comm comm);
void fm_cli_usage(FILE *out);
/* `fedmoe COMMAND --help`: print COMMAND's usage and options; 0 if no such command. */
int fm_cli_command_usage(const char *command, FILE *out);
/* The command whose help argv asks for (`fedmoe COMMAND ... --help|-h`, `fedmoe help
 * COMMAND`), or NULL. Needs no MPI. */
const char *fm_cli_help_request(int argc, char **argv);

/* device.c: run.device / run.precision - open this rank's GPU (cuda) and make it where
 * the models made from now on live; *be NULL for the CPU. Collective, errors agreed.
 * fm_cli_close_device(be) puts the models back on the CPU and closes the GPU. */
fm_err fm_cli_open_device(const fm_config *c, MPI_Comm comm, fm_backend **be);
/* bench_gpu.c: `fedmoe bench --device cuda` on rank 0 (the others return FM_OK) */
fm_err fm_bench_gpu(const fm_cli *cli, int rank);
void fm_cli_close_device(fm_backend *be);

/* Subcommands; each returns an error agreed on by every rank, or one of its own. */
fm_err fm_cmd_run(const fm_cli *cli, MPI_Comm comm);   /* cmd_run.c */
fm_err fm_cmd_data(const fm_cli *cli, MPI_Comm comm);  /* cmd_data.c */
fm_err fm_cmd_eval(const fm_cli *cli, MPI_Comm comm);  /* cmd_eval.c */
fm_err fm_cmd_generate(const fm_cli *cli, MPI_Comm comm); /* cmd_generate.c */
fm_err fm_cmd_bench(const fm_cli *cli, MPI_Comm comm); /* cmd_bench.c */
fm_err fm_cmd_info(const fm_cli *cli, MPI_Comm comm);  /* cmd_info.c */
fm_err fm_cmd_keys(const fm_cli *cli, MPI_Comm comm);  /* cmd_keys.c */
fm_err fm_cmd_export(const fm_cli *cli, MPI_Comm comm); /* cmd_export.c */
fm_err fm_cmd_pretrain(const fm_cli *cli, MPI_Comm comm); /* cmd_pretrain.c */

/* The model eval and export work on (cmd_model.c; rank 0 only): a run file's latest
 * checkpoint - the global model, or a client's for strategies with private state -
 * or a Hugging Face folder. Prepare reads the configuration and shape; create makes
 * the model for batches of B x T and loads its values. */
typedef struct fm_strategy fm_strategy;
typedef struct {
  const char *source;      /* the run file or the folder, for messages */
  int folder;              /* 1: a Hugging Face folder */
  fm_config cfg;           /* the run's configuration (checkpoints) */
  int have_cfg;
  const fm_strategy *st;   /* the run's strategy (checkpoints) */
  fm_model_shape shape;
  int client;              /* -1: the global model */
  int round, allocated;    /* the checkpoint's round; 0: the client never trained */
  int active_experts;      /* > 0: the client routes to experts 0..active_experts-1 only (comigs) */
  int server;              /* 1: the server's own model (fedbiot's full model) */
  fm_model *m;
} fm_cli_model;
fm_err fm_cli_model_prepare(const fm_cli *cli, fm_cli_model *cm);
fm_err fm_cli_model_create(fm_cli_model *cm, int B, int T);
void fm_cli_model_free(fm_cli_model *cm);
fm_err fm_cmd_tokenize(const fm_cli *cli, MPI_Comm comm); /* cmd_tokenize.c */

#endif
