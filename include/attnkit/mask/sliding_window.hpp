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

namespace attnkit {

struct sliding_window {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  index_t left = -1;   ///< keys kept before pos(i); -1 = unbounded
  index_t right = -1;  ///< keys kept after pos(i); -1 = unbounded (0 = causal)

  /// A causal window of W keys in total, the current one included: {W - 1, 0}.
  static sliding_window from_total(index_t W) {
    if (W < 1) detail::fail("sliding_window::from_total", "W: expected >= 1, got ", W);
    return {W - 1, 0};
  }

  // The rule, stated once: query at position p keeps keys [first(p), last(p)]. Bounds are clamped
  // to 2^40 (beyond any position difference validation allows), so p - left and p + right never
  // overflow, even for {0, INT64_MAX}.
  static constexpr index_t far = index_t(1) << 40;
  index_t first(index_t p) const noexcept { return left < 0 ? -far : p - std::min(left, far); }
  index_t last(index_t p) const noexcept { return right < 0 ? far : p + std::min(right, far); }

  bool keep(const head_ctx& c, index_t i, index_t j) const noexcept {
    const index_t p = c.pos(i);
    return first(p) <= j && j <= last(p);
  }
  // Both ends only move forward with the query, so the box's corners decide.
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const noexcept {
    const index_t p0 = c.pos(i0), p1 = c.pos(i1 - 1);
    if (j0 > last(p1) || j1 - 1 < first(p0)) return tile_class::empty;
    if (j1 - 1 <= last(p0) && j0 >= first(p1)) return tile_class::full;
    return tile_class::partial;
  }
  key_spans spans(const head_ctx& c, index_t i0, index_t i1, index_t sk) const noexcept {
    key_spans r;
    r.add(std::max<index_t>(0, first(c.pos(i0))), std::min(sk, last(c.pos(i1 - 1)) + 1));
    return r;
  }
  void validate(const problem_dims&) const {
    if (left < -1) detail::fail("sliding_window", "left: expected >= -1 (-1 = unbounded), got ", left);
    if (right < -1) detail::fail("sliding_window", "right: expected >= -1 (-1 = unbounded), got ", right);
  }
};

}  // namespace attnkit
