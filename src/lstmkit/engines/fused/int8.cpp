// int8 weights, float32 everything else: the time loops of lstmkit.quant's LSTM, GRU and Elman
// RNN, and its Linear (torch.ops.lstmkit_int8.*). One call runs a whole layer-direction over
// T steps (T = 1 when streaming): both GEMMs, the gates and the state update.
//
// A weight W (N, K) is stored as q (N, K) int8 and s (N,) float32 with W ≈ diag(s) q
// (symmetric, per output row; lstmkit/quant/weights.py). x Wᵀ is computed as
//     y[b, n] = s[n] · Σ_k x[b, k] q[n, k]                                        (qmm)
// with the products and the sum in float32 (weight-only int8, "W8A32"): this CPU (AVX2, no
// VNNI) has no int8 dot product, AVX2's u8 x s8 multiply-adds need the activation quantized
// first and saturate int16 unless it keeps 7 bits, and float32 activations keep the error to the
// weights' rounding alone (docs/deploy.md has the alternatives, timed). Where one
// call multiplies a weight by many rows (T·B ≥ WIDEN_ROWS: a sequence, or a batch), the weight
// is widened once to float32 in a scratch of that call and MKL's sgemm does the GEMM; below
// that (the streaming step at small B) qmm reads the int8 weight directly.
//
// Symbols as in cells/lstm.py, cells/gru.py, cells/rnn.py; gate rows in torch's order.
#include "common.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LSTMKIT_INT8_AVX2 1
#endif

