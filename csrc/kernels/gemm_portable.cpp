// SPDX-License-Identifier: MIT
// Portable C++ instance of the GEMM (any architecture; scalar "vectors" the compiler may vectorise).
#include "kernels/gemm_impl.h"

namespace deltaprop::kernels::detail {
namespace {

template <class T_>
struct Scalar {
    using T = T_;
    using V = T_;
    static constexpr int W = 1;
    static constexpr int TB = 0;  // no block transpose: packing transposes element by element
    static V zero() { return T(0); }
    static V set1(T x) { return x; }
    static V load(const T* p) { return *p; }
    static V load_aligned(const T* p) { return *p; }
    static V loadn(const T* p, size_t n) { return n ? *p : T(0); }
    static void store(T* p, V v) { *p = v; }
    static void storen(T* p, V v, size_t n) {
        if (n) *p = v;
    }
    static V mul(V a, V b) { return a * b; }
    static V fmadd(V a, V b, V c) { return a * b + c; }  // no fused multiply-add assumed
    static T hsum(V v) { return v; }
};

template <class T>
struct Portable {
    using S = Scalar<T>;
    static constexpr int MR = 4, NV = 8;
    static constexpr bool A_IN_PLACE = true;
    static constexpr int DIRECT_B_MMAX = 64, MR_ALT = 4, TALL_NMAX = 4 * NV * S::W;
    static constexpr int DOT_MMAX = 4, DOT_NMAX = 32, DOT1_JB = 8, DOT_IB = 2, DOT_JB = 4;
    static constexpr int AXPY_MMAX = 4, AXPY_KMAX = 4, AXPY1_JV = 8, AXPY_IB = 4, AXPY_JV = 4;
};

}  // namespace

void gemm_portable(const GemmArgs<float>& g) { gemm_run<Portable<float>>(g); }
void gemm_portable(const GemmArgs<double>& g) { gemm_run<Portable<double>>(g); }

}  // namespace deltaprop::kernels::detail
