#pragma once
/// @file batch.hpp  The KV cache and batch layouts of a server, as flash_attention takes them:
///  - `paged_kv`: a page pool with a block table and per-sequence lengths (vLLM, FlashInfer);
///  - `varlen`: ragged queries packed along the seq axis with offsets (FlashAttention's
///    cu_seqlens_q, vLLM's query_start_loc);
///  - `varlen_kv`: ragged keys / values packed the same way (cu_seqlens_k).
/// In every batched call sequence b's queries are the last ones of its keys (bottom-right, per
/// sequence): query i of a sequence with n_q queries and n_k keys sits at key position
/// n_k - n_q + i. So the cache holds the new tokens' K/V before the call (append first: see
/// cache/append.hpp), decode is n_q = 1 and chunked prefill is n_q = the chunk.
#include <cstdint>
#include <span>

#include "attnkit/core/quant.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit {

/// A paged KV cache. Token t of sequence b is row (t % page_size) of page
/// block_table[b * max_pages + t / page_size]; entries for pages past a sequence's length are
/// never read (they may hold anything, e.g. -1), and neither are rows past its length.
/// TK / TV may be quantized (core/quant.hpp): the pages are then quantized<T> views, their scales
/// pages of the same count and page size.
template <class TK, class TV = TK>
struct paged_kv {
  kv_view_t<TK> k_pages;  ///< {num_pages, page_size, Hkv, Dk}, any strides (dim stride 1)
  kv_view_t<TV> v_pages;  ///< {num_pages, page_size, Hkv, Dv}, the same pages and page size
  std::span<const std::int32_t> block_table;  ///< [B, max_pages] page ids
  index_t max_pages = 0;                      ///< pages per block-table row (its stride)
  std::span<const std::int32_t> lengths;      ///< [B] tokens of each sequence, <= max_pages * page_size
};

/// Ragged rows packed along the seq axis: sequence b owns rows [starts[b], starts[b + 1]) of a
/// view of batch 1. starts has B + 1 entries, starts[0] = 0, non-decreasing, starts[B] = rows' seq.
template <class T>
struct varlen {
  tensor_view<T> rows;                    ///< {1, total, H, D}
  std::span<const std::int32_t> starts;  ///< B + 1 offsets
};

/// Ragged keys and values packed along the seq axis with one set of offsets (as varlen).
template <class TK, class TV = TK>
struct varlen_kv {
  kv_view_t<TK> k;                        ///< {1, total_k, Hkv, Dk} (TK may be quantized)
  kv_view_t<TV> v;                        ///< {1, total_k, Hkv, Dv}
  std::span<const std::int32_t> starts;  ///< B + 1 offsets
};

}  // namespace attnkit
