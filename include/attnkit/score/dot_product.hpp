#pragma once
/// @file dot_product.hpp  score = s (the scaled dot product, unchanged). The default.
#include "attnkit/core/context.hpp"

namespace attnkit {

struct dot_product {
  static constexpr policy_kind kind = policy_kind::score;
  static constexpr bool is_identity = true;
  template <class T>
  T apply(const head_ctx&, T s, index_t, index_t) const noexcept { return s; }
  void validate(const problem_dims&) const noexcept {}
};

}  // namespace attnkit