namespace lstmkit {

constexpr int64_t WIDEN_ROWS = 64;

#ifdef LSTMKIT_INT8_AVX2
static inline float hsum8(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}
static inline __m256 widen8(const int8_t* p) {       // 8 int8 -> 8 float32
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
#endif

// acc[b][r] = Σ_k x[b, k] q[r, k] for BR rows of x and NR rows of q (K rounded down to 8 in
// SIMD registers, the rest in scalars). BR·NR accumulators + NR widened weights stay in the 16
// registers: 2 x 4 where B is small, 4 x 2 from B 4 on (each weight widened once per 4 rows of x).
template <int BR, int NR>
static inline void dot_block(const float* x, int64_t ldx, const int8_t* q, int64_t K, float acc[BR][NR]) {
  int64_t k = 0;
#ifdef LSTMKIT_INT8_AVX2
  __m256 v[BR][NR];
  for (int b = 0; b < BR; ++b) for (int r = 0; r < NR; ++r) v[b][r] = _mm256_setzero_ps();
  for (; k + 8 <= K; k += 8) {
    __m256 w[NR];
    for (int r = 0; r < NR; ++r) w[r] = widen8(q + r * K + k);
    for (int b = 0; b < BR; ++b) {
      const __m256 xv = _mm256_loadu_ps(x + b * ldx + k);
      for (int r = 0; r < NR; ++r) v[b][r] = _mm256_fmadd_ps(xv, w[r], v[b][r]);
    }
  }
  for (int b = 0; b < BR; ++b) for (int r = 0; r < NR; ++r) acc[b][r] = hsum8(v[b][r]);
#else
  for (int b = 0; b < BR; ++b) for (int r = 0; r < NR; ++r) acc[b][r] = 0.f;
#endif
  for (; k < K; ++k)
    for (int b = 0; b < BR; ++b)
      for (int r = 0; r < NR; ++r) acc[b][r] += x[b * ldx + k] * float(q[r * K + k]);
}

// y[b0 + b, n + r] [+]= s[n + r] · acc[b][r] for a block from dot_block<BR, NR>.
template <int BR, int NR>
static inline void put_block(const float* x, int64_t b0, int64_t K, const int8_t* q, const float* s,
                             int64_t N, int64_t n, float* y, bool add) {
  float acc[BR][NR];
  dot_block<BR, NR>(x + b0 * K, K, q + n * K, K, acc);
  for (int b = 0; b < BR; ++b)
    for (int r = 0; r < NR; ++r) {
      float& o = y[(b0 + b) * N + n + r];
      o = (add ? o : 0.f) + s[n + r] * acc[b][r];
    }
}

// y (B, N) [+]= s ⊙ (x (B, K) qᵀ), q (N, K) int8: the int8 weight read directly.
static void qmm_direct(const float* x, int64_t B, int64_t K, const int8_t* q, const float* s,
                       int64_t N, float* y, bool add) {
  auto rows = [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n += 4) {
      if (n + 4 > n1) {                                     // fewer than 4 rows left: scalars
        for (int64_t m = n; m < n1; ++m)
          for (int64_t b = 0; b < B; ++b) {
            float a = 0.f;
            for (int64_t k = 0; k < K; ++k) a += x[b * K + k] * float(q[m * K + k]);
            y[b * N + m] = (add ? y[b * N + m] : 0.f) + s[m] * a;
          }
        break;
      }
      int64_t b = 0;
      for (; b + 4 <= B; b += 4) {
        put_block<4, 2>(x, b, K, q, s, N, n, y, add);
        put_block<4, 2>(x, b, K, q, s, N, n + 2, y, add);
      }
      for (; b + 2 <= B; b += 2) put_block<2, 4>(x, b, K, q, s, N, n, y, add);
      for (; b < B; ++b) put_block<1, 4>(x, b, K, q, s, N, n, y, add);
    }
  };
  // blocks of 4 rows between threads, one thread below ~64k multiply-adds
  const int64_t grain = std::max<int64_t>(4, (65536 / std::max<int64_t>(B * K, 1)) & ~int64_t(3));
  if (N <= grain) { rows(0, N); return; }
  at::parallel_for(0, (N + 3) / 4, std::max<int64_t>(1, grain / 4),
                   [&](int64_t i0, int64_t i1) { rows(i0 * 4, std::min(N, i1 * 4)); });
}

// A weight as the loops use it: int8 rows and scales, or (wide) float32 diag(s) q for MKL.
struct QWeight {
  const Tensor& q;
  const Tensor& s;
  Tensor wide;                                              // defined when widened
  QWeight(const Tensor& q_, const Tensor& s_, int64_t uses) : q(q_), s(s_) {
    if (uses >= WIDEN_ROWS) wide = q.to(at::kFloat).mul_(s.unsqueeze(1));
  }
  int64_t N() const { return q.size(0); }
  int64_t K() const { return q.size(1); }
  // y (B, N) [+]= x (B, K) Wᵀ; x, y contiguous float32 rows.
  void mm(const float* x, int64_t B, float* y, bool add) const {
    if (!wide.defined()) {
      qmm_direct(x, B, K(), q.data_ptr<int8_t>(), s.data_ptr<float>(), N(), y, add);
      return;
    }
    Tensor xt = at::from_blob(const_cast<float*>(x), {B, K()}, at::kFloat);
    Tensor yt = at::from_blob(y, {B, N()}, at::kFloat);
    if (add) yt.addmm_(xt, wide.t()); else at::mm_out(yt, xt, wide.t());
  }
};

static void check_q(const Tensor& q, const Tensor& s, const char* name) {
  TORCH_CHECK(q.scalar_type() == at::kChar && q.dim() == 2 && q.is_contiguous(), name,
              ": expected a contiguous 2-D int8 tensor, got ", q.scalar_type(), " ", q.sizes());
  TORCH_CHECK(s.scalar_type() == at::kFloat && s.dim() == 1 && s.size(0) == q.size(0) && s.is_contiguous(),
              name, "'s scale: expected float32 (", q.size(0), "), got ", s.scalar_type(), " ", s.sizes());
}

static void check_f(const Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu(), name,
              ": expected a contiguous float32 CPU tensor, got ", t.scalar_type(), " on ", t.device());
}

// u (T·B, N) = x q_ihᵀ s_ih + b_ih (+ b_hh where given): the input terms of every step. The
// biases are added in a loop, not by add_: at T = 1, B = 1 a dispatched op costs more than the sum.
static Tensor input_terms(const Tensor& x, const Tensor& q, const Tensor& s, const OT& b1, const OT& b2) {
  const int64_t R = x.size(0) * x.size(1), N = q.size(0);
  Tensor u = at::empty({x.size(0), x.size(1), N}, x.options());
  QWeight w(q, s, R);
  float* pu = u.data_ptr<float>();
  w.mm(x.data_ptr<float>(), R, pu, false);
  for (const OT* b : {&b1, &b2}) {
    if (!b->has_value()) continue;
    const float* pb = (*b)->data_ptr<float>();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t n = 0; n < N; ++n) pu[r * N + n] += pb[n];
  }
  return u;
}

