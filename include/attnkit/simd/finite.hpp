#pragma once
/// @file finite.hpp  all_finite: whether a block of float / bf16 / fp16 rows holds only finite
/// values. The engines ask it of each V tile: only a tile with NaN or Inf needs the path where a
/// weight of exactly 0 (a masked key) skips its value instead of multiplying it (0 * NaN = NaN).
#include "attnkit/simd/convert.hpp"

namespace attnkit::simd {

/// One fma per vector: x * 0 is 0 for finite x and NaN for inf or NaN, so the sum is NaN iff an
/// element is not finite.
template <class Arch, class T>
bool all_finite(const T* p, index_t rows, index_t n, index_t ld) noexcept {
  using V = vec<Arch>;
  auto acc = V::zero();
  const auto z = V::zero();
  float tail = 0.f;
  for (index_t r = 0; r < rows; ++r) {
    const T* x = p + r * ld;
    index_t c = 0;
    for (; c + V::width <= n; c += V::width) acc = V::fma(load_widen<Arch>(x + c), z, acc);
    for (; c < n; ++c) tail += to_float(x[c]) * 0.f;
  }
  const float s = V::hsum(acc) + tail;
  return s == s;
}

}  // namespace attnkit::simd
