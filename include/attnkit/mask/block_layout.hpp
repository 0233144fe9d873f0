#pragma once
/// @file block_layout.hpp  Block-sparse structure (FlexAttention's BlockMask, Block-Sparse-
/// Attention's base_blockmask) as a mask that drives the traversal: for each (batch or broadcast,
/// query head or broadcast, query block) which KV blocks are visited, each `full` (every pair
/// kept) or `partial` (the layout's element mask `M` decides). Blocks are over query indices i
/// (not positions) and key indices j; unlisted blocks are never read. The mainloop aligns its
/// query and key tiles to the blocks (block_hint), so full blocks stay full.
///
/// Built from
///  - any mask policy, through its tile classification (`from_mask`: no element evaluation where
///    classify is exact; blocks the mask's spans exclude are not even classified);
///  - a boolean block matrix [B][H][n_qb][n_kb] (`from_block_mask`; B, H may be 1: broadcast);
///  - per-query-block lists of KV blocks (`from_csr`);
///  - a predicate on (query block, KV block) (`from_blocks`), which the static patterns of
///    attnkit::patterns (strided, power-of-two distances, radial) use.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "attnkit/concepts/mask_policy.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/mask/no_mask.hpp"

namespace attnkit {

/// The extents a layout is built for (its blocks must cover Sq x Sk of the calls it is used in).
struct layout_dims {
  index_t batch = 1;  ///< 1: one layout row for every batch
  index_t heads = 1;  ///< query heads; 1: one for every head
  index_t sq = 0, sk = 0;
  index_t q_offset = -1;  ///< for from_mask: key position of query 0; -1: Sk - Sq (bottom-right)
};

template <mask_policy M = no_mask>
class block_layout {
 public:
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = M::elementwise;
  enum : std::uint8_t { skip = 0, partial = 1, full = 2 };

  /// Every block of one (batch row, head row) from `f(b, h, qb, kb)` -> skip / partial / full.
  template <class F>
  static block_layout build(const char* fn, index_t batch, index_t heads, index_t n_qb, index_t n_kb, index_t block_q,
                            index_t block_kv, F&& f, M m = {}) {
    if (batch < 1 || heads < 1) fail_(fn, "batch, heads: expected >= 1 (1 = broadcast), got ", batch, ", ", heads);
    if (n_qb < 0 || n_kb < 0) fail_(fn, "n_qb, n_kb: expected >= 0, got ", n_qb, ", ", n_kb);
    if (block_q < 1 || block_kv < 1) fail_(fn, "block_q, block_kv: expected >= 1, got ", block_q, ", ", block_kv);
    if (n_qb > (index_t(1) << 20) || n_kb > (index_t(1) << 20) || batch * heads * n_qb > (index_t(1) << 24) ||
        batch * heads * n_qb * n_kb > (index_t(1) << 32))
      fail_(fn, "blocks: expected at most 2^32 blocks, got ", batch, " x ", heads, " x ", n_qb, " x ", n_kb);
    block_layout L;
    L.m_ = std::move(m);
    L.rows_b_ = batch, L.rows_h_ = heads, L.n_qb_ = n_qb, L.n_kb_ = n_kb, L.bq_ = block_q, L.bk_ = block_kv;
    auto st = std::make_shared<storage>();
    st->cls.assign(static_cast<std::size_t>(batch * heads * n_qb * n_kb), skip);
    st->first.assign(static_cast<std::size_t>(batch * heads * n_qb), n_kb);
    st->last.assign(static_cast<std::size_t>(batch * heads * n_qb), -1);
    for (index_t b = 0; b < batch; ++b)
      for (index_t h = 0; h < heads; ++h)
        for (index_t qb = 0; qb < n_qb; ++qb) {
          const index_t r = (b * heads + h) * n_qb + qb;
          f(b, h, qb, [&](index_t kb, std::uint8_t c) {
            if (kb < 0 || kb >= n_kb)
              fail_(fn, "block (", b, ", ", h, ", ", qb, "): expected KV block ids in [0, ", n_kb, "), got ", kb);
            if (c == skip) return;
            st->cls[r * n_kb + kb] = c;
            st->first[r] = std::min(st->first[r], kb);
            st->last[r] = std::max(st->last[r], kb);
          });
        }
    L.s_ = std::move(st);
    return L;
  }

  /// The blocks of mask `m` (kept as the element mask of partial blocks) over `dims`.
  static block_layout from_mask(M m, const layout_dims& dims, index_t block_q, index_t block_kv) {
    const index_t n_qb = (dims.sq + block_q - 1) / std::max<index_t>(block_q, 1);
    const index_t n_kb = (dims.sk + block_kv - 1) / std::max<index_t>(block_kv, 1);
    const index_t off = dims.q_offset < 0 ? dims.sk - dims.sq : dims.q_offset;
    const M& mm = m;
    return build("block_layout::from_mask", dims.batch, dims.heads, n_qb, n_kb, block_q, block_kv,
                 [&](index_t b, index_t h, index_t qb, auto&& set) {
                   const head_ctx c{b, h, off};
                   const index_t i0 = qb * block_q, i1 = std::min(dims.sq, i0 + block_q);
                   const key_spans sp = spans_of(mm, c, i0, i1, dims.sk);
                   for (int t = 0; t < sp.n; ++t)
                     for (index_t kb = sp.lo[t] / block_kv; kb * block_kv < sp.hi[t]; ++kb) {
                       const index_t j0 = kb * block_kv, j1 = std::min(dims.sk, j0 + block_kv);
                       const tile_class tc = mm.classify(c, i0, i1, j0, j1);
                       set(kb, tc == tile_class::empty ? skip : tc == tile_class::full ? full : partial);
                     }
                 }, m);  // a copy: the lambda reads m itself
  }

