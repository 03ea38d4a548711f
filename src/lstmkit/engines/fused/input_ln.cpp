// The layer norm of the whole sequence's input terms, u = LN(y)·γ + b per gate block of H
// (common.py input_terms; Ba et al. 2016), forward and backward in one pass each over
// the (N, G·H) rows, where autograd would make five (LN, ·γ, +b and their backwards).
//
// Forward saves nothing but the per-block statistics μ, rstd (N, G); the backward reads y
// again and recomputes ŷ = (y − μ)·rstd:
//   dŷ = du ⊙ γ,  dy = rstd (dŷ − mean dŷ − ŷ mean(dŷ ⊙ ŷ)),  dγ = Σ_rows du ⊙ ŷ,  db = Σ_rows du,
// the row sums kept in double, one accumulator per thread. The maths is common.h's ln_rows
// and ln_rows_backward, the recurrent layer norm's, applied to every row.
#include "common.h"

namespace lstmkit {

// Row chunks of at most this many rows share one scratch for the dγ terms in the backward.
constexpr int64_t kChunk = 16;

std::tuple<Tensor, Tensor, Tensor> input_ln_forward(const Tensor& y, const Tensor& g, const OT& b,
                                                    int64_t G, double eps) {
  const int64_t N = y.size(0), GH = y.size(1), H = GH / G;
  Tensor u = at::empty_like(y), mu = at::empty({N, G}, y.options()), rs = at::empty({N, G}, y.options());
  Tensor bias = b.has_value() ? *b : at::zeros({GH}, y.options());
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "input_ln_forward", [&] {
    const scalar_t *py = y.data_ptr<scalar_t>(), *pg = g.data_ptr<scalar_t>(), *pb = bias.data_ptr<scalar_t>();
    scalar_t *pu = u.data_ptr<scalar_t>(), *pm = mu.data_ptr<scalar_t>(), *pr = rs.data_ptr<scalar_t>();
    at::parallel_for(0, N, row_grain(GH), [&](int64_t lo, int64_t hi) {
      for (int64_t n = lo; n < hi; ++n)        // b is the same addend for every row
        ln_rows<scalar_t>(py + n * GH, pb, pg, pu + n * GH, pm + n * G, pr + n * G, 1, G, H, eps);
    });
  });
  return {u, mu, rs};
}

std::tuple<Tensor, Tensor, Tensor> input_ln_backward(const Tensor& du, const Tensor& y, const Tensor& mu,
                                                     const Tensor& rs, const Tensor& g, bool need_dy,
                                                     bool need_dg, bool need_db) {
  const int64_t N = y.size(0), GH = y.size(1), G = mu.size(1), H = GH / G;
  Tensor dy = at::empty_like(y);
  std::vector<std::vector<double>> acc(at::get_num_threads(), std::vector<double>(2 * GH, 0.0));
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "input_ln_backward", [&] {
    const scalar_t *pd = du.data_ptr<scalar_t>(), *py = y.data_ptr<scalar_t>(), *pg = g.data_ptr<scalar_t>();
    const scalar_t *pm = mu.data_ptr<scalar_t>(), *pr = rs.data_ptr<scalar_t>();
    scalar_t* pdy = dy.data_ptr<scalar_t>();
    at::parallel_for(0, N, row_grain(GH), [&](int64_t lo, int64_t hi) {
      std::vector<scalar_t> terms(need_dg ? kChunk * GH : 0);     // du ⊙ ŷ of a chunk
      double* a = acc[at::get_thread_num()].data();
      for (int64_t n = lo; n < hi; n += kChunk) {
        const int64_t rows = std::min(kChunk, hi - n);
        ln_rows_backward<scalar_t>(pd + n * GH, pg, py + n * GH, pm + n * G, pr + n * G, pdy + n * GH,
                                   rows, G, H, need_dg ? terms.data() : nullptr);
        if (need_dg) add_rows(terms.data(), rows, GH, a);
        if (need_db) add_rows(pd + n * GH, rows, GH, a + GH);
      }
    });
  });
  Tensor sum = at::zeros({2 * GH}, y.options().dtype(at::kDouble));
  for (auto& a : acc) sum.add_(at::from_blob(a.data(), {2 * GH}, at::kDouble));
  return {need_dy ? dy : Tensor(), need_dg ? sum.slice(0, 0, GH).to(y.scalar_type()) : Tensor(),
          need_db ? sum.slice(0, GH, 2 * GH).to(y.scalar_type()) : Tensor()};
}

}  // namespace lstmkit

TORCH_LIBRARY_FRAGMENT(lstmkit_fused, m) {
  m.def("input_ln_forward(Tensor y, Tensor g, Tensor? b, int G, float eps) -> (Tensor, Tensor, Tensor)",
        &lstmkit::input_ln_forward);
  m.def("input_ln_backward(Tensor du, Tensor y, Tensor mu, Tensor rs, Tensor g, bool need_dy, "
        "bool need_dg, bool need_db) -> (Tensor, Tensor, Tensor)",
        &lstmkit::input_ln_backward);
}
