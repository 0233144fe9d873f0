#pragma once
/// @file causal.hpp  keep(i, j) iff j <= pos(i) = i + Sk - Sq (bottom-right aligned, as
/// FlashAttention >= 2.1): decode (Sq = 1) sees the whole cache; with Sq > Sk the first Sq - Sk
/// query rows keep nothing (their output is 0 and their LSE -inf).
#include <algorithm>

#include "attnkit/core/context.hpp"
#include "attnkit/mask/key_range.hpp"

namespace attnkit {

struct causal : key_range<causal> {
  index_t first(index_t) const noexcept { return -far; }
  index_t last(index_t p) const noexcept { return p; }
  void validate(const problem_dims&) const noexcept {}
};

}  // namespace attnkit
