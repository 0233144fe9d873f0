#pragma once
/// @file local.hpp  Local attention patterns stated as key intervals per query:
///  - chunked_local{chunk}: causal attention inside fixed chunks of the key axis (Llama 4's
///    chunked attention): keep(i, j) iff j <= pos(i) and j / chunk == pos(i) / chunk;
///  - neighborhood_2d{h, w, kernel, dilation}: NATTEN's neighborhood attention over an image of
///    h x w tokens in row-major order: each query keeps the kernel x kernel neighbourhood around
///    it (shifted inwards at the borders; with dilation d, the neighbours are d apart).
#include <algorithm>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/mask/key_range.hpp"

namespace attnkit {

struct chunked_local : key_range<chunked_local> {
  index_t chunk = 1;
  constexpr chunked_local() = default;
  constexpr chunked_local(index_t c) noexcept : chunk(c) {}

  // The rule: the query at position p keeps keys [first(p), p] (none for p < 0).
  index_t first(index_t p) const noexcept { return p < 0 ? p + 1 : p - p % chunk; }
  index_t last(index_t p) const noexcept { return p; }
  void validate(const problem_dims&) const {
    if (chunk < 1) detail::fail("chunked_local", "chunk: expected >= 1, got ", chunk);
  }
};

struct neighborhood_2d {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  index_t h = 1, w = 1;     ///< image rows and columns; tokens are row-major (t = r * w + c)
  index_t kernel = 1;       ///< neighbourhood side (odd in NATTEN; any >= 1 here)
  index_t dilation = 1;

  /// First neighbour along an axis of length n for coordinate x: NATTEN's window, per dilation
  /// group (x mod dilation), clamped so that it stays inside the axis.
  index_t first(index_t x, index_t n) const noexcept {
    const index_t g = x % dilation, len = (n - g + dilation - 1) / dilation, idx = x / dilation;
    const index_t s = std::clamp<index_t>(idx - kernel / 2, 0, len - kernel);
    return g + s * dilation;
  }
  bool near(index_t x, index_t y, index_t n) const noexcept {  // y a neighbour of x along the axis
    const index_t f = first(x, n);
    return y >= f && y <= f + (kernel - 1) * dilation && (y - f) % dilation == 0;
  }
  bool keep(const head_ctx& c, index_t i, index_t j) const noexcept {
    const index_t p = c.pos(i);
    return near(p / w, j / w, h) && near(p % w, j % w, w);
  }
  // Row level: keys outside the rows any query of the box reaches are empty.
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const noexcept {
    index_t lo, hi;
    rows(c, i0, i1, lo, hi);
    if ((j1 - 1) / w < lo || j0 / w > hi) return tile_class::empty;
    return tile_class::partial;
  }
  key_spans spans(const head_ctx& c, index_t i0, index_t i1, index_t sk) const noexcept {
    index_t lo, hi;
    rows(c, i0, i1, lo, hi);
    key_spans r;
    r.add(std::max<index_t>(0, lo * w), std::min(sk, (hi + 1) * w));
    return r;
  }
  void validate(const problem_dims& d) const {
    if (h < 1 || w < 1 || kernel < 1 || dilation < 1)
      detail::fail("neighborhood_2d", "h, w, kernel, dilation: expected >= 1, got ", h, ", ", w, ", ", kernel, ", ",
                   dilation);
    if (kernel * dilation > h || kernel * dilation > w)
      detail::fail("neighborhood_2d", "kernel x dilation: expected <= h and w (", h, " x ", w, "), got ", kernel * dilation);
    if (d.sk != h * w) detail::fail("neighborhood_2d", "k: expected h x w = ", h * w, " keys, got ", d.sk);
    if (d.q_offset < 0 || d.q_offset + d.sq > d.sk)
      detail::fail("neighborhood_2d", "q: expected query positions inside the image [0, ", d.sk, "), got [", d.q_offset,
                   ", ", d.q_offset + d.sq, ")");
  }

 private:
  // Rows of the keys the queries [i0, i1) may keep: [lo, hi].
  void rows(const head_ctx& c, index_t i0, index_t i1, index_t& lo, index_t& hi) const noexcept {
    lo = h, hi = -1;
    for (index_t r = c.pos(i0) / w; r <= c.pos(i1 - 1) / w && r < h; ++r) {
      const index_t f = first(r, h);
      lo = std::min(lo, f), hi = std::max(hi, f + (kernel - 1) * dilation);
    }
  }
};

}  // namespace attnkit
