#pragma once
/// @file softcap.hpp  score = cap * tanh(s / cap) (Gemma 2, Grok): bounds logits to (-cap, cap).
#include <cmath>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

struct softcap {
  static constexpr policy_kind kind = policy_kind::score;
  static constexpr bool is_identity = false;
  float cap;

  template <class T>
  T apply(const head_ctx&, T s, index_t, index_t) const noexcept {
    return T(cap) * std::tanh(s / T(cap));
  }
  template <class Arch>
  void apply_block(const head_ctx&, float* x, index_t ld, index_t, index_t ni, index_t, index_t nj) const noexcept {
    using V = simd::vec<Arch>;
    const auto c = V::set1(cap), inv = V::set1(1.f / cap);
    for (index_t jj = 0; jj < nj; ++jj) {
      float* s = x + jj * ld;
      index_t i = 0;
      for (; i + V::width <= ni; i += V::width) V::store(s + i, c * V::tanh(V::load(s + i) * inv));
      for (; i < ni; ++i) s[i] = cap * std::tanh(s[i] / cap);
    }
  }
  void validate(const problem_dims&) const {
    if (!(cap > 0.f) || !std::isfinite(cap)) detail::fail("softcap", "cap: expected a finite value > 0, got ", cap);
  }
};

}  // namespace attnkit
