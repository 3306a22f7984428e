/* cmd_data.c - `fedmoe data CONFIG`: the corpus and the client partition a run would use. */
#include "cli.h"

#include "fedmoe/data.h"
#include "fedmoe/log.h"
#include "fedmoe/timer.h"

#include <stdlib.h>
#include <string.h>

#define TOP_DOMAINS 3

static void print_corpus(const fm_dataset *d, const fm_config *c, const int *nclients_of) {
  const fm_corpus *cp = &d->corpus;
  const int tok = cp->ids != NULL; /* a tokenizer: tokens and bytes differ */
  if (tok)
    fm_say("corpus '%s': %d domains, %llu tokens (%llu bytes of text) from %d files; %d files skipped "
           "(indexes, .u8 copies, links to files read, empty)\n",
           c->data.path, cp->ndomains, (unsigned long long)cp->size, (unsigned long long)cp->text_bytes,
           cp->nfiles, cp->nskipped);
  else
    fm_say("corpus '%s': %d domains, %llu bytes (tokens) from %d files; %d files skipped "
           "(indexes, .u8 copies, links to files read, empty)\n",
           c->data.path, cp->ndomains, (unsigned long long)cp->text_bytes, cp->nfiles, cp->nskipped);
  fm_say("tokenizer: %s, %d ids (model.vocab = %d)\n", cp->tokenizer, cp->vocab, c->model.vocab);
  if (tok)
    fm_say("token cache: %s (%s)\n", cp->cache[0] ? cp->cache : "none",
           cp->cache_hit ? "read" : cp->cache[0] ? "written" : "tokenized, not cached");
  if (cp->ndropped)
    fm_say("  %d domains dropped, under data.min_domain_bytes = %lld: %llu bytes\n", cp->ndropped,
           (long long)c->data.min_domain_bytes, (unsigned long long)cp->dropped_bytes);
  if (tok) fm_say("  %-24s %12s %12s %10s %8s %12s %12s\n", "domain", "tokens", "bytes", "public", "clients", "asked", "held");
  else fm_say("  %-24s %12s %10s %8s %12s %12s\n", "domain", "bytes", "public", "clients", "asked", "held");
  uint64_t *pub = calloc((size_t)cp->ndomains, sizeof *pub);
  for (int s = 0; pub && s < d->public_split.nspans; s++)
    pub[d->public_split.spans[s].domain] += d->public_split.spans[s].len;
  for (int k = 0; k < cp->ndomains; k++) {
    unsigned long long p = pub ? (unsigned long long)pub[k] : 0ULL;
    unsigned long long asked = (unsigned long long)d->domain_asked[k], held = (unsigned long long)d->domain_given[k];
    if (tok)
      fm_say("  %-24s %12llu %12llu %10llu %8d %12llu %12llu%s\n", cp->domain_names[k],
             (unsigned long long)cp->domain_len[k], (unsigned long long)cp->domain_bytes[k], p, nclients_of[k],
             asked, held, held < asked ? " (shrunk)" : "");
    else
      fm_say("  %-24s %12llu %10llu %8d %12llu %12llu%s\n", cp->domain_names[k],
             (unsigned long long)cp->domain_len[k], p, nclients_of[k], asked, held,
             held < asked ? " (shrunk)" : "");
  }
  fm_say("clients' regions: %s\n", c->data.allow_overlap
             ? "may overlap where a domain holds less than its clients ask for (data.allow_overlap = true)"
         : c->data.client_field[0] ? "one client per value of data.client_field, disjoint"
                                   : "disjoint (shrunk where a domain holds less than its clients ask for)");
  free(pub);
  fm_say("public split (server only): %llu tokens in %d spans, %ld sequences of %d\n",
         (unsigned long long)d->public_split.tokens, d->public_split.nspans,
         fm_split_windows(&d->public_split, c->train.seq_len), c->train.seq_len + 1);
}