// A final state shaped as the initial one was ((B, W) or (1, B, W)), from the row block at src.
static Tensor final_state(const Tensor& like, const float* src) {
  Tensor out = at::empty(like.sizes(), like.options());
  std::copy_n(src, like.numel(), out.data_ptr<float>());
  return out;
}

// int8 Linear: y (·, N) = x Wᵀ + b.
Tensor linear_int8(const Tensor& x, const Tensor& q, const Tensor& s, const OT& b) {
  check_f(x, "input");
  check_q(q, s, "weight");
  Tensor x2 = x.reshape({-1, q.size(1)});
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = q.size(0);
  Tensor y = x.new_empty({x2.size(0), q.size(0)});
  QWeight(q, s, x2.size(0)).mm(x2.data_ptr<float>(), x2.size(0), y.data_ptr<float>(), false);
  if (b) y.add_(*b);
  return y.view(shape);
}

// LSTM (vanilla, peepholes, CIFG, projection), one layer-direction over T steps:
//   a = u_t + h q_hhᵀ s_hh        u = x q_ihᵀ s_ih + b_ih + b_hh
//   i = σ(a_i + w_ci ⊙ c)  (CIFG: i = 1 − f)   f = σ(a_f + w_cf ⊙ c)   g = tanh(a_g)
//   c' = f ⊙ c + i ⊙ g     o = σ(a_o + w_co ⊙ c')   m = o ⊙ tanh(c')   h' = m q_hrᵀ s_hr or m
// h0 (B, R) and c0 (B, H), or each with a leading 1; h_n and c_n come back in the same shape.
// Returns (y (T, B, R), h_n, c_n).
std::tuple<Tensor, Tensor, Tensor> lstm_int8(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& q_ih, const Tensor& s_ih,
    const Tensor& q_hh, const Tensor& s_hh, const OT& b_ih, const OT& b_hh, const OT& w_ci,
    const OT& w_cf, const OT& w_co, const OT& q_hr, const OT& s_hr, bool coupled, bool reverse) {
  check_f(x, "input"); check_f(h0, "h0"); check_f(c0, "c0");
  check_q(q_ih, s_ih, "weight_ih"); check_q(q_hh, s_hh, "weight_hh");
  if (q_hr) check_q(*q_hr, *s_hr, "weight_hr");
  const int64_t T = x.size(0), B = x.size(1), H = c0.size(-1), R = h0.size(-1), G = coupled ? 3 : 4;
  TORCH_CHECK(q_ih.size(0) == G * H && q_hh.size(0) == G * H && q_hh.size(1) == R,
              "lstm_int8: weight shapes do not match H = ", H, ", R = ", R, ", G = ", G);
  Tensor u = input_terms(x, q_ih, s_ih, b_ih, b_hh);
  Tensor y = at::empty({T, B, R}, x.options()), c = final_state(c0, c0.data_ptr<float>());
  Tensor a = at::empty({B * G * H + H + B * H}, x.options());     // a (B, G·H), tanh(c') (H), m (B, H)
  float* th = a.data_ptr<float>() + B * G * H;
  float* mbuf = th + H;
  QWeight w_hh(q_hh, s_hh, T * B);
  std::optional<QWeight> w_hr;
  if (q_hr) w_hr.emplace(*q_hr, *s_hr, T * B);
  const float *pi = opt_ptr<float>(w_ci), *pf = opt_ptr<float>(w_cf), *po = opt_ptr<float>(w_co);
  float* cs = c.data_ptr<float>();
  const float* h = h0.data_ptr<float>();
  const int64_t I = coupled ? -1 : 0, F = coupled ? 0 : 1, Gg = F + 1, O = F + 2;   // gate blocks
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = reverse ? T - 1 - step : step;
    float* A = a.data_ptr<float>();
    std::copy_n(u.data_ptr<float>() + t * B * G * H, B * G * H, A);
    w_hh.mm(h, B, A, true);
    float* yt = y.data_ptr<float>() + t * B * R;
    float* mt = q_hr ? mbuf : yt;
    for (int64_t b = 0; b < B; ++b) {
      float* ab = A + b * G * H;
      float* cb = cs + b * H;
      float *ai = I >= 0 ? ab + I * H : nullptr, *af = ab + F * H, *ag = ab + Gg * H, *ao = ab + O * H;
      if (pi && ai) for (int64_t j = 0; j < H; ++j) ai[j] += pi[j] * cb[j];
      if (pf) for (int64_t j = 0; j < H; ++j) af[j] += pf[j] * cb[j];
      if (ai) sigmoid_(ai, H);
      sigmoid_(af, H);
      tanh_(ag, ag, H);
      for (int64_t j = 0; j < H; ++j) cb[j] = af[j] * cb[j] + (ai ? ai[j] : 1.f - af[j]) * ag[j];
      if (po) for (int64_t j = 0; j < H; ++j) ao[j] += po[j] * cb[j];
      sigmoid_(ao, H);
      tanh_(cb, th, H);
      float* mb = mt + b * H;
      for (int64_t j = 0; j < H; ++j) mb[j] = ao[j] * th[j];
    }
    if (w_hr) w_hr->mm(mt, B, yt, false);
    h = yt;
  }
  return {y, final_state(h0, y.data_ptr<float>() + (reverse ? 0 : T - 1) * B * R), c};
}

