#pragma once
/// @file flash.hpp  flash_attention: the mainloop over KV tiles with the online normalizer;
/// O(N) extra memory, empty tiles skipped, full tiles unmasked. Strided tensors, or the batched
/// layouts of a server (core/batch.hpp): a paged KV cache, ragged (varlen) queries and keys.
#include "attnkit/kernel/mainloop.hpp"

namespace attnkit {

/// Same contract as dense_attention, without probs_out. Extra memory: O(rows * (D + block_kv))
/// per thread, independent of the sequence length.
template <class Arch = default_arch, class TQ, detail::kv_operand K, detail::kv_operand V, class... Args>
void flash_attention(tensor_view<TQ> q, const K& k, const V& v, tensor_view<float> out, Args&&... args) {
  detail::run_attention<Arch>("flash_attention", detail::kernel_kind::flash, tiling{},
                              detail::make_operands("flash_attention", q, k, v, out), std::forward<Args>(args)...);
}

/// Batched call: q is a strided [B, Sq, Hq, Dk] view (every sequence has Sq queries) or a
/// `varlen` of packed queries; kv is a `paged_kv` cache or a `varlen_kv` (with varlen q). Each
/// sequence's queries are its last tokens (bottom-right per sequence). out has q's shape
/// ([B, Sq, Hq, Dv], or [1, total_q, Hq, Dv] for varlen q); lse_out is [B, Hq, Sq], or
/// [Hq, total_q] for varlen q. Every policy applies (masks see per-sequence positions);
/// query_offset, probs_out and key_mass_out are rejected. Garbage in pages or rows past a
/// sequence's length is never read.
template <class Arch = default_arch, class Q, class KV, class... Args>
  requires detail::batched_call<Q, KV>
void flash_attention(const Q& q, const KV& kv, tensor_view<float> out, Args&&... args) {
  detail::run_attention<Arch>("flash_attention", detail::kernel_kind::flash, tiling{},
                              detail::make_operands("flash_attention", q, kv, out), std::forward<Args>(args)...);
}

/// Bytes of `attnkit::workspace` that make flash_attention with the same arguments (executor
/// included: one scratch per worker) allocate nothing. Validates the arguments like the call does.
template <class Arch = default_arch, class TQ, detail::kv_operand K, detail::kv_operand V, class... Args>
index_t flash_workspace_bytes(tensor_view<TQ> q, const K& k, const V& v, tensor_view<float> out,
                              Args&&... args) {
  return detail::workspace_bytes<Arch>("flash_attention", detail::kernel_kind::flash, tiling{},
                                       detail::make_operands("flash_attention", q, k, v, out),
                                       std::forward<Args>(args)...);
}
template <class Arch = default_arch, class Q, class KV, class... Args>
  requires detail::batched_call<Q, KV>
index_t flash_workspace_bytes(const Q& q, const KV& kv, tensor_view<float> out, Args&&... args) {
  return detail::workspace_bytes<Arch>("flash_attention", detail::kernel_kind::flash, tiling{},
                                       detail::make_operands("flash_attention", q, kv, out),
                                       std::forward<Args>(args)...);
}

/// Which engine, tiles and KV splits flash_attention with the same arguments runs, and why
/// (validates the arguments like the call does; computes nothing).
template <class Arch = default_arch, class TQ, detail::kv_operand K, detail::kv_operand V, class... Args>
attention_plan plan_of(tensor_view<TQ> q, const K& k, const V& v, tensor_view<float> out, Args&&... args) {
  return detail::with_planned_call<Arch>("flash_attention", detail::kernel_kind::flash, tiling{},
                                         [](const auto& call) { return call.describe(); },
                                         detail::make_operands("flash_attention", q, k, v, out),
                                         std::forward<Args>(args)...);
}
template <class Arch = default_arch, class Q, class KV, class... Args>
  requires detail::batched_call<Q, KV>
attention_plan plan_of(const Q& q, const KV& kv, tensor_view<float> out, Args&&... args) {
  return detail::with_planned_call<Arch>("flash_attention", detail::kernel_kind::flash, tiling{},
                                         [](const auto& call) { return call.describe(); },
                                         detail::make_operands("flash_attention", q, kv, out),
                                         std::forward<Args>(args)...);
}

}  // namespace attnkit
