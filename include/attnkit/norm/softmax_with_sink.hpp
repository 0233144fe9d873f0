#pragma once
/// @file softmax_with_sink.hpp  p_ij = exp(x_ij) / (exp(s_h) + sum_j exp(x_ij)), one learned sink
/// logit s_h per query head (gpt-oss, "off-by-one" softmax), in the post-scale natural-log domain.
/// The sink enters the denominator exactly once, in finalize, after all tiles and KV splits have
/// been merged; it never touches V. A fully masked row has output 0 and LSE = s_h.
#include <cmath>
#include <span>

#include "attnkit/core/errors.hpp"
#include "attnkit/norm/softmax.hpp"

namespace attnkit {

struct softmax_with_sink : softmax {
  std::span<const float> logits;  ///< one per query head (length Hq)

  softmax_with_sink() = default;
  softmax_with_sink(std::span<const float> l) noexcept : logits(l) {}

  float finalize(const head_ctx& c, const row_state& st, float& lse) const noexcept {
    const float s = logits[c.q_head];
    // Rescale to m' = max(m, s) so neither exp can overflow; st.m = -inf gives factor 0.
    const float m = st.m > s ? st.m : s;
    const float a = std::exp(st.m - m);
    const float l = st.l * a + std::exp(s - m);
    lse = m + std::log(l);
    return a / l;
  }

  template <class T>
  void reference(const head_ctx& c, T* x, index_t n, T& lse) const {
    const T s = logits[c.q_head];
    T m = s;
    for (index_t j = 0; j < n; ++j) m = (x[j] > m || x[j] != x[j]) ? x[j] : m;  // NaN sticks
    T sum = std::exp(s - m);
    for (index_t j = 0; j < n; ++j) sum += (x[j] = std::exp(x[j] - m));
    for (index_t j = 0; j < n; ++j) x[j] /= sum;
    lse = m + std::log(sum);
  }

  void validate(const problem_dims& d) const {
    if (static_cast<index_t>(logits.size()) != d.hq)
      detail::fail("softmax_with_sink", "logits: expected one per query head (", d.hq, "), got ", logits.size());
    for (float s : logits)
      if (!std::isfinite(s)) detail::fail("softmax_with_sink", "logits: expected finite values, got ", s);
  }
};

}  // namespace attnkit
