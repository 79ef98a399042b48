/* SPDX-License-Identifier: MIT */
/*
 * Data-parallel training from C with MPI (docs/distributed.md): every rank holds a shard of the data;
 * each step it computes the gradient of its part of the global batch with dp_net_backward, MPI_Allreduce
 * sums the gradient buffers (dp_net_grads: all layers, one contiguous array), and every rank applies the
 * same update with dp_net_step_with. deltaprop itself never links MPI.
 *
 *   export PKG_CONFIG_PATH="$(python -c 'import deltaprop; print(deltaprop.get_library_dir())')/pkgconfig"
 *   mpicc -std=c99 mpi_train.c $(pkg-config --cflags --libs deltaprop) -o mpi_train
 *   mpirun -n 2 ./mpi_train
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "deltaprop/deltaprop.h"

#define N 512        /* rows in all, shared out between the ranks */
#define BATCH 64     /* rows per global batch */
#define EPOCHS 150

static int check(dp_status s, const char* what) {
    if (s != DP_OK) fprintf(stderr, "%s: %s\n", what, dp_last_error());
    return s == DP_OK;
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, ranks = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);

    /* The same net on every rank: the same seed here (or rank 0's state broadcast: dp_net_save_buffer,
     * MPI_Bcast, dp_net_load_buffer and dp_net_copy_state). */
    size_t sizes[] = {2, 16, 1};
    dp_activation acts[] = {DP_TANH, DP_SIGMOID};
    dp_net* net = NULL;
    if (!check(dp_net_create(&net, 3, sizes, acts, NULL, DP_LOSS_BINARY_CROSS_ENTROPY, DP_FLOAT64,
                             DP_INIT_GLOROT_UNIFORM, 42), "dp_net_create")) MPI_Abort(MPI_COMM_WORLD, 1);
    const size_t n_params = dp_net_num_params(net);

    /* This rank's shard: rows [lo, hi) of a dataset every rank could generate (two interleaved
     * quadrants: y = 1 where x0 x1 > 0). */
    const size_t lo = (size_t)N * (size_t)rank / (size_t)ranks, hi = (size_t)N * (size_t)(rank + 1) / (size_t)ranks;
    const size_t n = hi - lo;
    double* x = malloc(2 * n * sizeof(double));
    double* y = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; ++i) {
        const size_t g = lo + i;
        x[2 * i] = (double)((g * 37) % 101) / 50.0 - 1.0;
        x[2 * i + 1] = (double)((g * 53) % 97) / 48.0 - 1.0;
        y[i] = x[2 * i] * x[2 * i + 1] > 0.0 ? 1.0 : 0.0;
    }

    dp_optimizer adam = dp_optimizer_default(DP_OPTIM_ADAM);
    adam.lr = 0.02;
    const size_t steps = N / BATCH; /* global batches per epoch; this rank gives n / steps rows to each */
    double loss = 0.0;
    for (int epoch = 0; epoch < EPOCHS; ++epoch) {
        double epoch_loss = 0.0;
        for (size_t s = 0; s < steps; ++s) {
            const size_t r0 = n * s / steps, rows = n * (s + 1) / steps - r0;
            double local[2] = {0.0, (double)rows}; /* loss sum, rows */
            double* g = dp_net_grads(net);
            if (rows > 0) {
                double mean = 0.0;
                if (!check(dp_net_backward(net, x + 2 * r0, rows, DP_TARGET_VALUES, y + r0, 0.0, 0, &mean),
                           "dp_net_backward")) MPI_Abort(MPI_COMM_WORLD, 1);
                local[0] = mean * (double)rows;
                for (size_t i = 0; i < n_params; ++i) g[i] *= (double)rows; /* the mean -> the sum */
            } else {
                for (size_t i = 0; i < n_params; ++i) g[i] = 0.0;
            }
            /* the sums over every rank, then the global batch's mean */
            MPI_Allreduce(MPI_IN_PLACE, g, (int)n_params, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            MPI_Allreduce(MPI_IN_PLACE, local, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            for (size_t i = 0; i < n_params; ++i) g[i] /= local[1];
            /* every rank: the same gradient, the same update */
            if (!check(dp_net_step_with(net, &adam), "dp_net_step_with")) MPI_Abort(MPI_COMM_WORLD, 1);
            epoch_loss += local[0] / local[1];
        }
        loss = epoch_loss / (double)steps;
        if (rank == 0 && (epoch == 0 || (epoch + 1) % 50 == 0)) printf("epoch %3d  loss %.4f\n", epoch + 1, loss);
    }

    /* accuracy over every shard, and a check that every rank holds the same parameters */
    double* out = malloc(n * sizeof(double));
    double counts[2] = {0.0, (double)n};
    if (!check(dp_net_predict(net, x, n, out), "dp_net_predict")) MPI_Abort(MPI_COMM_WORLD, 1);
    for (size_t i = 0; i < n; ++i) counts[0] += (out[i] > 0.5) == (y[i] > 0.5);
    MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    double* p = dp_net_params(net);
    double* p0 = malloc(n_params * sizeof(double));
    for (size_t i = 0; i < n_params; ++i) p0[i] = p[i];
    MPI_Bcast(p0, (int)n_params, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    int same = 1;
    for (size_t i = 0; i < n_params; ++i) same &= p0[i] == p[i];
    MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    const double accuracy = counts[0] / counts[1];
    if (rank == 0)
        printf("%d ranks: accuracy %.3f, parameters identical on every rank: %s\n", ranks, accuracy,
               same ? "yes" : "no");
    free(p0);
    free(out);
    free(x);
    free(y);
    dp_net_destroy(net);
    MPI_Finalize();
    return accuracy > 0.9 && same && isfinite(loss) ? 0 : 1;
}
