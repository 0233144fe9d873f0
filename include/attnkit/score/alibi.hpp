#pragma once
/// @file alibi.hpp  score = s - slope[h] * |pos(i) - j| (ALiBi, Press et al.), one slope per
/// query head. `alibi::standard_slopes(H)` gives the paper's geometric slopes.
#include <cmath>
#include <span>
#include <vector>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

struct alibi {
  static constexpr policy_kind kind = policy_kind::score;
  static constexpr bool is_identity = false;
  std::span<const float> slopes;  ///< length Hq

  template <class T>
  T apply(const head_ctx& c, T s, index_t i, index_t j) const noexcept {
    const index_t d = c.pos(i) - j;
    return s - T(slopes[c.q_head]) * T(d < 0 ? -d : d);
  }
  template <class Arch>
  void apply_block(const head_ctx& c, float* x, index_t ld, index_t i0, index_t ni, index_t j0, index_t nj) const noexcept {
    using V = simd::vec<Arch>;
    alignas(64) float ramp[V::width];
    for (int t = 0; t < V::width; ++t) ramp[t] = static_cast<float>(t);
    const auto r = V::load(ramp), ms = V::set1(-slopes[c.q_head]);
    for (index_t jj = 0; jj < nj; ++jj) {
      float* s = x + jj * ld;
      // distance pos(i0 + ii) - j as float: exact for positions below 2^24.
      const float base = static_cast<float>(c.pos(i0) - (j0 + jj));
      index_t i = 0;
      for (; i + V::width <= ni; i += V::width) {
        const auto dist = abs_<V>(V::set1(base + static_cast<float>(i)) + r);
        V::store(s + i, V::fma(ms, dist, V::load(s + i)));
      }
      for (; i < ni; ++i) s[i] = apply(c, s[i], i0 + i, j0 + jj);
    }
  }
  void validate(const problem_dims& d) const {
    if (static_cast<index_t>(slopes.size()) != d.hq)
      detail::fail("alibi", "slopes: expected one per query head (", d.hq, "), got ", slopes.size());
    for (std::size_t h = 0; h < slopes.size(); ++h)
      if (!std::isfinite(slopes[h])) detail::fail("alibi", "slopes: expected finite values, got ", slopes[h], " for head ", h);
  }

  /// The ALiBi paper's slopes for H heads: 2^(-8 k / n) for k = 1..H, where n is H rounded up to
  /// a power of two and the extra heads interleave the next power's slopes (as in the reference).
  static std::vector<float> standard_slopes(index_t H) {
    std::vector<float> out;
    index_t p = 1;
    while (p * 2 <= H) p *= 2;
    for (index_t k = 1; k <= p; ++k) out.push_back(std::pow(2.f, -8.f * float(k) / float(p)));
    for (index_t k = 1; static_cast<index_t>(out.size()) < H; k += 2)
      out.push_back(std::pow(2.f, -8.f * float(k) / float(2 * p)));
    return out;
  }

 private:
  template <class V>
  static auto abs_(typename V::reg x) noexcept {
    if constexpr (V::width == 1) return x < 0 ? -x : x;
    else return xsimd::abs(x);
  }
};

}  // namespace attnkit
