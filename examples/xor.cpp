// SPDX-License-Identifier: MIT
// Train a 2-8-1 network (tanh hidden, sigmoid output, binary cross-entropy) on XOR through the C++ API.
// Prints "accuracy: 1.00" and returns 0 when all four points are classified correctly.
#include <deltaprop/deltaprop.hpp>

#include <cstdio>
#include <exception>
#include <vector>

int main() {
    try {
        deltaprop::Network net({2, 8, 1}, {DP_TANH, DP_SIGMOID}, DP_LOSS_BINARY_CROSS_ENTROPY,
                               DP_FLOAT32, DP_INIT_GLOROT_UNIFORM, 1);
        const std::vector<float> x = {0, 0, 0, 1, 1, 0, 1, 1};  // [4, 2]
        const std::vector<float> y = {0, 1, 1, 0};              // [4, 1]
        dp_sgd sgd = dp_sgd_default();
        sgd.lr = 0.5;
        sgd.momentum = 0.9;
        double loss = 0.0;
        for (int epoch = 0; epoch < 500; ++epoch)
            loss = net.train_epoch(x.data(), 4, y.data(), 4, sgd, /*shuffle=*/false);

        const std::vector<float> a = net.predict(x.data(), 4);  // [4, 1]
        int correct = 0;
        for (int n = 0; n < 4; ++n) correct += (a[n] > 0.5f) == (y[n] > 0.5f);
        std::printf("loss: %.6f\n", loss);
        std::printf("accuracy: %.2f\n", correct / 4.0);
        return correct == 4 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xor: %s\n", e.what());
        return 1;
    }
}
