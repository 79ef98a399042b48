// SPDX-License-Identifier: MIT
// The AVX2 elementwise kernels against the portable ones (std::exp), on odd sizes, both dtypes; the
// avx512 level runs the AVX2 build.
#include <cmath>
#include <cstdio>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/elementwise.h"

namespace k = deltaprop::kernels;

static int passed = 0, failed = 0;

static void expect(bool ok, const char* what, std::size_t rows, std::size_t cols, double err) {
    if (ok) {
        ++passed;
    } else {
        ++failed;
        std::printf("FAIL %s rows=%zu cols=%zu max_rel_err=%g\n", what, rows, cols, err);
    }
}

static double max_rel(const double* a, const double* b, std::size_t n) {
    double m = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double d = std::fabs(a[i] - b[i]) / std::fmax(std::fabs(b[i]), 1e-30);
        if (!(d <= m)) m = d;
    }
    return m;
}

template <class T>
static void check_all(double tol) {
#if defined(DP_X86)
    if (k::best_level() < k::Level::avx2) {
        std::printf("avx2 not supported: skipped\n");
        return;
    }
    const k::ElementwiseKernels<T>& port = k::elementwise_kernels<T>(k::Level::portable);
    const k::ElementwiseKernels<T>& avx2 = k::elementwise_kernels<T>(k::Level::avx2);
    const std::size_t shapes[][2] = {{1, 1}, {1, 7}, {3, 17}, {2, 33}, {5, 65}, {1, 257}, {7, 1000}};
    unsigned state = 12345u;
    auto rnd = [&] {
        state = state * 1664525u + 1013904223u;
        return (double(state >> 8) / double(1u << 24)) * 2.0 - 1.0;
    };
    for (auto& s : shapes) {
        const std::size_t rows = s[0], cols = s[1], n = rows * cols;
        std::vector<T> b(cols), z0(n), d0(n);
        for (auto& v : b) v = T(rnd());
        for (std::size_t i = 0; i < n; ++i) {
            z0[i] = T(rnd() * 30.0);  // reaches deep into both tails of sigmoid
            d0[i] = T(rnd());
        }
        for (int act = 0; act <= 5; ++act) {
            std::vector<T> z1 = z0, z2 = z0, a1(n), a2(n);
            port.bias_activation(k::Act(act), T(0.1), b.data(), z1.data(), a1.data(), rows, cols);
            avx2.bias_activation(k::Act(act), T(0.1), b.data(), z2.data(), a2.data(), rows, cols);
            std::vector<double> x1(a1.begin(), a1.end()), x2(a2.begin(), a2.end());
            const double e = max_rel(x2.data(), x1.data(), n);
            expect(e <= tol, "bias_activation", rows, cols, e);
            if (act != 5) {
                std::vector<T> g1 = d0, g2 = d0;
                port.mul_activation_grad(k::Act(act), T(0.1), z1.data(), a1.data(), g1.data(), rows, cols);
                avx2.mul_activation_grad(k::Act(act), T(0.1), z1.data(), a1.data(), g2.data(), rows, cols);
                std::vector<double> y1(g1.begin(), g1.end()), y2(g2.begin(), g2.end());
                const double eg = max_rel(y2.data(), y1.data(), n);
                expect(eg == 0.0, "mul_activation_grad", rows, cols, eg);
            }
        }
        std::vector<T> db1(cols, T(1)), db2(cols, T(1));
        port.column_sums(d0.data(), rows, cols, T(0.5), true, db1.data());
        avx2.column_sums(d0.data(), rows, cols, T(0.5), true, db2.data());
        bool same = true;
        for (std::size_t c = 0; c < cols; ++c) same = same && db1[c] == db2[c];
        expect(same, "column_sums", rows, cols, 0);
        std::vector<T> w1 = z0, w2 = z0, v1 = d0, v2 = d0;
        port.sgd_step(n, T(0.1), T(0.9), true, T(0.01), d0.data(), w1.data(), v1.data());
        avx2.sgd_step(n, T(0.1), T(0.9), true, T(0.01), d0.data(), w2.data(), v2.data());
        same = true;
        for (std::size_t i = 0; i < n; ++i) same = same && w1[i] == w2[i] && v1[i] == v2[i];
        expect(same, "sgd_step", rows, cols, 0);
        // online_update: x = first row of z0, delta = first column of d0; vs the written formula
        std::vector<T> x(z0.begin(), z0.begin() + cols), d(rows);
        for (std::size_t r = 0; r < rows; ++r) d[r] = d0[r * cols];
        std::vector<T> gW1(n), gW2(n), W1 = z0, W2 = z0, gb1(rows), gb2(rows), b1(d), b2(d);
        port.online_update(rows, cols, T(0.1), d.data(), x.data(), gW1.data(), W1.data(),
                                      gb1.data(), b1.data());
        avx2.online_update(rows, cols, T(0.1), d.data(), x.data(), gW2.data(), W2.data(),
                                  gb2.data(), b2.data());
        same = true;
        for (std::size_t r = 0; r < rows; ++r) {
            same = same && gb1[r] == T(d[r] + T(0)) && b1[r] == T(d[r] - T(0.1) * d[r]) && gb2[r] == gb1[r] &&
                   b2[r] == b1[r];
            for (std::size_t c = 0; c < cols; ++c) {
                const std::size_t i = r * cols + c;
                const T g = T(T(d[r] * x[c]) + T(0));
                same = same && gW1[i] == g && W1[i] == T(z0[i] - T(T(0.1) * g)) && gW2[i] == g &&
                       W2[i] == W1[i];
            }
        }
        expect(same, "online_update", rows, cols, 0);
        // param_update_block on the whole array == axpy (l2) then sgd_step, at both levels
        for (int plain = 0; plain < 2; ++plain) {
            const T mom = plain ? T(0) : T(0.9), wd = plain ? T(0) : T(0.01);
            std::vector<T> g0 = d0, w0 = z0, v0 = d0;
            port.axpy(n, T(0.3), w0.data(), g0.data());
            port.sgd_step(n, T(0.1), mom, !plain, wd, g0.data(), w0.data(), v0.data());
            std::vector<T> g1 = d0, wb1 = z0, vb1 = d0, g2 = d0, wb2 = z0, vb2 = d0;
            port.param_update_block(rows, cols, cols, T(0.3), T(0.1), mom, !plain, wd,
                                               g1.data(), wb1.data(), vb1.data());
            avx2.param_update_block(rows, cols, cols, T(0.3), T(0.1), mom, !plain, wd, g2.data(),
                                           wb2.data(), vb2.data());
            same = g1 == g0 && wb1 == w0 && vb1 == v0;
            for (std::size_t i = 0; i < n; ++i)
                same = same && g2[i] == g1[i] && wb2[i] == wb1[i] && vb2[i] == vb1[i];
            expect(same, "param_update_block", rows, cols, 0);
        }
    }
#else
    (void)tol;
    std::printf("not x86: nothing to compare\n");
#endif
}

