/* partition.c - the public split and every client's train / val / test spans.
 * The rules (sizes, mixtures, placement, what may overlap) are stated in
 * include/fedmoe/data.h. Client c's data depends on (seed, c, corpus, config) only. */
#include "fedmoe/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int d; uint64_t off, len; } piece; /* a region of domain d's client part */

/* What every client needs and that does not depend on the client. */
typedef struct {
  const fm_config *c;
  const fm_corpus *cp;
  uint64_t *client_len; /* [D] bytes of each domain's client part (it starts the domain) */
  double *iid_share;    /* [D] client_len / sum */
  uint64_t min_piece;
  double frac[3];
} plan;

static double min_nonzero_frac(const double f[3]) {
  double m = 1;
  for (int s = 0; s < 3; s++)
    if (f[s] > 0 && f[s] < m) m = f[s];
  return m;
}

/* Client id's pieces (at most D) from its own stream; share is scratch [D]. */
static int client_pieces(const plan *p, int id, double *share, piece *out) {
  const fm_config *c = p->c;
  const int D = p->cp->ndomains;
  const uint64_t *L = p->client_len;
  fm_rng r;
  fm_rng_init(&r, (uint64_t)c->run.seed, (uint32_t)id, 0, FM_RNG_DATA);

  double nb = (double)c->data.client_bytes;
  if (c->data.sizes == FM_SIZES_LOGNORMAL) {
    double s = c->data.size_sigma;
    nb *= exp(s * fm_rng_normal(&r) - 0.5 * s * s);
  }
  if (nb > 9e18) nb = 9e18;
  uint64_t n = (uint64_t)llround(nb);
  if (n < p->min_piece) n = p->min_piece;

  if (c->data.partition == FM_PART_BY_DOMAIN) {
    int d = id % D;
    uint64_t b = n < L[d] ? n : L[d], k = (uint64_t)(id / D), w = (uint64_t)c->data.client_bytes;
    uint64_t nslots = L[d] / w, off;
    if (k < nslots) { /* disjoint slots while the domain has room */
      off = k * w;
      if (off + b > L[d]) off = L[d] - b;
    } else {
      off = fm_rng_below(&r, L[d] - b + 1);
    }
    out[0] = (piece){d, off, b};
    return 1;
  }

  if (c->data.partition == FM_PART_DIRICHLET) fm_rng_dirichlet(&r, c->data.alpha, D, share);
  else memcpy(share, p->iid_share, (size_t)D * sizeof *share);
  int top = 0;
  for (int d = 1; d < D; d++)
    if (share[d] > share[top]) top = d;
  /* drop the pieces under the minimum (never the largest), rescale the rest to n */
  double kept = 0;
  for (int d = 0; d < D; d++) {
    if (d != top && (share[d] <= 0 || (double)n * share[d] < (double)p->min_piece)) share[d] = 0;
    kept += share[d];
  }
  int np = 0;
  uint64_t given = 0;
  for (int d = 0; d < D; d++) {
    if (share[d] <= 0) continue;
    uint64_t b = (uint64_t)floor((double)n * share[d] / kept);
    out[np++] = (piece){d, 0, b};
    given += b;
  }
  for (int i = 0; i < np; i++) /* the rounding leftover goes to the largest piece */
    if (out[i].d == top) out[i].len += n > given ? n - given : 0;
  int m = 0;
  for (int i = 0; i < np; i++) {
    piece q = out[i];
    if (q.len > L[q.d]) q.len = L[q.d]; /* the domain is smaller than the piece */
    if (q.len == 0 || (q.d != top && q.len < p->min_piece)) continue;
    q.off = fm_rng_below(&r, L[q.d] - q.len + 1);
    out[m++] = q;
  }
  return m;
}

/* Disjoint clients (data.allow_overlap false): in every domain, the clients' pieces
 * side by side in client order; a domain smaller than what its clients ask for
 * shrinks every piece in it by the same factor. A shrunk piece under the minimum is
 * dropped, unless it is its client's largest: then the partition is refused. */
