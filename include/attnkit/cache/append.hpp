#pragma once
/// @file append.hpp  Writing a step's K/V into a cache before the attention call that reads it
/// (batched calls take the new tokens as the last of each sequence: core/batch.hpp).
///  - append_kv: a contiguous / strided cache [B, capacity, H, D], positions [at, at + n);
///  - store_paged_kv: a page pool, one slot per new token (slot = page * page_size + row, the
///    slot_mapping of vLLM's reshape_and_cache); slot -1 skips a token (padding).
/// Elements are converted to the cache's type (fp32 -> bf16 / fp16 round to nearest even), or
/// quantized into a quantized cache (core/quant.hpp; symmetric, scale = max|x| / qmax per row,
/// per group of 32, or per channel of a block of rows; q = round(x / scale); an all-zero row or
/// group gets scale 0). A quantized cache takes finite new values only. A by-channel cache is
/// written in whole blocks: append_kv's `at` must be a multiple of the block (a last partial
/// block is quantized from the rows it has, and later rows cannot join it), and store_paged_kv's
/// slots must write each block they touch from its first row, in consecutive slots of one call.
/// Everything is validated before the first write.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "attnkit/core/errors.hpp"
#include "attnkit/core/quant.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/types.hpp"
#include "attnkit/core/validate.hpp"

