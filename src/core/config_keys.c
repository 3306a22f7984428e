/* config_keys.c - every configuration key: type, default, range, help.
 * Add a key here and a field in fm_config (include/fedmoe/config.h). */
#include "fedmoe/config.h"

#include <float.h>
#include <stddef.h>

#define F(field) offsetof(fm_config, field), sizeof(((fm_config *)0)->field)
#define BIG 1e18

const fm_key fm_config_keys[] = {
  /* [run] */
  {"run.name", FM_KEY_STRING, F(run.name), "demo", 0, 0, NULL, "name of the experiment"},
  {"run.output", FM_KEY_STRING, F(run.output), "runs/demo.h5", 0, 0, NULL, "run file (HDF5)"},
  {"run.seed", FM_KEY_INT64, F(run.seed), "1234", 0, 9.2e18, NULL, "seed of every random stream"},
  {"run.checkpoint_every", FM_KEY_INT, F(run.checkpoint_every), "0", 0, 1e9, NULL,
   "rounds between checkpoints (0: only at the end)"},
  {"run.keep_last", FM_KEY_INT, F(run.keep_last), "2", 1, 1e6, NULL, "checkpoints kept"},
  {"run.log_level", FM_KEY_ENUM, F(run.log_level), "info", 0, 0, "error|warn|info|debug", "log level"},
  {"run.threads", FM_KEY_INT, F(run.threads), "1", 1, 1024, NULL, "BLIS threads per rank"},
  /* [model] */
  {"model.vocab", FM_KEY_INT, F(model.vocab), "256", 2, 65536, NULL, "vocabulary size (256: bytes)"},
  {"model.context", FM_KEY_INT, F(model.context), "64", 1, 65536, NULL, "context length (positions)"},
  {"model.d_model", FM_KEY_INT, F(model.d_model), "64", 1, 65536, NULL, "model width D"},
  {"model.heads", FM_KEY_INT, F(model.heads), "4", 1, 1024, NULL, "attention heads"},
  {"model.layers", FM_KEY_INT, F(model.layers), "2", 1, 64, NULL, "transformer blocks L"},
  {"model.moe_layers", FM_KEY_STRING, F(model.moe_layers), "all", 0, 0, NULL,
   "blocks whose FFN is MoE: all, none, or a list of block indices"},
  {"model.experts", FM_KEY_INT, F(model.experts), "4", 1, 64, NULL, "experts E per MoE layer"},
  {"model.top_k", FM_KEY_INT, F(model.top_k), "2", 1, 64, NULL, "experts per token k"},
  {"model.expert_type", FM_KEY_ENUM, F(model.expert_type), "full", 0, 0, "full|lora",
   "full FFN experts, or LoRA adapters on a frozen shared FFN"},
  {"model.lora_rank", FM_KEY_INT, F(model.lora_rank), "8", 1, 4096, NULL, "LoRA rank r"},
  {"model.lora_alpha", FM_KEY_REAL, F(model.lora_alpha), "16", 0, BIG, NULL, "LoRA alpha (scale alpha/r)"},
  {"model.init_std", FM_KEY_REAL, F(model.init_std), "0.02", 0, 10, NULL, "std of initial weights"},
  {"model.load_balance", FM_KEY_REAL, F(model.load_balance), "0.01", 0, BIG, NULL,
   "Switch load-balancing loss coefficient"},
  /* [train] */
  {"train.batch", FM_KEY_INT, F(train.batch), "8", 1, 1e6, NULL, "sequences per step B"},
  {"train.seq_len", FM_KEY_INT, F(train.seq_len), "64", 1, 65536, NULL, "tokens per sequence T"},
  {"train.lr", FM_KEY_REAL, F(train.lr), "0.001", 0, 10, NULL, "peak learning rate"},
  {"train.lr_min", FM_KEY_REAL, F(train.lr_min), "0.0001", 0, 10, NULL, "final learning rate (cosine)"},
  {"train.schedule", FM_KEY_ENUM, F(train.schedule), "cosine", 0, 0, "constant|cosine", "LR schedule"},
  {"train.warmup_steps", FM_KEY_INT, F(train.warmup_steps), "10", 0, 1e9, NULL, "linear warm-up steps"},
  {"train.weight_decay", FM_KEY_REAL, F(train.weight_decay), "0.0", 0, 10, NULL, "AdamW weight decay"},
  {"train.beta1", FM_KEY_REAL, F(train.beta1), "0.9", 0, 0.999999, NULL, "AdamW beta1"},
  {"train.beta2", FM_KEY_REAL, F(train.beta2), "0.99", 0, 0.999999, NULL, "AdamW beta2"},
  {"train.eps", FM_KEY_REAL, F(train.eps), "1e-8", 1e-30, 1, NULL, "AdamW epsilon"},
  {"train.grad_clip", FM_KEY_REAL, F(train.grad_clip), "1.0", 0, BIG, NULL,
   "clip the global gradient norm to this (0: off)"},
  {"train.eval_batches", FM_KEY_INT, F(train.eval_batches), "4", 1, 1e6, NULL,
   "batches per evaluation of a split"},
  /* [data] */
  {"data.path", FM_KEY_STRING, F(data.path), "/usr/share/games/fortunes", 0, 0, NULL,
   "directory of text: one domain per file or sub-directory"},
  {"data.partition", FM_KEY_ENUM, F(data.partition), "by_domain", 0, 0, "by_domain|dirichlet|iid",
   "how clients get domains"},
  {"data.alpha", FM_KEY_REAL, F(data.alpha), "0.5", 1e-6, 1e6, NULL, "Dirichlet concentration"},
  {"data.sizes", FM_KEY_ENUM, F(data.sizes), "equal", 0, 0, "equal|lognormal", "client dataset sizes"},
  {"data.size_sigma", FM_KEY_REAL, F(data.size_sigma), "0.5", 0, 10, NULL,
   "sigma of the log-normal client sizes"},
  {"data.client_bytes", FM_KEY_INT64, F(data.client_bytes), "65536", 1, 9e18, NULL,
   "bytes of text per client (mean when sizes vary)"},
  {"data.train_frac", FM_KEY_REAL, F(data.train_frac), "0.8", 0, 1, NULL, "train share of a client"},
  {"data.val_frac", FM_KEY_REAL, F(data.val_frac), "0.1", 0, 1, NULL, "validation share"},
  {"data.test_frac", FM_KEY_REAL, F(data.test_frac), "0.1", 0, 1, NULL, "test share"},
  {"data.public_frac", FM_KEY_REAL, F(data.public_frac), "0.05", 0, 0.9, NULL,
   "share of each domain held by the server only"},
  /* [fl] */
  {"fl.strategy", FM_KEY_ENUM, F(fl.strategy), "fedavg", 0, 0, "local|fedavg|comigs|fedbiot|hfedmoe",
   "federated strategy"},
  {"fl.rounds", FM_KEY_INT, F(fl.rounds), "10", 1, 1e9, NULL, "communication rounds"},
  {"fl.clients", FM_KEY_INT, F(fl.clients), "4", 1, 1e8, NULL, "simulated clients N"},
  {"fl.sample_fraction", FM_KEY_REAL, F(fl.sample_fraction), "1.0", 1e-12, 1, NULL,
   "share of clients sampled per round, in (0,1]"},
  {"fl.sample_count", FM_KEY_INT, F(fl.sample_count), "0", 0, 1e8, NULL,
   "clients sampled per round (0: use sample_fraction)"},
  {"fl.local_steps", FM_KEY_INT, F(fl.local_steps), "10", 0, 1e9, NULL, "local steps K per round"},
  {"fl.aggregation", FM_KEY_ENUM, F(fl.aggregation), "fixed", 0, 0, "fixed|float",
   "fixed: bit-identical for any rank count; float: faster"},
  /* [comigs] */
  {"comigs.generalists", FM_KEY_INT, F(comigs.generalists), "2", 0, 64, NULL,
   "generalist experts G per MoE layer (shared)"},
  {"comigs.specialists", FM_KEY_INTLIST, F(comigs.specialists), "2", 0, 64, NULL,
   "specialist experts per resource class (client i: class i mod count)"},
  {"comigs.router_every", FM_KEY_INT, F(comigs.router_every), "1", 1, 1e9, NULL,
   "expert steps between router updates"},
  {"comigs.router_steps", FM_KEY_INT, F(comigs.router_steps), "1", 0, 1e9, NULL,
   "router steps on validation data per update"},
  {"comigs.router_lr", FM_KEY_REAL, F(comigs.router_lr), "0.001", 0, 10, NULL, "router learning rate"},
  /* [fedbiot] */
  {"fedbiot.keep", FM_KEY_REAL, F(fedbiot.keep), "0.5", 0, 1, NULL,
   "share of emulator blocks kept, in (0,1]"},
  {"fedbiot.adapter_layers", FM_KEY_INT, F(fedbiot.adapter_layers), "1", 1, 64, NULL,
   "top blocks forming the adapter"},
  {"fedbiot.align_steps", FM_KEY_INT, F(fedbiot.align_steps), "10", 0, 1e9, NULL,
   "server alignment steps per round (0: offsite tuning)"},
  {"fedbiot.align_lr", FM_KEY_REAL, F(fedbiot.align_lr), "0.0005", 0, 10, NULL, "alignment learning rate"},
  {"fedbiot.adapter", FM_KEY_ENUM, F(fedbiot.adapter), "full", 0, 0, "full|lora", "adapter training"},
  /* [hfedmoe] */
  {"hfedmoe.budgets", FM_KEY_INTLIST, F(hfedmoe.budgets), "2", 1, 64, NULL,
   "trainable experts per MoE layer, per resource class"},
  {"hfedmoe.lambda", FM_KEY_REAL, F(hfedmoe.lambda), "0.5", 0, 1, NULL, "cumulative vs specific importance"},
  {"hfedmoe.beta", FM_KEY_REAL, F(hfedmoe.beta), "0.1", 0, BIG, NULL, "information-bottleneck weight"},
  {"hfedmoe.tau", FM_KEY_REAL, F(hfedmoe.tau), "0", 0, 1, NULL, "usage threshold for aggregation"},
  {"hfedmoe.score_batches", FM_KEY_INT, F(hfedmoe.score_batches), "2", 1, 1e6, NULL,
   "batches scored for importance"},
  {"hfedmoe.select", FM_KEY_ENUM, F(hfedmoe.select), "ib", 0, 0, "ib|random|usage", "expert selection"},
  {"hfedmoe.mask_forward", FM_KEY_BOOL, F(hfedmoe.mask_forward), "false", 0, 0, NULL,
   "route only to the selected experts"},
  /* [debug] */
  {"debug.fail", FM_KEY_STRING, F(debug.fail), "", 0, 0, NULL,
   "inject a failure: RANK:PHASE:ROUND"},
};

const int fm_config_nkeys = (int)(sizeof fm_config_keys / sizeof fm_config_keys[0]);
