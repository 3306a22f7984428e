/* cli.h - the fedmoe program's command line: subcommands and shared options. */
#ifndef FEDMOE_CLI_H
#define FEDMOE_CLI_H

#include "fedmoe/config.h"

#include <mpi.h>

#define FM_CLI_MAX_SETS 256

typedef struct {
  const char *command;   /* run, data, eval, bench, info, tokenize */
  const char *config;    /* CONFIG positional argument, when the command takes one */
  const char *resume;    /* --resume RUNFILE */
  const char *netcdf;    /* --metrics-netcdf FILE */
  const char *checkpoint;/* --checkpoint FILE (eval) */
  const char *text;      /* --text FILE (eval) */
  const char *client;    /* --client N (eval) */
  const char *positional;/* other positional argument (info RUNFILE, tokenize TOKENIZER) */
  const char *positional2;/* the second (tokenize FILE) */
  int profile;           /* --profile (bench) */
  int ids, decode;       /* --ids, --decode (tokenize) */
  int quiet;             /* -q: do not print the resolved configuration */
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

/* Subcommands; each returns an error agreed on by every rank, or one of its own. */
fm_err fm_cmd_run(const fm_cli *cli, MPI_Comm comm);   /* cmd_run.c */
fm_err fm_cmd_data(const fm_cli *cli, MPI_Comm comm);  /* cmd_data.c */
fm_err fm_cmd_eval(const fm_cli *cli, MPI_Comm comm);  /* cmd_eval.c */
fm_err fm_cmd_bench(const fm_cli *cli, MPI_Comm comm); /* cmd_bench.c */
fm_err fm_cmd_info(const fm_cli *cli, MPI_Comm comm);  /* cmd_info.c */
fm_err fm_cmd_tokenize(const fm_cli *cli, MPI_Comm comm); /* cmd_tokenize.c */

#endif
