#pragma once
/// @file key_range.hpp  The structured masks' one rule: the query at key-axis position p keeps the
/// keys [first(p), last(p)] (inclusive; none when first(p) > last(p)), and both ends never move
/// backwards as p grows. A mask states first and last once, deriving from key_range<Self>; keep,
/// classify and spans follow from them, and the engines evaluate partial tiles from the same
/// bounds, a vector compare per key (ranges below) instead of a call of keep per element.
///
/// A rule that depends on the (batch, query head) it is evaluated for states
/// `first(const head_ctx&, p)` and `last(const head_ctx&, p)` instead (document: the ids row of
/// the batch). first and last are called per query of every partial tile and classify's four per
/// tile, so they must be O(1) or O(log Sk).
///
/// ranges(c, i, lo, hi) is the engine's view: `n_ranges` intervals whose union is what query i
/// keeps. A key_range mask has one; `a & b` has n_a x n_b (pairwise intersections) and `a | b`
/// n_a + n_b when both operands have ranges (combinators.hpp), so `(sink_tokens{4} |
/// sliding_window::from_total(W)) & causal{}` is evaluated as two intervals per query, and
/// `document{ids} & causal{}` as one. Masks on this form: causal, sliding_window, sink_tokens,
/// chunked_local, document.
#include <algorithm>
#include <concepts>

#include "attnkit/core/context.hpp"

namespace attnkit {

/// Masks that give their kept keys as intervals (see above).
template <class M>
concept has_key_ranges = requires(const M& m, const head_ctx& c, index_t i, index_t* b) {
  { M::n_ranges } -> std::convertible_to<int>;
  requires M::n_ranges > 0;
  m.ranges(c, i, b, b);
};

/// Derive as `struct my_mask : key_range<my_mask>` and state first / last (see above).
template <class Self>
struct key_range {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  static constexpr int n_ranges = 1;
  /// Bounds never exceed +-2^40 (beyond any position difference validation allows), so p -
  /// left, p + right and the engines' differences never overflow.
  static constexpr index_t far = index_t(1) << 40;

  bool keep(const head_ctx& c, index_t i, index_t j) const noexcept {
    const index_t p = c.pos(i);
    return first_of(c, p) <= j && j <= last_of(c, p);
  }
  // Both ends only move forward with the query, so the box's corners decide.
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const noexcept {
    const index_t p0 = c.pos(i0), p1 = c.pos(i1 - 1);
    if (j0 > last_of(c, p1) || j1 - 1 < first_of(c, p0)) return tile_class::empty;
    if (j1 - 1 <= last_of(c, p0) && j0 >= first_of(c, p1)) return tile_class::full;
    return tile_class::partial;
  }
  key_spans spans(const head_ctx& c, index_t i0, index_t i1, index_t sk) const noexcept {
    key_spans r;
    r.add(std::max<index_t>(0, first_of(c, c.pos(i0))), std::min(sk, last_of(c, c.pos(i1 - 1)) + 1));
    return r;
  }
  void ranges(const head_ctx& c, index_t i, index_t* lo, index_t* hi) const noexcept {
    const index_t p = c.pos(i);
    lo[0] = first_of(c, p), hi[0] = last_of(c, p);
  }

 private:
  const Self& self() const noexcept { return static_cast<const Self&>(*this); }
  // The rule with or without the context.
  index_t first_of(const head_ctx& c, index_t p) const noexcept {
    if constexpr (requires(const Self& s) { s.first(c, p); }) return self().first(c, p);
    else return self().first(p);
  }
  index_t last_of(const head_ctx& c, index_t p) const noexcept {
    if constexpr (requires(const Self& s) { s.last(c, p); }) return self().last(c, p);
    else return self().last(p);
  }
};

}  // namespace attnkit
