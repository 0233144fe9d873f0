#pragma once
/// @file context.hpp  What a policy sees: the problem's dimensions (for validation), the
/// (batch, query head) it is evaluated for, and the tile classification the mask reports.
#include <cstdint>

#include "attnkit/config.hpp"

namespace attnkit {

/// Extents of one attention call, handed to each policy's validate().
struct problem_dims {
  index_t batch, sq, sk, hq, hkv, dk, dv;
  index_t q_offset;  ///< position of query 0 on the key axis (default Sk - Sq: bottom-right)
};

/// Per (batch, query head) context. Query index i sits at key-axis position i + q_offset.
struct head_ctx {
  index_t batch;
  index_t q_head;
  index_t q_offset;
  constexpr index_t pos(index_t i) const noexcept { return i + q_offset; }
};

/// How a mask covers a box of (query, key) pairs.
enum class tile_class : std::uint8_t {
  empty,    ///< no pair kept: the tile is skipped and K/V are not even loaded
  full,     ///< every pair kept: no per-element evaluation
  partial,  ///< evaluate keep(i, j) per element
};

/// Up to four disjoint, sorted half-open key intervals [lo, hi) that contain every key a block of
/// queries may keep (a mask's optional `spans`). The mainloop tiles each interval from its own
/// start, so e.g. 4 sink tokens cost a 4-key tile, not a whole tile of 128. Adding a fifth interval
/// falls back to the hull of the last two: still sound, just less tight.
struct key_spans {
  index_t lo[4] = {}, hi[4] = {};
  int n = 0;

  static key_spans all(index_t sk) noexcept { key_spans r; r.add(0, sk); return r; }
  /// Insert [a, b) (clipped by the caller), merging with overlapping or adjacent intervals.
  void add(index_t a, index_t b) noexcept {
    if (a >= b) return;
    int k = 0;
    while (k < n && hi[k] < a) ++k;
    int e = k;
    while (e < n && lo[e] <= b) { a = lo[e] < a ? lo[e] : a; b = hi[e] > b ? hi[e] : b; ++e; }
    const int removed = e - k;
    if (removed == 0 && n == 4) {  // full: widen the neighbour instead of inserting
      const int m = k == n ? n - 1 : k;
      lo[m] = lo[m] < a ? lo[m] : a;
      hi[m] = hi[m] > b ? hi[m] : b;
      normalize();
      return;
    }
    for (int t = k; t + removed < n; ++t) lo[t] = lo[t + removed], hi[t] = hi[t + removed];
    n -= removed;
    for (int t = n; t > k; --t) lo[t] = lo[t - 1], hi[t] = hi[t - 1];
    lo[k] = a, hi[k] = b;
    ++n;
  }
  friend key_spans operator|(const key_spans& x, const key_spans& y) noexcept {
    key_spans r = x;
    for (int t = 0; t < y.n; ++t) r.add(y.lo[t], y.hi[t]);
    return r;
  }
  friend key_spans operator&(const key_spans& x, const key_spans& y) noexcept {
    key_spans r;
    for (int s = 0; s < x.n; ++s)
      for (int t = 0; t < y.n; ++t) r.add(x.lo[s] > y.lo[t] ? x.lo[s] : y.lo[t], x.hi[s] < y.hi[t] ? x.hi[s] : y.hi[t]);
    return r;
  }

 private:
  void normalize() noexcept {  // re-merge after a widening
    key_spans r;
    for (int t = 0; t < n; ++t) r.add(lo[t], hi[t]);
    *this = r;
  }
};

/// What kind of policy a type declares itself to be (each policy has `static constexpr kind`).
enum class policy_kind : std::uint8_t { score, mask, normalizer, executor, option };

}  // namespace attnkit
