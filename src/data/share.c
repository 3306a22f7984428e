/* share.c - loading a dataset collectively: rank 0 reads, everyone partitions.
 * One pass over the file system per job (not per rank), then the corpus is
 * broadcast; the partition is computed by every rank from the seed (it is cheap
 * and the same everywhere), so no client list travels. */
#include "fedmoe/data.h"

#include <mpi.h>
#include <string.h>

/* MPI counts are int: broadcast large buffers in pieces. */
static fm_err bcast_bytes(void *buf, uint64_t n, int root, MPI_Comm comm) {
  const uint64_t chunk = 1u << 30;
  for (uint64_t at = 0; at < n; at += chunk) {
    uint64_t len = n - at < chunk ? n - at : chunk;
    FM_MPI(MPI_Bcast((char *)buf + at, (int)len, MPI_BYTE, root, comm));
  }
  return FM_OK;
}

fm_err fm_corpus_bcast(fm_corpus *cp, int root, const void *commp) {
  MPI_Comm comm = *(const MPI_Comm *)commp;
  int rank;
  FM_MPI(MPI_Comm_rank(comm, &rank));
  uint64_t head[13] = {(uint64_t)cp->ndomains, cp->size, (uint64_t)cp->nfiles, (uint64_t)cp->nskipped,
                       (uint64_t)cp->ndropped, cp->dropped_bytes, cp->ids != NULL, cp->text_bytes,
                       (uint64_t)cp->vocab, (uint64_t)cp->cache_hit, (uint64_t)cp->nseg,
                       cp->target_mask != NULL, (uint64_t)cp->nclient_names};
  FM_MPI(MPI_Bcast(head, 13, MPI_UINT64_T, root, comm));
  fm_err err = FM_OK;
  if (rank != root) {
    memset(cp, 0, sizeof *cp);
    cp->ndomains = (int)head[0];
    cp->size = head[1];
    cp->nfiles = (int)head[2];
    cp->nskipped = (int)head[3];
    cp->ndropped = (int)head[4];
    cp->dropped_bytes = head[5];
    cp->text_bytes = head[7];
    cp->vocab = (int)head[8];
    cp->cache_hit = (int)head[9];
    cp->nseg = (int)head[10];
    cp->nclient_names = (int)head[12];
    size_t D = (size_t)cp->ndomains;
    err = fm_calloc(&cp->seg, (size_t)cp->nseg + 1, sizeof *cp->seg, "text segments");
    if (!err && head[11]) err = fm_calloc(&cp->target_mask, (size_t)cp->size + 1, 1, "target mask");
    if (!err && cp->nclient_names)
      err = fm_calloc(&cp->client_names, (size_t)cp->nclient_names, sizeof *cp->client_names, "client names");
    if (err) goto agree;
    err = fm_calloc(&cp->domain_names, D, sizeof *cp->domain_names, "domain names");
    if (!err) err = fm_calloc(&cp->domain_start, D, sizeof *cp->domain_start, "domain starts");
    if (!err) err = fm_calloc(&cp->domain_len, D, sizeof *cp->domain_len, "domain sizes");
    if (!err) err = fm_calloc(&cp->domain_bytes, D, sizeof *cp->domain_bytes, "domain sizes");
    if (!err && head[6]) err = fm_calloc(&cp->ids, (size_t)cp->size + 1, sizeof *cp->ids, "corpus token ids");
    else if (!err) err = fm_calloc(&cp->text, (size_t)cp->size + 1, 1, "corpus text");
  }
agree:
  FM_CHECK(fm_error_agree(err, commp)); /* no rank waits in a broadcast for one that failed */
  FM_CHECK(bcast_bytes(cp->seg, (size_t)cp->nseg * sizeof *cp->seg, root, comm));
  if (head[11]) FM_CHECK(bcast_bytes(cp->target_mask, cp->size, root, comm));
  if (head[12]) FM_CHECK(bcast_bytes(cp->client_names, (size_t)cp->nclient_names * sizeof *cp->client_names, root, comm));
  size_t D = (size_t)cp->ndomains;
  FM_CHECK(bcast_bytes(cp->domain_names, D * sizeof *cp->domain_names, root, comm));
  FM_CHECK(bcast_bytes(cp->domain_start, D * sizeof *cp->domain_start, root, comm));
  FM_CHECK(bcast_bytes(cp->domain_len, D * sizeof *cp->domain_len, root, comm));
  FM_CHECK(bcast_bytes(cp->domain_bytes, D * sizeof *cp->domain_bytes, root, comm));
  FM_CHECK(bcast_bytes(cp->tokenizer, sizeof cp->tokenizer, root, comm));
  FM_CHECK(bcast_bytes(cp->cache, sizeof cp->cache, root, comm));
  if (head[6]) FM_CHECK(bcast_bytes(cp->ids, cp->size * sizeof *cp->ids, root, comm));
  else FM_CHECK(bcast_bytes(cp->text, cp->size, root, comm));
  return FM_OK;
}

fm_err fm_dataset_load_shared(fm_dataset *d, const fm_config *c, const void *commp) {
  MPI_Comm comm = *(const MPI_Comm *)commp;
  int rank;
  FM_MPI(MPI_Comm_rank(comm, &rank));
  memset(d, 0, sizeof *d);
  fm_err err = rank == 0 ? fm_corpus_load(&d->corpus, c) : FM_OK;
  err = fm_error_agree(err, commp); /* rank 0's message, printed once; all ranks fail */
  if (!err) err = fm_corpus_bcast(&d->corpus, 0, commp);
  /* the same corpus and config on every rank: the same partition, or the same error */
  if (!err) err = fm_error_agree(fm_partition(d, c), commp);
  if (err) fm_dataset_free(d);
  FM_CHECK(err);
  return FM_OK;
}
