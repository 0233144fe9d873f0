#pragma once
/// @file softmax.hpp  p_ij = exp(x_ij) / sum_j exp(x_ij), computed online (running max m, running
/// sum l) so that no exp overflows and tiles can be processed one at a time. The default.
///
/// -inf guards: a masked score is -inf and contributes exp(-inf) = 0. While every score seen so
/// far is masked, m = -inf; exponents are then taken relative to 0 instead of m, so no -inf - -inf
/// = NaN ever forms. A row that stays fully masked ends with l = 0: output 0, LSE -inf.
#include <cmath>
#include <limits>

#include "attnkit/concepts/normalizer_policy.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

struct softmax {
  static constexpr policy_kind kind = policy_kind::normalizer;
  static constexpr bool has_lse = true;
  static constexpr float neg_inf = -std::numeric_limits<float>::infinity();

  row_state init() const noexcept { return {neg_inf, 0.f}; }

  /// One tile, rows as vectors: x[j * ld + r] is the raw score of row r (r < rows, a multiple of
  /// the vector width) and key j (j < nk); the row's logits are c * x with c > 0 (kernels fold the
  /// softmax scale in here so the logit is never rounded on its own: exp(fma(x, c, -m))). Turns x
  /// into exp(c x - m_new) and sets alpha[r] = exp(m_old - m_new), the factor by which the caller
  /// rescales what it accumulated for row r. m is kept in logit units.
  template <class Arch>
  void step(row_state* st, float* alpha, float* x, index_t ld, index_t rows, index_t nk, float c) const noexcept {
    using V = simd::vec<Arch>;
    alignas(64) float m_old[V::width], l_old[V::width];
    const auto vc = V::set1(c);
    for (index_t r = 0; r < rows; r += V::width) {
      for (int t = 0; t < V::width; ++t) m_old[t] = st[r + t].m, l_old[t] = st[r + t].l;
      const auto mo = V::load(m_old);
      auto mx = V::set1(neg_inf);
      for (index_t j = 0; j < nk; ++j) mx = V::max(mx, V::load(x + j * ld + r));
      mx = V::max(mo, mx * vc);                   // c > 0: max(c x) = c max(x); -inf stays -inf
      const auto ref = V::neg_inf_to_zero(mx);    // guard: never -inf - -inf
      const auto nref = V::zero() - ref;
      auto sum = V::zero();
      for (index_t j = 0; j < nk; ++j) {
        const auto p = V::exp(V::fma(V::load(x + j * ld + r), vc, nref));
        V::store(x + j * ld + r, p);
        sum = sum + p;
      }
      const auto a = V::exp(mo - ref);  // m_old = -inf -> 0: nothing accumulated yet
      V::store(alpha + r, a);
      const auto l = V::fma(V::load(l_old), a, sum);
      alignas(64) float mn[V::width], ln[V::width];
      V::store(mn, mx);
      V::store(ln, l);
      for (int t = 0; t < V::width; ++t) st[r + t] = {mn[t], ln[t]};
    }
  }

  static row_state merge(row_state a, float& wa, row_state b, float& wb) noexcept {
    const float m = a.m > b.m ? a.m : b.m;
    const float ref = m == neg_inf ? 0.f : m;
    wa = std::exp(a.m - ref);
    wb = std::exp(b.m - ref);
    return {m, a.l * wa + b.l * wb};
  }

  float finalize(const head_ctx&, const row_state& st, float& lse) const noexcept {
    if (st.l == 0.f) {  // fully masked row (a NaN l, from a NaN logit, propagates below)
      lse = neg_inf;
      return 0.f;
    }
    lse = st.m + std::log(st.l);
    return 1.f / st.l;
  }

  template <class T>
  void reference(const head_ctx&, T* x, index_t n, T& lse) const {
    T m = -std::numeric_limits<T>::infinity();
    for (index_t j = 0; j < n; ++j) m = (x[j] > m || x[j] != x[j]) ? x[j] : m;  // NaN sticks: the row is NaN
    if (m == -std::numeric_limits<T>::infinity()) {
      for (index_t j = 0; j < n; ++j) x[j] = T(0);
      lse = m;
      return;
    }
    T sum = 0;
    for (index_t j = 0; j < n; ++j) sum += (x[j] = std::exp(x[j] - m));
    for (index_t j = 0; j < n; ++j) x[j] /= sum;
    lse = m + std::log(sum);
  }

  void validate(const problem_dims&) const noexcept {}
};

}  // namespace attnkit
