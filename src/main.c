/* main.c - the fedmoe program: MPI start-up, subcommand dispatch, exit status. */
#include "cli.h"

#include "fedmoe/error.h"
#include "fedmoe/log.h"

#include "config.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  /* --help and --version need no MPI: answer them before MPI_Init */
  const char *help = fm_cli_help_request(argc, argv);
  if (help && fm_cli_command_usage(help, stdout)) return 0;
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
    if (help) { /* `fedmoe help NOSUCH` */
      fprintf(stderr, "fedmoe: no command '%s'\n", help);
      fm_cli_usage(stderr);
      return 1;
    }
    fm_cli_usage(stdout);
    return 0;
  }
  if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
    printf("fedmoe %s\n", PACKAGE_VERSION);
    return 0;
  }
  /* MPI_THREAD_MULTIPLE: the collective watchdog's thread (src/core/watchdog.c) talks
   * to the other ranks while the main thread may be inside a collective */
  int provided;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank, size;
  MPI_Comm comm = MPI_COMM_WORLD;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  fm_error_init(&comm);
  fm_log_set_rank(rank, size);

  fm_cli cli;
  /* argv is the same on every rank, so a command-line error is everyone's */
  fm_err err = fm_error_agree(fm_cli_parse(&cli, argc, argv), &comm);
  if (!err) {
    if (!strcmp(cli.command, "run")) err = fm_cmd_run(&cli, comm);
    else if (!strcmp(cli.command, "pretrain")) err = fm_cmd_pretrain(&cli, comm);
    else if (!strcmp(cli.command, "data")) err = fm_cmd_data(&cli, comm);
    else if (!strcmp(cli.command, "eval")) err = fm_cmd_eval(&cli, comm);
    else if (!strcmp(cli.command, "generate")) err = fm_cmd_generate(&cli, comm);
    else if (!strcmp(cli.command, "export")) err = fm_cmd_export(&cli, comm);
    else if (!strcmp(cli.command, "bench")) err = fm_cmd_bench(&cli, comm);
    else if (!strcmp(cli.command, "keys")) err = fm_cmd_keys(&cli, comm);
    else if (!strcmp(cli.command, "tokenize")) err = fm_cmd_tokenize(&cli, comm);
    else err = fm_cmd_info(&cli, comm);
  }
  if (err) fm_fatal(err); /* agreed errors exit quietly on all ranks; others abort */
  MPI_Finalize();
  return 0;
}
