/* nn_threads.h - how many threads the model's GEMMs (BLIS) may use.
 *
 * BLIS here is built with OpenMP and would otherwise follow BLIS_NUM_THREADS or
 * OMP_NUM_THREADS from the environment. fedmoe decides the thread count itself
 * (run.threads): until fm_nn_set_threads is called, the first GEMM sets 1 thread,
 * so the program never silently runs more threads than it was asked to. */
#ifndef FEDMOE_NN_THREADS_H
#define FEDMOE_NN_THREADS_H

/* Threads for every later GEMM of this process (n >= 1; smaller values mean 1). */
void fm_nn_set_threads(int n);
/* The count in force (1 until set). */
int fm_nn_threads(void);

#endif
