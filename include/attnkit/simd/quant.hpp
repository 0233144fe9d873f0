#pragma once
/// @file quant.hpp  K/V rows as the decode kernels read them (`kv_rows`: float / bf16 / fp16 or a
/// quantized type of core/quant.hpp), with dequantization fused into the register loads:
///
///   kv_load<Arch>(row, c)        vec<Arch>::width values of row from column c, as fp32:
///                                  float / bf16 / fp16   widened (convert.hpp)
///                                  qint8                 widened int8, NOT scaled: the row's one
///                                                        scale (kv_factor) is applied by the caller
///                                                        to the score or to the weight p
///                                  qint4                 widened nibbles x the group's scale
///                                  qint8_channel         widened int8 x the block's channel scales
///   kv_load_n<Arch>(row, c, n)   the first n values, other lanes 0; reads nothing past column c + n
///   dequant_rows<Arch>(...)      a tile of rows to fp32 (the prefill engine's scratch)
///
/// The int8 / int4 widening is chosen by the Arch type (one specialization per ISA family, as in
/// convert.hpp; never by macros inside a shared function body):
///   attnkit::scalar      one value (an int4 nibble picked by parity)
///   avx2 family          vpmovsxbd + vcvtdq2ps; int4 (Q4_0 order, core/quant.hpp): vpmovzxbd of
///                        the group's bytes + vpand 15 (values 0..15 of the group) or vpsrld 4
///                        (values 16..31) + vcvtdq2ps + one fma with the group scale
///   avx512f and derived  the zmm forms of the same
///   other xsimd archs    element by element through a stack buffer (correct, not fast)
/// Columns passed to the vector loads of qint4 are multiples of the width (so a vector never
/// straddles a group of 32); qint4 rows have D % 32 == 0, so qint4 never takes a tail load on the
/// vector archs.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "attnkit/core/quant.hpp"
#include "attnkit/core/types.hpp"
#include "attnkit/simd/arch.hpp"
#include "attnkit/simd/convert.hpp"
#include "attnkit/simd/prefetch.hpp"

