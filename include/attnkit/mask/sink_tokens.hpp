#pragma once
/// @file sink_tokens.hpp  keep(i, j) iff j < n: the first n keys ("attention sinks", StreamingLLM).
/// Used as `sink_tokens{n} | sliding_window{...}`.
#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/mask/key_range.hpp"

namespace attnkit {

struct sink_tokens : key_range<sink_tokens> {
  index_t n = 0;
  constexpr sink_tokens() = default;
  constexpr sink_tokens(index_t n_) noexcept : n(n_) {}
  index_t first(index_t) const noexcept { return -far; }
  index_t last(index_t) const noexcept { return std::min(n, far) - 1; }
  void validate(const problem_dims&) const {
    if (n < 0) detail::fail("sink_tokens", "n: expected >= 0, got ", n);
  }
};

}  // namespace attnkit
