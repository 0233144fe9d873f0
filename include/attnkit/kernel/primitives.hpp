#pragma once
/// @file primitives.hpp  The named primitives: flash attention with the mask (and normalizer)
/// the name implies. Thin by design: every other policy and option passes through, and a mask the
/// caller passes as well is ANDed with the entry point's own (so `document{ids}` or a `mask_fn`
/// still applies inside a window).
#include <span>
#include <utility>

#include "attnkit/kernel/flash.hpp"
#include "attnkit/mask/block_layout.hpp"
#include "attnkit/mask/streaming.hpp"
#include "attnkit/norm/softmax_with_sink.hpp"

namespace attnkit {

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

namespace detail {
/// The argument itself, or `m & argument` when it is a mask.
template <class M, class A>
decltype(auto) and_if_mask(const M& m, A&& a) {
  if constexpr (declares<A, policy_kind::mask>) return m & a;
  else return std::forward<A>(a);
}
/// call(args...) with mask m ANDed into the caller's mask, or added when there is none.
template <class M, class Call, class... Args>
void with_mask(const M& m, Call&& call, Args&&... args) {
  if constexpr (count_kind<policy_kind::mask, Args...> == 0) call(m, std::forward<Args>(args)...);
  else call(and_if_mask(m, std::forward<Args>(args))...);
}

inline streaming_mask_t sink_mask(const attention_sinks& sinks) {
  if (sinks.window == 0 || sinks.window < -1)
    fail("sink_attention", "sinks.window: expected >= 1 or -1 (no window), got ", sinks.window);
  if (sinks.tokens < 0) fail("sink_attention", "sinks.tokens: expected >= 0, got ", sinks.tokens);
  // One mask type for both cases (an unbounded window is the causal mask): one instantiation.
  return {{sink_tokens{sinks.tokens}, sliding_window{sinks.window < 0 ? -1 : sinks.window - 1, 0}}, causal{}};
}
/// sink_attention's body for any operands: `call(policies...)` runs flash_attention on them.
template <class Call, class... Args>
void sink_call(const attention_sinks& sinks, Call&& call, Args&&... args) {
  const streaming_mask_t m = sink_mask(sinks);
  if (sinks.logits.empty()) {
    with_mask(m, call, std::forward<Args>(args)...);
  } else {
    if constexpr (count_kind<policy_kind::normalizer, Args...> != 0)
      fail("sink_attention", "sinks.logits: a normalizer was passed as well; pass one or the other");
    else with_mask(m, call, softmax_with_sink{sinks.logits}, std::forward<Args>(args)...);
  }
}
}  // namespace detail

/// Sliding-window attention: flash_attention restricted to `window` (sliding_window{left, right},
/// or sliding_window::from_total(W) for "W tokens including the current one", as Mistral and
/// Gemma mean it; FlashAttention's window_size = (left, right) is sliding_window{left, right}).
/// Keys outside every query's window in a tile are never read.
template <class Arch = default_arch, class TQ, detail::kv_operand K, detail::kv_operand V, class... Args>
void sliding_window_attention(tensor_view<TQ> q, const K& k, const V& v, tensor_view<float> out,
                              sliding_window window, Args&&... args) {
  detail::with_mask(window, [&](auto&&... a) { flash_attention<Arch>(q, k, v, out, a...); }, std::forward<Args>(args)...);
}
/// The same on a paged KV cache or a ragged batch (see flash_attention's batched form).
template <class Arch = default_arch, class Q, class KV, class... Args>
  requires detail::batched_call<Q, KV>
void sliding_window_attention(const Q& q, const KV& kv, tensor_view<float> out, sliding_window window, Args&&... args) {
  detail::with_mask(window, [&](auto&&... a) { flash_attention<Arch>(q, kv, out, a...); }, std::forward<Args>(args)...);
}

/// Block-sparse attention: flash_attention visiting only the blocks `layout` lists (full blocks
/// unmasked, partial ones through the layout's element mask), ANDed with a mask passed as well.
/// Tiles follow the layout's blocks; unlisted blocks' K/V are never read.
template <class Arch = default_arch, class TQ, detail::kv_operand K, detail::kv_operand V, class M, class... Args>
void block_sparse_attention(tensor_view<TQ> q, const K& k, const V& v, tensor_view<float> out,
                            const block_layout<M>& layout, Args&&... args) {
  detail::with_mask(layout, [&](auto&&... a) { flash_attention<Arch>(q, k, v, out, a...); }, std::forward<Args>(args)...);
}
/// The same on a paged KV cache or a ragged batch (blocks over each sequence's own indices).
template <class Arch = default_arch, class Q, class KV, class M, class... Args>
  requires detail::batched_call<Q, KV>
void block_sparse_attention(const Q& q, const KV& kv, tensor_view<float> out, const block_layout<M>& layout,
                            Args&&... args) {
  detail::with_mask(layout, [&](auto&&... a) { flash_attention<Arch>(q, kv, out, a...); }, std::forward<Args>(args)...);
}

/// Sink-aware attention: causal flash attention with the sinks described by `sinks` (see
/// attention_sinks). A normalizer passed as well is an error when sinks.logits is given.
template <class Arch = default_arch, class TQ, detail::kv_operand K, detail::kv_operand V, class... Args>
void sink_attention(tensor_view<TQ> q, const K& k, const V& v, tensor_view<float> out,
                    const attention_sinks& sinks, Args&&... args) {
  detail::sink_call(sinks, [&](auto&&... a) { flash_attention<Arch>(q, k, v, out, a...); }, std::forward<Args>(args)...);
}
/// The same on a paged KV cache or a ragged batch (see flash_attention's batched form).
template <class Arch = default_arch, class Q, class KV, class... Args>
  requires detail::batched_call<Q, KV>
void sink_attention(const Q& q, const KV& kv, tensor_view<float> out, const attention_sinks& sinks, Args&&... args) {
  detail::sink_call(sinks, [&](auto&&... a) { flash_attention<Arch>(q, kv, out, a...); }, std::forward<Args>(args)...);
}

}  // namespace attnkit
