#pragma once
/// @file prefetch.hpp  Software prefetch of rows the kernels read next.
///
/// K and V rows of a bshd cache or prefill input sit 4 KiB apart (one row per head per position),
/// and the hardware prefetchers do not follow such strides across pages: past the L3 every row
/// is a DRAM miss exposed to the arithmetic. Both engines therefore name the rows they read next
/// and fetch them to L2 (locality hint 2, prefetcht1) while computing on the current ones:
///  - decode (rowmajor.hpp) a byte budget ahead within its row loops;
///  - prefill (microkernel.hpp, bf16dot.hpp) a `prefetch_stream`: the next product's rows (this
///    tile's V during q.k, the next tile's K during P V), a slice per micro-tile of the current
///    product, so the misses overlap it instead of queueing at once.
/// Prefetches are hints: they never fault and never change a result. Measurements:
/// bench/results/prefill-prefetch-xeon-2026-12-04.md, bench/results/decode-zen5-2026-12-02.md.
#include <cstdint>

#include "attnkit/core/types.hpp"
#include "attnkit/config.hpp"

namespace attnkit::simd {

/// Locality of every software prefetch: to L2 (the L1 form gave no gain in decode; see above).
inline constexpr int kPrefetchLocality = 2;

/// Prefetch every cache line of bytes [at, at + n) from p. The address is formed as an integer:
/// the rows ahead may lie past the end of the caller's array (a prefetch never faults).
ATTNKIT_INLINE void prefetch_bytes(const void* p, std::uintptr_t at, std::uintptr_t n) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  constexpr std::uintptr_t line = 64;
  if (n == 0) return;
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p) + at;
  const std::uintptr_t last = (a + n - 1) & ~(line - 1);
  for (std::uintptr_t l = a & ~(line - 1); l <= last; l += line)
    __builtin_prefetch(reinterpret_cast<const void*>(l), 0, kPrefetchLocality);
#else
  (void)p, (void)at, (void)n;
#endif
}

/// n rows of row_bytes bytes, ld bytes apart, that a later product reads. A product of m rows
/// in micro-tiles prefetches slice(i0, i1, m) for its rows [i0, i1): the stream in proportion.
struct prefetch_stream {
  const void* p = nullptr;
  index_t ld = 0, n = 0, row_bytes = 0;
  ATTNKIT_INLINE void rows(index_t i0, index_t i1) const noexcept {
    for (index_t i = i0; i < i1; ++i)
      prefetch_bytes(p, static_cast<std::uintptr_t>(i * ld), static_cast<std::uintptr_t>(row_bytes));
  }
  ATTNKIT_INLINE void slice(index_t i0, index_t i1, index_t m) const noexcept {
    if (p && m > 0) rows(n * i0 / m, n * i1 / m);
  }
};

/// The cache lines of n rows (row_bytes each, ld bytes apart), handed out one per next(): a
/// kernel issues them between its loads, a line per load, instead of in a burst that fills the
/// miss buffers and stalls the arithmetic behind it. Rows one after another form one run.
struct line_feed {
  static constexpr std::uintptr_t line = 64;
  std::uintptr_t s = 0, a = 0, last = 0, ld = 0, rb = 0;  // row start, next line, row's last line
  index_t rows = 0;                                       // rows left, the current one included
  line_feed() = default;
  /// Rows from p + at bytes (formed as an integer: the rows may lie past the caller's array).
  line_feed(const void* p, std::uintptr_t at, index_t n, index_t row_bytes, index_t ld_bytes) noexcept {
    if (n <= 0 || row_bytes <= 0) return;
    if (ld_bytes == row_bytes) row_bytes *= n, n = 1;
    s = reinterpret_cast<std::uintptr_t>(p) + at, ld = static_cast<std::uintptr_t>(ld_bytes);
    rb = static_cast<std::uintptr_t>(row_bytes), rows = n;
    a = s & ~(line - 1), last = (s + rb - 1) & ~(line - 1);
  }
  ATTNKIT_INLINE void next() noexcept {
    if (rows <= 0) return;
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(reinterpret_cast<const void*>(a), 0, kPrefetchLocality);
#endif
    if (a != last) {
      a += line;
      return;
    }
    s += ld, --rows;
    a = s & ~(line - 1), last = (s + rb - 1) & ~(line - 1);
  }
  /// The lines not yet issued, at once.
  void rest() noexcept {
    while (rows > 0) next();
  }
};

}  // namespace attnkit::simd
