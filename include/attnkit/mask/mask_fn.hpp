#pragma once
/// @file mask_fn.hpp  keep(i, j) = f(batch, q_head, q_idx, k_idx): any user predicate
/// (FlexAttention's mask_mod). Tile classification cannot see inside f, so the mask is
/// `elementwise`: every tile is evaluated per element. Combine with a structural mask
/// (`causal{} & mask_fn{f}`) to let empty tiles be skipped.
#include "attnkit/core/context.hpp"

namespace attnkit {

template <class F>
struct mask_fn {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = true;
  F f;
  bool keep(const head_ctx& c, index_t i, index_t j) const { return static_cast<bool>(f(c.batch, c.q_head, i, j)); }
  tile_class classify(const head_ctx&, index_t, index_t, index_t, index_t) const noexcept { return tile_class::partial; }
  void validate(const problem_dims&) const noexcept {}
};
template <class F>
mask_fn(F) -> mask_fn<F>;

}  // namespace attnkit
