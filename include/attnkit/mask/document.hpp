#pragma once
/// @file document.hpp  Packed sequences: keep(i, j) iff ids[pos(i)] == ids[j], where ids gives the
/// document of every key-axis position (length Sk per batch, non-decreasing, as packing produces).
/// Combine with `causal{}` for causal packed training: `document{ids} & causal{}`.
#include <cstdint>
#include <span>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"

namespace attnkit {

struct document {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  std::span<const std::int32_t> ids;  ///< [B, Sk] (batch_stride = Sk) or [Sk] shared by all batches
  index_t batch_stride = 0;           ///< 0: one ids row for every batch

  const std::int32_t* row(const head_ctx& c) const noexcept { return ids.data() + c.batch * batch_stride; }
  bool keep(const head_ctx& c, index_t i, index_t j) const noexcept {
    const index_t p = c.pos(i);
    return p >= 0 && row(c)[p] == row(c)[j];  // a query left of the key axis (Sq > Sk) keeps nothing
  }
  // Sound because ids are non-decreasing: a box is full when both ranges lie in one document and
  // empty when one range ends before the other begins.
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const noexcept {
    const index_t p0 = c.pos(i0), p1 = c.pos(i1 - 1);
    if (p1 < 0) return tile_class::empty;
    if (p0 < 0) return tile_class::partial;
    const std::int32_t* r = row(c);
    const std::int32_t qa = r[p0], qb = r[p1], ka = r[j0], kb = r[j1 - 1];
    if (qb < ka || kb < qa) return tile_class::empty;
    if (qa == qb && ka == kb && qa == ka) return tile_class::full;
    return tile_class::partial;
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
