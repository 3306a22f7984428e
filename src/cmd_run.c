/* cmd_run.c - `fedmoe run CONFIG`: load the configuration on every rank and run. */
#include "cli.h"

#include "fedmoe/fl.h"
#include "fedmoe/log.h"
#include "fedmoe/timer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

fm_err fm_cmd_run(const fm_cli *cli, MPI_Comm comm) {
  fm_config cfg;
  double t0 = fm_wtime();
  FM_CHECK(fm_cli_load_config(cli, &cfg, comm));
  char *text = NULL;
  fm_err err = fm_config_to_text(&cfg, &text);
  if (!err && !cli->quiet) fm_say("# fedmoe resolved configuration\n%s\n", text);
  fm_run_opts opts = {cli->resume, cli->netcdf, text, cli->quiet, cli->overwrite};
  fm_run_summary sum;
  fm_backend *dev = NULL; /* run.device */
  if (!err) err = fm_cli_open_device(&cfg, comm, &dev);
  if (!err) err = fm_run(&cfg, &opts, comm, &sum);
  fm_cli_close_device(dev);
  free(text);
  if (!err) {
    /* losses in nats; fedbiot's clients score the emulator, its paper the full model */
    char full[128] = "";
    if (!isnan(sum.final_test_full))
      snprintf(full, sizeof full, "; full model test loss %.4f (perplexity %.3f), the emulator's above",
               sum.final_test_full, exp(sum.final_test_full));
    fm_say("final %s: mean test loss %.4f (perplexity %.3f), val %.4f, train %.4f nats%s, %d rounds in %.1f s\n",
           fm_config_enum_name(&cfg, "fl.strategy"), sum.final_test, exp(sum.final_test), sum.final_val,
           sum.final_train, full, sum.rounds_done, sum.seconds);
    fm_timer_report(&comm, stdout, fm_wtime() - t0);
  }
  fm_config_free(&cfg);
  return err;
}