static fm_err make_disjoint(fm_dataset *d, const plan *p, piece *all, int *npieces) {
  const fm_config *c = p->c;
  const int D = p->cp->ndomains, N = c->fl.clients;
  uint64_t *at;
  FM_CALLOC(at, (size_t)D, "domain offsets");
  for (int id = 0; id < N; id++) {
    piece *pc = all + (size_t)id * (size_t)D;
    int m = 0;
    uint64_t largest = 0;
    for (int i = 0; i < npieces[id]; i++) largest = pc[i].len > largest ? pc[i].len : largest;
    for (int i = 0; i < npieces[id]; i++) {
      piece q = pc[i];
      uint64_t asked = d->domain_asked[q.d], room = p->client_len[q.d];
      int top = q.len == largest;
      if (asked > room) q.len = (uint64_t)floor((double)q.len * ((double)room / (double)asked));
      if (q.len < p->min_piece && !top) continue;
      if (q.len < p->min_piece) {
        free(at);
        FM_ERROR(FM_ERR_DATA,
                 "data.path '%s': domain '%s' has %llu tokens for clients, and its clients ask for %llu; "
                 "shrunk to share it without overlap, client %d's piece would be %llu tokens, under the "
                 "minimum of %llu (one sequence of train.seq_len+1 = %d per split): lower "
                 "data.client_bytes or fl.clients, or set data.allow_overlap = true",
                 c->data.path, p->cp->domain_names[q.d], (unsigned long long)room, (unsigned long long)asked, id,
                 (unsigned long long)q.len, (unsigned long long)p->min_piece, c->train.seq_len + 1);
      }
      q.off = at[q.d];
      at[q.d] += q.len;
      pc[m++] = q;
    }
    npieces[id] = m;
  }
  free(at);
  return FM_OK;
}

/* data.client_field: client id's pieces are its records in every domain, less the
 * public share (the last data.public_frac of each piece goes to the server). */
static int natural_pieces(const plan *p, int id, piece *out) {
  const fm_corpus *cp = p->cp;
  int np = 0;
  for (int i = 0; i < cp->nseg; i++) {
    const fm_segment *g = &cp->seg[i];
    if (g->client != id || !g->len) continue;
    uint64_t off = g->start - cp->domain_start[g->domain];
    if (np && out[np - 1].d == g->domain && out[np - 1].off + out[np - 1].len == off) out[np - 1].len += g->len;
    else out[np++] = (piece){g->domain, off, g->len};
  }
  for (int i = 0; i < np; i++) out[i].len -= (uint64_t)floor((double)out[i].len * p->c->data.public_frac);
  return np;
}

static fm_err check_client(const plan *p, const fm_client_data *cl, const piece *pc, int np) {
  const fm_config *c = p->c;
  int T = c->train.seq_len;
  for (int s = 0; s < 3; s++) {
    if (p->frac[s] <= 0 || fm_split_windows(&cl->split[s], T) > 0) continue;
    static const char *const keys[3] = {"data.train_frac", "data.val_frac", "data.test_frac"};
    int d = np ? pc[0].d : 0;
    if (p->cp->nclient_names)
      FM_ERROR(FM_ERR_DATA,
               "data.path '%s': client %d (data.client_field '%s' = '%s') has %llu tokens in its %s split, "
               "fewer than one sequence of train.seq_len+1 = %d tokens: lower train.seq_len or raise %s",
               c->data.path, cl->id, c->data.client_field, p->cp->client_names[cl->id],
               (unsigned long long)cl->split[s].tokens, fm_split_name(s), T + 1, keys[s]);
    FM_ERROR(FM_ERR_DATA,
             "data.path '%s': client %d's %s split has %llu tokens, fewer than one sequence of "
             "train.seq_len+1 = %d tokens (its domain '%s' has %llu tokens for clients); raise "
             "data.client_bytes or %s, or lower train.seq_len",
             c->data.path, cl->id, fm_split_name(s), (unsigned long long)cl->split[s].tokens, T + 1,
             p->cp->domain_names[d], (unsigned long long)p->client_len[d], keys[s]);
  }
  return FM_OK;
}

static fm_err grow(fm_span **v, size_t *cap, size_t need) {
  if (need <= *cap) return FM_OK;
  size_t cap2 = *cap ? *cap : 1024;
  while (cap2 < need) cap2 *= 2;
  fm_span *t = realloc(*v, cap2 * sizeof *t);
  if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (client spans: %zu)", cap2);
  *v = t;
  *cap = cap2;
  return FM_OK;
}

