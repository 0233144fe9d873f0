#pragma once
/// @file primitives.hpp  The named primitives: flash attention with the mask (and normalizer)
/// the name implies. Thin by design: every other policy and option passes through, and a mask the
/// caller passes as well is ANDed with the entry point's own (so `document{ids}` or a `mask_fn`
/// still applies inside a window).
#include <span>
#include <utility>

#include "attnkit/kernel/flash.hpp"
#include "attnkit/mask/streaming.hpp"
#include "attnkit/norm/softmax_with_sink.hpp"

namespace attnkit {

namespace detail {
/// The argument itself, or `m & argument` when it is a mask.
template <class M, class A>
decltype(auto) and_if_mask(const M& m, A&& a) {
  if constexpr (declares<A, policy_kind::mask>) return m & a;
  else return std::forward<A>(a);
}
/// flash_attention with mask m ANDed into the caller's mask, or added when there is none.
template <class Arch, class M, class TQ, class TK, class TV, class... Args>
void flash_with_mask(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out, const M& m,
                     Args&&... args) {
  if constexpr (count_kind<policy_kind::mask, Args...> == 0) flash_attention<Arch>(q, k, v, out, m, std::forward<Args>(args)...);
  else flash_attention<Arch>(q, k, v, out, and_if_mask(m, std::forward<Args>(args))...);
}
}  // namespace detail

/// Sliding-window attention: flash_attention restricted to `window` (sliding_window{left, right},
/// or sliding_window::from_total(W) for "W tokens including the current one", as Mistral and
/// Gemma mean it; FlashAttention's window_size = (left, right) is sliding_window{left, right}).
/// Keys outside every query's window in a tile are never read.
template <class Arch = default_arch, class TQ, class TK, class TV, class... Args>
void sliding_window_attention(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out,
                              sliding_window window, Args&&... args) {
  detail::flash_with_mask<Arch>(q, k, v, out, window, std::forward<Args>(args)...);
}

/// What sink_attention's `sinks` holds. Both parts are optional and combine:
///  - tokens, window: StreamingLLM. The first `tokens` keys are pinned and every query also keeps
///    the last `window` keys up to itself; always causal (streaming_mask). window = -1: no window
///    (plain causal attention; the pinned tokens are then inside it anyway).
///  - logits: one learned sink logit per query head (gpt-oss, "off-by-one" softmax): enters the
///    softmax denominator once, never V (softmax_with_sink). Empty: plain softmax.
struct attention_sinks {
  index_t tokens = 0;
  index_t window = -1;
  std::span<const float> logits = {};
};

/// Sink-aware attention: causal flash attention with the sinks described by `sinks` (see
/// attention_sinks). A normalizer passed as well is an error when sinks.logits is given.
template <class Arch = default_arch, class TQ, class TK, class TV, class... Args>
void sink_attention(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out,
                    const attention_sinks& sinks, Args&&... args) {
  if (sinks.window == 0 || sinks.window < -1)
    detail::fail("sink_attention", "sinks.window: expected >= 1 or -1 (no window), got ", sinks.window);
  if (sinks.tokens < 0) detail::fail("sink_attention", "sinks.tokens: expected >= 0, got ", sinks.tokens);
  // One mask type for both cases (an unbounded window is the causal mask): one instantiation.
  const streaming_mask_t m{{sink_tokens{sinks.tokens}, sliding_window{sinks.window < 0 ? -1 : sinks.window - 1, 0}},
                           causal{}};
  if (sinks.logits.empty()) {
    detail::flash_with_mask<Arch>(q, k, v, out, m, std::forward<Args>(args)...);
  } else {
    if constexpr (detail::count_kind<policy_kind::normalizer, Args...> != 0)
      detail::fail("sink_attention", "sinks.logits: a normalizer was passed as well; pass one or the other");
    else detail::flash_with_mask<Arch>(q, k, v, out, m, softmax_with_sink{sinks.logits}, std::forward<Args>(args)...);
  }
}

}  // namespace attnkit
