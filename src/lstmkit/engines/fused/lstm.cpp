// The LSTM family's whole time loop in C++ (torch.ops.lstmkit_fused.lstm_forward and
// lstm_backward): per step one GEMM and one pass of plain loops over the batch rows for every
// pointwise operation, forward and backward.
//
// Same maths, arguments, saved tensors and results as its PyTorch twin, lstm_torch.py
// (``forward`` and ``backward``; the argument names are the fields of LSTMInputs and
// LSTMSaved there), which the tests compare it to besides the reference engine. Symbols as
// in cells/lstm.py and docs/derivations/lstm.md. The large weight-gradient GEMMs after the
// loop stay in Python (lstm.py).
//
// Layout: A, u (T, B, G·H) gate blocks in spec.gates order; Hs (T+1, B, R), Cs (T+1, B, H)
// states in time order; slot prev(t) = t (+1 reversed), new(t) = t + 1 (t reversed).
#include "common.h"

namespace lstmkit {

// The sizes of a call and where each gate's block sits in a row of A.
struct LstmDims {
  int64_t T, B, H, R, GH;
  int ki, kf, kg, ko;              // gate block index, -1 when the gate has no rows
};

static LstmDims make_dims(const Tensor& u, const Tensor& h0, const Tensor& c0, const std::string& gates) {
  LstmDims c{u.size(0), u.size(1), c0.size(-1), h0.size(-1), u.size(2), -1, -1, -1, -1};
  for (int k = 0; k < static_cast<int>(gates.size()); ++k) {
    char l = gates[k];
    (l == 'i' ? c.ki : l == 'f' ? c.kf : l == 'g' ? c.kg : c.ko) = k;
  }
  return c;
}

// The optional per-unit weights as raw pointers (null when absent): peepholes w_ci, w_cf,
// w_co; LN gains γ_c, γ_hh and shift β_c; the depth gate's w_cd, w_ld.
template <typename S> struct UnitWeights {
  const S *wci, *wcf, *wco, *gc, *bc, *ghh, *wcd, *wld;
  UnitWeights(const OT& w_ci, const OT& w_cf, const OT& w_co, const OT& g_c, const OT& b_c,
              const OT& g_hh, const OT& w_cd, const OT& w_ld)
      : wci(opt_ptr<S>(w_ci)), wcf(opt_ptr<S>(w_cf)), wco(opt_ptr<S>(w_co)), gc(opt_ptr<S>(g_c)),
        bc(opt_ptr<S>(b_c)), ghh(opt_ptr<S>(g_hh)), wcd(opt_ptr<S>(w_cd)), wld(opt_ptr<S>(w_ld)) {}
};

// Forward. Returns LSTMSaved = [A, Hs, Cs, Cn, M, Ds, Yr, Mu, Rs]; absent ones are empty
// tensors. A is u, overwritten. Without keep (no backward and no trace to follow) Cn, M, Ds,
// Yr, Mu, Rs hold one step, reused.
std::vector<Tensor> lstm_forward(
    const Tensor& u, const OT& bias, const OT& xd, const OT& c_low, const Tensor& h0, const Tensor& c0,
    const Tensor& w_hh, const OT& g_hh, const OT& w_ci, const OT& w_cf, const OT& w_co,
    const OT& g_c, const OT& b_c, const OT& w_hr, const OT& w_cd, const OT& w_ld,
    const OT& mask, const OT& keep_c, const OT& keep_h, const OT& drop, const OT& pk_hh,
    const OT& pk_hr, const std::string& gates, bool coupled, bool niaf, bool noaf, bool reverse,
    bool keep, double eps) {
  const LstmDims c = make_dims(u, h0, c0, gates);
  const int64_t T = c.T, B = c.B, H = c.H, R = c.R, GH = c.GH, G = GH / H;
  const bool ln = g_hh.has_value(), proj = w_hr.has_value(), depth = xd.has_value();
  const bool zone = keep_c.has_value() || keep_h.has_value() || mask.has_value();
  const int64_t TK = keep ? T : 1;           // steps kept: all for a backward or a trace
  // the gates overwrite u, row by row after reading it (the caller marks u dirty): one
  // (T, B, G·H) buffer fewer to allocate and to fault in
  Tensor A = u;
  Tensor Hs = u.new_empty({T + 1, B, R}), Cs = u.new_empty({T + 1, B, H});
  Tensor none = u.new_empty({0});
  Tensor Cn = keep_c ? u.new_empty({TK, B, H}) : none;
  Tensor M = proj ? u.new_empty({TK, B, H}) : none;
  Tensor Ds = depth ? u.new_empty({TK, B, H}) : none;
  Tensor Yr = ln ? u.new_empty({TK, B, GH}) : none;
  Tensor Mu = ln ? u.new_empty({TK, B, G, 1}) : none;
  Tensor Rs = ln ? at::empty_like(Mu) : none;
  const int64_t first = reverse ? T : 0;
  Hs[first].copy_(h0);
  Cs[first].copy_(c0);
  Tensor hin_buf = u.new_empty({B, R}), hn_buf = u.new_empty({B, R});
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "lstm_forward", [&] {
    using S = scalar_t;
    const UnitWeights<S> uw(w_ci, w_cf, w_co, g_c, b_c, g_hh, w_cd, w_ld);
    const S *wci = uw.wci, *wcf = uw.wcf, *wco = uw.wco, *gc = uw.gc, *bc = uw.bc, *ghh = uw.ghh,
            *wcd = uw.wcd, *wld = uw.wld;
    const bool* mk = mask ? mask->data_ptr<bool>() : nullptr;
    Keep<S> kc(keep_c), kh(keep_h);
    const S* u_all = u.data_ptr<S>(); const S* bs = opt_ptr<S>(bias);   // = a_all (in place)
    S* a_all = A.data_ptr<S>(); S* hs = Hs.data_ptr<S>(); S* cs = Cs.data_ptr<S>();
    S* cn_all = keep_c ? Cn.data_ptr<S>() : nullptr;
    S* m_all = proj ? M.data_ptr<S>() : nullptr;
    S* d_all = depth ? Ds.data_ptr<S>() : nullptr;
    const S* xd_all = opt_ptr<S>(xd); const S* cl_all = opt_ptr<S>(c_low);
    S* hn = hn_buf.data_ptr<S>();
    const std::vector<S> ones(H, S(1));
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = reverse ? T - 1 - step : step;
      const int64_t tp = reverse ? t + 1 : t, tn = reverse ? t : t + 1, tk = keep ? t : 0;
      Tensor hp = Hs[tp];
      Tensor hin = drop ? at::mul_out(hin_buf, hp, *drop) : hp;
      Tensor y = gemm(hin, w_hh, pk_hh);      // h̃ W_hhᵀ
      const S* y_p = y.data_ptr<S>();
      if (ln) {
        Tensor y_t = Yr[tk];
        y_t.copy_(y);
      }
      const S* hp_p = hs + tp * B * R;
      const S* cp_all = cs + tp * B * H;
      S* m_dst = (proj || zone) ? (proj ? m_all + tk * B * H : hn) : hs + tn * B * R;
      at::parallel_for(0, B, row_grain(GH), [&](int64_t b0, int64_t b1) {
      std::vector<S> ib(H), sb(H), thb(H);
      for (int64_t b = b0; b < b1; ++b) {
        S* a = a_all + (t * B + b) * GH;
        const S* ur = u_all + (t * B + b) * GH; const S* yr = y_p + b * GH;
        if (ln)                                // a = u + LN(h̃ W_hhᵀ)·γ_hh
          ln_rows<S>(yr, ur, ghh, a, Mu.data_ptr<S>() + (tk * B + b) * G,
                     Rs.data_ptr<S>() + (tk * B + b) * G, 1, G, H, eps);
        else if (bs)                           // a = u + h̃ W_hhᵀ + b
          for (int64_t j = 0; j < GH; ++j) a[j] = ur[j] + yr[j] + bs[j];
        else
          for (int64_t j = 0; j < GH; ++j) a[j] = ur[j] + yr[j];
        S* ai = c.ki >= 0 ? a + c.ki * H : nullptr; S* af = c.kf >= 0 ? a + c.kf * H : nullptr;
        S* ag = a + c.kg * H; S* ao = c.ko >= 0 ? a + c.ko * H : nullptr;
        const S* cp = cp_all + b * H;
        S* cn = (cn_all ? cn_all + tk * B * H : cs + tn * B * H) + b * H;
        if (wcf) for (int64_t j = 0; j < H; ++j) af[j] += wcf[j] * cp[j];
        if (wci) for (int64_t j = 0; j < H; ++j) ai[j] += wci[j] * cp[j];
        if (ai && af == ai + H) sigmoid_(ai, 2 * H);
        else { if (ai) sigmoid_(ai, H); if (af) sigmoid_(af, H); }
        if (!niaf) tanh_(ag, ag, H);
        const S* fv = af ? af : ones.data();
        const S* iv = ai ? ai : ones.data();
        if (!ai && coupled) {                  // CIFG: i = 1 − f
          for (int64_t j = 0; j < H; ++j) ib[j] = S(1) - af[j];
          iv = ib.data();
        }
        for (int64_t j = 0; j < H; ++j) cn[j] = fv[j] * cp[j] + iv[j] * ag[j];
        if (depth) {                           // c' += d ⊙ c_low', d = σ(xd + w_cd ⊙ c + w_ld ⊙ c_low')
          const S* xdr = xd_all + (t * B + b) * H; const S* cl = cl_all + (t * B + b) * H;
          S* dd = d_all + (tk * B + b) * H;
          for (int64_t j = 0; j < H; ++j) dd[j] = xdr[j] + wcd[j] * cp[j] + wld[j] * cl[j];
          sigmoid_(dd, H);
          for (int64_t j = 0; j < H; ++j) cn[j] += dd[j] * cl[j];
        }
        const S* sv = cn;                      // s = LN(c')·γ_c + β_c, or c'
        if (gc) {
          S mu, rstd;
          row_stats(cn, H, eps, mu, rstd);
          for (int64_t j = 0; j < H; ++j) sb[j] = (cn[j] - mu) * rstd * gc[j] + bc[j];
          sv = sb.data();
        }
        const S* th = sv;
        if (!noaf) { tanh_(sv, thb.data(), H); th = thb.data(); }
        S* m = m_dst + b * H;                  // m = o ⊙ tanh(s), o = σ(a_o + w_co ⊙ c')
        if (ao) {
          if (wco) for (int64_t j = 0; j < H; ++j) ao[j] += wco[j] * cn[j];
          sigmoid_(ao, H);
          for (int64_t j = 0; j < H; ++j) m[j] = ao[j] * th[j];
        } else {
          std::copy(th, th + H, m);
        }
      }
      });
      if (proj) {                              // h' = m W_hrᵀ
        Tensor h_t = zone ? hn_buf : Hs[tn];
        h_t.copy_(gemm(M[tk], *w_hr, pk_hr));
      }
      if (!zone) continue;
      S* hnew = hs + tn * B * R; S* cnew = cs + tn * B * H;
      for (int64_t b = 0; b < B; ++b) {        // zoneout, then padding: the state is settled
        const bool live = !mk || mk[t * B + b];
        settle_row(hp_p + b * R, hn + b * R, kh, t, b, R, live, hnew + b * R);
        if (cn_all) settle_row(cp_all + b * H, cn_all + (tk * B + b) * H, kc, t, b, H, live, cnew + b * H);
        else if (!live) std::copy(cp_all + b * H, cp_all + (b + 1) * H, cnew + b * H);
      }
    }
  });
  return {A, Hs, Cs, Cn, M, Ds, Yr, Mu, Rs};
}