static void print_client(const fm_dataset *d, const fm_client_data *cl) {
  const int D = d->corpus.ndomains;
  char mix[256];
  size_t off = 0;
  int shown[TOP_DOMAINS], nshown = 0, nonzero = 0;
  for (int k = 0; k < D; k++) nonzero += cl->domain_mix[k] > 0;
  for (int t = 0; t < TOP_DOMAINS && t < nonzero; t++) { /* the largest shares, in order */
    int best = -1;
    for (int k = 0; k < D; k++) {
      int taken = 0;
      for (int j = 0; j < nshown; j++) taken |= shown[j] == k;
      if (!taken && cl->domain_mix[k] > 0 && (best < 0 || cl->domain_mix[k] > cl->domain_mix[best])) best = k;
    }
    shown[nshown++] = best;
    off += (size_t)snprintf(mix + off, sizeof mix - off, "%s%s %.0f%%", t ? ", " : "",
                            d->corpus.domain_names[best], 100 * cl->domain_mix[best]);
    if (off >= sizeof mix) break;
  }
  if (nonzero > nshown && off < sizeof mix)
    snprintf(mix + off, sizeof mix - off, " (+%d more)", nonzero - nshown);
  if (d->corpus.nclient_names && off < sizeof mix)
    snprintf(mix + off, sizeof mix - off, "  [%s]", d->corpus.client_names[cl->id]);
  fm_say("%8d %10llu %9llu %9llu  %s\n", cl->id, (unsigned long long)cl->split[FM_SPLIT_TRAIN].tokens,
         (unsigned long long)cl->split[FM_SPLIT_VAL].tokens,
         (unsigned long long)cl->split[FM_SPLIT_TEST].tokens, mix);
}

static void print_partition(const fm_dataset *d, const fm_config *c, double seconds) {
  if (d->corpus.nclient_names)
    fm_say("partition: by data.client_field '%s' (%d values), seed %lld, train/val/test %g/%g/%g, sequences of "
           "%d tokens (partitioned in %.3f s)\n", c->data.client_field, d->nclients, (long long)c->run.seed,
           c->data.train_frac, c->data.val_frac, c->data.test_frac, c->train.seq_len + 1, seconds);
  else
    fm_say("partition: %s, sizes %s, %d clients, seed %lld, train/val/test %g/%g/%g, sequences of %d "
           "tokens (partitioned in %.3f s)\n",
           fm_config_enum_name(c, "data.partition"), fm_config_enum_name(c, "data.sizes"), d->nclients,
           (long long)c->run.seed, c->data.train_frac, c->data.val_frac, c->data.test_frac,
           c->train.seq_len + 1, seconds);
  fm_say("%8s %10s %9s %9s  %s\n", "client", "train", "val", "test", "domains (largest shares)");
  uint64_t lo[3], hi[3], sum[3];
  for (int s = 0; s < 3; s++) { lo[s] = UINT64_MAX; hi[s] = sum[s] = 0; }
  for (int i = 0; i < d->nclients; i++) {
    print_client(d, &d->clients[i]);
    for (int s = 0; s < 3; s++) {
      uint64_t t = d->clients[i].split[s].tokens;
      lo[s] = t < lo[s] ? t : lo[s];
      hi[s] = t > hi[s] ? t : hi[s];
      sum[s] += t;
    }
  }
  for (int s = 0; s < 3; s++)
    fm_say("%s tokens per client: min %llu, mean %.0f, max %llu, total %llu\n", fm_split_name(s),
           (unsigned long long)lo[s], (double)sum[s] / d->nclients, (unsigned long long)hi[s],
           (unsigned long long)sum[s]);
}

fm_err fm_cmd_data(const fm_cli *cli, MPI_Comm comm) {
  fm_config cfg;
  FM_CHECK(fm_cli_load_config(cli, &cfg, comm));
  int rank;
  MPI_Comm_rank(comm, &rank);
  fm_dataset d;
  memset(&d, 0, sizeof d);
  /* the steps of fm_dataset_load_shared, to time the partition on its own */
  double t0 = fm_wtime();
  fm_err err = fm_error_agree(rank == 0 ? fm_corpus_load(&d.corpus, &cfg) : FM_OK, &comm);
  if (!err) err = fm_corpus_bcast(&d.corpus, 0, &comm);
  double t1 = fm_wtime();
  if (!err) err = fm_error_agree(fm_partition(&d, &cfg), &comm);
  double t2 = fm_wtime();
  int *nclients_of = NULL;
  if (!err) err = fm_error_agree(fm_calloc(&nclients_of, (size_t)d.corpus.ndomains, sizeof(int), "counts"), &comm);
  if (!err) {
    for (int i = 0; i < d.nclients; i++)
      for (int k = 0; k < d.corpus.ndomains; k++) nclients_of[k] += d.clients[i].domain_mix[k] > 0;
    print_corpus(&d, &cfg, nclients_of);
    print_partition(&d, &cfg, t2 - t1);
    fm_say("corpus read and shared in %.3f s\n", t1 - t0);
  }
  free(nclients_of);
  fm_dataset_free(&d);
  fm_config_free(&cfg);
  FM_CHECK(err);
  return FM_OK;
}
