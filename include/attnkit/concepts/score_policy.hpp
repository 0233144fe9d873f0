#pragma once
/// @file score_policy.hpp  A score policy maps the scaled logit s = scale * (q . k) to the score
/// fed to the mask and the normalizer.
#include <concepts>

#include "attnkit/core/context.hpp"

namespace attnkit {

/// Requirements:
///  - `static constexpr policy_kind kind = policy_kind::score;`
///  - `static constexpr bool is_identity;` true lets kernels skip the policy entirely;
///  - `T apply(const head_ctx&, T s, index_t i, index_t j) const` for T = float and double
///    (the scalar path: tails, and the fp64 reference);
///  - `void validate(const problem_dims&) const` throwing attnkit::invalid_argument.
/// Optional vector path: `template <class Arch> void apply_block(const head_ctx&, float* x,
///  index_t ld, index_t i0, index_t ni, index_t j0, index_t nj) const` transforms the block
///  x[jj * ld + ii] = score of (query i0 + ii, key j0 + jj); without it kernels call apply().
template <class S>
concept score_policy = requires(const S& s, const head_ctx& c, const problem_dims& d, float f, double x, index_t i) {
  requires S::kind == policy_kind::score;
  { S::is_identity } -> std::convertible_to<bool>;
  { s.apply(c, f, i, i) } -> std::same_as<float>;
  { s.apply(c, x, i, i) } -> std::same_as<double>;
  s.validate(d);
};

}  // namespace attnkit
