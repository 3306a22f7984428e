/* cli.h - the fedmoe program's command line: subcommands and shared options. */
#ifndef FEDMOE_CLI_H
#define FEDMOE_CLI_H

#include "fedmoe/config.h"

#include <mpi.h>

#define FM_CLI_MAX_SETS 256

typedef struct {
  const char *command;   /* run, data, eval, bench, info, keys */
  const char *config;    /* CONFIG positional argument, when the command takes one */
  const char *resume;    /* --resume RUNFILE */
  const char *netcdf;    /* --metrics-netcdf FILE */
  const char *checkpoint;/* --checkpoint FILE (eval) */
  const char *text;      /* --text FILE (eval) */
  const char *client;    /* --client N (eval) */
  const char *positional;/* other positional argument (info RUNFILE, keys NAME) */
  const char *format;    /* --format (keys) */
  int profile;           /* --profile (bench) */
  int quiet;             /* -q: do not print the resolved configuration */
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

/* Subcommands; each returns an error agreed on by every rank, or one of its own. */
fm_err fm_cmd_run(const fm_cli *cli, MPI_Comm comm);   /* cmd_run.c */
fm_err fm_cmd_data(const fm_cli *cli, MPI_Comm comm);  /* cmd_data.c */
fm_err fm_cmd_eval(const fm_cli *cli, MPI_Comm comm);  /* cmd_eval.c */
fm_err fm_cmd_bench(const fm_cli *cli, MPI_Comm comm); /* cmd_bench.c */
fm_err fm_cmd_info(const fm_cli *cli, MPI_Comm comm);  /* cmd_info.c */
fm_err fm_cmd_keys(const fm_cli *cli, MPI_Comm comm);  /* cmd_keys.c */

#endif
