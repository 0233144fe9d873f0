#pragma once
/// @file combinators.hpp  `a & b` keeps a pair both keep; `a | b` keeps a pair either keeps.
/// Tile classes combine soundly: (&) empty if either is empty, full if both are full; (|) full if
/// either is full, empty if both are empty; partial otherwise.
#include "attnkit/concepts/mask_policy.hpp"

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
  void validate(const problem_dims& d) const { a.validate(d); b.validate(d); }
};

template <mask_policy A, mask_policy B>
constexpr mask_and<A, B> operator&(const A& a, const B& b) { return {a, b}; }
template <mask_policy A, mask_policy B>
constexpr mask_or<A, B> operator|(const A& a, const B& b) { return {a, b}; }

}  // namespace attnkit
