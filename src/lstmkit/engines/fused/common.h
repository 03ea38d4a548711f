// Shared by the C++ loops: SIMD activations and sums, optional-tensor access, row layer norms,
// and zoneout/padding settling. Included by lstm.cpp, gru.cpp, rnn.cpp and input_ln.cpp.
#pragma once
// at::vec picks its instruction set from these macros; -march=native sets the compiler's.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#elif defined(__AVX2__) && defined(__FMA__)
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#else
#define CPU_CAPABILITY DEFAULT
#endif
#include <ATen/ATen.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace lstmkit {

using at::Tensor;
using OT = std::optional<Tensor>;

// Rows of a (B, W) step per thread: one thread below about 8k values, where waking the
// second would cost more than it saves.
inline int64_t row_grain(int64_t W) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(W, 1)); }

template <typename S> inline const S* opt_ptr(const OT& t) {
  return t.has_value() ? t->data_ptr<S>() : nullptr;
}

// Over n contiguous values, in SIMD registers (Sleef's exp, as ATen's own kernels):
// σ(x) = 1 / (1 + e^{−x}), and tanh within 1.4 ulp everywhere (tanh_v).
template <typename S> inline void sigmoid_(S* x, int64_t n) {
  using V = at::vec::Vectorized<S>;
  at::vec::map([](V v) { return V(S(1)) / (V(S(1)) + v.neg().exp()); }, x, x, n);
}

// tanh of a float vector: x + x·z·Q(z), z = x², for |x| < 0.625 (Q of degree 4, fitted to
// (tanh(x)/x − 1)/z on [0, 0.63] for the least relative error, 5e-9), else
// sign(x)·(1 − 2/(1 + e^{2|x|})): within 1.4 ulp, 0.27 on average (torch.tanh: 0.5, 0.25),
// for one exp as 2σ(2x) − 1 and a few FMAs more. 2σ(2x) − 1 errs by up to 1.8e-7 absolute,
// not relative, so by many ulp near 0, where tanh(c') and the g gate mostly are: in float32
// it put the fused engine's states about three times as far from float64 as the reference
// engine's (tests/engines/fused/test_float32_accuracy.py checks both). Sleef's own tanh
// costs four times as much (docs/fused.md); the float64 loops use it.
inline at::vec::Vectorized<float> tanh_v(const at::vec::Vectorized<float>& v) {
  using V = at::vec::Vectorized<float>;
  const V a = v.abs(), z = v * v;
  V q = at::vec::fmadd(z, V(-0.005668662954121828f), V(0.020607687532901764f));
  q = at::vec::fmadd(q, z, V(-0.053730469197034836f));
  q = at::vec::fmadd(q, z, V(0.1333133578300476f));
  q = at::vec::fmadd(q, z, V(-0.33333277702331543f));
  const V small = at::vec::fmadd(v, q * z, v);
  const V big = (V(1.0f) - V(2.0f) / (V(1.0f) + (a + a).exp())).copysign(v);
  return V::blendv(big, small, a < V(0.625f));
}
inline at::vec::Vectorized<double> tanh_v(const at::vec::Vectorized<double>& v) { return v.tanh(); }
template <typename S> inline void tanh_(const S* x, S* out, int64_t n) {
  using V = at::vec::Vectorized<S>;
  at::vec::map([](V v) { return tanh_v(v); }, out, x, n);
}

// x Wᵀ (B, N) for x (B, K), W (N, K): MKL's packed GEMM when the caller packed W for this
// batch size (float32 on an MKL build; the fastest CPU GEMM at these shapes), else at::mm.
inline Tensor gemm(const Tensor& x, const Tensor& w, const OT& packed) {
  if (!packed.has_value()) return at::mm(x, w.t());
  static auto op = c10::Dispatcher::singleton()
      .findSchemaOrThrow("mkl::_mkl_linear", "")
      .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, const OT&, int64_t)>();
  return op.call(x, *packed, w, std::nullopt, x.size(0));
}

// A zoneout keep: a (T, B, W) {0, 1} mask in training, one rate in evaluation, or none.
template <typename S> struct Keep {
  const S* p = nullptr;
  S v = 0;
  int64_t B = 0, W = 0;
  bool has = false;
  explicit Keep(const OT& k) {
    if (!k.has_value()) return;
    has = true;
    if (k->numel() == 1) { v = k->item<S>(); return; }
    p = k->data_ptr<S>(); B = k->size(1); W = k->size(2);
  }
  bool on() const { return has; }
  S at(int64_t t, int64_t b, int64_t j) const { return p ? p[(t * B + b) * W + j] : v; }
};

