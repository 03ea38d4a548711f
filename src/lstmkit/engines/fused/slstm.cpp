// The sLSTM time loop in C++ (torch.ops.lstmkit_slstm.slstm_forward and slstm_backward):
// per step one batched GEMM over the heads (h_j R_jᵀ for each head j: the block-diagonal R
// without its zeros) and one pass of SIMD loops over the batch rows.
//
// Same maths, arguments, saved tensors and results as its PyTorch twin, slstm_torch.py (the
// argument names are the fields of SLSTMInputs and SLSTMSaved there); symbols as in
// cells/xlstm.py and docs/derivations/slstm.md. dW_hh after the loop stays in Python (slstm.py).
//
// Layout: u, A (T, B, 4H) gate blocks i, f, g, o, each head-major (unit n·d + j of a block is
// head n's unit j); Hs, Cs, Ns, Ms (T+1, B, H), the initial state at slot 0; step t reads slot t
// and writes slot t + 1. w (NH, d, 4d): w[n, k, g·d + j] = R_n[g·d + j, k]; wT (NH, 4d, d).
#include "common.h"

namespace lstmkit {

template <typename S> using Vec = at::vec::Vectorized<S>;

// log σ(x) = min(x, 0) − log1p(e^{−|x|}) (torch's logsigmoid); σ(x) = 1 / (1 + e^{−x}).
template <typename S> inline Vec<S> log_sigmoid_v(const Vec<S>& x) {
  return at::vec::minimum(x, Vec<S>(S(0))) - x.abs().neg().exp().log1p();
}
template <typename S> inline Vec<S> sigmoid_v(const Vec<S>& x) {
  return Vec<S>(S(1)) / (Vec<S>(S(1)) + x.neg().exp());
}

// One step's gates from a = (ĩ, f̃, g̃, o) rows and the old m, lanes j … j+k of a row:
// lfm = log f + m, m' = max(lfm, ĩ), i' = e^{ĩ − m'}, f' = e^{lfm − m'}, z = tanh g̃, o = σ(õ).
template <typename S> struct Gates {
  Vec<S> it, ft, lfm, mn, i, f, z, o;
  Gates(const S* a, const S* m, int64_t H, int64_t j, int64_t k, bool exp_forget) {
    it = Vec<S>::loadu(a + j, k); ft = Vec<S>::loadu(a + H + j, k);
    const Vec<S> gt = Vec<S>::loadu(a + 2 * H + j, k), ot = Vec<S>::loadu(a + 3 * H + j, k);
    lfm = (exp_forget ? ft : log_sigmoid_v(ft)) + Vec<S>::loadu(m + j, k);
    mn = at::vec::maximum(lfm, it);
    i = (it - mn).exp(); f = (lfm - mn).exp();
    z = tanh_v(gt); o = sigmoid_v(ot);
  }
};

// sLSTM forward: a = u + R h (per head); m' = max(log f + m, ĩ); c' = f' c + i' z; n' = f' n + i';
// h' = o c'/n'; padded rows keep the old state. Returns SLSTMSaved = [A, Hs, Cs, Ns, Ms].
std::vector<Tensor> slstm_forward(const Tensor& u, const Tensor& h0, const Tensor& c0, const Tensor& n0,
                                  const Tensor& m0, const Tensor& w, const OT& mask, bool exp_forget) {
  const int64_t T = u.size(0), B = u.size(1), G = u.size(2), H = G / 4, NH = w.size(0), d = w.size(1);
  Tensor A = u.new_empty({T, B, G});
  Tensor Hs = u.new_empty({T + 1, B, H}), Cs = u.new_empty({T + 1, B, H});
  Tensor Ns = u.new_empty({T + 1, B, H}), Ms = u.new_empty({T + 1, B, H});
  Hs[0].copy_(h0); Cs[0].copy_(c0); Ns[0].copy_(n0); Ms[0].copy_(m0);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "slstm_forward", [&] {
    using S = scalar_t;
    constexpr int64_t L = Vec<S>::size();
    const bool* mk = mask ? mask->data_ptr<bool>() : nullptr;
    const S* u_all = u.data_ptr<S>();
    S* a_all = A.data_ptr<S>();
    S* hs = Hs.data_ptr<S>(); S* cs = Cs.data_ptr<S>(); S* ns = Ns.data_ptr<S>(); S* ms = Ms.data_ptr<S>();
    for (int64_t t = 0; t < T; ++t) {
      Tensor y_t = at::bmm(Hs[t].view({B, NH, d}).transpose(0, 1), w);   // (NH, B, 4d): h_n R_nᵀ
      const S* y = y_t.data_ptr<S>();
      at::parallel_for(0, B, row_grain(G), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t p = (t * B + b) * H, q = ((t + 1) * B + b) * H;
          if (mk && !mk[t * B + b]) {          // padding: the state as it was
            std::copy(hs + p, hs + p + H, hs + q); std::copy(cs + p, cs + p + H, cs + q);
            std::copy(ns + p, ns + p + H, ns + q); std::copy(ms + p, ms + p + H, ms + q);
          }
          S* a = a_all + (t * B + b) * G;
          const S* ur = u_all + (t * B + b) * G;
          for (int64_t g = 0; g < 4; ++g)
            for (int64_t n = 0; n < NH; ++n) {
              const S* yr = y + (n * B + b) * 4 * d + g * d;
              const int64_t o = g * H + n * d;
              for (int64_t j = 0; j < d; ++j) a[o + j] = ur[o + j] + yr[j];
            }
          if (mk && !mk[t * B + b]) continue;
          for (int64_t j = 0; j < H; j += L) {
            const int64_t k = std::min(L, H - j);
            Gates<S> g(a, ms + p, H, j, k, exp_forget);
            const Vec<S> c = g.f * Vec<S>::loadu(cs + p + j, k) + g.i * g.z;
            const Vec<S> n = g.f * Vec<S>::loadu(ns + p + j, k) + g.i;
            c.store(cs + q + j, k); n.store(ns + q + j, k); g.mn.store(ms + q + j, k);
            (g.o * c / n).store(hs + q + j, k);
          }
        }
      });
    }
  });
  return {A, Hs, Cs, Ns, Ms};
}

