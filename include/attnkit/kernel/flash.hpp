#pragma once
/// @file flash.hpp  flash_attention: the mainloop over KV tiles with the online normalizer;
/// O(N) extra memory, empty tiles skipped, full tiles unmasked.
#include "attnkit/kernel/mainloop.hpp"

namespace attnkit {

/// Same contract as dense_attention, without probs_out. Extra memory: O(rows * (D + block_kv))
/// per thread, independent of the sequence length.
template <class Arch = default_arch, class TQ, class TK, class TV, class... Args>
void flash_attention(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out, Args&&... args) {
  detail::run_attention<Arch>("flash_attention", detail::kernel_kind::flash, tiling{}, q, k, v, out,
                              std::forward<Args>(args)...);
}

/// Bytes of `attnkit::workspace` that make flash_attention with the same arguments (executor
/// included: one scratch per worker) allocate nothing. Validates the arguments like the call does.
template <class Arch = default_arch, class TQ, class TK, class TV, class... Args>
index_t flash_workspace_bytes(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out,
                              Args&&... args) {
  return detail::workspace_bytes<Arch>("flash_attention", detail::kernel_kind::flash, tiling{}, q, k, v, out,
                                       std::forward<Args>(args)...);
}

/// Which engine, tiles and KV splits flash_attention with the same arguments runs, and why
/// (validates the arguments like the call does; computes nothing).
template <class Arch = default_arch, class TQ, class TK, class TV, class... Args>
attention_plan plan_of(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out, Args&&... args) {
  return detail::with_planned_call<Arch>("flash_attention", detail::kernel_kind::flash, tiling{},
                                         [](const auto& call) { return call.describe(); }, q, k, v, out,
                                         std::forward<Args>(args)...);
}

}  // namespace attnkit
