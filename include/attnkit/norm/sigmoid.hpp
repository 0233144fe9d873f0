#pragma once
/// @file sigmoid.hpp  p_ij = 1 / (1 + exp(-(x_ij + bias))), no normalization across keys (sigmoid
/// attention, Ramapuram et al. 2024; the paper suggests bias = -log(Sk)). Masked scores (-inf) give
/// exactly 0. There is no LSE: asking for one is a compile-time error.
#include <cmath>

#include "attnkit/concepts/normalizer_policy.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

struct sigmoid {
  static constexpr policy_kind kind = policy_kind::normalizer;
  static constexpr bool has_lse = false;
  float bias = 0.f;

  row_state init() const noexcept { return {0.f, 0.f}; }

  template <class Arch>
  void step(row_state*, float* alpha, float* x, index_t ld, index_t rows, index_t nk, float c) const noexcept {
    using V = simd::vec<Arch>;
    const auto nb = V::set1(-bias), one = V::set1(1.f), nc = V::set1(-c);  // logit = c x (c > 0)
    // A masked score is -inf: exp(+inf) = inf (exp also saturates to inf above 88), p = 1/(1+inf) = 0.
    for (index_t j = 0; j < nk; ++j)
      for (index_t r = 0; r < rows; r += V::width)
        V::store(x + j * ld + r, one / (one + V::exp(V::fma(V::load(x + j * ld + r), nc, nb))));
    for (index_t r = 0; r < rows; ++r) alpha[r] = 1.f;  // weights are final: no rescaling
  }
  static row_state merge(row_state a, float& wa, row_state, float& wb) noexcept {
    wa = wb = 1.f;  // outputs simply add
    return a;
  }
  float finalize(const head_ctx&, const row_state&, float&) const noexcept { return 1.f; }

  template <class T>
  void reference(const head_ctx&, T* x, index_t n, T&) const {
    for (index_t j = 0; j < n; ++j) x[j] = T(1) / (T(1) + std::exp(-(x[j] + T(bias))));
  }
  void validate(const problem_dims&) const {
    if (!std::isfinite(bias)) detail::fail("sigmoid", "bias: expected a finite value, got ", bias);
  }
};

}  // namespace attnkit