  index_t block_q() const noexcept { return bq_; }
  index_t block_kv() const noexcept { return bk_; }
  index_t q_blocks() const noexcept { return n_qb_; }
  index_t kv_blocks() const noexcept { return n_kb_; }
  /// Class of block (qb, kb) for batch b, query head h.
  std::uint8_t at(index_t b, index_t h, index_t qb, index_t kb) const noexcept { return s_->cls[row(b, h, qb) * n_kb_ + kb]; }
  /// Visited blocks / all blocks (of the first layout row).
  double density() const noexcept {
    const auto& c = s_->cls;
    if (c.empty()) return 0;
    return double(std::count_if(c.begin(), c.end(), [](std::uint8_t x) { return x != skip; })) / double(c.size());
  }

  // ---- mask policy ----
  bool keep(const head_ctx& c, index_t i, index_t j) const {
    const std::uint8_t k = at(c.batch, c.q_head, i / bq_, j / bk_);
    return k == full || (k == partial && m_.keep(c, i, j));
  }
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const {
    bool any = false, all = true, need_m = false;
    for (index_t qb = i0 / bq_; qb <= (i1 - 1) / bq_; ++qb)
      for (index_t kb = j0 / bk_; kb <= (j1 - 1) / bk_; ++kb) {
        const std::uint8_t k = at(c.batch, c.q_head, qb, kb);
        any = any || k != skip;
        all = all && k != skip;
        need_m = need_m || k == partial;
      }
    if (!any) return tile_class::empty;
    if (!all) return tile_class::partial;
    return need_m ? (m_.classify(c, i0, i1, j0, j1) == tile_class::full ? tile_class::full : tile_class::partial)
                  : tile_class::full;
  }
  key_spans spans(const head_ctx& c, index_t i0, index_t i1, index_t sk) const noexcept {
    index_t lo = n_kb_, hi = -1;
    for (index_t qb = i0 / bq_; qb <= (i1 - 1) / bq_; ++qb) {
      lo = std::min(lo, s_->first[row(c.batch, c.q_head, qb)]);
      hi = std::max(hi, s_->last[row(c.batch, c.q_head, qb)]);
    }
    key_spans r;
    if (hi >= lo) r.add(lo * bk_, std::min(sk, (hi + 1) * bk_));
    return r;
  }
  /// Tile shape the mainloop aligns to.
  index_t block_hint_q() const noexcept { return bq_; }
  index_t block_hint_kv() const noexcept { return bk_; }
  void validate(const problem_dims& d) const {
    if (n_qb_ * bq_ < d.sq || n_kb_ * bk_ < d.sk)
      fail_("block_layout", "blocks: expected to cover Sq x Sk = ", d.sq, " x ", d.sk, ", got ", n_qb_, " x ", bq_,
            " by ", n_kb_, " x ", bk_);
    if (rows_b_ != 1 && rows_b_ != d.batch)
      fail_("block_layout", "batch: expected 1 (broadcast) or B = ", d.batch, ", got ", rows_b_);
    if (rows_h_ != 1 && rows_h_ != d.hq)
      fail_("block_layout", "heads: expected 1 (broadcast) or Hq = ", d.hq, ", got ", rows_h_);
    m_.validate(d);
  }

