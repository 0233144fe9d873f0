#pragma once
/// @file sink_tokens.hpp  keep(i, j) iff j < n: the first n keys ("attention sinks", StreamingLLM).
/// Used as `sink_tokens{n} | sliding_window{...}`.
#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"

namespace attnkit {

struct sink_tokens {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  index_t n = 0;
  bool keep(const head_ctx&, index_t, index_t j) const noexcept { return j < n; }
  tile_class classify(const head_ctx&, index_t, index_t, index_t j0, index_t j1) const noexcept {
    if (j0 >= n) return tile_class::empty;
    if (j1 <= n) return tile_class::full;
    return tile_class::partial;
  }
  key_spans spans(const head_ctx&, index_t, index_t, index_t sk) const noexcept {
    key_spans r;
    r.add(0, n < sk ? n : sk);
    return r;
  }
  void validate(const problem_dims&) const {
    if (n < 0) detail::fail("sink_tokens", "n: expected >= 0, got ", n);
  }
};

}  // namespace attnkit
