#pragma once
/// @file tree.hpp  Speculative decoding with a token tree (Medusa, SpecInfer, EAGLE): the call's
/// Sq = n queries are the draft tokens, whose K/V are the last n keys (bottom-right: query i sits
/// at position q_offset + i and its own key is there). parents[i] is draft token i's parent
/// (-1: a child of the last cached token); every draft sees the whole cache before the drafts,
/// itself and its ancestors, nothing else:
///
///     keep(i, j)  iff  j < q_offset  or  (j - q_offset) is i or an ancestor of i
///
/// A chain (parents = {-1, 0, 1, ...}) is the causal mask. Up to 64 drafts per tree; one tree
/// shared by the batch, or one per sequence (parents [B, n], `per_sequence`).
#include <cstdint>
#include <span>
#include <vector>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"

namespace attnkit {

class tree_mask {
 public:
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  static constexpr index_t max_tokens = 64;

  /// parents: n entries (one tree), or B * n when n is given (one tree per sequence, row b at
  /// parents[b * n]). Each entry is -1 or an earlier token of its tree.
  explicit tree_mask(std::span<const std::int32_t> parents, index_t n = 0)
      : n_(n == 0 ? static_cast<index_t>(parents.size()) : n) {
    const index_t total = static_cast<index_t>(parents.size());
    if (n_ < 1 || n_ > max_tokens) detail::fail("tree_mask", "n: expected 1 <= drafts per tree <= 64, got ", n_);
    if (total % n_ != 0)
      detail::fail("tree_mask", "parents: expected a multiple of n = ", n_, " entries (B x n), got ", total);
    rows_ = total / n_;
    anc_.resize(total);
    for (index_t r = 0; r < rows_; ++r)
      for (index_t i = 0; i < n_; ++i) {
        const std::int32_t p = parents[r * n_ + i];
        if (p < -1 || p >= i)
          detail::fail("tree_mask", "parents[", r * n_ + i, "]: expected -1 (a root) or an earlier token in [0, ", i,
                       "), got ", p);
        // Parents come first, so a token's ancestor set is its parent's plus itself.
        anc_[r * n_ + i] = (p < 0 ? 0 : anc_[r * n_ + p]) | (std::uint64_t(1) << i);
      }
  }

  index_t drafts() const noexcept { return n_; }

  bool keep(const head_ctx& c, index_t i, index_t j) const noexcept {
    const index_t t = j - c.q_offset;
    if (t < 0) return true;
    return t < n_ && i < n_ && ((ancestors(c, i) >> t) & 1u);
  }
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const noexcept {
    const index_t t0 = j0 - c.q_offset, t1 = j1 - c.q_offset;  // the box's keys as draft indices
    if (t1 <= 0) return tile_class::full;                        // cache only
    if (t0 >= n_) return tile_class::empty;                      // past the drafts
    const index_t lo = t0 < 0 ? 0 : t0, hi = t1 < n_ ? t1 : n_;
    const std::uint64_t want = (hi - lo == 64 ? ~std::uint64_t(0) : ((std::uint64_t(1) << (hi - lo)) - 1)) << lo;
    std::uint64_t any = 0, all = want;
    for (index_t i = i0; i < i1 && i < n_; ++i) any |= ancestors(c, i) & want, all &= ancestors(c, i);
    if (t0 >= 0 && any == 0) return tile_class::empty;
    return (all == want && t1 <= n_ && i1 <= n_) ? tile_class::full : tile_class::partial;
  }
  key_spans spans(const head_ctx& c, index_t, index_t, index_t sk) const noexcept {
    key_spans r;
    r.add(0, std::min(sk, c.q_offset + n_));
    return r;
  }
  void validate(const problem_dims& d) const {
    if (d.sq != n_) detail::fail("tree_mask", "n: expected one query per draft token (Sq = ", d.sq, "), got ", n_);
    if (rows_ != 1 && rows_ != d.batch)
      detail::fail("tree_mask", "parents: expected one tree or one per sequence (B = ", d.batch, "), got ", rows_);
  }

 private:
  std::uint64_t ancestors(const head_ctx& c, index_t i) const noexcept { return anc_[(rows_ == 1 ? 0 : c.batch) * n_ + i]; }
  index_t n_ = 0, rows_ = 1;
  std::vector<std::uint64_t> anc_;  ///< bit t of anc_[r * n + i]: token t is i or an ancestor of i
};

}  // namespace attnkit
