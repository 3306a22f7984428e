/* bench_generate.c - figures of text generation (never checks): tokens/s of the
 * key/value-cache decoder (fedmoe generate's) on a GPT-2-124M-shaped model (vocab
 * 50257, context 1024, d 768, 12 heads, 12 layers; random weights), one thread, after
 * a prompt; and, for contrast, of recomputing the whole sequence with the training
 * forward for every token, which the cache avoids.
 *   bench_generate [NEW [PROMPT [FULL]]]   NEW tokens after a PROMPT-token prompt
 *                                          (64, 16); FULL tokens without the cache (8) */
#include "fedmoe/decode.h"
#include "fedmoe/model.h"
#include "fedmoe/nn_threads.h"
#include "fedmoe/timer.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* this process's CPU seconds: on a shared machine the wall time also counts the waits */
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int die(void) {
  char msg[4096];
  fm_error_format(msg, sizeof msg);
  fprintf(stderr, "bench_generate: %s\n", msg);
  return 1;
}

int main(int argc, char **argv) {
  const int NEW = argc > 1 ? atoi(argv[1]) : 64, P = argc > 2 ? atoi(argv[2]) : 16;
  const int FULL = argc > 3 ? atoi(argv[3]) : 8;
  if (NEW < 1 || P < 1 || FULL < 0 || P + NEW > 1024) {
    fprintf(stderr, "usage: bench_generate [NEW [PROMPT [FULL]]] (PROMPT + NEW <= 1024)\n");
    return 2;
  }
  fm_nn_set_threads(1);
  fm_model_shape s = {.vocab = 50257, .context = 1024, .d = 768, .heads = 12, .layers = 12, .init_std = 0.02f};
  const int T = P + (FULL > NEW ? FULL : NEW);
  fm_model *m = NULL;
  if (fm_model_create(&m, &s, 1, T, 1, NULL, NULL) || fm_model_init(m, 1)) return die();
  size_t params = 0;
  for (int i = 0; i < fm_model_ntensors(m); i++) params += fm_model_tensor(m, i)->numel;
  printf("model: gpt2 shape, vocab 50257, context 1024, d 768, 12 heads, 12 layers, %.1fM parameters, 1 thread\n",
         params / 1e6);
  int32_t *seq = calloc((size_t)T, sizeof *seq), *tgt = calloc((size_t)T, sizeof *tgt);
  for (int i = 0; i < P; i++) seq[i] = (int32_t)((i * 7919) % 50257);
  for (int i = 0; i < T; i++) tgt[i] = -1;
  fm_decoder *d = NULL;
  if (fm_decoder_create(&d, m, P < 64 ? P : 64, P + NEW)) return die();
  fm_gen_opts o = {.max_new = NEW, .eos = -1, .sampler = {.temperature = 0.0f, .top_p = 1.0f}};
  fm_gen_result r;
  double c0 = cpu_now();
  if (fm_generate(d, seq, P, &o, seq + P, &r)) return die();
  double cpu = cpu_now() - c0;
  printf("cached decoding: prompt %d tokens in %.3f s; %d new tokens in %.3f s: %.2f tokens/s "
         "(prompt and tokens: %.3f s of CPU, %.2f tokens/s)\n",
         r.prompt, r.prefill_s, r.generated, r.decode_s, r.generated / r.decode_s, cpu, r.generated / cpu);
  if (FULL > 0) {
    const double t0 = fm_wtime();
    c0 = cpu_now();
    for (int n = P; n < P + FULL; n++)
      if (fm_model_forward(m, seq, tgt, 1, n, NULL, NULL)) return die();
    const double t = fm_wtime() - t0;
    cpu = cpu_now() - c0;
    printf("full forward per token (no cache): %d tokens at lengths %d..%d in %.3f s: %.2f tokens/s "
           "(%.3f s of CPU, %.2f tokens/s)\n", FULL, P, P + FULL - 1, t, FULL / t, cpu, FULL / cpu);
  }
  fm_decoder_free(d);
  fm_model_free(m);
  free(seq);
  free(tgt);
  return 0;
}
