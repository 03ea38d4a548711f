// The Elman RNN time loop in C++ (torch.ops.lstmkit_fused.rnn_forward and rnn_backward):
// per step one GEMM and one pass of plain loops over the batch rows.
//
// Same maths, arguments, saved tensors and results as its PyTorch twin, rnn_torch.py (the
// argument names are the fields of RNNInputs and RNNSaved there); symbols as in cells/rnn.py
// and docs/derivations/rnn.md. dW_hh after the loop stays in Python (rnn.py).
//
// Layout: u (T, B, H); Hs (T+1, B, H) states in time order; slot prev(t) = t (+1 reversed),
// new(t) = t + 1 (t reversed).
#include "common.h"

namespace lstmkit {

// Elman RNN forward: h' = act(u + h W_hhᵀ) (b_hh folded into u), then padding.
// Returns RNNSaved = [Hs, An]: An (T, B, H) h' before padding (mask only; else empty).
std::vector<Tensor> rnn_forward(const Tensor& u, const Tensor& h0, const Tensor& w_hh,
                                const OT& mask, const OT& pk, bool relu, bool reverse) {
  const int64_t T = u.size(0), B = u.size(1), H = u.size(2);
  Tensor Hs = u.new_empty({T + 1, B, H});
  Tensor An = mask ? u.new_empty({T, B, H}) : u.new_empty({0});
  Hs[reverse ? T : 0].copy_(h0);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "rnn_forward", [&] {
    using S = scalar_t;
    const bool* mk = mask ? mask->data_ptr<bool>() : nullptr;
    const S* u_all = u.data_ptr<S>();
    S* hs = Hs.data_ptr<S>(); S* an_all = mk ? An.data_ptr<S>() : nullptr;
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = reverse ? T - 1 - step : step;
      const int64_t tp = reverse ? t + 1 : t, tn = reverse ? t : t + 1;
      Tensor y_t = gemm(Hs[tp], w_hh, pk);    // h W_hhᵀ
      const S* y = y_t.data_ptr<S>();
      const S* ur = u_all + t * B * H; const S* hp = hs + tp * B * H;
      S* hn = mk ? an_all + t * B * H : hs + tn * B * H;
      at::parallel_for(0, B, row_grain(H), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          S* h = hn + b * H;
          for (int64_t j = 0; j < H; ++j) h[j] = ur[b * H + j] + y[b * H + j];
          if (relu) for (int64_t j = 0; j < H; ++j) h[j] = h[j] > S(0) ? h[j] : S(0);
          else tanh_(h, h, H);
        }
      });
      if (!mk) continue;
      S* hset = hs + tn * B * H;
      for (int64_t b = 0; b < B; ++b) {        // padding: h⁺ = where(mask, h', h)
        const S* src = mk[t * B + b] ? hn + b * H : hp + b * H;
        std::copy(src, src + H, hset + b * H);
      }
    }
  });
  return {Hs, An};
}

// Elman RNN backward: dhn = mf ⊙ dh; da = dhn ⊙ (1 − h'²) (tanh) or dhn ⊙ [h' > 0] (relu);
// dh = da W_hh + (1 − mf) ⊙ dh. w_hhT = W_hhᵀ (contiguous), pk its packing. Returns RNNLoopGrads = [dA, dh0].
std::vector<Tensor> rnn_backward(const Tensor& Hs, const OT& An, const OT& mask, const OT& gY,
                                 const OT& ghT, const Tensor& w_hhT, const OT& pk, bool relu,
                                 bool reverse) {
  const int64_t T = Hs.size(0) - 1, B = Hs.size(1), H = Hs.size(2);
  Tensor dA = Hs.new_empty({T, B, H});
  Tensor dh = ghT ? ghT->clone() : Hs.new_zeros({B, H});
  Tensor dhp_buf = Hs.new_zeros({B, H});
  AT_DISPATCH_FLOATING_TYPES(Hs.scalar_type(), "rnn_backward", [&] {
    using S = scalar_t;
    const bool* mk = mask ? mask->data_ptr<bool>() : nullptr;
    const S* gy = opt_ptr<S>(gY);
    const S* hs = Hs.data_ptr<S>(); const S* an_all = mk ? An->data_ptr<S>() : nullptr;
    S* da_all = dA.data_ptr<S>(); S* dh_p = dh.data_ptr<S>(); S* dhp = dhp_buf.data_ptr<S>();
    const Keep<S> none{OT()};
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = reverse ? step : T - 1 - step;
      const int64_t tn = reverse ? t : t + 1;
      const S* hn_all = mk ? an_all + t * B * H : hs + tn * B * H;
      at::parallel_for(0, B, row_grain(H), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const bool live = !mk || mk[t * B + b];
          S* dhr = dh_p + b * H; S* da = da_all + (t * B + b) * H;
          if (gy && live) for (int64_t j = 0; j < H; ++j) dhr[j] += gy[(t * B + b) * H + j];
          unsettle_row(dhr, none, t, b, H, live, mk != nullptr, da, dhp + b * H);
          const S* h = hn_all + b * H;
          if (relu) for (int64_t j = 0; j < H; ++j) da[j] = h[j] > S(0) ? da[j] : S(0);
          else for (int64_t j = 0; j < H; ++j) da[j] *= S(1) - h[j] * h[j];
        }
      });
      Tensor dhin_t = gemm(dA[t], w_hhT, pk); // da W_hh
      const S* dhin = dhin_t.data_ptr<S>();
      for (int64_t k = 0; k < B * H; ++k) dh_p[k] = dhin[k] + dhp[k];
    }
  });
  return {dA, dh};
}

}  // namespace lstmkit

// Named arguments: Python passes them by name (the fields of rnn_torch.RNNInputs, RNNSaved).
TORCH_LIBRARY_FRAGMENT(lstmkit_fused, m) {
  m.def("rnn_forward(Tensor u, Tensor h0, Tensor w_hh, Tensor? mask, Tensor? pk, bool relu, "
        "bool reverse) -> Tensor[]",
        &lstmkit::rnn_forward);
  m.def("rnn_backward(Tensor Hs, Tensor? An, Tensor? mask, Tensor? gY, Tensor? ghT, Tensor w_hhT, "
        "Tensor? pk, bool relu, bool reverse) -> Tensor[]",
        &lstmkit::rnn_backward);
}
