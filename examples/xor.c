/* SPDX-License-Identifier: MIT */
/* Train a 2-8-1 network (tanh hidden, sigmoid output, binary cross-entropy) on XOR through the C ABI.
 * Prints "accuracy: 1.00" and returns 0 when all four points are classified correctly. */
#include <deltaprop/deltaprop.h>

#include <stdio.h>

static int check(dp_status status, const char* what) {
    if (status != DP_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, dp_status_string(status), dp_last_error());
        return 1;
    }
    return 0;
}

int main(void) {
    const size_t sizes[] = {2, 8, 1};
    const dp_activation activations[] = {DP_TANH, DP_SIGMOID};
    const float x[8] = {0, 0, 0, 1, 1, 0, 1, 1}; /* [4, 2] */
    const float y[4] = {0, 1, 1, 0};             /* [4, 1] */
    float a[4];
    dp_net* net = NULL;
    dp_sgd sgd = dp_sgd_default();
    double loss = 0.0;
    int correct = 0;
    int epoch, n;

    if (check(dp_net_create(&net, 3, sizes, activations, NULL, DP_LOSS_BINARY_CROSS_ENTROPY,
                            DP_FLOAT32, DP_INIT_GLOROT_UNIFORM, 1),
              "dp_net_create"))
        return 1;
    sgd.lr = 0.5;
    sgd.momentum = 0.9;
    for (epoch = 0; epoch < 500; ++epoch) {
        if (check(dp_net_train_epoch(net, x, 4, DP_TARGET_VALUES, y, 4, &sgd, 0, NULL, NULL, &loss),
                  "dp_net_train_epoch")) {
            dp_net_destroy(net);
            return 1;
        }
    }
    if (check(dp_net_predict(net, x, 4, a), "dp_net_predict")) {
        dp_net_destroy(net);
        return 1;
    }
    for (n = 0; n < 4; ++n)
        correct += (a[n] > 0.5f) == (y[n] > 0.5f);
    printf("loss: %.6f\n", loss);
    printf("accuracy: %.2f\n", correct / 4.0);
    dp_net_destroy(net);
    return correct == 4 ? 0 : 1;
}
