/* SPDX-License-Identifier: MIT */
/* classify MODEL_FILE POINTS_FILE
 * Runs a classifier saved as a deltaprop model file (here: one trained in PyTorch, exported to ONNX and
 * imported by deltaprop.onnx.from_onnx) on the points of POINTS_FILE through the C ABI, with no Python.
 * POINTS_FILE is whitespace-separated text: "rows cols", then rows * cols numbers. For each point it prints
 * the most probable class, then the class probabilities ("%.9g" for float32 networks, "%.17g" for float64).
 * Errors go to stderr with exit status 1. */
#include <deltaprop/deltaprop.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char* what, dp_status status) {
    fprintf(stderr, "classify: %s: %s (%s)\n", what, dp_status_string(status), dp_last_error());
    return 1;
}

int main(int argc, char** argv) {
    dp_net* net = NULL;
    dp_status status;
    FILE* in;
    unsigned long rows, cols, i, j;
    size_t n_in, n_out, elem;
    int is_float32;
    void* x = NULL;   /* [rows, n_in] in the network's dtype */
    void* out = NULL; /* [rows, n_out] */
    int rc = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_FILE POINTS_FILE\n", argc > 0 ? argv[0] : "classify");
        return 2;
    }
    status = dp_net_load(&net, argv[1]);
    if (status != DP_OK) return fail("dp_net_load", status);
    n_in = dp_net_size(net, 0);
    n_out = dp_net_size(net, dp_net_num_layers(net));
    is_float32 = dp_net_dtype(net) == DP_FLOAT32;
    elem = is_float32 ? sizeof(float) : sizeof(double);

    in = fopen(argv[2], "r");
    if (!in) {
        fprintf(stderr, "classify: cannot open %s\n", argv[2]);
        goto done;
    }
    if (fscanf(in, "%lu %lu", &rows, &cols) != 2 || cols != n_in || rows == 0) {
        fprintf(stderr, "classify: %s: expected 'ROWS %lu' on the first line (the network takes %lu inputs)\n", argv[2],
                (unsigned long)n_in, (unsigned long)n_in);
        fclose(in);
        goto done;
    }
    x = malloc(rows * n_in * elem);
    out = malloc(rows * n_out * elem);
    if (!x || !out) {
        fprintf(stderr, "classify: out of memory\n");
        fclose(in);
        goto done;
    }
    for (i = 0; i < rows * n_in; ++i) {
        double v;
        if (fscanf(in, "%lf", &v) != 1) {
            fprintf(stderr, "classify: %s: expected %lu numbers\n", argv[2], rows * (unsigned long)n_in);
            fclose(in);
            goto done;
        }
        if (is_float32)
            ((float*)x)[i] = (float)v;
        else
            ((double*)x)[i] = v;
    }
    fclose(in);

    status = dp_net_predict(net, x, rows, out);
    if (status != DP_OK) {
        fail("dp_net_predict", status);
        goto done;
    }
    for (i = 0; i < rows; ++i) {
        size_t best = 0;
        for (j = 0; j < n_out; ++j) {
            double p = is_float32 ? ((float*)out)[i * n_out + j] : ((double*)out)[i * n_out + j];
            double q = is_float32 ? ((float*)out)[i * n_out + best] : ((double*)out)[i * n_out + best];
            if (p > q) best = j;
        }
        printf("%lu", (unsigned long)best);
        for (j = 0; j < n_out; ++j) {
            if (is_float32)
                printf(" %.9g", (double)((float*)out)[i * n_out + j]);
            else
                printf(" %.17g", ((double*)out)[i * n_out + j]);
        }
        printf("\n");
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(x);
    free(out);
    dp_net_destroy(net);
    return rc;
}
