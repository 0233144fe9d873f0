#pragma once
/// @file streaming.hpp  The StreamingLLM mask as one named policy: each query keeps the first
/// `sinks` keys and the last `window` keys up to its own position, never a key after it:
///
///     keep(i, j)  iff  j <= pos(i)  and  (j < sinks  or  j > pos(i) - window)
///
/// = `(sink_tokens{sinks} | sliding_window::from_total(window)) & causal{}`. The `& causal{}` is
/// the point: `sink_tokens` alone keeps the first keys for every query, so without it a query
/// before the sinks' end would see future sink keys.
#include "attnkit/mask/causal.hpp"
#include "attnkit/mask/combinators.hpp"
#include "attnkit/mask/sink_tokens.hpp"
#include "attnkit/mask/sliding_window.hpp"

namespace attnkit {

using streaming_mask_t = mask_and<mask_or<sink_tokens, sliding_window>, causal>;

/// `sinks` pinned tokens (>= 0) plus a causal window of `window` tokens (>= 1) including the
/// query's own position.
inline streaming_mask_t streaming_mask(index_t sinks, index_t window) {
  if (sinks < 0) detail::fail("streaming_mask", "sinks: expected >= 0, got ", sinks);
  return {{sink_tokens{sinks}, sliding_window::from_total(window)}, causal{}};
}

}  // namespace attnkit
