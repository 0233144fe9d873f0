#pragma once
/// @file sliding_window.hpp  keep(i, j) iff pos(i) - left <= j <= pos(i) + right, both bounds
/// inclusive, -1 = unbounded on that side (pos(i) = i + Sk - Sq).
///
/// Off-by-one trap: `sliding_window{W, 0}` keeps W + 1 keys (W before the query and the query's
/// own position). Models that say "window of W tokens" (Mistral's sliding_window = 4096, Gemma)
/// mean W keys including the current one: use `sliding_window::from_total(W)` == {W - 1, 0}.
/// FlashAttention's window_size = (left, right) has the same meaning as {left, right} here.
#include <algorithm>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/mask/key_range.hpp"

namespace attnkit {

struct sliding_window : key_range<sliding_window> {
  index_t left = -1;   ///< keys kept before pos(i); -1 = unbounded
  index_t right = -1;  ///< keys kept after pos(i); -1 = unbounded (0 = causal)

  constexpr sliding_window() = default;
  constexpr sliding_window(index_t l, index_t r) noexcept : left(l), right(r) {}

  /// A causal window of W keys in total, the current one included: {W - 1, 0}.
  static sliding_window from_total(index_t W) {
    if (W < 1) detail::fail("sliding_window::from_total", "W: expected >= 1, got ", W);
    return {W - 1, 0};
  }

  // The rule: the query at position p keeps keys [first(p), last(p)].
  index_t first(index_t p) const noexcept { return left < 0 ? -far : p - std::min(left, far); }
  index_t last(index_t p) const noexcept { return right < 0 ? far : p + std::min(right, far); }
  void validate(const problem_dims&) const {
    if (left < -1) detail::fail("sliding_window", "left: expected >= -1 (-1 = unbounded), got ", left);
    if (right < -1) detail::fail("sliding_window", "right: expected >= -1 (-1 = unbounded), got ", right);
  }
};

}  // namespace attnkit
