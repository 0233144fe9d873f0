#pragma once
/// @file transpose.hpp  transpose_rows<Arch>: a chunk of token rows into columns (linear
/// attention's K^T, the prefill engine's Q^T and O), optionally scaling each source column (O's
/// rows by the normalizer's final factor, fused so O^T is read once), with square register blocks chosen by the Arch type (16 x 16 on AVX-512,
/// 8 x 8 on AVX/AVX2, none elsewhere) and the edges element by element. Arch-keyed
/// specializations, never macros inside a shared body (one definition per Arch in every TU).
#include <type_traits>

#include "attnkit/simd/arch.hpp"

namespace attnkit::simd {

namespace detail {
template <class Arch>
struct transpose_block {
  static constexpr int size = 0;  // no register block: element by element
  static void run(const float*, index_t, const float*, float*, index_t) noexcept {}
};

#if XSIMD_WITH_AVX512F
// 16 x 16 in registers: dst row c = src column c (unpack pairs, pairs of pairs, then 128-bit lanes).
template <avx512_arch Arch>
struct transpose_block<Arch> {
  static constexpr int size = 16;
  static ATTNKIT_INLINE void run(const float* src, index_t lds, const float* s, float* dst, index_t ldd) noexcept {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
    if (s)
      for (int i = 0; i < 16; ++i) r[i] = _mm512_mul_ps(r[i], _mm512_loadu_ps(s));
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {
      const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]),
                    c = _mm512_castps_pd(t[4 * i + 2]), e = _mm512_castps_pd(t[4 * i + 3]);
      r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
      r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
    }
    // r[4g + x] holds rows 4g..4g+3 of columns x, x+4, x+8, x+12 (one per 128-bit lane).
    for (int x = 0; x < 4; ++x) {
      t[x] = _mm512_shuffle_f32x4(r[x], r[4 + x], 0x88);       // rows 0-7, columns x, x+8
      t[4 + x] = _mm512_shuffle_f32x4(r[x], r[4 + x], 0xdd);   // rows 0-7, columns x+4, x+12
      t[8 + x] = _mm512_shuffle_f32x4(r[8 + x], r[12 + x], 0x88);
      t[12 + x] = _mm512_shuffle_f32x4(r[8 + x], r[12 + x], 0xdd);
    }
    for (int x = 0; x < 4; ++x) {
      _mm512_storeu_ps(dst + x * ldd, _mm512_shuffle_f32x4(t[x], t[8 + x], 0x88));
      _mm512_storeu_ps(dst + (x + 8) * ldd, _mm512_shuffle_f32x4(t[x], t[8 + x], 0xdd));
      _mm512_storeu_ps(dst + (x + 4) * ldd, _mm512_shuffle_f32x4(t[4 + x], t[12 + x], 0x88));
      _mm512_storeu_ps(dst + (x + 12) * ldd, _mm512_shuffle_f32x4(t[4 + x], t[12 + x], 0xdd));
    }
  }
};
#endif

#if XSIMD_WITH_AVX
template <class Arch>
  requires(std::is_base_of_v<xsimd::avx, Arch> && !avx512_arch<Arch>)
struct transpose_block<Arch> {
  static constexpr int size = 8;
  static ATTNKIT_INLINE void run(const float* src, index_t lds, const float* s, float* dst, index_t ldd) noexcept {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
    if (s)
      for (int i = 0; i < 8; ++i) r[i] = _mm256_mul_ps(r[i], _mm256_loadu_ps(s));
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {
      r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int x = 0; x < 4; ++x) {
      _mm256_storeu_ps(dst + x * ldd, _mm256_permute2f128_ps(r[x], r[4 + x], 0x20));
      _mm256_storeu_ps(dst + (x + 4) * ldd, _mm256_permute2f128_ps(r[x], r[4 + x], 0x31));
    }
  }
};
#endif
}  // namespace detail

/// dst[c * ldd + j] = src[j * lds + c] (times scale[c] when scale is given) for j < n, c < cols.
template <class Arch>
void transpose_rows(const float* ATTNKIT_RESTRICT src, index_t lds, index_t n, index_t cols,
                    float* ATTNKIT_RESTRICT dst, index_t ldd, const float* scale = nullptr) noexcept {
  using T = detail::transpose_block<Arch>;
  index_t jb = 0, cb = 0;
  if constexpr (T::size > 0) {
    jb = n / T::size * T::size, cb = cols / T::size * T::size;
    for (index_t j0 = 0; j0 < jb; j0 += T::size)
      for (index_t c0 = 0; c0 < cb; c0 += T::size)
        T::run(src + j0 * lds + c0, lds, scale ? scale + c0 : nullptr, dst + c0 * ldd + j0, ldd);
  }
  const auto at = [&](index_t j, index_t c) { return scale ? src[j * lds + c] * scale[c] : src[j * lds + c]; };
  for (index_t j = 0; j < jb; ++j)
    for (index_t c = cb; c < cols; ++c) dst[c * ldd + j] = at(j, c);
  for (index_t c = 0; c < cols; ++c)
    for (index_t j = jb; j < n; ++j) dst[c * ldd + j] = at(j, c);
}

}  // namespace attnkit::simd
