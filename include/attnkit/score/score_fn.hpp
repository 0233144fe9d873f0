#pragma once
/// @file score_fn.hpp  score = f(s, batch, q_head, q_idx, k_idx): any user functor
/// (FlexAttention's score_mod). Called in float by kernels and in double by the reference.
#include <type_traits>

#include "attnkit/core/context.hpp"

namespace attnkit {

template <class F>
struct score_fn {
  static constexpr policy_kind kind = policy_kind::score;
  static constexpr bool is_identity = false;
  F f;

  template <class T>
  T apply(const head_ctx& c, T s, index_t i, index_t j) const {
    return static_cast<T>(f(s, c.batch, c.q_head, i, j));
  }
  void validate(const problem_dims&) const noexcept {}
};
template <class F>
score_fn(F) -> score_fn<F>;

}  // namespace attnkit
