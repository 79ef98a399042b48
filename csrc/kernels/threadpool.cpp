// SPDX-License-Identifier: MIT
// TEMPORARY scaffolding: serial pool so the core links; replaced by the persistent pool.
#include "kernels/threadpool.h"

namespace deltaprop::kernels {
static int g_threads = 1;
void set_num_threads(int n) { g_threads = n < 1 ? 1 : n; }
int num_threads() { return g_threads; }
void parallel_for(std::size_t n_tasks, TaskFn fn, void* ctx) {
    for (std::size_t i = 0; i < n_tasks; ++i) fn(ctx, i);
}
}  // namespace deltaprop::kernels
