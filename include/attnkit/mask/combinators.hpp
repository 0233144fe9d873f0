#pragma once
/// @file combinators.hpp  `a & b` keeps a pair both keep; `a | b` keeps a pair either keeps.
/// Tile classes combine soundly: (&) empty if either is empty, full if both are full; (|) full if
/// either is full, empty if both are empty; partial otherwise. `per_head(which, a, b)`: query
/// head h takes mask a where which[h] == 0 and b where it is 1 (DuoAttention's retrieval heads
/// full, streaming heads sinks + window), in one call. A block shape one operand asks for
/// (block_layout's block_hint) is passed on.
#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>

#include "attnkit/concepts/mask_policy.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/mask/key_range.hpp"

namespace attnkit {

template <mask_policy A, mask_policy B>
struct mask_and {
  static constexpr policy_kind kind = policy_kind::mask;
  // An elementwise operand never proves "full", but & still skips the other's empty tiles.
  static constexpr bool elementwise = A::elementwise || B::elementwise;
  A a;
  B b;
  bool keep(const head_ctx& c, index_t i, index_t j) const { return a.keep(c, i, j) && b.keep(c, i, j); }
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const {
    const tile_class x = a.classify(c, i0, i1, j0, j1);
    if (x == tile_class::empty) return x;
    const tile_class y = b.classify(c, i0, i1, j0, j1);
    if (y == tile_class::empty) return y;
    return (x == tile_class::full && y == tile_class::full) ? tile_class::full : tile_class::partial;
  }
  key_spans spans(const head_ctx& c, index_t i0, index_t i1, index_t sk) const {
    return spans_of(a, c, i0, i1, sk) & spans_of(b, c, i0, i1, sk);
  }
  // Kept keys as intervals when both operands have them: the pairwise intersections.
  static constexpr int n_ranges = [] {
    if constexpr (has_key_ranges<A> && has_key_ranges<B>) return A::n_ranges * B::n_ranges;
    else return 0;
  }();
  void ranges(const head_ctx& c, index_t i, index_t* lo, index_t* hi) const
    requires(has_key_ranges<A> && has_key_ranges<B>)
  {
    index_t la[A::n_ranges], ha[A::n_ranges], lb[B::n_ranges], hb[B::n_ranges];
    a.ranges(c, i, la, ha);
    b.ranges(c, i, lb, hb);
    for (int x = 0; x < A::n_ranges; ++x)
      for (int y = 0; y < B::n_ranges; ++y)
        lo[x * B::n_ranges + y] = std::max(la[x], lb[y]), hi[x * B::n_ranges + y] = std::min(ha[x], hb[y]);
  }
  void validate(const problem_dims& d) const { a.validate(d); b.validate(d); }
};

template <mask_policy A, mask_policy B>
struct mask_or {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = A::elementwise && B::elementwise;  // either may prove "full"
  A a;
  B b;
  bool keep(const head_ctx& c, index_t i, index_t j) const { return a.keep(c, i, j) || b.keep(c, i, j); }
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const {
    const tile_class x = a.classify(c, i0, i1, j0, j1);
    if (x == tile_class::full) return x;
    const tile_class y = b.classify(c, i0, i1, j0, j1);
    if (y == tile_class::full) return y;
    return (x == tile_class::empty && y == tile_class::empty) ? tile_class::empty : tile_class::partial;
  }
  key_spans spans(const head_ctx& c, index_t i0, index_t i1, index_t sk) const {
    return spans_of(a, c, i0, i1, sk) | spans_of(b, c, i0, i1, sk);
  }
  // Kept keys as intervals when both operands have them: both operands' intervals.
  static constexpr int n_ranges = [] {
    if constexpr (has_key_ranges<A> && has_key_ranges<B>) return A::n_ranges + B::n_ranges;
    else return 0;
  }();
  void ranges(const head_ctx& c, index_t i, index_t* lo, index_t* hi) const
    requires(has_key_ranges<A> && has_key_ranges<B>)
  {
    a.ranges(c, i, lo, hi);
    b.ranges(c, i, lo + A::n_ranges, hi + A::n_ranges);
  }
  void validate(const problem_dims& d) const { a.validate(d); b.validate(d); }
};

/// The tile shape masks ask the mainloop to align to (block_layout), if any: {0, 0} when none.
template <class M>
constexpr std::pair<index_t, index_t> block_hint(const M& m) noexcept {
  if constexpr (requires { m.block_hint_q(); m.block_hint_kv(); }) return {m.block_hint_q(), m.block_hint_kv()};
  else if constexpr (requires { m.a; m.b; }) {
    const auto x = block_hint(m.a);
    return x.first ? x : block_hint(m.b);
  } else return {0, 0};
}

template <mask_policy A, mask_policy B>
struct mask_per_head {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = A::elementwise && B::elementwise;
  std::span<const std::uint8_t> which;  ///< [Hq]: 0 -> a, 1 -> b
  A a;
  B b;
  bool keep(const head_ctx& c, index_t i, index_t j) const { return which[c.q_head] ? b.keep(c, i, j) : a.keep(c, i, j); }
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const {
    return which[c.q_head] ? b.classify(c, i0, i1, j0, j1) : a.classify(c, i0, i1, j0, j1);
  }
  key_spans spans(const head_ctx& c, index_t i0, index_t i1, index_t sk) const {
    return which[c.q_head] ? spans_of(b, c, i0, i1, sk) : spans_of(a, c, i0, i1, sk);
  }
  void validate(const problem_dims& d) const {
    if (static_cast<index_t>(which.size()) != d.hq)
      detail::fail("per_head", "which: expected one entry per query head (", d.hq, "), got ", which.size());
    for (std::size_t h = 0; h < which.size(); ++h)
      if (which[h] > 1) detail::fail("per_head", "which[", h, "]: expected 0 or 1, got ", int(which[h]));
    a.validate(d);
    b.validate(d);
  }
};
template <mask_policy A, mask_policy B>
constexpr mask_per_head<A, B> per_head(std::span<const std::uint8_t> which, const A& a, const B& b) { return {which, a, b}; }

template <mask_policy A, mask_policy B>
constexpr mask_and<A, B> operator&(const A& a, const B& b) { return {a, b}; }
template <mask_policy A, mask_policy B>
constexpr mask_or<A, B> operator|(const A& a, const B& b) { return {a, b}; }

}  // namespace attnkit
