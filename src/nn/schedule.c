/* schedule.c - the learning-rate schedule (train.* keys):
 *   warm-up  step < W:   lr (step + 1) / W        (W = train.warmup_steps; lr/W .. lr)
 *   constant:            lr
 *   cosine:              lr_min + (lr - lr_min) (1 + cos(pi p)) / 2,  p = (step - W) / (total - W)
 *                        clamped to [0, 1], so lr at the end of warm-up and lr_min at total.
 * lr is passed in (train.lr, or another phase's peak such as comigs.router_lr); lr_min
 * is train.lr_min, capped at lr so that a smaller peak never rises. */
#include "nn.h"

#include <math.h>

float fm_lr_at(const fm_config *c, long step, long total, float lr) {
  const long W = c->train.warmup_steps;
  if (step < 0) step = 0;
  if (step < W) return lr * (float)(step + 1) / (float)W;
  if (c->train.schedule == FM_SCHED_CONSTANT || total <= W) return lr;
  double p = (double)(step - W) / (double)(total - W);
  if (p > 1.0) p = 1.0;
  double lo = c->train.lr_min < lr ? c->train.lr_min : lr;
  return (float)(lo + (lr - lo) * 0.5 * (1.0 + cos(M_PI * p)));
}
