// The GRU time loop (both reset_after) in C++ (torch.ops.lstmkit_fused.gru_forward and
// gru_backward): per step the recurrent GEMM(s) and one pass of plain loops over the batch
// rows for the pointwise work.
//
// Same maths, arguments, saved tensors and results as its PyTorch twin, gru_torch.py (the
// argument names are the fields of GRUInputs and GRUSaved there); symbols as in cells/gru.py
// and docs/derivations/gru.md. The weight-gradient GEMMs after the loop stay in Python (gru.py).
//
// Layout: A, u (T, B, 3H) blocks r, z, n; Hs (T+1, B, H) states in time order; slot
// prev(t) = t (+1 reversed), new(t) = t + 1 (t reversed). Yr (T, B, 3H) raw recurrent terms
// and Mu, Rs (T, B, 3, 1) their statistics (layer norm only).
#include "common.h"

namespace lstmkit {

// h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n), from the gate row a = (r, z, n).
template <typename S> inline void blend(const S* a, const S* h, S* hnew, int64_t H) {
  for (int64_t j = 0; j < H; ++j) hnew[j] = a[2 * H + j] + a[H + j] * (h[j] - a[2 * H + j]);
}

// GRU forward, one step per iteration:
//   reset_after:  v = LN(h̃ W_hhᵀ)·γ + b;  r,z = σ(u_rz + v_rz);  n = tanh(u_n + r ⊙ v_n)
//   reset_before: v_rz as above; q = r ⊙ h̃;  v_n = LN(q W_nᵀ)·γ_n + b_n;  n = tanh(u_n + v_n)
//   h' = n + z ⊙ (h − n), then zoneout and padding (settle_row). h̃ = h ⊙ drop.
// pk_a packs W_hh (reset_after) or W_rz, pk_n packs W_n. Returns GRUSaved = [A, Hs, Vn, Yr,
// Mu, Rs]: Vn = v_n (reset_after) or q (reset_before); Yr, Mu, Rs empty without layer norm.
// keep false (no backward, no trace): A, Vn, Yr, Mu, Rs hold the last step only (1, ...),
// which spares the first touch of T steps of fresh memory (page faults).
std::vector<Tensor> gru_forward(const Tensor& u, const Tensor& h0, const Tensor& w_hh,
                                const OT& b_hh, const OT& g_hh, const OT& mask, const OT& keep_h,
                                const OT& drop, const OT& pk_a, const OT& pk_n, bool reset_after,
                                bool reverse, bool keep, double eps) {
  const int64_t T = u.size(0), B = u.size(1), H3 = u.size(2), H = H3 / 3;
  const bool ln = g_hh.has_value(), zone = keep_h.has_value() || mask.has_value();
  Tensor none = u.new_empty({0});
  const int64_t TA = keep ? T : 1;          // steps held in A, Vn, Yr, Mu, Rs
  Tensor A = u.new_empty({TA, B, H3});
  Tensor Hs = u.new_empty({T + 1, B, H}), Vn = u.new_empty({TA, B, H});
  Tensor Yr = ln ? u.new_empty({TA, B, H3}) : none;
  Tensor Mu = ln ? u.new_empty({TA, B, 3, 1}) : none;
  Tensor Rs = ln ? at::empty_like(Mu) : none;
  Hs[reverse ? T : 0].copy_(h0);
  Tensor hin_buf = u.new_empty({B, H}), hn_buf = u.new_empty({B, H});
  Tensor w_rz = w_hh.narrow(0, 0, 2 * H), w_n = w_hh.narrow(0, 2 * H, H);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "gru_forward", [&] {
    using S = scalar_t;
    const S* gh = opt_ptr<S>(g_hh);
    const bool* mk = mask ? mask->data_ptr<bool>() : nullptr;
    Keep<S> kh(keep_h);
    const std::vector<S> zeros(H3, S(0));
    const S* bias = b_hh ? b_hh->data_ptr<S>() : zeros.data();
    const S* u_all = u.data_ptr<S>();
    S* a_all = A.data_ptr<S>(); S* hs = Hs.data_ptr<S>(); S* vn_all = Vn.data_ptr<S>();
    S* yr_all = ln ? Yr.data_ptr<S>() : nullptr;
    S* mu_all = ln ? Mu.data_ptr<S>() : nullptr; S* rs_all = ln ? Rs.data_ptr<S>() : nullptr;
    S* hn = hn_buf.data_ptr<S>();
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = reverse ? T - 1 - step : step;
      const int64_t tp = reverse ? t + 1 : t, tn = reverse ? t : t + 1;
      Tensor hp = Hs[tp];
      Tensor hin = drop ? at::mul_out(hin_buf, hp, *drop) : hp;
      const S* hp_all = hs + tp * B * H; const S* hin_all = hin.data_ptr<S>();
      S* h_dst = zone ? hn : hs + tn * B * H;
      const int64_t ta = keep ? t : 0;          // A's step
      const int64_t ou = t * B * H3, o3 = ta * B * H3, o1 = ta * B * H;
      // v = LN(y)·γ + b over n_gates blocks from gate g0 (or y + b), row b; saves y and its stats
      auto recurrent = [&](const S* y, int64_t b, int64_t g0, int64_t n_gates, S* v) {
        if (ln) {
          std::copy(y, y + n_gates * H, yr_all + o3 + b * H3 + g0 * H);
          ln_rows<S>(y, bias + g0 * H, gh + g0 * H, v, mu_all + (ta * B + b) * 3 + g0,
                     rs_all + (ta * B + b) * 3 + g0, 1, n_gates, H, eps);
        } else {
          for (int64_t j = 0; j < n_gates * H; ++j) v[j] = y[j] + bias[g0 * H + j];
        }
      };
      if (reset_after) {
        Tensor y_t = gemm(hin, w_hh, pk_a);   // h̃ W_hhᵀ (B, 3H)
        const S* y_p = y_t.data_ptr<S>();
        at::parallel_for(0, B, row_grain(H3), [&](int64_t b0, int64_t b1) {
          std::vector<S> v(H3);
          for (int64_t b = b0; b < b1; ++b) {
            const S* ur = u_all + ou + b * H3; S* a = a_all + o3 + b * H3;
            recurrent(y_p + b * H3, b, 0, 3, v.data());
            for (int64_t j = 0; j < 2 * H; ++j) a[j] = ur[j] + v[j];
            sigmoid_(a, 2 * H);                // r, z
            S* vn = vn_all + o1 + b * H;
            for (int64_t j = 0; j < H; ++j) {
              vn[j] = v[2 * H + j];
              a[2 * H + j] = ur[2 * H + j] + a[j] * vn[j];
            }
            tanh_(a + 2 * H, a + 2 * H, H);    // n
            const S* h = hp_all + b * H; S* hnew = h_dst + b * H;
            blend(a, h, hnew, H);
          }
        });
      } else {
        Tensor y_t = gemm(hin, w_rz, pk_a);   // h̃ W_rzᵀ (B, 2H)
        const S* y_p = y_t.data_ptr<S>();
        at::parallel_for(0, B, row_grain(H3), [&](int64_t b0, int64_t b1) {
          std::vector<S> v(2 * H);
          for (int64_t b = b0; b < b1; ++b) {
            const S* ur = u_all + ou + b * H3; S* a = a_all + o3 + b * H3;
            recurrent(y_p + b * 2 * H, b, 0, 2, v.data());
            for (int64_t j = 0; j < 2 * H; ++j) a[j] = ur[j] + v[j];
            sigmoid_(a, 2 * H);                // r, z
            const S* hi = hin_all + b * H; S* q = vn_all + o1 + b * H;
            for (int64_t j = 0; j < H; ++j) q[j] = a[j] * hi[j];
          }
        });
        Tensor y2_t = gemm(Vn[ta], w_n, pk_n); // q W_nᵀ (B, H)
        const S* y2_p = y2_t.data_ptr<S>();
        at::parallel_for(0, B, row_grain(H3), [&](int64_t b0, int64_t b1) {
          std::vector<S> v(H);
          for (int64_t b = b0; b < b1; ++b) {
            const S* ur = u_all + ou + b * H3; S* a = a_all + o3 + b * H3;
            recurrent(y2_p + b * H, b, 2, 1, v.data());
            for (int64_t j = 0; j < H; ++j) a[2 * H + j] = ur[2 * H + j] + v[j];
            tanh_(a + 2 * H, a + 2 * H, H);    // n
            const S* h = hp_all + b * H; S* hnew = h_dst + b * H;
            blend(a, h, hnew, H);
          }
        });
      }
      if (!zone) continue;
      S* hset = hs + tn * B * H;
      for (int64_t b = 0; b < B; ++b)          // zoneout, then padding
        settle_row(hp_all + b * H, hn + b * H, kh, t, b, H, !mk || mk[t * B + b], hset + b * H);
    }
  });
  return {A, Hs, Vn, Yr, Mu, Rs};
}

