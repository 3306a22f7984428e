/* cmd_eval.c - `fedmoe eval`. */
#include "cli.h"

fm_err fm_cmd_eval(const fm_cli *cli, MPI_Comm comm) {
  (void)comm;
  FM_ERROR(FM_ERR_ARG, "'fedmoe %s' is not available in this build yet", cli->command);
}
