/* cmd_pretrain.c - `fedmoe pretrain CONFIG [--resume] [--overwrite]`: train a base
 * model on a public corpus on every rank, and write it as a Hugging Face folder with
 * its tokenizer (include/fedmoe/pretrain.h). */
#include "cli.h"

#include "fedmoe/log.h"
#include "fedmoe/pretrain.h"

#include <math.h>
#include <stdlib.h>

fm_err fm_cmd_pretrain(const fm_cli *cli, MPI_Comm comm) {
  fm_config cfg;
  FM_CHECK(fm_cli_load_config(cli, &cfg, comm));
  char *text = NULL;
  fm_err err = fm_config_to_text(&cfg, &text);
  if (!err && !cli->quiet) fm_say("# fedmoe resolved configuration\n%s\n", text);
  fm_pretrain_opts opts = {text, cli->resume_flag, cli->overwrite, cli->quiet};
  fm_pretrain_summary sum;
  if (!err) err = fm_pretrain(&cfg, &opts, comm, &sum);
  free(text);
  if (!err)
    fm_say("final pretrain: step %ld of %d, train loss %.4f, val loss %.4f nats (perplexity %.3f), %.0f tokens/s, "
           "%.1f s\n", sum.steps_done, cfg.pretrain.steps, sum.final_train, sum.final_val, exp(sum.final_val),
           sum.tokens_per_s, sum.seconds);
  fm_config_free(&cfg);
  return err;
}
