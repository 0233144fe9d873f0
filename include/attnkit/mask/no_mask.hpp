#pragma once
/// @file no_mask.hpp  Every pair is kept. The default.
#include "attnkit/core/context.hpp"

namespace attnkit {

struct no_mask {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  bool keep(const head_ctx&, index_t, index_t) const noexcept { return true; }
  tile_class classify(const head_ctx&, index_t, index_t, index_t, index_t) const noexcept { return tile_class::full; }
  void validate(const problem_dims&) const noexcept {}
};

}  // namespace attnkit
