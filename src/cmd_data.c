/* cmd_data.c - `fedmoe data`. */
#include "cli.h"

fm_err fm_cmd_data(const fm_cli *cli, MPI_Comm comm) {
  (void)comm;
  FM_ERROR(FM_ERR_ARG, "'fedmoe %s' is not available in this build yet", cli->command);
}