 private:
  template <class... P>
  [[noreturn]] static void fail_(const char* fn, const P&... p) { detail::fail(fn, p...); }
  index_t row(index_t b, index_t h, index_t qb) const noexcept {
    return ((rows_b_ == 1 ? 0 : b) * rows_h_ + (rows_h_ == 1 ? 0 : h)) * n_qb_ + qb;
  }
  // Shared and immutable once built: a layout is copied into every call's arguments.
  struct storage {
    std::vector<std::uint8_t> cls;  ///< [rows][n_qb][n_kb]: skip / partial / full
    std::vector<index_t> first, last;  ///< per (row, q block): first and last visited KV block
  };
  M m_{};
  index_t rows_b_ = 1, rows_h_ = 1, n_qb_ = 0, n_kb_ = 0, bq_ = 1, bk_ = 1;
  std::shared_ptr<const storage> s_ = std::make_shared<storage>();
};

/// A boolean block matrix m [B][H][n_qb][n_kb] (row-major; B or H may be 1: broadcast): nonzero
/// = visit the block, every pair in it kept.
inline block_layout<> block_layout_from_block_mask(const std::uint8_t* m, index_t B, index_t H, index_t n_qb,
                                                   index_t n_kb, index_t block_q, index_t block_kv) {
  if (!m && B * H * n_qb * n_kb > 0) detail::fail("block_layout::from_block_mask", "m: expected non-null, got nullptr");
  return block_layout<>::build("block_layout::from_block_mask", B, H, n_qb, n_kb, block_q, block_kv,
                               [&](index_t b, index_t h, index_t qb, auto&& set) {
                                 const std::uint8_t* r = m + ((b * H + h) * n_qb + qb) * n_kb;
                                 for (index_t kb = 0; kb < n_kb; ++kb)
                                   if (r[kb]) set(kb, block_layout<>::full);
                               });
}

/// CSR lists: the KV blocks of query-block row r = (b * H + h) * n_qb + qb are
/// cols[row_ptr[r] .. row_ptr[r + 1]), each visited in full.
inline block_layout<> block_layout_from_csr(std::span<const std::int32_t> row_ptr, std::span<const std::int32_t> cols,
                                            index_t B, index_t H, index_t n_qb, index_t n_kb, index_t block_q,
                                            index_t block_kv) {
  constexpr const char* fn = "block_layout::from_csr";
  const index_t rows = B * H * n_qb;
  if (static_cast<index_t>(row_ptr.size()) != rows + 1)
    detail::fail(fn, "row_ptr: expected B x H x n_qb + 1 = ", rows + 1, " entries, got ", row_ptr.size());
  if (row_ptr[0] != 0) detail::fail(fn, "row_ptr: expected row_ptr[0] = 0, got ", row_ptr[0]);
  for (index_t r = 0; r < rows; ++r)
    if (row_ptr[r + 1] < row_ptr[r])
      detail::fail(fn, "row_ptr: expected non-decreasing offsets, got row_ptr[", r + 1, "] = ", row_ptr[r + 1],
                   " < row_ptr[", r, "] = ", row_ptr[r]);
  if (row_ptr[rows] != static_cast<index_t>(cols.size()))
    detail::fail(fn, "cols: expected row_ptr[last] = ", row_ptr[rows], " entries, got ", cols.size());
  return block_layout<>::build(fn, B, H, n_qb, n_kb, block_q, block_kv, [&](index_t b, index_t h, index_t qb, auto&& set) {
    const index_t r = (b * H + h) * n_qb + qb;
    for (index_t e = row_ptr[r]; e < row_ptr[r + 1]; ++e) set(cols[e], block_layout<>::full);
  });
}

/// Every block for which keep(qb, kb) holds, visited in full (one layout for all batches / heads).
template <class F>
block_layout<> block_layout_from_blocks(index_t n_qb, index_t n_kb, index_t block_q, index_t block_kv, F&& keep) {
  return block_layout<>::build("block_layout::from_blocks", 1, 1, n_qb, n_kb, block_q, block_kv,
                               [&](index_t, index_t, index_t qb, auto&& set) {
                                 for (index_t kb = 0; kb < n_kb; ++kb)
                                   if (keep(qb, kb)) set(kb, block_layout<>::full);
                               });
}

/// Static block patterns from the literature, over square blocks of `block` tokens of a causal
/// sequence of n tokens (query block qb is at the same positions as key block qb). Combine with
/// `causal{}` in the call for the diagonal blocks.
namespace patterns {
inline index_t blocks(index_t n, index_t block) { return (n + block - 1) / block; }
/// Sparse Transformer's strided pattern: the `local` previous blocks, plus every block whose
/// distance is a multiple of `stride` (dilated).
inline block_layout<> strided(index_t n, index_t block, index_t local, index_t stride) {
  if (stride < 1) detail::fail("patterns::strided", "stride: expected >= 1, got ", stride);
  return block_layout_from_blocks(blocks(n, block), blocks(n, block), block, block, [&](index_t qb, index_t kb) {
    const index_t dist = qb - kb;
    return dist >= 0 && (dist < local || dist % stride == 0);
  });
}
/// PowerAttention: the diagonal block and blocks at power-of-two distances 1, 2, 4, ...
inline block_layout<> power_of_two(index_t n, index_t block) {
  return block_layout_from_blocks(blocks(n, block), blocks(n, block), block, block, [](index_t qb, index_t kb) {
    const index_t dist = qb - kb;
    return dist == 0 || (dist > 0 && (dist & (dist - 1)) == 0);
  });
}
/// Radial attention: the window thins out with distance. Block distance d is kept when d < local,
/// and in band k (local * 2^k <= d < local * 2^(k+1)) when d is a multiple of 2^(k+1).
inline block_layout<> radial(index_t n, index_t block, index_t local) {
  if (local < 1) detail::fail("patterns::radial", "local: expected >= 1, got ", local);
  return block_layout_from_blocks(blocks(n, block), blocks(n, block), block, block, [&](index_t qb, index_t kb) {
    const index_t dist = qb - kb;
    if (dist < 0) return false;
    if (dist < local) return true;
    index_t k = 0;
    while ((local << (k + 1)) <= dist) ++k;
    return dist % (index_t(1) << (k + 1)) == 0;
  });
}
}  // namespace patterns

}  // namespace attnkit
