#pragma once
/// @file dense.hpp  dense_attention: the mainloop with one KV tile spanning all keys, so every
/// row's scores are materialized at once and the probabilities can be written (probs_out).
#include "attnkit/kernel/mainloop.hpp"

namespace attnkit {

/// O = normalizer(mask(score(scale * Q K^T))) V over the whole key axis at once.
/// q [B,Sq,Hq,Dk], k [B,Sk,Hkv,Dk], v [B,Sk,Hkv,Dv], out [B,Sq,Hq,Dv] (float); then policies and
/// options in any order: score, mask, normalizer, executor, scale, query_offset, lse_out,
/// probs_out, key_mass_out, workspace. Extra memory: O(rows * Sk) per thread.
template <class Arch = default_arch, class TQ, detail::kv_operand K, detail::kv_operand V, class... Args>
void dense_attention(tensor_view<TQ> q, const K& k, const V& v, tensor_view<float> out, Args&&... args) {
  detail::run_attention<Arch>("dense_attention", detail::kernel_kind::dense, tiling{},
                              detail::make_operands("dense_attention", q, k, v, out), std::forward<Args>(args)...);
}

/// Bytes of `attnkit::workspace` that make dense_attention with the same arguments (executor
/// included: one scratch per worker) allocate nothing. Validates the arguments like the call does.
template <class Arch = default_arch, class TQ, detail::kv_operand K, detail::kv_operand V, class... Args>
index_t dense_workspace_bytes(tensor_view<TQ> q, const K& k, const V& v, tensor_view<float> out,
                              Args&&... args) {
  return detail::workspace_bytes<Arch>("dense_attention", detail::kernel_kind::dense, tiling{},
                                       detail::make_operands("dense_attention", q, k, v, out),
                                       std::forward<Args>(args)...);
}

}  // namespace attnkit
