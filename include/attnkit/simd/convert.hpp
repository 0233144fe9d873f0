#pragma once
/// @file convert.hpp  Loads that widen float / bf16 / fp16 elements to a float vector of Arch, so
/// kernels can stream 16-bit K and V straight from the caller's memory and convert in registers.
///
///   load_widen<Arch>(p)          vec<Arch>::width elements of T at p, as fp32
///   load_widen_n<Arch>(p, n)     the first n (0 <= n <= width) elements, other lanes 0; reads
///                                nothing at or past p + n (masked loads, or a small stack copy)
///   store_n<Arch>(p, r, n)       store the first n lanes of r; writes nothing at or past p + n
///   widen_n<Arch>(src, dst, n)   dst[i] = float(src[i]) for i < n (vector body, scalar tail)
///
/// The implementation is chosen by the Arch type (one specialization per ISA family below), never
/// by macros inside a shared function body, so TUs built for different archs never see different
/// definitions of the same entity. ISA families:
///   attnkit::scalar          to_float, one lane
///   avx2 (incl. fma3<avx2>)  vpmovzxwd + vpslld for bf16, vcvtph2ps (F16C) for fp16: a TU that
///                            instantiates the fp16 path for an avx2 arch must be built with -mf16c
///                            (every AVX2 CPU has F16C; -march=haswell and later imply it)
///   avx512f and derived      zmm versions; avx512bw also does masked 16-bit tail loads
///   other xsimd archs        element-wise to_float through a stack buffer (correct, not fast)
#include <cstring>
#include <type_traits>

#include "attnkit/core/types.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit::simd {

template <class Arch>
concept avx2_family = xsimd_arch<Arch> && std::is_base_of_v<xsimd::avx2, Arch> && !avx512_arch<Arch>;
template <class Arch>
concept avx512bw_arch = avx512_arch<Arch> && std::is_base_of_v<xsimd::avx512bw, Arch>;