namespace attnkit {

namespace detail {
/// Quantize n values (one row of a per-token scheme) into q / scales (core/quant.hpp).
template <class E, class S>
void quantize_row(const S* x, index_t n, E* q, float* scale) {
  using Tr = quant_traits<E>;
  const index_t g = Tr::group == 0 ? n : Tr::group;
  for (index_t c0 = 0; c0 < n; c0 += g) {
    float m = 0.f;
    for (index_t c = c0; c < c0 + g; ++c) m = std::max(m, std::abs(to_float(x[c])));
    const float sc = m / static_cast<float>(Tr::qmax);
    scale[c0 / g] = sc;
    for (index_t c = c0; c < c0 + g; ++c) {
      int v = sc > 0.f ? static_cast<int>(std::nearbyint(to_float(x[c]) / sc)) : 0;
      v = std::clamp(v, -Tr::qmax, Tr::qmax);
      if constexpr (std::is_same_v<E, qint4>) {  // byte i of the group: element i low, i + 16 high; u = q + 8
        const index_t j = c % 32;
        auto& b = q[c / 32 * 16 + (j & 15)].bits;
        const unsigned u = static_cast<unsigned>(v + 8);
        b = static_cast<std::uint8_t>(j >= 16 ? ((b & 0x0fu) | (u << 4)) : ((b & 0xf0u) | u));
      } else {
        q[c].bits = static_cast<std::int8_t>(v);
      }
    }
  }
}
/// Quantize rows[0 .. m) (each n values) by channel into q rows (stride ldq) and one scale row.
template <class E, class S>
void quantize_block(const S* const* rows, index_t m, index_t n, E* q, index_t ldq, float* scale) {
  for (index_t c = 0; c < n; ++c) {
    float mx = 0.f;
    for (index_t i = 0; i < m; ++i) mx = std::max(mx, std::abs(to_float(rows[i][c])));
    const float sc = mx / 127.f;
    scale[c] = sc;
    for (index_t i = 0; i < m; ++i) {
      const int v = sc > 0.f ? static_cast<int>(std::nearbyint(to_float(rows[i][c]) / sc)) : 0;
      q[i * ldq + c].bits = static_cast<std::int8_t>(std::clamp(v, -127, 127));
    }
  }
}
/// One row into a plain cache (converted) or a per-token quantized cache (quantized).
template <class D, class S>
void put_row(const tensor_view<D>& c, index_t b, index_t s, index_t h, const S* src, index_t n);
template <class E, class S>
void put_row(const quantized<E>& c, index_t b, index_t s, index_t h, const S* src, index_t n) {
  quantize_row(src, n, c.values.row(b, s, h), c.scale_row(b, s, h));
}
template <class C>
inline constexpr bool by_channel_cache = false;
template <class E>
inline constexpr bool by_channel_cache<quantized<E>> = quant_traits<std::remove_cv_t<E>>::by_channel;
template <class C>
inline constexpr bool quantized_cache = quantized_type<std::remove_cv_t<kv_elem_t<C>>>;

/// A quantized cache takes finite values only (a scale from NaN / Inf would poison its row).
template <class C, class N>
void check_finite_rows(const char* fn, const char* name, const C&, const tensor_view<N>& rows) {
  if constexpr (quantized_cache<C>)
    for (index_t b = 0; b < rows.batch(); ++b)
      for (index_t t = 0; t < rows.seq(); ++t)
        for (index_t h = 0; h < rows.heads(); ++h)
          for (index_t c = 0; c < rows.dim(); ++c)
            if (!std::isfinite(to_float(rows(b, t, h, c))))
              fail(fn, name, ": expected finite values for a quantized cache, got ", to_float(rows(b, t, h, c)),
                   " at {", b, ", ", t, ", ", h, ", ", c, "}");
}

template <class D, class S>
void copy_row(D* dst, const S* src, index_t n) {
  if constexpr (std::is_same_v<std::remove_cv_t<D>, std::remove_cv_t<S>>)
    for (index_t c = 0; c < n; ++c) dst[c] = src[c];
  else
    for (index_t c = 0; c < n; ++c) dst[c] = from_float<std::remove_cv_t<D>>(to_float(src[c]));
}
template <class D, class S>
void put_row(const tensor_view<D>& c, index_t b, index_t s, index_t h, const S* src, index_t n) {
  copy_row(c.row(b, s, h), src, n);
}
template <class C, class N>
void check_new_rows(const char* fn, const char* name, const C& cache, const char* cname,
                    const tensor_view<N>& rows, index_t batch) {
  check_view(fn, cname, cache);
  check_view(fn, name, rows);
  if (rows.batch() != batch || rows.heads() != cache.heads() || rows.dim() != cache.dim())
    fail(fn, name, ": expected {", batch, ", n, ", cache.heads(), ", ", cache.dim(), "} (from ", cname, "), got {",
         rows.batch(), ", ", rows.seq(), ", ", rows.heads(), ", ", rows.dim(), "}");
  check_distinct_elements(fn, cname, cache);
  if (range_of(cache).overlaps(range_of(rows)) || scales_range_of(cache).overlaps(range_of(rows)))
    fail(fn, name, ": expected memory disjoint from ", cname);
  if (range_of(cache).overlaps(scales_range_of(cache)))
    fail(fn, cname, ": expected values and scales in disjoint memory");
  check_finite_rows(fn, name, cache, rows);
}
/// The two caches must not share memory, and neither may the other's new rows.
template <class KC, class KN, class VC, class VN>
void check_kv_disjoint(const char* fn, const KC& kc, const char* kname, const VC& vc, const char* vname,
                       const tensor_view<KN>& kn, const tensor_view<VN>& vn) {
  const byte_range k2[2] = {range_of(kc), scales_range_of(kc)}, v2[2] = {range_of(vc), scales_range_of(vc)};
  for (const auto& a : k2)
    for (const auto& b : v2)
      if (a.overlaps(b)) fail(fn, vname, ": expected memory disjoint from ", kname);
  if (k2[1].overlaps(range_of(vn))) fail(fn, "v_new: expected memory disjoint from ", kname);
  if (v2[1].overlaps(range_of(kn))) fail(fn, "k_new: expected memory disjoint from ", vname);
  if (range_of(kc).overlaps(range_of(vn))) fail(fn, "v_new: expected memory disjoint from ", kname);
  if (range_of(vc).overlaps(range_of(kn))) fail(fn, "k_new: expected memory disjoint from ", vname);
}
}  // namespace detail

namespace detail {
template <class C>
void check_block_start(const char* fn, const char* name, const C& c, index_t at) {
  if constexpr (by_channel_cache<C>)
    if (c.block >= 1 && at % c.block != 0)
      fail(fn, "at: expected a multiple of ", name, ".block = ", c.block,
           " (a by-channel cache is written in whole blocks of rows), got ", at);
}
/// rows [at, at + n) of every (batch, head) of cache from new_rows.
template <class C, class N>
void append_rows(const C& cache, index_t at, const tensor_view<N>& nr) {
  const index_t n = nr.seq(), D = nr.dim();
  for (index_t b = 0; b < nr.batch(); ++b)
    for (index_t h = 0; h < nr.heads(); ++h) {
      if constexpr (by_channel_cache<C>) {
        std::vector<const N*> rp;
        for (index_t t0 = 0; t0 < n; t0 += cache.block) {
          const index_t m = std::min(cache.block, n - t0);
          rp.resize(static_cast<std::size_t>(m));
          for (index_t i = 0; i < m; ++i) rp[i] = nr.row(b, t0 + i, h);
          quantize_block(rp.data(), m, D, cache.values.row(b, at + t0, h), cache.values.strides[1],
                         cache.scale_row(b, at + t0, h));
        }
      } else {
        for (index_t t = 0; t < n; ++t) put_row(cache, b, at + t, h, nr.row(b, t, h), D);
      }
    }
}
}  // namespace detail

/// Copy k_new / v_new [B, n, H, D] into rows [at, at + n) of k_cache / v_cache [B, capacity, H, D];
/// returns at + n (the new length).
/// The caches may be tensor_views or quantized views (quantized from k_new / v_new).
template <detail::kv_operand KC, class KN, detail::kv_operand VC, class VN>
index_t append_kv(KC k_cache, VC v_cache, index_t at, tensor_view<KN> k_new, tensor_view<VN> v_new) {
  constexpr const char* fn = "append_kv";
  static_assert(!std::is_const_v<detail::kv_elem_t<KC>> && !std::is_const_v<detail::kv_elem_t<VC>>,
                "attnkit::append_kv: the caches must be writable");
  detail::check_new_rows(fn, "k_new", k_cache, "k_cache", k_new, k_cache.batch());
  detail::check_new_rows(fn, "v_new", v_cache, "v_cache", v_new, k_cache.batch());
  detail::check_kv_disjoint(fn, k_cache, "k_cache", v_cache, "v_cache", k_new, v_new);
  if (v_cache.seq() != k_cache.seq())
    detail::fail(fn, "v_cache: expected capacity (seq) ", k_cache.seq(), " (k_cache's), got ", v_cache.seq());
  if (v_new.seq() != k_new.seq()) detail::fail(fn, "v_new: expected seq ", k_new.seq(), " (k_new's), got ", v_new.seq());
  if (at < 0 || at > k_cache.seq() - k_new.seq())
    detail::fail(fn, "at: expected 0 <= at <= capacity - n = ", k_cache.seq() - k_new.seq(), ", got ", at);
  detail::check_block_start(fn, "k_cache", k_cache, at);
  detail::check_block_start(fn, "v_cache", v_cache, at);
  detail::append_rows(k_cache, at, k_new);
  detail::append_rows(v_cache, at, v_new);
  return at + k_new.seq();
}

/// Write token r of k_new / v_new (rows in (batch, seq) order: r = b * n + t) to slot slots[r]
/// of the page pools k_pages / v_pages {num_pages, page_size, H, D}; slot -1 skips the token. Two
/// tokens with the same slot: the later one wins.
namespace detail {
/// Runs of new tokens (first token, count) that write whole blocks of a by-channel page pool: a
/// run starts at a slot that is a multiple of block and continues with the same sequence's next
/// tokens in the next slots, up to block tokens. Validated before anything is written.
inline std::vector<std::pair<index_t, index_t>> channel_runs(const char* fn, const char* name, index_t block,
                                                             std::span<const std::int64_t> slots, index_t seq) {
  std::vector<std::pair<index_t, index_t>> runs;
  for (index_t r = 0; r < static_cast<index_t>(slots.size()); ++r) {
    if (slots[r] < 0) continue;
    if (slots[r] % block == 0) {
      runs.push_back({r, 1});
      continue;
    }
    const bool continues = !runs.empty() && runs.back().first + runs.back().second == r && r % seq != 0 &&
                           slots[r - 1] == slots[r] - 1;
    if (!continues)
      fail(fn, "slots[", r, "]: ", name, " is quantized by channel in blocks of ", block,
           " rows, written whole: expected a slot that is a multiple of ", block,
           " or the slot after the previous token's, got ", slots[r]);
    ++runs.back().second;
  }
  return runs;
}
/// The new tokens into one page pool (plain or per-token quantized: row by row; by channel: runs).
template <class C, class N>
void store_rows(const char* fn, const char* name, const C& pages, std::span<const std::int64_t> slots,
                const tensor_view<N>& nr) {
  const index_t ps = pages.seq(), n = nr.batch() * nr.seq();
  if constexpr (by_channel_cache<C>) {
    std::vector<const N*> rp;
    for (auto [r0, m] : channel_runs(fn, name, pages.block, slots, nr.seq())) {
      const index_t pg = slots[r0] / ps, row = slots[r0] % ps, b = r0 / nr.seq(), t0 = r0 % nr.seq();
      rp.resize(static_cast<std::size_t>(m));
      for (index_t h = 0; h < nr.heads(); ++h) {
        for (index_t i = 0; i < m; ++i) rp[i] = nr.row(b, t0 + i, h);
        quantize_block(rp.data(), m, nr.dim(), pages.values.row(pg, row, h), pages.values.strides[1],
                       pages.scale_row(pg, row, h));
      }
    }
  } else {
    for (index_t r = 0; r < n; ++r) {
      if (slots[r] < 0) continue;
      const index_t b = r / nr.seq(), t = r % nr.seq(), pg = slots[r] / ps, row = slots[r] % ps;
      for (index_t h = 0; h < nr.heads(); ++h) put_row(pages, pg, row, h, nr.row(b, t, h), nr.dim());
    }
  }
}
template <class C>
void check_channel_slots(const char* fn, const char* name, const C& pages, std::span<const std::int64_t> slots,
                         index_t seq) {
  if constexpr (by_channel_cache<C>) {
    if (pages.block < 1 || pages.seq() % pages.block != 0)
      fail(fn, name, ".block: expected a divisor of the page size ", pages.seq(), ", got ", pages.block);
    (void)channel_runs(fn, name, pages.block, slots, seq);
  }
}
}  // namespace detail

/// The page pools may be tensor_views or quantized views (quantized from k_new / v_new).
template <detail::kv_operand KC, class KN, detail::kv_operand VC, class VN>
void store_paged_kv(KC k_pages, VC v_pages, std::span<const std::int64_t> slots, tensor_view<KN> k_new,
                    tensor_view<VN> v_new) {
  constexpr const char* fn = "store_paged_kv";
  static_assert(!std::is_const_v<detail::kv_elem_t<KC>> && !std::is_const_v<detail::kv_elem_t<VC>>,
                "attnkit::store_paged_kv: the pages must be writable");
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
  detail::check_channel_slots(fn, "k_pages", k_pages, slots, k_new.seq());
  detail::check_channel_slots(fn, "v_pages", v_pages, slots, k_new.seq());
  detail::store_rows(fn, "k_pages", k_pages, slots, k_new);
  detail::store_rows(fn, "v_pages", v_pages, slots, v_new);
}

}  // namespace attnkit