// GRU, one layer-direction over T steps (u = x q_ihᵀ s_ih + b_ih):
//   reset_after:  v = h q_hhᵀ s_hh + b_hh;  r, z = σ(u + v);  n = tanh(u_n + r ⊙ v_n)
//   reset_before: r, z = σ(u + h q_hh[:2H]ᵀ + b_hh);  n = tanh(u_n + (r ⊙ h) q_hh[2H:]ᵀ + b_hn)
//   h' = (1 − z) ⊙ n + z ⊙ h.   Returns (y (T, B, H), h_n (B, H)).
std::tuple<Tensor, Tensor> gru_int8(const Tensor& x, const Tensor& h0, const Tensor& q_ih, const Tensor& s_ih,
                                    const Tensor& q_hh, const Tensor& s_hh, const OT& b_ih, const OT& b_hh,
                                    bool reset_after, bool reverse) {
  check_f(x, "input"); check_f(h0, "h0");
  check_q(q_ih, s_ih, "weight_ih"); check_q(q_hh, s_hh, "weight_hh");
  const int64_t T = x.size(0), B = x.size(1), H = h0.size(-1);
  TORCH_CHECK(q_ih.size(0) == 3 * H && q_hh.size(0) == 3 * H && q_hh.size(1) == H, "gru_int8: weight shapes");
  Tensor u = input_terms(x, q_ih, s_ih, b_ih, std::nullopt);
  Tensor y = at::empty({T, B, H}, x.options()), v = at::empty({B, 4 * H}, x.options());
  float* rhp = v.data_ptr<float>() + 3 * B * H;                 // r ⊙ h, then n: (B, H)
  // reset_before: W_hh's r, z rows and its n rows as two weights
  Tensor q_a = reset_after ? q_hh : q_hh.narrow(0, 0, 2 * H), s_a = reset_after ? s_hh : s_hh.narrow(0, 0, 2 * H);
  Tensor q_n = q_hh.narrow(0, 2 * H, H), s_n = s_hh.narrow(0, 2 * H, H);
  QWeight w_a(q_a, s_a, T * B);
  std::optional<QWeight> w_n;
  if (!reset_after) w_n.emplace(q_n, s_n, T * B);
  const float* bh = opt_ptr<float>(b_hh);
  const float* h = h0.data_ptr<float>();
  const int64_t Wa = reset_after ? 3 * H : 2 * H;
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = reverse ? T - 1 - step : step;
    float* V = v.data_ptr<float>();
    const float* U = u.data_ptr<float>() + t * B * 3 * H;
    float* yt = y.data_ptr<float>() + t * B * H;
    w_a.mm(h, B, V, false);                      // rows (B, Wa) packed with stride Wa
    for (int64_t b = 0; b < B; ++b) {
      float* vb = V + b * Wa;
      const float* ub = U + b * 3 * H;
      if (bh) for (int64_t j = 0; j < Wa; ++j) vb[j] += bh[j];
      float* rz = vb;                            // r, z pre-activations, in place
      for (int64_t j = 0; j < 2 * H; ++j) rz[j] += ub[j];
      sigmoid_(rz, 2 * H);
    }
    if (!reset_after) {                          // (r ⊙ h) W_hnᵀ
      float* R = rhp;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < H; ++j) R[b * H + j] = V[b * Wa + j] * h[b * H + j];
      w_n->mm(R, B, yt, false);                  // yt holds the n term until h' is written
    }
    for (int64_t b = 0; b < B; ++b) {
      const float* vb = V + b * Wa;
      const float* ub = U + b * 3 * H;
      float* yb = yt + b * H;
      float* nb = rhp + b * H;
      for (int64_t j = 0; j < H; ++j)
        nb[j] = ub[2 * H + j] + (reset_after ? vb[j] * vb[2 * H + j] : yb[j] + (bh ? bh[2 * H + j] : 0.f));
      tanh_(nb, nb, H);
      const float* hb = h + b * H;
      for (int64_t j = 0; j < H; ++j) yb[j] = (1.f - vb[H + j]) * nb[j] + vb[H + j] * hb[j];
    }
    h = yt;
  }
  return {y, final_state(h0, y.data_ptr<float>() + (reverse ? 0 : T - 1) * B * H)};
}