static fm_err build(fm_dataset *d, plan *p) {
  const fm_config *c = p->c;
  const fm_corpus *cp = &d->corpus;
  const int D = cp->ndomains, N = c->fl.clients;
  const double *frac = p->frac;

  if (cp->nclient_names) { /* the public split: the last public_frac of each client's piece */
    FM_CALLOC(d->public_split.spans, (size_t)cp->nseg + 1, "public spans");
    piece *pc;
    FM_CALLOC(pc, (size_t)D, "client pieces");
    for (int id = 0; id < N; id++) {
      int np = natural_pieces(p, id, pc);
      for (int i = 0; i < np; i++) {
        fm_span *sp = &d->public_split.spans[d->public_split.nspans];
        uint64_t whole = pc[i].len, start = cp->domain_start[pc[i].d] + pc[i].off;
        /* natural_pieces gave the client's part; the rest of the region is public */
        uint64_t region = 0;
        for (int g = 0; g < cp->nseg; g++)
          if (cp->seg[g].client == id && cp->seg[g].domain == pc[i].d) region += cp->seg[g].len;
        if (region > whole) {
          *sp = (fm_span){start + whole, region - whole, pc[i].d};
          d->public_split.tokens += sp->len;
          d->public_split.nspans++;
        }
      }
    }
    free(pc);
    for (int k = 0; k < D; k++) p->client_len[k] = cp->domain_len[k];
  } else { /* the public split: the last public_frac of every domain */
    FM_CALLOC(d->public_split.spans, (size_t)D, "public spans");
    for (int k = 0; k < D; k++) {
      uint64_t pub = (uint64_t)floor((double)cp->domain_len[k] * c->data.public_frac);
      p->client_len[k] = cp->domain_len[k] - pub;
      if (pub) {
        d->public_split.spans[d->public_split.nspans++] =
            (fm_span){cp->domain_start[k] + p->client_len[k], pub, k};
        d->public_split.tokens += pub;
      }
    }
  }
  double total = 0;
  for (int k = 0; k < D; k++) total += (double)p->client_len[k];
  for (int k = 0; k < D; k++) p->iid_share[k] = total > 0 ? (double)p->client_len[k] / total : 1.0 / D;
  if (c->data.public_frac > 0 && fm_split_windows(&d->public_split, c->train.seq_len) == 0)
    FM_CONFIG_ERROR(c, "data.public_frac",
                    "the public split (%llu tokens of '%s' over %d domains) holds no sequence of "
                    "train.seq_len+1 = %d tokens", (unsigned long long)d->public_split.tokens,
                    c->data.path, D, c->train.seq_len + 1);

  FM_CALLOC(d->clients, (size_t)N, "clients");
  d->nclients = N;
  FM_CALLOC(d->mix_pool, (size_t)N * (size_t)D, "client domain mixes");
  FM_CALLOC(d->domain_asked, (size_t)D, "domain requests");
  FM_CALLOC(d->domain_given, (size_t)D, "domain shares");
  double *share;
  piece *all;    /* [N x D] every client's pieces, client id's at all + id x D */
  int *npieces;  /* [N] */
  size_t *first; /* per client: where its spans start in the pool */
  FM_CALLOC(share, (size_t)D, "domain shares");
  fm_err err = fm_calloc(&all, (size_t)N * (size_t)D, sizeof *all, "client pieces");
  if (!err) err = fm_calloc(&npieces, (size_t)N, sizeof *npieces, "client pieces");
  if (!err) err = fm_calloc(&first, (size_t)N + 1, sizeof *first, "client span index");
  for (int id = 0; id < N && !err; id++) {
    if (d->corpus.nclient_names) npieces[id] = natural_pieces(p, id, all + (size_t)id * (size_t)D);
    else npieces[id] = client_pieces(p, id, share, all + (size_t)id * (size_t)D);
    for (int i = 0; i < npieces[id]; i++) d->domain_asked[all[(size_t)id * (size_t)D + i].d] += all[(size_t)id * (size_t)D + i].len;
  }
  if (!err && !d->corpus.nclient_names && !c->data.allow_overlap) err = make_disjoint(d, p, all, npieces);
  for (int id = 0; id < N && !err; id++)
    for (int i = 0; i < npieces[id]; i++) d->domain_given[all[(size_t)id * (size_t)D + i].d] += all[(size_t)id * (size_t)D + i].len;
  size_t used = 0, cap = 0;
  for (int id = 0; id < N && !err; id++) {
    fm_client_data *cl = &d->clients[id];
    cl->id = id;
    int np = npieces[id];
    piece *pc = all + (size_t)id * (size_t)D;
    first[id] = used;
    if ((err = grow(&d->span_pool, &cap, used + 3 * (size_t)np))) break;
    uint64_t sum = 0;
    for (int i = 0; i < np; i++) sum += pc[i].len;
    cl->domain_mix = d->mix_pool + (size_t)id * (size_t)D;
    for (int s = 0; s < 3; s++) {
      int ns = 0;
      for (int i = 0; i < np; i++) {
        uint64_t at = cp->domain_start[pc[i].d] + pc[i].off;
        for (int t = 0; t < s; t++) at += (uint64_t)floor((double)pc[i].len * frac[t]);
        uint64_t len = (uint64_t)floor((double)pc[i].len * frac[s]);
        if (!len) continue;
        d->span_pool[used + (size_t)ns++] = (fm_span){at, len, pc[i].d};
        cl->split[s].tokens += len;
      }
      cl->split[s].nspans = ns;
      used += (size_t)ns;
    }
    for (int i = 0; i < np; i++) cl->domain_mix[pc[i].d] = sum ? (double)pc[i].len / (double)sum : 0;
    /* pointers are set below, once the pool stops moving; check with a temporary view */
    fm_span *base = d->span_pool + first[id];
    for (int s = 0; s < 3; s++) { cl->split[s].spans = base; base += cl->split[s].nspans; }
    err = check_client(p, cl, pc, np);
  }
  if (!err) { /* final pointers into the pool */
    for (int id = 0; id < N; id++) {
      fm_span *base = d->span_pool + first[id];
      for (int s = 0; s < 3; s++) {
        d->clients[id].split[s].spans = base;
        base += d->clients[id].split[s].nspans;
      }
    }
  }
  free(share);
  free(all);
  free(npieces);
  free(first);
  FM_CHECK(err);
  return FM_OK;
}

