#pragma once
/// @file document.hpp  Packed sequences: keep(i, j) iff ids[pos(i)] == ids[j], where ids gives the
/// document of every key-axis position (length Sk per batch, non-decreasing, as packing produces).
/// Combine with `causal{}` for causal packed training: `document{ids} & causal{}`.
///
/// Because ids are non-decreasing, every document is one run of positions, so the keys the query
/// at position p keeps are one interval, its document's run: the key_range rule (key_range.hpp)
/// first(p) = start of the run holding p, last(p) = end of it - 1, both non-decreasing in p.
/// classify, spans and the vector mask of partial tiles derive from it (keep is its O(1) form,
/// see Cost), and `document{ids} & causal{}` or `(sink_tokens{n} | sliding_window{...}) &
/// document{ids}` are masked as interval lists too. A query left of the key axis (p < 0, Sq > Sk) keeps nothing;
/// validate rejects query positions past the ids (p >= Sk).
///
/// Cost: first and last are a binary search of the batch's ids row (O(log Sk); ids are not
/// copied or preprocessed, the mask stays a view), called per query of a partial tile and four
/// times per classified tile. keep, called per element where no key ranges are used, is the same
/// rule in O(1) (ids[pos(i)] == ids[j]) rather than two searches per element.
#include <algorithm>
#include <cstdint>
#include <span>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/mask/key_range.hpp"

namespace attnkit {

struct document : key_range<document> {
  std::span<const std::int32_t> ids;  ///< [B, Sk] (batch_stride = Sk) or [Sk] shared by all batches
  index_t batch_stride = 0;           ///< 0: one ids row for every batch

  constexpr document() = default;
  constexpr document(std::span<const std::int32_t> ids_, index_t batch_stride_ = 0) noexcept
      : ids(ids_), batch_stride(batch_stride_) {}

  const std::int32_t* row(const head_ctx& c) const noexcept { return ids.data() + c.batch * batch_stride; }
  /// Entries of one ids row (Sk once validated).
  index_t row_length() const noexcept { return batch_stride != 0 ? batch_stride : static_cast<index_t>(ids.size()); }

  // The rule: the query at position p keeps the keys of its document's run of ids, [first, last].
  // For p < 0 the interval is empty, [p + 1, p], and stays left of first(0) = 0 and last(0).
  index_t first(const head_ctx& c, index_t p) const noexcept {
    if (p < 0) return p + 1;
    const std::int32_t* r = row(c);
    return std::lower_bound(r, r + p, r[p]) - r;
  }
  index_t last(const head_ctx& c, index_t p) const noexcept {
    if (p < 0) return p;
    const std::int32_t* r = row(c);
    return std::upper_bound(r + p + 1, r + row_length(), r[p]) - r - 1;
  }

  // keep, for the callers that evaluate element by element (the reference; combinations without
  // key ranges, e.g. per_head or & mask_fn): the derived first <= j <= last in O(1). p's run holds
  // exactly the keys with p's id, since ids are non-decreasing (the tests check both agree).
  bool keep(const head_ctx& c, index_t i, index_t j) const noexcept {
    const index_t p = c.pos(i);
    return p >= 0 && row(c)[p] == row(c)[j];
  }

  void validate(const problem_dims& d) const {
    if (batch_stride != 0 && batch_stride != d.sk)
      detail::fail("document", "batch_stride: expected 0 or Sk (", d.sk, "), got ", batch_stride);
    // ids cover key positions only: a query placed past the last key (query_offset) has no document.
    if (d.sq > 0 && d.q_offset + d.sq - 1 >= d.sk)
      detail::fail("document", "query_offset: expected every query position < Sk (", d.sk,
                   ") so that ids covers it, got positions up to ", d.q_offset + d.sq - 1);
    const index_t rows = batch_stride == 0 ? 1 : d.batch;
    if (static_cast<index_t>(ids.size()) != rows * d.sk)
      detail::fail("document", "ids: expected ", rows, " x Sk = ", rows * d.sk, " entries, got ", ids.size());
    for (index_t b = 0; b < rows; ++b)
      for (index_t j = 1; j < d.sk; ++j)
        if (ids[b * d.sk + j] < ids[b * d.sk + j - 1])
          detail::fail("document", "ids: expected non-decreasing document ids, got ids[", j, "] = ",
                       ids[b * d.sk + j], " < ids[", j - 1, "] = ", ids[b * d.sk + j - 1], " in row ", b);
  }
};

}  // namespace attnkit