// GRU backward, time reversed (docs/derivations/gru.md):
//   dn = dhn ⊙ (1 − z),  dz = dhn ⊙ (h − n),  dh_pass = dhn ⊙ z,  da_n = dn ⊙ (1 − n²)
//   reset_after:  dr = da_n ⊙ v_n, dv_n = da_n ⊙ r;  dv = (da_r, da_z, dv_n);  dh̃ = dy W_hh
//   reset_before: dy_n = LN_backward(da_n ⊙ γ_n);  dq = dy_n W_n;  dr = dq ⊙ h̃;
//                 dh̃ = dy_rz W_rz + dq ⊙ r
//   da_r = dr ⊙ r(1 − r),  da_z = dz ⊙ z(1 − z);  dh = dh_pass + dh_prev + dh̃ ⊙ drop
// w_aT = W_hhᵀ (reset_after) or W_rzᵀ, w_nT = W_nᵀ (contiguous), pk_* their packings.
// Returns GRULoopGrads = [dA, dVn, dY, dh0]: dVn (T, B, H) = dv_n (reset_after; else empty:
// dv = du), dY the pre-LN recurrent terms (layer norm; else empty: dY = dv). dv = (da_r, da_z,
// dv_n) itself is not stored over T: it differs from dA in one block, and fresh memory costs
// page faults.
std::vector<Tensor> gru_backward(
    const Tensor& A, const Tensor& Hs, const Tensor& Vn, const OT& Yr, const OT& Mu,
    const OT& Rs, const OT& g_hh, const OT& mask, const OT& keep_h, const OT& drop,
    const OT& gY, const OT& ghT, const Tensor& w_aT, const OT& pk_aT, const OT& w_nT,
    const OT& pk_nT, bool reset_after, bool reverse) {
  const int64_t T = A.size(0), B = A.size(1), H3 = A.size(2), H = H3 / 3;
  const bool ln = g_hh.has_value();
  Tensor none = A.new_empty({0});
  Tensor dA = at::empty_like(A);
  Tensor dVn = reset_after ? A.new_empty({T, B, H}) : none;
  Tensor dY = ln ? at::empty_like(A) : none;
  Tensor dh = ghT ? ghT->clone() : A.new_zeros({B, H});
  Tensor dhp_buf = A.new_empty({B, H});       // dh_pass + dh_prev: the part without a GEMM
  Tensor dyn_buf = A.new_empty({B, H}), dyrz_buf = A.new_empty({B, 2 * H});
  Tensor dv_buf = A.new_empty({B, H3});       // dv of one step (reset_after)
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "gru_backward", [&] {
    using S = scalar_t;
    const S* gh = opt_ptr<S>(g_hh); const S* dr = opt_ptr<S>(drop); const S* gy = opt_ptr<S>(gY);
    const bool* mk = mask ? mask->data_ptr<bool>() : nullptr;
    Keep<S> kh(keep_h);
    const bool zone = mk || kh.on();
    const S* a_all = A.data_ptr<S>(); const S* hs = Hs.data_ptr<S>(); const S* vn_all = Vn.data_ptr<S>();
    const S* yr_all = opt_ptr<S>(Yr); const S* mu_all = opt_ptr<S>(Mu); const S* rs_all = opt_ptr<S>(Rs);
    S* da_all = dA.data_ptr<S>(); S* dvn_all = reset_after ? dVn.data_ptr<S>() : nullptr;
    S* dy_all = ln ? dY.data_ptr<S>() : nullptr;
    S* dh_p = dh.data_ptr<S>(); S* dhp = dhp_buf.data_ptr<S>();
    S* dyn = dyn_buf.data_ptr<S>(); S* dyrz = dyrz_buf.data_ptr<S>(); S* dv_p = dv_buf.data_ptr<S>();
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = reverse ? step : T - 1 - step;
      const int64_t tp = reverse ? t + 1 : t;
      const int64_t o3 = t * B * H3, o1 = t * B * H;
      const S* hp_all = hs + tp * B * H;
      // dh += gY[t]; unsettle: dhn, dh_prev; then the gates' derivatives that need no GEMM
      auto gates_z_n = [&](int64_t b, S* dhn) {
        const bool live = !mk || mk[t * B + b];
        S* dhr = dh_p + b * H;
        if (gy && live) for (int64_t j = 0; j < H; ++j) dhr[j] += gy[o1 + b * H + j];
        unsettle_row(dhr, kh, t, b, H, live, zone, dhn, dhp + b * H);
        const S* a = a_all + o3 + b * H3; S* da = da_all + o3 + b * H3;
        const S* h = hp_all + b * H; S* dpass = dhp + b * H;
        for (int64_t j = 0; j < H; ++j) {
          const S z = a[H + j], n = a[2 * H + j];
          const S dz = dhn[j] * (h[j] - n);
          dpass[j] += dhn[j] * z;
          da[H + j] = dz * z * (S(1) - z);
          da[2 * H + j] = dhn[j] * (S(1) - z) * (S(1) - n * n);
        }
      };
      if (reset_after) {
        at::parallel_for(0, B, row_grain(H3), [&](int64_t b0, int64_t b1) {
          std::vector<S> dhn(H);
          for (int64_t b = b0; b < b1; ++b) {
            gates_z_n(b, dhn.data());
            const S* a = a_all + o3 + b * H3; S* da = da_all + o3 + b * H3;
            const S* vn = vn_all + o1 + b * H; S* dv = dv_p + b * H3; S* dvn = dvn_all + o1 + b * H;
            for (int64_t j = 0; j < H; ++j) {
              const S r = a[j], dan = da[2 * H + j];
              da[j] = dan * vn[j] * r * (S(1) - r);
              dv[j] = da[j];
              dv[H + j] = da[H + j];
              dv[2 * H + j] = dvn[j] = dan * r;
            }
            if (ln)
              ln_rows_backward<S>(dv, gh, yr_all + o3 + b * H3, mu_all + (t * B + b) * 3,
                                  rs_all + (t * B + b) * 3, dy_all + o3 + b * H3, 1, 3, H);
          }
        });
        Tensor dhin_t = gemm(ln ? dY[t] : dv_buf, w_aT, pk_aT);   // dh̃ = dy W_hh
        const S* dhin = dhin_t.data_ptr<S>();
        for (int64_t k = 0; k < B * H; ++k) dh_p[k] = dhp[k] + (dr ? dhin[k] * dr[k] : dhin[k]);
      } else {
        at::parallel_for(0, B, row_grain(H3), [&](int64_t b0, int64_t b1) {
          std::vector<S> dhn(H);
          for (int64_t b = b0; b < b1; ++b) {
            gates_z_n(b, dhn.data());
            S* da = da_all + o3 + b * H3;
            if (ln) {
              S* dyr = dy_all + o3 + b * H3 + 2 * H;
              ln_rows_backward<S>(da + 2 * H, gh + 2 * H, yr_all + o3 + b * H3 + 2 * H,
                                  mu_all + (t * B + b) * 3 + 2, rs_all + (t * B + b) * 3 + 2, dyr, 1, 1, H);
              std::copy(dyr, dyr + H, dyn + b * H);
            } else {
              std::copy(da + 2 * H, da + 3 * H, dyn + b * H);
            }
          }
        });
        Tensor dq_t = gemm(dyn_buf, *w_nT, pk_nT);              // dq = dy_n W_n
        const S* dq = dq_t.data_ptr<S>();
        at::parallel_for(0, B, row_grain(H3), [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b) {
            const S* a = a_all + o3 + b * H3; S* da = da_all + o3 + b * H3;
            const S* h = hp_all + b * H;
            for (int64_t j = 0; j < H; ++j) {
              const S r = a[j], hin = dr ? h[j] * dr[b * H + j] : h[j];
              da[j] = dq[b * H + j] * hin * r * (S(1) - r);
            }
            if (ln) {
              S* dyr = dy_all + o3 + b * H3;
              ln_rows_backward<S>(da, gh, yr_all + o3 + b * H3, mu_all + (t * B + b) * 3,
                                  rs_all + (t * B + b) * 3, dyr, 1, 2, H);
              std::copy(dyr, dyr + 2 * H, dyrz + b * 2 * H);
            } else {
              std::copy(da, da + 2 * H, dyrz + b * 2 * H);
            }
          }
        });
        Tensor g_t = gemm(dyrz_buf, w_aT, pk_aT);               // dy_rz W_rz
        const S* g = g_t.data_ptr<S>();
        for (int64_t b = 0; b < B; ++b) {
          const S* a = a_all + o3 + b * H3;
          for (int64_t j = 0; j < H; ++j) {
            const int64_t k = b * H + j;
            const S dhin = g[k] + dq[k] * a[j];
            dh_p[k] = dhp[k] + (dr ? dhin * dr[k] : dhin);
          }
        }
      }
    }
  });
  return {dA, dVn, dY, dh};
}

}  // namespace lstmkit

// Named arguments: Python passes them by name (the fields of gru_torch.GRUInputs, GRUSaved).
TORCH_LIBRARY_FRAGMENT(lstmkit_fused, m) {
  m.def("gru_forward(Tensor u, Tensor h0, Tensor w_hh, Tensor? b_hh, Tensor? g_hh, Tensor? mask, "
        "Tensor? keep_h, Tensor? drop, Tensor? pk_a, Tensor? pk_n, bool reset_after, bool reverse, "
        "bool keep, float eps) -> Tensor[]",
        &lstmkit::gru_forward);
  m.def("gru_backward(Tensor A, Tensor Hs, Tensor Vn, Tensor? Yr, Tensor? Mu, Tensor? Rs, "
        "Tensor? g_hh, Tensor? mask, Tensor? keep_h, Tensor? drop, Tensor? gY, Tensor? ghT, "
        "Tensor w_aT, Tensor? pk_aT, Tensor? w_nT, Tensor? pk_nT, bool reset_after, "
        "bool reverse) -> Tensor[]",
        &lstmkit::gru_backward);
}
