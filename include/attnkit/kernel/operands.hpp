#pragma once
/// @file operands.hpp  The operands of one attention call, whatever their layout: strided
/// tensors, a paged KV cache, ragged (varlen) queries or keys. Each front end validates its
/// layout once (named errors, nothing written) and reduces it to row sources and per-sequence
/// lengths; the mainloop sees one type for every layout, so a layout costs no extra
/// instantiation of the engines.
#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>

#include "attnkit/core/batch.hpp"
#include "attnkit/core/validate.hpp"
#include "attnkit/simd/quant.hpp"

namespace attnkit::detail {

/// Where row j of sequence b lives on the seq axis of an operand's storage: strided (b, j); varlen
/// (0, start[b] + j); paged: row j % page of page table[b * table_stride + j / page]. Rows
/// [j, j + run(j)) are one seq stride apart. Shared by plain and quantized row sources.
struct row_addressing {
  const std::int32_t* start = nullptr;
  const std::int32_t* table = nullptr;
  index_t table_stride = 0, page = 0;

  /// (batch or page, seq index) of row j of sequence b.
  std::pair<index_t, index_t> where(index_t b, index_t j) const noexcept {
    if (table) return {table[b * table_stride + j / page], j % page};
    if (start) return {0, start[b] + j};
    return {b, j};
  }
  index_t run(index_t j) const noexcept { return table ? page - j % page : max_extent; }
};

/// The head vectors of one operand: t.row at row_addressing's place.
template <class T>
struct row_source : row_addressing {
  tensor_view<T> t;

  T* row(index_t b, index_t j, index_t h) const noexcept {
    const auto [bi, si] = where(b, j);
    return t.row(bi, si, h);
  }
  index_t ld() const noexcept { return t.strides[1]; }
  index_t head_ld() const noexcept { return t.strides[2]; }
  index_t dim() const noexcept { return t.dim(); }
  /// Rows [j, j + run(j)) as the decode kernels read them.
  simd::kv_rows<std::remove_cv_t<T>> rows(index_t b, index_t j, index_t h) const noexcept { return {row(b, j, h), ld()}; }
};

/// A quantized operand: the same addressing for the values, and for the scales (core/quant.hpp)
/// the scale row of each row (by channel: of its block of rows of the seq axis, or of the page).
template <class T>
  requires quantized_type<std::remove_cv_t<T>>
struct row_source<T> : row_addressing {
  using E = std::remove_cv_t<T>;
  quantized<T> t;

  T* row(index_t b, index_t j, index_t h) const noexcept {
    const auto [bi, si] = where(b, j);
    return t.values.row(bi, si, h);
  }
  index_t ld() const noexcept { return t.values.strides[1]; }
  index_t head_ld() const noexcept { return t.values.strides[2]; }
  index_t dim() const noexcept { return t.dim(); }
  simd::kv_rows<E> rows(index_t b, index_t j, index_t h) const noexcept {
    const auto [bi, si] = where(b, j);
    const index_t blk = quant_traits<E>::by_channel ? t.block : 1;
    const simd::scale_rows s{t.scales.row(bi, si / blk, h), t.scales.strides[1], blk, si % blk};
    return {t.values.row(bi, si, h), ld(), s, 0};
  }
};

/// A by-channel quantized page pool: blocks of rows must not straddle pages.
template <class K>
void check_page_blocks(const char*, const char*, const K&) {}
template <class E>
  requires quant_traits<std::remove_cv_t<E>>::by_channel
void check_page_blocks(const char* fn, const char* name, const quantized<E>& k) {
  if (k.block >= 1 && k.seq() % k.block != 0)
    fail(fn, name, ".block: expected a divisor of the page size ", k.seq(), " (scale blocks within pages), got ",
         k.block);
}

/// Everything the mainloop needs to know about the operands, validated.
template <class TQ, class TK, class TV>
struct operands {
  row_source<TQ> q;
  row_source<TK> k;
  row_source<TV> v;
  row_source<float> o;
  problem_dims d{};                          ///< sq, sk: the largest over the sequences
  const std::int32_t* q_start = nullptr;     ///< varlen queries: offsets (LSE is [Hq, total_q])
  const std::int32_t* k_start = nullptr;     ///< varlen keys: offsets
  const std::int32_t* k_len = nullptr;       ///< paged: lengths
  index_t total_q = 0;
  byte_range ranges[4];                      ///< q, k, v, out memory (extra outputs must avoid it)

