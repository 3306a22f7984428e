/* cmd_run.c - `fedmoe run CONFIG`: load the configuration on every rank and run. */
#include "cli.h"

#include "fedmoe/log.h"
#include "fedmoe/timer.h"

#include <stdlib.h>

fm_err fm_cmd_run(const fm_cli *cli, MPI_Comm comm) {
  fm_config cfg;
  double t0 = fm_wtime();
  FM_CHECK(fm_cli_load_config(cli, &cfg, comm));
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (!cli->quiet) {
    char *text = NULL;
    fm_err err = fm_config_to_text(&cfg, &text);
    if (!err) fm_say("# fedmoe resolved configuration\n%s\n", text);
    free(text);
  }
  fm_config_free(&cfg);
  fm_timer_report(&comm, stdout, fm_wtime() - t0);
  return FM_OK;
}