namespace detail {

/// Buffer-based partial load / store, shared by the specializations that lack masked forms.
template <class Arch, class Impl>
struct widen_buffered {
  using V = vec<Arch>;
  using reg = typename V::reg;
  static constexpr int width = V::width;
  template <class T>
  static ATTNKIT_INLINE reg load_n(const T* p, int n) noexcept {
    T buf[width] = {};  // T{} is +0 for bf16 / fp16 too
    if (n > 0) std::memcpy(buf, p, sizeof(T) * static_cast<std::size_t>(n));
    return Impl::template load<T>(buf);
  }
  static ATTNKIT_INLINE void store_n(float* p, reg r, int n) noexcept {
    alignas(64) float buf[width];
    V::store(buf, r);
    if (n > 0) std::memcpy(p, buf, sizeof(float) * static_cast<std::size_t>(n));
  }
};

/// Generic xsimd arch (SSE, AVX without AVX2, ...): element-wise through a buffer.
template <class Arch>
struct widen_impl : widen_buffered<Arch, widen_impl<Arch>> {
  using V = vec<Arch>;
  using reg = typename V::reg;
  template <class T>
  static ATTNKIT_INLINE reg load(const T* p) noexcept {
    if constexpr (std::is_same_v<T, float>) {
      return V::load(p);
    } else {
      alignas(64) float buf[V::width];
      for (int i = 0; i < V::width; ++i) buf[i] = to_float(p[i]);
      return V::load(buf);
    }
  }
};

template <>
struct widen_impl<scalar> {
  using reg = float;
  template <class T>
  static ATTNKIT_INLINE reg load(const T* p) noexcept { return to_float(*p); }
  template <class T>
  static ATTNKIT_INLINE reg load_n(const T* p, int n) noexcept { return n > 0 ? to_float(*p) : 0.f; }
  static ATTNKIT_INLINE void store_n(float* p, reg r, int n) noexcept {
    if (n > 0) *p = r;
  }
};

#if XSIMD_WITH_AVX2
template <avx2_family Arch>
struct widen_impl<Arch> : widen_buffered<Arch, widen_impl<Arch>> {
  using reg = typename vec<Arch>::reg;
  template <class T>
  static ATTNKIT_INLINE reg load(const T* p) noexcept {
    if constexpr (std::is_same_v<T, float>) {
      return _mm256_loadu_ps(p);
    } else if constexpr (std::is_same_v<T, bf16>) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      static_assert(std::is_same_v<T, fp16>, "load_widen: T must be float, bf16 or fp16");
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
  }
  static ATTNKIT_INLINE __m256i lane_mask(int n) noexcept {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  template <class T>
  static ATTNKIT_INLINE reg load_n(const T* p, int n) noexcept {
    if constexpr (std::is_same_v<T, float>) return _mm256_maskload_ps(p, lane_mask(n));
    else return widen_buffered<Arch, widen_impl<Arch>>::template load_n<T>(p, n);
  }
  static ATTNKIT_INLINE void store_n(float* p, reg r, int n) noexcept { _mm256_maskstore_ps(p, lane_mask(n), r); }
};
#endif

#if XSIMD_WITH_AVX512F
template <class T>
ATTNKIT_INLINE __m512 widen16_avx512(__m256i h) noexcept {
  if constexpr (std::is_same_v<T, bf16>) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  else return _mm512_cvtph_ps(h);
}

/// AVX-512F: full loads, float tails masked, 16-bit tails through a small stack copy.
template <class Arch>
struct widen_avx512f {
  using reg = typename vec<Arch>::reg;
  static ATTNKIT_INLINE __mmask16 lane_mask(int n) noexcept {
    return static_cast<__mmask16>(n >= 16 ? 0xffffu : (1u << n) - 1u);
  }
  template <class T>
  static ATTNKIT_INLINE reg load(const T* p) noexcept {
    static_assert(element_type<T>, "load_widen: T must be float, bf16 or fp16");
    if constexpr (std::is_same_v<T, float>) return _mm512_loadu_ps(p);
    else return widen16_avx512<T>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  template <class T>
  static ATTNKIT_INLINE reg load_n(const T* p, int n) noexcept {
    if constexpr (std::is_same_v<T, float>) {
      return _mm512_maskz_loadu_ps(lane_mask(n), p);
    } else {
      T buf[16] = {};
      if (n > 0) std::memcpy(buf, p, sizeof(T) * static_cast<std::size_t>(n));
      return load<T>(buf);
    }
  }
  static ATTNKIT_INLINE void store_n(float* p, reg r, int n) noexcept { _mm512_mask_storeu_ps(p, lane_mask(n), r); }
};
template <avx512_arch Arch>
struct widen_impl<Arch> : widen_avx512f<Arch> {};
#endif

#if XSIMD_WITH_AVX512BW
// GCC 12 warns -Wuninitialized about the _mm512_undefined_* inside its own cast / convert
// intrinsics when n is a known constant at the call site (a false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
/// AVX-512BW: 16-bit tails by a masked 16-bit load (lanes past n are not accessed).
template <avx512bw_arch Arch>
struct widen_impl<Arch> : widen_avx512f<Arch> {
  using base = widen_avx512f<Arch>;
  using reg = typename base::reg;
  using base::lane_mask;
  using base::load;
  using base::store_n;
  template <class T>
  static ATTNKIT_INLINE reg load_n(const T* p, int n) noexcept {
    if constexpr (std::is_same_v<T, float>) {
      return _mm512_maskz_loadu_ps(lane_mask(n), p);
    } else {
      // 512-bit form (AVX512BW only, no VL needed); only the low 16 words can be enabled.
      const __m512i w = _mm512_maskz_loadu_epi16(static_cast<__mmask32>(lane_mask(n)), p);
      return widen16_avx512<T>(_mm512_castsi512_si256(w));
    }
  }
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace detail

/// vec<Arch>::width elements of T (float, bf16 or fp16) at p, widened to fp32. Unaligned.
template <class Arch, class T>
ATTNKIT_INLINE typename vec<Arch>::reg load_widen(const T* p) noexcept {
  static_assert(element_type<T>, "load_widen: T must be float, attnkit::bf16 or attnkit::fp16");
  return detail::widen_impl<Arch>::template load<T>(p);
}

/// The first n elements (0 <= n <= width) widened to fp32, lanes >= n zero. p[n..] is not read.
template <class Arch, class T>
ATTNKIT_INLINE typename vec<Arch>::reg load_widen_n(const T* p, int n) noexcept {
  static_assert(element_type<T>, "load_widen_n: T must be float, attnkit::bf16 or attnkit::fp16");
  return detail::widen_impl<Arch>::template load_n<T>(p, n);
}

/// Store lanes [0, n) of r to p (0 <= n <= width); p[n..] is not written.
template <class Arch>
ATTNKIT_INLINE void store_n(float* p, typename vec<Arch>::reg r, int n) noexcept {
  detail::widen_impl<Arch>::store_n(p, r, n);
}

/// dst[i] = to_float(src[i]) for i < n: full vectors through load_widen, then a scalar tail.
/// Bit-exact with to_float (fp16 subnormals and inf included; NaNs stay NaN).
template <class Arch, class T>
void widen_n(const T* src, float* dst, index_t n) noexcept {
  using V = vec<Arch>;
  index_t i = 0;
  for (; i + V::width <= n; i += V::width) V::store(dst + i, load_widen<Arch>(src + i));
  for (; i < n; ++i) dst[i] = to_float(src[i]);
}

}  // namespace attnkit::simd