// Backward of the loop. Returns LSTMLoopGrads = [dA, dY, dHn, dXD, dCl, dh0, dc0, dg_c, db_c,
// dg_hh]: dA the gate pre-activations (= du), dY the pre-LN recurrent terms (layer norm;
// else dA), dHn the projected h' (projection), dXD / dCl the depth gate's input terms and
// lower cells, dg_c, db_c, dg_hh the layer norms' gains and shift.
std::vector<Tensor> lstm_backward(
    const Tensor& A, const Tensor& Hs, const Tensor& Cs, const OT& Cn, const OT& M, const OT& Ds,
    const OT& Yr, const OT& Mu, const OT& Rs, const OT& c_low, const OT& g_hh, const OT& w_ci,
    const OT& w_cf, const OT& w_co, const OT& g_c, const OT& b_c, const OT& w_hr, const OT& w_cd,
    const OT& w_ld, const OT& mask, const OT& keep_c, const OT& keep_h, const OT& drop,
    const OT& gY, const OT& ghT, const OT& gcT, const OT& gC, const Tensor& w_hhT,
    const OT& pk_hhT, const OT& w_hrT, const OT& pk_hrT, bool want_dcl, const std::string& gates,
    bool coupled, bool niaf, bool noaf, bool reverse, double eps) {
  const LstmDims c = make_dims(A, Hs[0], Cs[0], gates);
  const int64_t T = c.T, B = c.B, H = c.H, R = c.R, GH = c.GH, G = GH / H;
  const bool ln = g_hh.has_value(), proj = w_hr.has_value(), depth = Ds.has_value();
  Tensor none = A.new_empty({0});
  Tensor dA = at::empty_like(A);
  Tensor dY = ln ? at::empty_like(A) : dA;
  Tensor dHn = proj ? A.new_empty({T, B, R}) : none;
  Tensor dXD = depth ? A.new_empty({T, B, H}) : none;
  Tensor dCl = depth && want_dcl ? A.new_empty({T, B, H}) : none;
  Tensor dg_c = g_c ? at::zeros_like(*g_c) : none, db_c = g_c ? at::zeros_like(*b_c) : none;
  Tensor dg_hh = ln ? at::zeros_like(*g_hh) : none;
  Tensor dh = ghT ? ghT->clone() : A.new_zeros({B, R});
  Tensor dc = gcT ? gcT->clone() : A.new_zeros({B, H});
  Tensor dhn_buf = A.new_empty({B, R}), dhp_buf = A.new_empty({B, R});
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "lstm_backward", [&] {
    using S = scalar_t;
    const UnitWeights<S> uw(w_ci, w_cf, w_co, g_c, b_c, g_hh, w_cd, w_ld);
    const S *wci = uw.wci, *wcf = uw.wcf, *wco = uw.wco, *gc = uw.gc, *bc = uw.bc, *ghh = uw.ghh,
            *wcd = uw.wcd, *wld = uw.wld;
    const S* dr = opt_ptr<S>(drop);
    const S* gy = opt_ptr<S>(gY); const S* gcs = opt_ptr<S>(gC);
    const bool* mk = mask ? mask->data_ptr<bool>() : nullptr;
    Keep<S> kc(keep_c), kh(keep_h);
    const S* a_all = A.data_ptr<S>(); const S* cs = Cs.data_ptr<S>();
    const S* cn_all = Cn ? Cn->data_ptr<S>() : nullptr;
    const S* d_all = opt_ptr<S>(Ds); const S* cl_all = opt_ptr<S>(c_low);
    S* da_all = dA.data_ptr<S>(); S* dh_p = dh.data_ptr<S>(); S* dc_p = dc.data_ptr<S>();
    S* dhn = dhn_buf.data_ptr<S>(); S* dhp = dhp_buf.data_ptr<S>();
    S* dxd_all = depth ? dXD.data_ptr<S>() : nullptr;
    S* dcl_all = dCl.numel() ? dCl.data_ptr<S>() : nullptr;
    std::vector<double> dgc(gc ? H : 0), dbc(gc ? H : 0);   // dγ_c, dβ_c summed in double
    std::vector<S> rgc(gc ? B * H : 0), rbc(gc ? B * H : 0);  // their per-row terms of one step
    std::vector<double> dghh(ln ? GH : 0);                   // dγ_hh = Σ da ⊙ ŷ
    std::vector<S> rghh(ln ? B * GH : 0);
    const std::vector<S> ones(H, S(1));
    const bool zone_h = mk || kh.on(), zone_c = mk || kc.on();
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = reverse ? step : T - 1 - step;
      const int64_t tp = reverse ? t + 1 : t, tn = reverse ? t : t + 1;
      for (int64_t b = 0; b < B; ++b) {        // dh += gY[t]; unsettle h: dhn, dh_prev
        const bool live = !mk || mk[t * B + b];
        S* dhr = dh_p + b * R;
        if (gy && live) for (int64_t j = 0; j < R; ++j) dhr[j] += gy[(t * B + b) * R + j];
        unsettle_row(dhr, kh, t, b, R, live, zone_h, dhn + b * R, dhp + b * R);
      }
      Tensor dm_t = dhn_buf;
      if (proj) {                              // h' = m W_hrᵀ: dm = dh' W_hr
        Tensor dhn_t = dHn[t];
        dhn_t.copy_(dhn_buf);
        dm_t = gemm(dhn_buf, *w_hrT, pk_hrT);
      }
      const S* dm_all = dm_t.data_ptr<S>();
      at::parallel_for(0, B, row_grain(GH), [&](int64_t b0, int64_t b1) {
      std::vector<S> ib(H), dcn(H), sb(H), thb(H), dth(H), ds(H), di(H), dcp(H);
      for (int64_t b = b0; b < b1; ++b) {
        const bool live = !mk || mk[t * B + b];
        const S* a = a_all + (t * B + b) * GH;
        S* da = da_all + (t * B + b) * GH;
        const S* ai = c.ki >= 0 ? a + c.ki * H : nullptr; const S* af = c.kf >= 0 ? a + c.kf * H : nullptr;
        const S* ag = a + c.kg * H; const S* ao = c.ko >= 0 ? a + c.ko * H : nullptr;
        const S* cp = cs + tp * B * H + b * H;
        const S* cn = (cn_all ? cn_all + t * B * H : cs + tn * B * H) + b * H;
        S* dcr = dc_p + b * H;                 // in: dc of the settled c'; out: dc of c
        const S* dm = dm_all + b * H;
        for (int64_t j = 0; j < H; ++j) {      // unsettle c: dcn of the pre-zoneout c', dcr = dc_prev
          S d = dcr[j] + (gcs ? gcs[(t * B + b) * H + j] : S(0));
          S dprev = 0;
          if (zone_c) {
            if (!live) { dprev = d; d = 0; }
            if (kc.on()) { const S k = kc.at(t, b, j); dprev += k * d; d = (S(1) - k) * d; }
          }
          dcn[j] = d;
          dcr[j] = dprev;
        }
        S mu = 0, rstd = 1;                    // recompute s and tanh(s)
        const S* sv = cn;
        if (gc) {
          row_stats(cn, H, eps, mu, rstd);
          for (int64_t j = 0; j < H; ++j) sb[j] = (cn[j] - mu) * rstd * gc[j] + bc[j];
          sv = sb.data();
        }
        const S* th = sv;
        if (!noaf) { tanh_(sv, thb.data(), H); th = thb.data(); }
        if (ao) {                              // m = o ⊙ th: da_o = dm ⊙ th ⊙ o(1 − o), dth = dm ⊙ o
          S* da_o = da + c.ko * H;
          for (int64_t j = 0; j < H; ++j) {
            da_o[j] = dm[j] * th[j] * ao[j] * (S(1) - ao[j]);
            dth[j] = dm[j] * ao[j];
          }
          if (wco) for (int64_t j = 0; j < H; ++j) dcn[j] += da_o[j] * wco[j];
        } else {
          std::copy(dm, dm + H, dth.begin());
        }
        if (noaf) std::copy(dth.begin(), dth.end(), ds.begin());
        else for (int64_t j = 0; j < H; ++j) ds[j] = dth[j] * (S(1) - th[j] * th[j]);
        if (gc) {                              // LN backward: rstd (dx̂ − mean dx̂ − x̂ mean(dx̂ x̂))
          S* xh = sb.data();                   // x̂ (s is not needed any more), dx̂ = ds ⊙ γ_c
          for (int64_t j = 0; j < H; ++j) {
            xh[j] = (cn[j] - mu) * rstd;
            rgc[b * H + j] = ds[j] * xh[j];
            rbc[b * H + j] = ds[j];
            dth[j] = ds[j] * gc[j];
          }
          const S m1 = vsum(dth.data(), H) / S(H), m2 = vdot(dth.data(), xh, H) / S(H);
          for (int64_t j = 0; j < H; ++j) dcn[j] += rstd * (dth[j] - m1 - xh[j] * m2);
        } else {
          for (int64_t j = 0; j < H; ++j) dcn[j] += ds[j];
        }
        const S* fv = af ? af : ones.data();   // c' = f ⊙ c + i ⊙ g (+ d ⊙ c_low')
        const S* iv = ai ? ai : ones.data();
        if (!ai && coupled) {
          for (int64_t j = 0; j < H; ++j) ib[j] = S(1) - af[j];
          iv = ib.data();
        }
        S* da_g = da + c.kg * H;
        for (int64_t j = 0; j < H; ++j) {
          dcp[j] = dcn[j] * fv[j];
          da_g[j] = niaf ? dcn[j] * iv[j] : dcn[j] * iv[j] * (S(1) - ag[j] * ag[j]);
          di[j] = dcn[j] * ag[j];
        }
        if (depth) {
          const S* dd = d_all + (t * B + b) * H; const S* cl = cl_all + (t * B + b) * H;
          S* dxd = dxd_all + (t * B + b) * H;
          for (int64_t j = 0; j < H; ++j) {
            dxd[j] = dcn[j] * cl[j] * dd[j] * (S(1) - dd[j]);
            dcp[j] += dxd[j] * wcd[j];
          }
          if (dcl_all) {
            S* dcl = dcl_all + (t * B + b) * H;
            for (int64_t j = 0; j < H; ++j) dcl[j] = dcn[j] * dd[j] + dxd[j] * wld[j];
          }
        }
        if (af) {                              // df = dcn ⊙ c (− di, CIFG); da_f = df ⊙ f(1 − f)
          S* da_f = da + c.kf * H;
          for (int64_t j = 0; j < H; ++j) {
            const S df = dcn[j] * cp[j] - (coupled ? di[j] : S(0));
            da_f[j] = df * af[j] * (S(1) - af[j]);
          }
          if (wcf) for (int64_t j = 0; j < H; ++j) dcp[j] += da_f[j] * wcf[j];
        }
        if (ai) {
          S* da_i = da + c.ki * H;
          for (int64_t j = 0; j < H; ++j) da_i[j] = di[j] * ai[j] * (S(1) - ai[j]);
          if (wci) for (int64_t j = 0; j < H; ++j) dcp[j] += da_i[j] * wci[j];
        }
        for (int64_t j = 0; j < H; ++j) dcr[j] += dcp[j];
        if (ln)                                // through a = u + LN(y)·γ_hh to y
          ln_rows_backward<S>(da, ghh, Yr->data_ptr<S>() + (t * B + b) * GH,
                              Mu->data_ptr<S>() + (t * B + b) * G, Rs->data_ptr<S>() + (t * B + b) * G,
                              dY.data_ptr<S>() + (t * B + b) * GH, 1, G, H, rghh.data() + b * GH);
      }
      });
      if (gc) { add_rows(rgc.data(), B, H, dgc.data()); add_rows(rbc.data(), B, H, dbc.data()); }
      if (ln) add_rows(rghh.data(), B, GH, dghh.data());
      Tensor dy = ln ? dY[t] : dA[t];
      Tensor dhin_t = gemm(dy, w_hhT, pk_hhT);   // dh̃ = dy W_hh
      const S* dhin = dhin_t.data_ptr<S>();
      for (int64_t k = 0; k < B * R; ++k)
        dh_p[k] = (dr ? dhin[k] * dr[k] : dhin[k]) + (zone_h ? dhp[k] : S(0));
    }
    if (gc) {
      std::copy(dgc.begin(), dgc.end(), dg_c.data_ptr<S>());
      std::copy(dbc.begin(), dbc.end(), db_c.data_ptr<S>());
    }
    if (ln) std::copy(dghh.begin(), dghh.end(), dg_hh.data_ptr<S>());
  });
  return {dA, dY, dHn, dXD, dCl, dh, dc, dg_c, db_c, dg_hh};
}

}  // namespace lstmkit