// softplus (the binary cross-entropy loss) at every level against log1p(exp(-|z|)) + max(z, 0) in
// long double, on z from -800 to 800 (exp(-|z|) down to underflow), odd lengths for the vector tails.
static void check_softplus() {
    std::vector<double> z;
    for (double v : {0.0, -0.0, 1e-300, -1e-300, 1e-17, -1e-17, 1e-9, 0.3465, 0.3466, 0.881373587, -0.881373587,
                     1.0, -1.0, 36.7, -36.7, 37.5, -37.5, 709.0, -709.0, 745.0, -745.0, 800.0, -800.0})
        z.push_back(v);
    for (int i = 0; i < 4003; ++i) z.push_back(-60.0 + 120.0 * i / 4002.0);
    std::vector<double> want(z.size()), got(z.size());
    for (std::size_t i = 0; i < z.size(); ++i) {
        const long double e = std::exp(-std::fabs((long double)z[i]));
        want[i] = double(std::log1p(e) + std::fmax((long double)z[i], 0.0L));
    }
    for (std::size_t n : {z.size(), std::size_t(1), std::size_t(3), std::size_t(6)}) {
        k::elementwise_kernels<double>(k::Level::portable).softplus(z.data(), got.data(), n);
        const double e_port = max_rel(got.data(), want.data(), n);
        expect(e_port <= 4e-16, "softplus portable", 1, n, e_port);
#if defined(DP_X86)
        if (k::best_level() >= k::Level::avx2) {
            k::elementwise_kernels<double>(k::Level::avx2).softplus(z.data(), got.data(), n);
            const double e_avx2 = max_rel(got.data(), want.data(), n);
            expect(e_avx2 <= 8e-16, "softplus avx2", 1, n, e_avx2);
        }
#endif
    }
}

int main() {
    expect(&k::elementwise_kernels<float>(k::Level::avx512) == &k::elementwise_kernels<float>(k::Level::avx2),
           "avx512 level runs the avx2 build", 0, 0, 0);
    check_softplus();
    check_all<float>(4e-7);
    check_all<double>(4e-16);
    std::printf("elementwise: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