fm_err fm_partition(fm_dataset *d, const fm_config *c) {
  const fm_corpus *cp = &d->corpus;
  if (cp->ndomains < 1) FM_ERROR(FM_ERR_INTERNAL, "fm_partition before a corpus is loaded");
  double sum = c->data.train_frac + c->data.val_frac + c->data.test_frac;
  if (sum > 1.0 + 1e-9)
    FM_CONFIG_ERROR(c, "data.test_frac", "data.train_frac + val_frac + test_frac = %g exceeds 1", sum);
  if (c->data.train_frac <= 0) FM_CONFIG_ERROR(c, "data.train_frac", "must be > 0");
  if (cp->nclient_names && c->fl.clients != cp->nclient_names)
    FM_CONFIG_ERROR(c, "fl.clients", "is %d, but data.client_field '%s' has %d distinct values in '%s' (one "
                    "client each): set fl.clients = %d, or leave it out", c->fl.clients, c->data.client_field,
                    cp->nclient_names, c->data.path, cp->nclient_names);
  plan p = {.c = c, .cp = cp, .frac = {c->data.train_frac, c->data.val_frac, c->data.test_frac}};
  /* + 1: floor(piece x frac) must not round below seq_len+1 */
  p.min_piece = (uint64_t)ceil((double)(c->train.seq_len + 1) / min_nonzero_frac(p.frac)) + 1;
  FM_CALLOC(p.client_len, (size_t)cp->ndomains, "domain sizes");
  fm_err err = fm_calloc(&p.iid_share, (size_t)cp->ndomains, sizeof *p.iid_share, "domain shares");
  if (!err) err = build(d, &p);
  free(p.client_len);
  free(p.iid_share);
  FM_CHECK(err);
  return FM_OK;
}

fm_err fm_dataset_load(fm_dataset *d, const fm_config *c) {
  memset(d, 0, sizeof *d);
  fm_err err = fm_corpus_load(&d->corpus, c);
  if (!err) err = fm_partition(d, c);
  if (err) fm_dataset_free(d);
  FM_CHECK(err);
  return FM_OK;
}

void fm_dataset_free(fm_dataset *d) {
  fm_corpus_free(&d->corpus);
  free(d->domain_asked);
  free(d->domain_given);
  free(d->clients);
  free(d->span_pool);
  free(d->mix_pool);
  free(d->public_split.spans);
  memset(d, 0, sizeof *d);
}