// sLSTM backward (docs/derivations/slstm.md), last step first. Per live row, with dh, dc, dn, dm
// the gradients of the new state (dh plus the output's gY):
//   dõ = dh h̃ o(1 − o); dh̃ = dh o; dc += dh̃/n'; dn −= dh̃ h̃/n'
//   df' = dc c + dn n; di' = dc z + dn; dg̃ = dc i' (1 − z²)
//   dĩ = di' i'; dlf = df' f'; dm −= dĩ + dlf; then m' = max(lfm, ĩ) routes dm (½ each on a tie)
//   df̃ = dlf σ(−f̃) (sigmoid) or dlf (exp); old state: dh = Rᵀ da (per head), dc f', dn f', dlf
// Padded rows pass the state's gradient through.
// Returns SLSTMLoopGrads = [dA, dh0, dc0, dn0, dm0].
std::vector<Tensor> slstm_backward(const Tensor& A, const Tensor& Hs, const Tensor& Cs, const Tensor& Ns,
                                   const Tensor& Ms, const OT& mask, const OT& gY, const OT& ghT, const OT& gcT,
                                   const OT& gnT, const OT& gmT, const Tensor& wT, bool exp_forget) {
  const int64_t T = A.size(0), B = A.size(1), G = A.size(2), H = G / 4, NH = wT.size(0), d = wT.size(2);
  Tensor dA = A.new_empty({T, B, G});
  Tensor dh = ghT ? ghT->clone() : Hs.new_zeros({B, H});
  Tensor dc = gcT ? gcT->clone() : Hs.new_zeros({B, H});
  Tensor dn = gnT ? gnT->clone() : Hs.new_zeros({B, H});
  Tensor dm = gmT ? gmT->clone() : Hs.new_zeros({B, H});
  Tensor keep_buf = Hs.new_zeros({B, H});
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "slstm_backward", [&] {
    using S = scalar_t;
    using V = Vec<S>;
    constexpr int64_t L = V::size();
    const bool* mk = mask ? mask->data_ptr<bool>() : nullptr;
    const S* gy = opt_ptr<S>(gY);
    const S* a_all = A.data_ptr<S>(); const S* cs = Cs.data_ptr<S>(); const S* ns = Ns.data_ptr<S>();
    const S* ms = Ms.data_ptr<S>();
    S* da_all = dA.data_ptr<S>(); S* dh_p = dh.data_ptr<S>(); S* dc_p = dc.data_ptr<S>();
    S* dn_p = dn.data_ptr<S>(); S* dm_p = dm.data_ptr<S>(); S* keep = keep_buf.data_ptr<S>();
    const V one(S(1)), zero(S(0)), half(S(0.5));
    for (int64_t t = T - 1; t >= 0; --t) {
      at::parallel_for(0, B, row_grain(G), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          S* da = da_all + (t * B + b) * G;
          S *dhr = dh_p + b * H, *dcr = dc_p + b * H, *dnr = dn_p + b * H, *dmr = dm_p + b * H;
          if (mk && !mk[t * B + b]) {          // padding: da = 0, the state's gradient passes
            std::fill(da, da + G, S(0));
            std::copy(dhr, dhr + H, keep + b * H);
            continue;
          }
          std::fill(keep + b * H, keep + (b + 1) * H, S(0));
          const S* a = a_all + (t * B + b) * G;
          const int64_t p = (t * B + b) * H;
          for (int64_t j = 0; j < H; j += L) {
            const int64_t k = std::min(L, H - j);
            Gates<S> g(a, ms + p, H, j, k, exp_forget);
            const V c = V::loadu(cs + p + j, k), n = V::loadu(ns + p + j, k);
            const V cn = g.f * c + g.i * g.z, nn = g.f * n + g.i, ht = cn / nn;
            V dhv = V::loadu(dhr + j, k);
            if (gy) dhv = dhv + V::loadu(gy + (t * B + b) * H + j, k);
            const V dht = dhv * g.o;
            const V dcv = V::loadu(dcr + j, k) + dht / nn;
            const V dnv = V::loadu(dnr + j, k) - dht * ht / nn;
            const V df = dcv * c + dnv * n, di = dcv * g.z + dnv;
            const V dg = dcv * g.i * (one - g.z * g.z);
            V di_t = di * g.i, dlf = df * g.f;
            const V dmn = V::loadu(dmr + j, k) - di_t - dlf;
            const V first = V::blendv(zero, one, g.lfm > g.it) + V::blendv(zero, half, g.lfm == g.it);
            const V dm_prev = dlf + dmn * first;
            dlf = dlf + dmn * first;
            di_t = di_t + dmn * (one - first);
            const V dft = exp_forget ? dlf : dlf * sigmoid_v(g.ft.neg());
            di_t.store(da + j, k); dft.store(da + H + j, k); dg.store(da + 2 * H + j, k);
            (dhv * ht * g.o * (one - g.o)).store(da + 3 * H + j, k);
            (dcv * g.f).store(dcr + j, k); (dnv * g.f).store(dnr + j, k); dm_prev.store(dmr + j, k);
          }
        }
      });
      Tensor da_heads = dA[t].view({B, 4, NH, d}).permute({2, 0, 1, 3}).reshape({NH, B, 4 * d});
      Tensor dhin_t = at::bmm(da_heads, wT).transpose(0, 1).contiguous();  // (B, NH, d): da_n R_n
      const S* dhin = dhin_t.data_ptr<S>();
      for (int64_t i = 0; i < B * H; ++i) dh_p[i] = dhin[i] + keep[i];
    }
  });
  return {dA, dh, dc, dn, dm};
}

}  // namespace lstmkit

// Named arguments: Python passes them by name (the fields of slstm_torch.SLSTMInputs, SLSTMSaved).
TORCH_LIBRARY_FRAGMENT(lstmkit_slstm, m) {
  m.def("slstm_forward(Tensor u, Tensor h0, Tensor c0, Tensor n0, Tensor m0, Tensor w, Tensor? mask, "
        "bool exp_forget) -> Tensor[]",
        &lstmkit::slstm_forward);
  m.def("slstm_backward(Tensor A, Tensor Hs, Tensor Cs, Tensor Ns, Tensor Ms, Tensor? mask, Tensor? gY, "
        "Tensor? ghT, Tensor? gcT, Tensor? gnT, Tensor? gmT, Tensor wT, bool exp_forget) -> Tensor[]",
        &lstmkit::slstm_backward);
}
