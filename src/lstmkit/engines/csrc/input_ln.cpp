// The layer norm of the whole sequence's input terms, u = LN(y)·γ + b per gate block of H
// (engines.fused.input_terms; Ba et al. 2016), forward and backward in one pass each over
// the (N, G·H) rows, where autograd would make five (LN, ·γ, +b and their backwards).
//
// Forward saves nothing but the per-block statistics μ, rstd (N, G); the backward reads y
// again and recomputes ŷ = (y − μ)·rstd:
//   dŷ = du ⊙ γ,  dy = rstd (dŷ − mean dŷ − ŷ mean(dŷ ⊙ ŷ)),  dγ = Σ_rows du ⊙ ŷ,  db = Σ_rows du,
// the row sums kept in double, one accumulator per thread.
#include "common.h"

namespace lstmkit {

std::tuple<Tensor, Tensor, Tensor> input_ln_forward(const Tensor& y, const Tensor& g, const OT& b,
                                                    int64_t G, double eps) {
  const int64_t N = y.size(0), GH = y.size(1), H = GH / G;
  Tensor u = at::empty_like(y), mu = at::empty({N, G}, y.options()), rs = at::empty({N, G}, y.options());
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "input_ln_forward", [&] {
    const scalar_t *py = y.data_ptr<scalar_t>(), *pg = g.data_ptr<scalar_t>(), *pb = opt_ptr<scalar_t>(b);
    scalar_t *pu = u.data_ptr<scalar_t>(), *pm = mu.data_ptr<scalar_t>(), *pr = rs.data_ptr<scalar_t>();
    at::parallel_for(0, N * G, row_grain(H), [&](int64_t lo, int64_t hi) {
      for (int64_t rk = lo; rk < hi; ++rk) {          // one (row, gate block) at a time
        const int64_t o = rk * H, k = rk % G;
        scalar_t m, r;
        row_stats(py + o, H, eps, m, r);
        pm[rk] = m; pr[rk] = r;
        const scalar_t *gk = pg + k * H, *bk = pb ? pb + k * H : nullptr;
        for (int64_t j = 0; j < H; ++j)
          pu[o + j] = (py[o + j] - m) * r * gk[j] + (bk ? bk[j] : scalar_t(0));
      }
    });
  });
  return {u, mu, rs};
}

std::tuple<Tensor, Tensor, Tensor> input_ln_backward(const Tensor& du, const Tensor& y, const Tensor& mu,
                                                     const Tensor& rs, const Tensor& g, bool need_dy,
                                                     bool need_dg, bool need_db) {
  const int64_t N = y.size(0), GH = y.size(1), G = mu.size(1), H = GH / G;
  Tensor dy = need_dy ? at::empty_like(y) : Tensor();
  const int64_t W = (need_dg || need_db) ? GH : 0;
  std::vector<std::vector<double>> acc(at::get_num_threads(), std::vector<double>(2 * W, 0.0));
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "input_ln_backward", [&] {
    const scalar_t *pd = du.data_ptr<scalar_t>(), *py = y.data_ptr<scalar_t>(), *pg = g.data_ptr<scalar_t>();
    const scalar_t *pm = mu.data_ptr<scalar_t>(), *pr = rs.data_ptr<scalar_t>();
    scalar_t* pdy = need_dy ? dy.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, N * G, row_grain(H), [&](int64_t lo, int64_t hi) {
      std::vector<scalar_t> d(H), yh(H);
      double* a = W ? acc[at::get_thread_num()].data() : nullptr;
      for (int64_t rk = lo; rk < hi; ++rk) {
        const int64_t o = rk * H, k = rk % G;
        const scalar_t m = pm[rk], r = pr[rk], *gk = pg + k * H, *dk = pd + o;
        for (int64_t j = 0; j < H; ++j) {
          yh[j] = (py[o + j] - m) * r;
          d[j] = dk[j] * gk[j];
        }
        if (a) {
          double *ag = a + k * H, *ab = a + W + k * H;
          for (int64_t j = 0; j < H; ++j) { ag[j] += dk[j] * yh[j]; ab[j] += dk[j]; }
        }
        if (pdy) {
          const scalar_t s1 = vsum(d.data(), H) / scalar_t(H), s2 = vdot(d.data(), yh.data(), H) / scalar_t(H);
          for (int64_t j = 0; j < H; ++j) pdy[o + j] = r * (d[j] - s1 - yh[j] * s2);
        }
      }
    });
  });
  Tensor dg, db;
  if (W) {
    Tensor sum = at::zeros({2 * W}, y.options().dtype(at::kDouble));
    for (auto& a : acc) sum.add_(at::from_blob(a.data(), {2 * W}, at::kDouble));
    if (need_dg) dg = sum.slice(0, 0, W).to(y.scalar_type());
    if (need_db) db = sum.slice(0, W, 2 * W).to(y.scalar_type());
  }
  return {dy, dg, db};
}

}  // namespace lstmkit

TORCH_LIBRARY_FRAGMENT(lstmkit_fused, m) {
  m.def("input_ln_forward", &lstmkit::input_ln_forward);
  m.def("input_ln_backward", &lstmkit::input_ln_backward);
}