// Named arguments: Python passes them by name (the fields of lstm_torch.LSTMInputs, LSTMSaved).
TORCH_LIBRARY_FRAGMENT(lstmkit_fused, m) {
  m.def("lstm_forward(Tensor u, Tensor? bias, Tensor? xd, Tensor? c_low, Tensor h0, Tensor c0, "
        "Tensor w_hh, Tensor? g_hh, Tensor? w_ci, Tensor? w_cf, Tensor? w_co, Tensor? g_c, "
        "Tensor? b_c, Tensor? w_hr, Tensor? w_cd, Tensor? w_ld, Tensor? mask, Tensor? keep_c, "
        "Tensor? keep_h, Tensor? drop, Tensor? pk_hh, Tensor? pk_hr, str gates, bool coupled, "
        "bool niaf, bool noaf, bool reverse, bool keep, float eps) -> Tensor[]",
        &lstmkit::lstm_forward);
  m.def("lstm_backward(Tensor A, Tensor Hs, Tensor Cs, Tensor? Cn, Tensor? M, Tensor? Ds, "
        "Tensor? Yr, Tensor? Mu, Tensor? Rs, Tensor? c_low, Tensor? g_hh, Tensor? w_ci, "
        "Tensor? w_cf, Tensor? w_co, Tensor? g_c, Tensor? b_c, Tensor? w_hr, Tensor? w_cd, "
        "Tensor? w_ld, Tensor? mask, Tensor? keep_c, Tensor? keep_h, Tensor? drop, Tensor? gY, "
        "Tensor? ghT, Tensor? gcT, Tensor? gC, Tensor w_hhT, Tensor? pk_hhT, Tensor? w_hrT, "
        "Tensor? pk_hrT, bool want_dcl, str gates, bool coupled, bool niaf, bool noaf, "
        "bool reverse, float eps) -> Tensor[]",
        &lstmkit::lstm_backward);
}
