#pragma once
/// @file append.hpp  Writing a step's K/V into a cache before the attention call that reads it
/// (batched calls take the new tokens as the last of each sequence: core/batch.hpp).
///  - append_kv: a contiguous / strided cache [B, capacity, H, D], positions [at, at + n);
///  - store_paged_kv: a page pool, one slot per new token (slot = page * page_size + row, the
///    slot_mapping of vLLM's reshape_and_cache); slot -1 skips a token (padding).
/// Elements are converted to the cache's type (fp32 -> bf16 / fp16 round to nearest even).
/// Everything is validated before the first write.
#include <cstdint>
#include <span>
#include <type_traits>

#include "attnkit/core/errors.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/types.hpp"
#include "attnkit/core/validate.hpp"

namespace attnkit {

namespace detail {
template <class D, class S>
void copy_row(D* dst, const S* src, index_t n) {
  if constexpr (std::is_same_v<std::remove_cv_t<D>, std::remove_cv_t<S>>)
    for (index_t c = 0; c < n; ++c) dst[c] = src[c];
  else
    for (index_t c = 0; c < n; ++c) dst[c] = from_float<std::remove_cv_t<D>>(to_float(src[c]));
}
template <class C, class N>
void check_new_rows(const char* fn, const char* name, const tensor_view<C>& cache, const char* cname,
                    const tensor_view<N>& rows, index_t batch) {
  check_view(fn, cname, cache);
  check_view(fn, name, rows);
  if (rows.batch() != batch || rows.heads() != cache.heads() || rows.dim() != cache.dim())
    fail(fn, name, ": expected {", batch, ", n, ", cache.heads(), ", ", cache.dim(), "} (from ", cname, "), got {",
         rows.batch(), ", ", rows.seq(), ", ", rows.heads(), ", ", rows.dim(), "}");
  check_distinct_elements(fn, cname, cache);
  if (range_of(cache).overlaps(range_of(rows))) fail(fn, name, ": expected memory disjoint from ", cname);
}
/// The two caches must not share memory, and neither may the other's new rows.
template <class KC, class KN, class VC, class VN>
void check_kv_disjoint(const char* fn, const tensor_view<KC>& kc, const char* kname, const tensor_view<VC>& vc,
                       const char* vname, const tensor_view<KN>& kn, const tensor_view<VN>& vn) {
  if (range_of(kc).overlaps(range_of(vc))) fail(fn, vname, ": expected memory disjoint from ", kname);
  if (range_of(kc).overlaps(range_of(vn))) fail(fn, "v_new: expected memory disjoint from ", kname);
  if (range_of(vc).overlaps(range_of(kn))) fail(fn, "k_new: expected memory disjoint from ", vname);
}
}  // namespace detail

/// Copy k_new / v_new [B, n, H, D] into rows [at, at + n) of k_cache / v_cache [B, capacity, H, D];
/// returns at + n (the new length).
template <class KC, class KN, class VC, class VN>
index_t append_kv(tensor_view<KC> k_cache, tensor_view<VC> v_cache, index_t at, tensor_view<KN> k_new,
                  tensor_view<VN> v_new) {
  constexpr const char* fn = "append_kv";
  static_assert(!std::is_const_v<KC> && !std::is_const_v<VC>, "attnkit::append_kv: the caches must be writable");
  detail::check_new_rows(fn, "k_new", k_cache, "k_cache", k_new, k_cache.batch());
  detail::check_new_rows(fn, "v_new", v_cache, "v_cache", v_new, k_cache.batch());
  detail::check_kv_disjoint(fn, k_cache, "k_cache", v_cache, "v_cache", k_new, v_new);
  if (v_cache.seq() != k_cache.seq())
    detail::fail(fn, "v_cache: expected capacity (seq) ", k_cache.seq(), " (k_cache's), got ", v_cache.seq());
  if (v_new.seq() != k_new.seq()) detail::fail(fn, "v_new: expected seq ", k_new.seq(), " (k_new's), got ", v_new.seq());
  if (at < 0 || at > k_cache.seq() - k_new.seq())
    detail::fail(fn, "at: expected 0 <= at <= capacity - n = ", k_cache.seq() - k_new.seq(), ", got ", at);
  for (index_t b = 0; b < k_new.batch(); ++b)
    for (index_t t = 0; t < k_new.seq(); ++t)
      for (index_t h = 0; h < k_new.heads(); ++h) {
        detail::copy_row(k_cache.row(b, at + t, h), k_new.row(b, t, h), k_new.dim());
        detail::copy_row(v_cache.row(b, at + t, h), v_new.row(b, t, h), v_new.dim());
      }
  return at + k_new.seq();
}

/// Write token r of k_new / v_new (rows in (batch, seq) order: r = b * n + t) to slot slots[r]
/// of the page pools k_pages / v_pages {num_pages, page_size, H, D}; slot -1 skips the token. Two
/// tokens with the same slot: the later one wins.
template <class KC, class KN, class VC, class VN>
void store_paged_kv(tensor_view<KC> k_pages, tensor_view<VC> v_pages, std::span<const std::int64_t> slots,
                    tensor_view<KN> k_new, tensor_view<VN> v_new) {
  constexpr const char* fn = "store_paged_kv";
  static_assert(!std::is_const_v<KC> && !std::is_const_v<VC>, "attnkit::store_paged_kv: the pages must be writable");
  detail::check_new_rows(fn, "k_new", k_pages, "k_pages", k_new, k_new.batch());
  detail::check_new_rows(fn, "v_new", v_pages, "v_pages", v_new, k_new.batch());
  detail::check_kv_disjoint(fn, k_pages, "k_pages", v_pages, "v_pages", k_new, v_new);
  if (v_pages.batch() != k_pages.batch() || v_pages.seq() != k_pages.seq())
    detail::fail(fn, "v_pages: expected {", k_pages.batch(), ", ", k_pages.seq(), ", ...} (k_pages' pages and page size), got {",
                 v_pages.batch(), ", ", v_pages.seq(), ", ...}");
  if (v_new.seq() != k_new.seq()) detail::fail(fn, "v_new: expected seq ", k_new.seq(), " (k_new's), got ", v_new.seq());
  const index_t n = k_new.batch() * k_new.seq(), ps = k_pages.seq(), limit = k_pages.batch() * ps;
  if (static_cast<index_t>(slots.size()) != n)
    detail::fail(fn, "slots: expected one per new token (B x n = ", n, "), got ", slots.size());
  for (index_t r = 0; r < n; ++r)
    if (slots[r] < -1 || slots[r] >= limit)
      detail::fail(fn, "slots[", r, "]: expected -1 or a slot in [0, num_pages x page_size = ", limit, "), got ", slots[r]);
  for (index_t r = 0; r < n; ++r) {
    if (slots[r] < 0) continue;
    const index_t b = r / k_new.seq(), t = r % k_new.seq(), pg = slots[r] / ps, row = slots[r] % ps;
    for (index_t h = 0; h < k_new.heads(); ++h) {
      detail::copy_row(k_pages.row(pg, row, h), k_new.row(b, t, h), k_new.dim());
      detail::copy_row(v_pages.row(pg, row, h), v_new.row(b, t, h), v_new.dim());
    }
  }
}

}  // namespace attnkit
