#pragma once
/// @file finite.hpp  all_finite: whether a block of float / bf16 / fp16 rows holds only finite
/// values. The engines ask it of each V tile: only a tile with NaN or Inf needs the path where a
/// weight of exactly 0 (a masked key) skips its value instead of multiplying it (0 * NaN = NaN).
#include "attnkit/simd/convert.hpp"

namespace attnkit::simd {

/// One fma per vector: x * 0 is 0 for finite x and NaN for inf or NaN, so the sum is NaN iff an
/// element is not finite. Four independent sums keep the check at FMA throughput, not latency
/// (it runs on every V tile, before the tile's own product).
template <class Arch, class T>
bool all_finite(const T* p, index_t rows, index_t n, index_t ld) noexcept {
  using V = vec<Arch>;
  auto a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
  const auto z = V::zero();
  float tail = 0.f;
  for (index_t r = 0; r < rows; ++r) {
    const T* x = p + r * ld;
    index_t c = 0;
    for (; c + 4 * V::width <= n; c += 4 * V::width) {
      a0 = V::fma(load_widen<Arch>(x + c), z, a0);
      a1 = V::fma(load_widen<Arch>(x + c + V::width), z, a1);
      a2 = V::fma(load_widen<Arch>(x + c + 2 * V::width), z, a2);
      a3 = V::fma(load_widen<Arch>(x + c + 3 * V::width), z, a3);
    }
    for (; c + V::width <= n; c += V::width) a0 = V::fma(load_widen<Arch>(x + c), z, a0);
    for (; c < n; ++c) tail += to_float(x[c]) * 0.f;
  }
  const float s = V::hsum((a0 + a1) + (a2 + a3)) + tail;
  return s == s;
}

}  // namespace attnkit::simd
