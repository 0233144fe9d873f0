#pragma once
/// @file causal.hpp  keep(i, j) iff j <= pos(i) = i + Sk - Sq (bottom-right aligned, as
/// FlashAttention >= 2.1): decode (Sq = 1) sees the whole cache; with Sq > Sk the first Sq - Sk
/// query rows keep nothing (their output is 0 and their LSE -inf).
#include <algorithm>

#include "attnkit/core/context.hpp"

namespace attnkit {

struct causal {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  bool keep(const head_ctx& c, index_t i, index_t j) const noexcept { return j <= c.pos(i); }
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const noexcept {
    if (j0 > c.pos(i1 - 1)) return tile_class::empty;  // even the last query sees no key here
    if (j1 - 1 <= c.pos(i0)) return tile_class::full;   // even the first query sees every key
    return tile_class::partial;
  }
  key_spans spans(const head_ctx& c, index_t, index_t i1, index_t sk) const noexcept {
    key_spans r;
    r.add(0, std::min(sk, c.pos(i1 - 1) + 1));
    return r;
  }
  void validate(const problem_dims&) const noexcept {}
};

}  // namespace attnkit