namespace attnkit::simd {

namespace detail {

/// Generic xsimd arch: element by element through a buffer.
template <class Arch>
struct qwiden_impl {
  using V = vec<Arch>;
  using reg = typename V::reg;
  static constexpr int W = V::width;
  static ATTNKIT_INLINE reg i8(const std::int8_t* p) noexcept {
    alignas(64) float buf[W];
    for (int i = 0; i < W; ++i) buf[i] = static_cast<float>(p[i]);
    return V::load(buf);
  }
  static ATTNKIT_INLINE reg i8_n(const std::int8_t* p, int n) noexcept {
    alignas(64) float buf[W] = {};
    for (int i = 0; i < n; ++i) buf[i] = static_cast<float>(p[i]);
    return V::load(buf);
  }
  /// The low (high: the high) nibbles of W bytes at p, as floats 0..15.
  static ATTNKIT_INLINE reg u4(const std::uint8_t* p, bool high) noexcept {
    alignas(64) float buf[W];
    for (int i = 0; i < W; ++i) buf[i] = static_cast<float>(high ? (p[i] >> 4) : (p[i] & 15));
    return V::load(buf);
  }
};

template <>
struct qwiden_impl<scalar> {
  using reg = float;
  static ATTNKIT_INLINE reg i8(const std::int8_t* p) noexcept { return static_cast<float>(*p); }
  static ATTNKIT_INLINE reg i8_n(const std::int8_t* p, int n) noexcept { return n > 0 ? static_cast<float>(*p) : 0.f; }
};

#if XSIMD_WITH_AVX2
template <avx2_family Arch>
struct qwiden_impl<Arch> {
  using reg = typename vec<Arch>::reg;
  static ATTNKIT_INLINE reg i8(const std::int8_t* p) noexcept {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static ATTNKIT_INLINE reg i8_n(const std::int8_t* p, int n) noexcept {
    std::int8_t buf[8] = {};
    if (n > 0) std::memcpy(buf, p, static_cast<std::size_t>(n));
    return i8(buf);
  }
  static ATTNKIT_INLINE reg u4(const std::uint8_t* p, bool high) noexcept {
    const __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    return _mm256_cvtepi32_ps(high ? _mm256_srli_epi32(w, 4) : _mm256_and_si256(w, _mm256_set1_epi32(15)));
  }
};
#endif

#if XSIMD_WITH_AVX512F
// GCC 12 warns -Wuninitialized about the _mm512_undefined_* inside its own convert intrinsics
// (a false positive; as in convert.hpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
template <avx512_arch Arch>
struct qwiden_impl<Arch> {
  using reg = typename vec<Arch>::reg;
  static ATTNKIT_INLINE reg i8(const std::int8_t* p) noexcept {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static ATTNKIT_INLINE reg i8_n(const std::int8_t* p, int n) noexcept {
    std::int8_t buf[16] = {};
    if (n > 0) std::memcpy(buf, p, static_cast<std::size_t>(n));
    return i8(buf);
  }
  static ATTNKIT_INLINE reg u4(const std::uint8_t* p, bool high) noexcept {
    const __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm512_cvtepi32_ps(high ? _mm512_srli_epi32(w, 4) : _mm512_and_si512(w, _mm512_set1_epi32(15)));
  }
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace detail

/// Scale rows of a quantized tile: key j of the tile uses row p + ((phase + j) / block) * ld
/// (block = 1 for the per-token schemes; qint8_channel: rows of the seq axis per scale row, phase
/// = the tile's first row's place in its block).
struct scale_rows {
  const float* p = nullptr;
  index_t ld = 0, block = 1, phase = 0;
  const float* row(index_t j) const noexcept { return p + (block == 1 ? j : (phase + j) / block) * ld; }
  scale_rows shift(index_t j) const noexcept {
    if (block == 1) return {p + j * ld, ld, 1, 0};
    return {p + (phase + j) / block * ld, ld, block, (phase + j) % block};
  }
};

/// Rows j = 0, 1, ... of a K or V tile: values at p + j * ld (ld in stored elements), columns
/// from c0 on; the scales of a quantized type in s.
template <class T>
struct kv_rows {
  const T* p = nullptr;
  index_t ld = 0;
  scale_rows s{};
  index_t c0 = 0;
  kv_rows shift(index_t j) const noexcept { return {p + j * ld, ld, quantized_type<T> ? s.shift(j) : s, c0}; }
  kv_rows cols(index_t c) const noexcept {
    if constexpr (quantized_type<T>) return {p, ld, s, c0 + c};
    else return {p + c, ld, s, 0};
  }
};

/// One row of a kv_rows.
template <class T>
struct kv_row {
  const T* p;
  const float* s;
  index_t c0;
};
template <class T>
ATTNKIT_INLINE kv_row<T> row_at(const kv_rows<T>& k, index_t j) noexcept {
  if constexpr (quantized_type<T>) return {k.p + j * k.ld, k.s.row(j), k.c0};
  else return {k.p + j * k.ld, nullptr, 0};
}

/// Whether kv_load leaves a per-row factor (kv_factor) for the caller to apply (qint8).
template <class T>
inline constexpr bool row_scaled = std::is_same_v<T, qint8>;
template <class T>
ATTNKIT_INLINE float kv_factor(const kv_row<T>& r) noexcept { return r.s[0]; }

/// Bytes of a row of n values (prefetch budgets).
template <class T>
constexpr index_t row_bytes(index_t n) noexcept {
  if constexpr (std::is_same_v<T, qint4>) return (n + 1) / 2;
  else return n * static_cast<index_t>(sizeof(T));
}
/// Stored elements from the row start to column c (c even for qint4).
template <class T>
constexpr index_t stored_offset(index_t c) noexcept {
  if constexpr (std::is_same_v<T, qint4>) return c / 2;
  else return c;
}

/// Rows [0, n) of a K/V tile as a prefetch stream: values only (a quantized tile's scales are a
/// few bytes per row), len columns from the tile's first column.
template <class T>
ATTNKIT_INLINE prefetch_stream stream_of(const kv_rows<T>& k, index_t n, index_t len) noexcept {
  return {k.p + stored_offset<T>(k.c0), k.ld * static_cast<index_t>(sizeof(T)), n, row_bytes<T>(len)};
}
template <class T>
ATTNKIT_INLINE void prefetch_kv(const kv_rows<T>& k, index_t j, index_t n, index_t len) noexcept {
  stream_of(k, j + n, len).rows(j, j + n);
}

template <class Arch, class T>
ATTNKIT_INLINE typename vec<Arch>::reg kv_load(const kv_row<T>& r, index_t c) noexcept {
  using V = vec<Arch>;
  using Q = detail::qwiden_impl<Arch>;
  if constexpr (!quantized_type<T>) {
    return load_widen<Arch>(r.p + c);
  } else {
    const index_t col = r.c0 + c;
    if constexpr (std::is_same_v<T, qint8>) {
      return Q::i8(&r.p[col].bits);
    } else if constexpr (std::is_same_v<T, qint8_channel>) {
      return Q::i8(&r.p[col].bits) * V::load(r.s + col);
    } else {
      static_assert(std::is_same_v<T, qint4>);
      if constexpr (V::width == 1) {
        return static_cast<float>(quant_value(r.p, col)) * r.s[col / 32];
      } else {
        // (u - 8) s as fma(u, s, -8 s): -8 s is exact, so this is the rounded (u - 8) s.
        const index_t j = col % 32;
        const float sc = r.s[col / 32];
        return V::fma(Q::u4(&r.p[col / 32 * 16 + (j & 15)].bits, j >= 16), V::set1(sc), V::set1(-8.f * sc));
      }
    }
  }
}

/// qint4, vector h (of 32 / width) of the group starting at column c (c + c0 a multiple of 32).
template <class Arch>
ATTNKIT_INLINE typename vec<Arch>::reg kv_load_q4(const kv_row<qint4>& r, index_t c, int h) noexcept {
  using V = vec<Arch>;
  constexpr int W = V::width;
  const index_t col = r.c0 + c;
  const float sc = r.s[col / 32];
  const int j = h * W;
  return V::fma(detail::qwiden_impl<Arch>::u4(&r.p[col / 2 + (j & 15)].bits, j >= 16), V::set1(sc),
                V::set1(-8.f * sc));
}

template <class Arch, class T>
ATTNKIT_INLINE typename vec<Arch>::reg kv_load_n(const kv_row<T>& r, index_t c, int n) noexcept {
  using V = vec<Arch>;
  using Q = detail::qwiden_impl<Arch>;
  if constexpr (!quantized_type<T>) {
    return load_widen_n<Arch>(r.p + c, n);
  } else {
    const index_t col = r.c0 + c;
    if constexpr (std::is_same_v<T, qint8>) {
      return Q::i8_n(&r.p[col].bits, n);
    } else if constexpr (std::is_same_v<T, qint8_channel>) {
      return Q::i8_n(&r.p[col].bits, n) * load_widen_n<Arch>(r.s + col, n);
    } else {
      alignas(64) float buf[V::width > 1 ? V::width : 1] = {};
      for (int i = 0; i < n; ++i) buf[i] = static_cast<float>(quant_value(r.p, col + i)) * r.s[(col + i) / 32];
      if constexpr (V::width == 1) return buf[0];
      else return V::load(buf);
    }
  }
}

/// The dequantized value vector (kv_load, times the row's factor for qint8).
template <class Arch, class T>
ATTNKIT_INLINE typename vec<Arch>::reg kv_dequant(const kv_row<T>& r, index_t c) noexcept {
  if constexpr (row_scaled<T>) return kv_load<Arch>(r, c) * vec<Arch>::set1(kv_factor(r));
  else return kv_load<Arch>(r, c);
}
template <class Arch, class T>
ATTNKIT_INLINE typename vec<Arch>::reg kv_dequant_n(const kv_row<T>& r, index_t c, int n) noexcept {
  if constexpr (row_scaled<T>) return kv_load_n<Arch>(r, c, n) * vec<Arch>::set1(kv_factor(r));
  else return kv_load_n<Arch>(r, c, n);
}

/// dst[j * ldd + c] = value of row j, column c, for j < nk, c < n (the prefill engine's tiles).
template <class Arch, class T>
void dequant_rows(const kv_rows<T>& k, index_t nk, index_t n, float* dst, index_t ldd) noexcept {
  using V = vec<Arch>;
  for (index_t j = 0; j < nk; ++j) {
    const kv_row<T> r = row_at(k, j);
    float* d = dst + j * ldd;
    index_t c = 0;
    for (; c + V::width <= n; c += V::width) V::store(d + c, kv_dequant<Arch>(r, c));
    if constexpr (V::width > 1)
      if (c < n) store_n<Arch>(d + c, kv_dequant_n<Arch>(r, c, static_cast<int>(n - c)), static_cast<int>(n - c));
  }
}

}  // namespace attnkit::simd