// Σ x and Σ x ⊙ y over n values, in SIMD registers.
template <typename S> inline S vsum(const S* x, int64_t n) {
  using V = at::vec::Vectorized<S>;
  return at::vec::reduce_all<S>([](V a, V b) { return a + b; }, x, n);
}
template <typename S> inline S vdot(const S* x, const S* y, int64_t n) {
  using V = at::vec::Vectorized<S>;
  return at::vec::map2_reduce_all<S>([](V a, V b) { return a * b; }, [](V a, V b) { return a + b; },
                                     x, y, n);
}

// Mean and 1/sqrt(var + eps) (biased variance) of one row, as torch's layer norm.
template <typename S> inline void row_stats(const S* x, int64_t n, double eps, S& mu, S& rstd) {
  using V = at::vec::Vectorized<S>;
  mu = vsum(x, n) / S(n);
  const S m = mu;
  const S v = at::vec::map_reduce_all<S>([m](V a) { return (a - V(m)) * (a - V(m)); },
                                         [](V a, V b) { return a + b; }, x, n);
  rstd = S(1) / std::sqrt(v / S(n) + S(eps));
}

// a = u + LN(y)·γ per gate block of H (no LN affine): the layer-norm recurrent term.
template <typename S>
void ln_rows(const S* y, const S* u, const S* g, S* a, S* mu, S* rs, int64_t B, int64_t G,
             int64_t H, double eps) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < G; ++k) {
      const int64_t o = (b * G + k) * H;
      S m, r;
      row_stats(y + o, H, eps, m, r);
      mu[b * G + k] = m; rs[b * G + k] = r;
      for (int64_t j = 0; j < H; ++j) a[o + j] = u[o + j] + (y[o + j] - m) * r * g[k * H + j];
    }
}

// dy = rstd (dŷ − mean dŷ − ŷ mean(dŷ ŷ)) with dŷ = da ⊙ γ, per gate block (Ba et al. 2016);
// with dg, also dγ's terms da ⊙ ŷ, row by row (B, G·H).
template <typename S>
void ln_rows_backward(const S* da, const S* g, const S* y, const S* mu, const S* rs, S* dy,
                      int64_t B, int64_t G, int64_t H, S* dg = nullptr) {
  thread_local std::vector<S> d, yh;         // called per row and step: no allocation each time
  d.resize(H);
  yh.resize(H);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < G; ++k) {
      const int64_t o = (b * G + k) * H;
      const S m = mu[b * G + k], r = rs[b * G + k];
      for (int64_t j = 0; j < H; ++j) {
        d[j] = da[o + j] * g[k * H + j];
        yh[j] = (y[o + j] - m) * r;
      }
      const S s1 = vsum(d.data(), H) / S(H), s2 = vdot(d.data(), yh.data(), H) / S(H);
      for (int64_t j = 0; j < H; ++j) dy[o + j] = r * (d[j] - s1 - yh[j] * s2);
      if (dg)
        for (int64_t j = 0; j < H; ++j) dg[o + j] = da[o + j] * yh[j];
    }
}

// acc += Σ_b rows[b] for rows (B, W): a step's per-row terms into a sum kept in double.
template <typename S> inline void add_rows(const S* rows, int64_t B, int64_t W, double* acc) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < W; ++j) acc[j] += rows[b * W + j];
}

// out = live ? keep ⊙ prev + (1 − keep) ⊙ new : prev (zoneout, then padding).
template <typename S>
inline void settle_row(const S* prev, const S* nw, const Keep<S>& k, int64_t t, int64_t b,
                       int64_t W, bool live, S* out) {
  for (int64_t j = 0; j < W; ++j) {
    if (!live) { out[j] = prev[j]; continue; }
    if (!k.on()) { out[j] = nw[j]; continue; }
    const S kk = k.at(t, b, j);
    out[j] = kk * prev[j] + (S(1) - kk) * nw[j];
  }
}

// Backward of settle_row: d (grad of the settled state) -> d_new, d_prev.
template <typename S>
inline void unsettle_row(const S* d, const Keep<S>& k, int64_t t, int64_t b, int64_t W,
                         bool live, bool zone, S* d_new, S* d_prev) {
  for (int64_t j = 0; j < W; ++j) {
    S dn = d[j], dp = 0;
    if (zone) {
      if (!live) { dp = dn; dn = 0; }
      if (k.on()) { const S kk = k.at(t, b, j); dp += kk * dn; dn = (S(1) - kk) * dn; }
    }
    d_new[j] = dn;
    d_prev[j] = dp;
  }
}

}  // namespace lstmkit
