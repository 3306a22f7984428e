/* cmd_export.c - `fedmoe export --checkpoint RUNFILE [--client C] [--overwrite]
 * OUTDIR`: the model of a run file's latest checkpoint (the global one, or client C's
 * for strategies with private state) as a Hugging Face folder, config.json and
 * model.safetensors, which transformers.AutoModelForCausalLM.from_pretrained loads
 * and `fedmoe eval --model` / model.init read back. What has no Hugging Face form is
 * said in hf.h (fm_hf_export). Rank 0 reads and writes; the other ranks agree. */
#include "cli.h"

#include "fedmoe/hf.h"

#include <stdio.h>

static fm_err export_rank0(const fm_cli *cli) {
  if (!cli->positional) FM_ERROR(FM_ERR_ARG, "'fedmoe export' needs an OUTDIR (fedmoe export --checkpoint RUNFILE OUTDIR)");
  if (cli->model) FM_ERROR(FM_ERR_ARG, "'fedmoe export' takes --checkpoint RUNFILE, not --model");
  fm_cli_model cm;
  fm_err err = fm_cli_model_prepare(cli, &cm);
  if (!err) err = fm_cli_model_create(&cm, 1, 1);
  if (!err) err = fm_hf_export(cm.m, cli->positional, cli->overwrite, cm.active_experts);
  if (!err) {
    printf("exported %s round %d", cm.source, cm.round);
    if (cm.client >= 0) printf(" client %d%s", cm.client, cm.allocated ? "" : " (never trained: initial values)");
    printf(" to %s\n", cli->positional);
    fflush(stdout);
  }
  fm_cli_model_free(&cm);
  return err;
}

fm_err fm_cmd_export(const fm_cli *cli, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  fm_err err = rank == 0 ? export_rank0(cli) : FM_OK;
  FM_CHECK(fm_error_agree(err, &comm));
  return FM_OK;
}