// Elman RNN over T steps: h' = act(x q_ihᵀ s_ih + b_ih + h q_hhᵀ s_hh + b_hh), act tanh or relu.
std::tuple<Tensor, Tensor> rnn_int8(const Tensor& x, const Tensor& h0, const Tensor& q_ih, const Tensor& s_ih,
                                    const Tensor& q_hh, const Tensor& s_hh, const OT& b_ih, const OT& b_hh,
                                    bool relu, bool reverse) {
  check_f(x, "input"); check_f(h0, "h0");
  check_q(q_ih, s_ih, "weight_ih"); check_q(q_hh, s_hh, "weight_hh");
  const int64_t T = x.size(0), B = x.size(1), H = h0.size(-1);
  TORCH_CHECK(q_ih.size(0) == H && q_hh.size(0) == H && q_hh.size(1) == H, "rnn_int8: weight shapes");
  Tensor y = input_terms(x, q_ih, s_ih, b_ih, b_hh);          // u, overwritten by h' step by step
  QWeight w_hh(q_hh, s_hh, T * B);
  const float* h = h0.data_ptr<float>();
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = reverse ? T - 1 - step : step;
    float* yt = y.data_ptr<float>() + t * B * H;
    w_hh.mm(h, B, yt, true);
    if (relu) for (int64_t j = 0; j < B * H; ++j) yt[j] = yt[j] > 0.f ? yt[j] : 0.f;
    else tanh_(yt, yt, B * H);
    h = yt;
  }
  return {y, final_state(h0, y.data_ptr<float>() + (reverse ? 0 : T - 1) * B * H)};
}

}  // namespace lstmkit

TORCH_LIBRARY(lstmkit_int8, m) {
  m.def("linear_int8(Tensor x, Tensor q, Tensor s, Tensor? b) -> Tensor", &lstmkit::linear_int8);
  m.def("lstm_int8(Tensor x, Tensor h0, Tensor c0, Tensor q_ih, Tensor s_ih, Tensor q_hh, Tensor s_hh, "
        "Tensor? b_ih, Tensor? b_hh, Tensor? w_ci, Tensor? w_cf, Tensor? w_co, Tensor? q_hr, Tensor? s_hr, "
        "bool coupled, bool reverse) -> (Tensor, Tensor, Tensor)", &lstmkit::lstm_int8);
  m.def("gru_int8(Tensor x, Tensor h0, Tensor q_ih, Tensor s_ih, Tensor q_hh, Tensor s_hh, Tensor? b_ih, "
        "Tensor? b_hh, bool reset_after, bool reverse) -> (Tensor, Tensor)", &lstmkit::gru_int8);
  m.def("rnn_int8(Tensor x, Tensor h0, Tensor q_ih, Tensor s_ih, Tensor q_hh, Tensor s_hh, Tensor? b_ih, "
        "Tensor? b_hh, bool relu, bool reverse) -> (Tensor, Tensor)", &lstmkit::rnn_int8);
}
