/* cmd_info.c - `fedmoe info RUNFILE [--rounds]`: a summary of a run file, or its
 * per-round times. */
#include "cli.h"

#include "fedmoe/io.h"

fm_err fm_cmd_info(const fm_cli *cli, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  fm_err err = rank != 0         ? FM_OK
               : cli->rounds ? fm_runfile_rounds(cli->positional, stdout)
                             : fm_runfile_info(cli->positional, stdout);
  FM_CHECK(fm_error_agree(err, &comm));
  return FM_OK;
}
