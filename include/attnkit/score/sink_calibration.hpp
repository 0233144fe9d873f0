#pragma once
/// @file sink_calibration.hpp  score = s + log(gamma[h]) for keys j < n: scales the attention
/// query head h pays to the first n keys by gamma_h before renormalization (the mechanism of
/// training-free sink calibration and first-token tuning; gamma < 1 drains an attention sink,
/// gamma > 1 strengthens it). p'_j = gamma_h p_j / (1 + (gamma_h - 1) P_sink) for j < n.
#include <cmath>
#include <span>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

struct sink_calibration {
  static constexpr policy_kind kind = policy_kind::score;
  static constexpr bool is_identity = false;
  index_t n = 1;                 ///< the calibrated key positions: [0, n)
  std::span<const float> gamma;  ///< one factor per query head, > 0

  template <class T>
  T apply(const head_ctx& c, T s, index_t, index_t j) const noexcept {
    return j < n ? s + T(std::log(T(gamma[c.q_head]))) : s;
  }
  template <class Arch>
  void apply_block(const head_ctx& c, float* x, index_t ld, index_t, index_t ni, index_t j0, index_t nj) const noexcept {
    using V = simd::vec<Arch>;
    if (j0 >= n) return;  // most tiles: nothing to do
    const float lg = std::log(gamma[c.q_head]);
    const auto vl = V::set1(lg);
    for (index_t jj = 0; jj < nj && j0 + jj < n; ++jj) {
      float* s = x + jj * ld;
      index_t i = 0;
      for (; i + V::width <= ni; i += V::width) V::store(s + i, V::load(s + i) + vl);
      for (; i < ni; ++i) s[i] += lg;
    }
  }
  void validate(const problem_dims& d) const {
    if (n < 0) detail::fail("sink_calibration", "n: expected >= 0, got ", n);
    if (static_cast<index_t>(gamma.size()) != d.hq)
      detail::fail("sink_calibration", "gamma: expected one per query head (", d.hq, "), got ", gamma.size());
    for (std::size_t h = 0; h < gamma.size(); ++h)
      if (!(gamma[h] > 0.f) || !std::isfinite(gamma[h]))
        detail::fail("sink_calibration", "gamma[", h, "]: expected a finite value > 0, got ", gamma[h]);
  }
};

}  // namespace attnkit
