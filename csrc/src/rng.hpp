// SPDX-License-Identifier: MIT
#pragma once
// Our own generator (xoshiro256**, seeded by splitmix64) and distributions built from IEEE basic
// operations only, so one seed gives the same numbers on every platform, compiler and standard library.
#include <array>
#include <cmath>
#include <cstdint>

namespace deltaprop::detail {

class Rng {
public:
    explicit Rng(std::uint64_t seed = 0) { reseed(seed); }
    void reseed(std::uint64_t seed) {
        for (auto& w : s_) {
            seed += 0x9E3779B97F4A7C15ull;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            w = z ^ (z >> 31);
        }
    }
    std::array<std::uint64_t, 4> state() const { return s_; }
    void set_state(const std::array<std::uint64_t, 4>& s) { s_ = s; }

    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    // Uniform integer in [0, n), n >= 1, without modulo bias.
    std::uint64_t below(std::uint64_t n) {
        const std::uint64_t threshold = (0 - n) % n;
        for (;;) {
            const std::uint64_t r = next();
            if (r >= threshold) return r % n;
        }
    }
    // Standard normal by Marsaglia's polar method, with our own logarithm.
    double normal() {
        for (;;) {
            const double u = 2.0 * uniform() - 1.0, v = 2.0 * uniform() - 1.0;
            const double s = u * u + v * v;
            if (s > 0.0 && s < 1.0) return u * std::sqrt(-2.0 * log(s) / s);
        }
    }

    // Natural logarithm of x > 0 from frexp and an atanh series: basic operations only, so the result
    // does not depend on the platform's libm (std::sqrt and std::frexp are exact everywhere).
    static double log(double x) {
        int e = 0;
        double m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
        if (m < 0.70710678118654752) {
            m *= 2.0;
            e -= 1;
        }
        const double t = (m - 1.0) / (m + 1.0), t2 = t * t;  // log m = 2 atanh t, |t| < 0.172
        double term = t, sum = 0.0;
        for (int k = 1; k < 40; k += 2) {
            sum += term / k;
            term *= t2;
        }
        return 2.0 * sum + e * 0.69314718055994530942;
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> s_{};
};

}  // namespace deltaprop::detail