  bool batched() const noexcept { return q_start || k_start || k_len; }
  index_t sq_of(index_t b) const noexcept { return q_start ? q_start[b + 1] - q_start[b] : d.sq; }
  index_t sk_of(index_t b) const noexcept {
    return k_len ? k_len[b] : k_start ? k_start[b + 1] - k_start[b] : d.sk;
  }
  /// Key position of query 0 of sequence b (d.q_offset for strided calls: it may be user-set).
  index_t q_offset_of(index_t b) const noexcept { return batched() ? sk_of(b) - sq_of(b) : d.q_offset; }
  /// Index of (b, h, i) in the LSE output: [B, Hq, Sq], or [Hq, total_q] for varlen queries.
  index_t lse_index(index_t b, index_t h, index_t i) const noexcept {
    return q_start ? h * total_q + q_start[b] + i : (b * d.hq + h) * d.sq + i;
  }
};

/// Strided q [B,Sq,Hq,Dk], k [B,Sk,Hkv,Dk], v [B,Sk,Hkv,Dv], out [B,Sq,Hq,Dv]; k and v are
/// tensor_views or quantized views.
template <class TQ, kv_operand K, kv_operand V>
operands<TQ, kv_elem_t<K>, kv_elem_t<V>> make_operands(const char* fn, tensor_view<TQ> q, const K& k, const V& v,
                                                       tensor_view<float> o) {
  operands<TQ, kv_elem_t<K>, kv_elem_t<V>> r;
  r.d = check_attention(fn, q, k, v, o);
  r.q.t = q, r.k.t = k, r.v.t = v, r.o.t = o;
  r.ranges[0] = range_of(q), r.ranges[1] = range_of(k), r.ranges[2] = range_of(v), r.ranges[3] = range_of(o);
  return r;
}

/// varlen offsets: `n` + 1 entries from 0 to `total`, non-decreasing.
inline void check_starts(const char* fn, const char* name, std::span<const std::int32_t> s, index_t n, index_t total,
                         const char* total_from) {
  if (static_cast<index_t>(s.size()) != n + 1)
    fail(fn, name, ": expected B + 1 = ", n + 1, " offsets, got ", s.size());
  if (s[0] != 0) fail(fn, name, ": expected starts[0] = 0, got ", s[0]);
  for (index_t b = 0; b < n; ++b)
    if (s[b + 1] < s[b])
      fail(fn, name, ": expected non-decreasing offsets, got starts[", b + 1, "] = ", s[b + 1], " < starts[", b,
           "] = ", s[b]);
  if (s[n] != total) fail(fn, name, ": expected starts[B] = ", total, " (", total_from, "), got ", s[n]);
}

template <class T>  // a tensor_view or a quantized view
void check_single_batch(const char* fn, const char* name, const T& t) {
  if (t.batch() != 1) fail(fn, name, ": expected batch 1 (varlen rows are packed along seq), got ", t.batch());
}

/// Shared by every batched layout: heads, dims, output shape and memory, once q and K/V are known.
template <class TQ, class TK, class TV, class K, class V>
void finish_batched(const char* fn, operands<TQ, TK, TV>& r, const tensor_view<TQ>& q, const K& k, const V& v,
                    const tensor_view<float>& o, const char* kname, const char* vname) {
  check_view(fn, "out", o);
  check_heads_and_out(fn, q, k, v, o, kname, vname);
  r.ranges[0] = range_of(q), r.ranges[1] = range_of(k), r.ranges[2] = range_of(v), r.ranges[3] = range_of(o);
  r.d.hq = q.heads(), r.d.hkv = k.heads(), r.d.dk = q.dim(), r.d.dv = v.dim();
  r.d.q_offset = r.d.sk - r.d.sq;
  r.q.t = q, r.o.t = o;
}

/// Queries: strided [B, Sq, Hq, Dk] (every sequence has Sq queries) or varlen.
template <class TQ>
index_t query_batch(const char* fn, const tensor_view<TQ>& q, index_t& sq) {
  check_view(fn, "q", q);
  sq = q.seq();
  return q.batch();
}
template <class TQ>
index_t query_batch(const char* fn, const varlen<TQ>& q, index_t& sq) {
  check_view(fn, "q.rows", q.rows);
  check_single_batch(fn, "q.rows", q.rows);
  const index_t n = static_cast<index_t>(q.starts.size()) - 1;
  if (n < 0) fail(fn, "q.starts: expected B + 1 >= 1 offsets, got 0");
  check_starts(fn, "q.starts", q.starts, n, q.rows.seq(), "q.rows' seq");
  sq = 0;
  for (index_t b = 0; b < n; ++b) sq = std::max<index_t>(sq, q.starts[b + 1] - q.starts[b]);
  return n;
}
template <class TQ>
const tensor_view<TQ>& query_view(const tensor_view<TQ>& q) { return q; }
template <class TQ>
const tensor_view<TQ>& query_view(const varlen<TQ>& q) { return q.rows; }
template <class TQ>
const std::int32_t* query_starts(const tensor_view<TQ>&) { return nullptr; }
template <class TQ>
const std::int32_t* query_starts(const varlen<TQ>& q) { return q.starts.data(); }

template <class Q>
concept query_operand = requires(const Q& q) { query_view(q); };

/// Queries (strided or varlen) against a paged KV cache.
template <query_operand Q, class TK, class TV>
auto make_operands(const char* fn, const Q& qs, const paged_kv<TK, TV>& kv, tensor_view<float> o) {
  const auto& q = query_view(qs);
  using TQ = typename std::remove_cvref_t<decltype(q)>::element_type;
  operands<TQ, TK, TV> r;
  index_t sq = 0;
  const index_t B = query_batch(fn, qs, sq);
  check_view(fn, "kv.k_pages", kv.k_pages);
  check_view(fn, "kv.v_pages", kv.v_pages);
  check_page_blocks(fn, "kv.k_pages", kv.k_pages);
  check_page_blocks(fn, "kv.v_pages", kv.v_pages);
  const index_t pages = kv.k_pages.batch(), ps = kv.k_pages.seq();
  check_extent(fn, "kv.v_pages", "pages (batch)", pages, kv.v_pages.batch(), "k_pages");
  check_extent(fn, "kv.v_pages", "page size (seq)", ps, kv.v_pages.seq(), "k_pages");
  if (ps < 1) fail(fn, "kv.k_pages: expected page size (seq extent) >= 1, got ", ps);
  if (static_cast<index_t>(kv.lengths.size()) != B)
    fail(fn, "kv.lengths: expected B = ", B, " entries (q's batch), got ", kv.lengths.size());
  if (kv.max_pages < 0 || kv.max_pages > max_extent)
    fail(fn, "kv.max_pages: expected 0 <= max_pages <= ", max_extent, ", got ", kv.max_pages);
  if (static_cast<index_t>(kv.block_table.size()) != checked_mul(fn, "kv.block_table", B, kv.max_pages))
    fail(fn, "kv.block_table: expected B x max_pages = ", B, " x ", kv.max_pages, " entries, got ",
         kv.block_table.size());
  index_t sk = 0;
  for (index_t b = 0; b < B; ++b) {
    const index_t len = kv.lengths[b];
    if (len < 0 || len > kv.max_pages * ps)
      fail(fn, "kv.lengths[", b, "]: expected 0 <= length <= max_pages x page_size = ", kv.max_pages * ps, ", got ",
           len);
    for (index_t p = 0; p * ps < len; ++p) {
      const index_t id = kv.block_table[b * kv.max_pages + p];
      if (id < 0 || id >= pages)
        fail(fn, "kv.block_table[", b, "][", p, "]: expected a page id in [0, ", pages, ") (sequence ", b, " holds ",
             len, " tokens in pages of ", ps, "), got ", id);
    }
    sk = std::max(sk, len);
  }
  r.d.batch = B, r.d.sq = sq, r.d.sk = sk;
  r.k_len = kv.lengths.data();
  r.q_start = query_starts(qs), r.total_q = q.seq();
  const row_addressing paged{nullptr, kv.block_table.data(), kv.max_pages, ps};
  r.k = {paged, kv.k_pages};
  r.v = {paged, kv.v_pages};
  r.o.start = r.q.start = r.q_start;
  finish_batched(fn, r, q, kv.k_pages, kv.v_pages, o, "kv.k_pages", "kv.v_pages");
  return r;
}

/// varlen queries against varlen keys / values.
template <class TQ, class TK, class TV>
auto make_operands(const char* fn, const varlen<TQ>& qs, const varlen_kv<TK, TV>& kv, tensor_view<float> o) {
  operands<TQ, TK, TV> r;
  index_t sq = 0;
  const index_t B = query_batch(fn, qs, sq);
  check_view(fn, "kv.k", kv.k);
  check_view(fn, "kv.v", kv.v);
  check_single_batch(fn, "kv.k", kv.k);
  check_single_batch(fn, "kv.v", kv.v);
  check_extent(fn, "kv.v", "seq", kv.k.seq(), kv.v.seq(), "kv.k's seq");
  check_starts(fn, "kv.starts", kv.starts, B, kv.k.seq(), "kv.k's seq");
  index_t sk = 0;
  for (index_t b = 0; b < B; ++b) sk = std::max<index_t>(sk, kv.starts[b + 1] - kv.starts[b]);
  r.d.batch = B, r.d.sq = sq, r.d.sk = sk;
  r.k_start = kv.starts.data();
  r.q_start = qs.starts.data(), r.total_q = qs.rows.seq();
  r.k = {{r.k_start}, kv.k};
  r.v = {{r.k_start}, kv.v};
  r.o.start = r.q.start = r.q_start;
  finish_batched(fn, r, qs.rows, kv.k, kv.v, o, "kv.k", "kv.v");
  return r;
}

template <class Q, class KV>
concept batched_call = requires(const Q& q, const KV& kv, tensor_view<float> o) { make_operands("", q, kv, o); };

}  // namespace attnkit::detail
