#pragma once
/// @file arch.hpp  Architecture tags: xsimd's own, plus attnkit::scalar, and the float vector
/// operations the micro-kernels are written in. A kernel names its Arch once; `vec<Arch>` gives
/// it a register type, its width and the handful of operations it needs.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "attnkit/config.hpp"

#if defined(__AVX512BF16__) && XSIMD_WITH_AVX512BW
#define ATTNKIT_WITH_AVX512BF16 1
#else
#define ATTNKIT_WITH_AVX512BF16 0
#endif

namespace attnkit {

/// Portable backend: plain C++ on floats, one lane. Works on any CPU and any compiler flags.
struct scalar {
  static constexpr bool supported() noexcept { return true; }
  static constexpr bool available() noexcept { return true; }
  static constexpr const char* name() noexcept { return "scalar"; }
};

/// AVX-512 (BW) plus the BF16 dot product `vdpbf16ps` (AMD Zen 4 and later, Intel Cooper Lake and
/// Sapphire Rapids): prefill with bf16 Q, K and V computes both products in bf16 pairs
/// accumulating in fp32 (simd/bf16dot.hpp). Everything else is avx512bw's code. Code for it must be
/// compiled with -mavx512bf16 (and the avx512bw flags); xsimd 8 has no tag of its own for it.
/// The default arch where the compiler targets AVX512-BF16. The pairs pay where vdpbf16ps (4 flops
/// per lane) issues at the rate of vfmadd231ps (2 per lane), as on AMD Zen 4 / Zen 5 (measured
/// there: bf16 prefill 1.6-2.2x faster than fp32); on Intel Xeons it issues at half that rate and
/// the widening path is faster. So the engine takes the pairs on AMD CPUs only unless the call
/// says otherwise (`bf16_products`, options.hpp). bench_attention's BM_bf16_dot_ceiling gives
/// both rates in one process.
struct avx512bf16 : xsimd::avx512bw {
  static constexpr bool supported() noexcept { return ATTNKIT_WITH_AVX512BF16; }
  static constexpr bool available() noexcept { return true; }
  static constexpr unsigned version() noexcept { return generic::version(3, 4, 1); }
  static constexpr const char* name() noexcept { return "avx512bf16"; }
};

/// The default architecture: avx512bf16 where the compiler flags allow it (it differs from
/// avx512bw only for bf16 Q, K and V on the prefill engine), else the best xsimd architecture the
/// flags allow.
#if ATTNKIT_WITH_AVX512BF16
using default_arch = avx512bf16;
#else
using default_arch = xsimd::default_arch;
#endif

template <class Arch>
concept arch_tag = std::is_same_v<Arch, scalar> || std::is_base_of_v<xsimd::generic, Arch>;

/// Whether the running CPU can execute code compiled for Arch.
template <class Arch>
inline bool arch_available() noexcept {
  if constexpr (std::is_same_v<Arch, scalar>) return true;
  else if constexpr (std::is_base_of_v<avx512bf16, Arch>)
    return xsimd::available_architectures().best >= xsimd::avx512bw::version() && __builtin_cpu_supports("avx512bf16");
  else return xsimd::available_architectures().best >= Arch::version();
}

namespace simd {

template <class Arch>
concept xsimd_arch = std::is_base_of_v<xsimd::generic, Arch>;
template <class Arch>
concept avx512_arch = xsimd_arch<Arch> && std::is_base_of_v<xsimd::avx512f, Arch>;

template <class Arch>
struct vec;

/// One-lane "vector": the scalar backend and the reference for tails.
template <>
struct vec<scalar> {
  using reg = float;
  static constexpr int width = 1;
  static ATTNKIT_INLINE reg load(const float* p) noexcept { return *p; }
  static ATTNKIT_INLINE void store(float* p, reg r) noexcept { *p = r; }
  static ATTNKIT_INLINE reg set1(float x) noexcept { return x; }
  static ATTNKIT_INLINE reg zero() noexcept { return 0.f; }
  static ATTNKIT_INLINE reg fma(reg a, reg b, reg c) noexcept { return a * b + c; }
  /// fma where b != 0, else c unchanged (a zero weight ignores a, even NaN or Inf).
  static ATTNKIT_INLINE reg fma_nz(reg a, reg b, reg c) noexcept { return b == 0.f ? c : fma(a, b, c); }
  static ATTNKIT_INLINE reg max(reg a, reg b) noexcept { return a > b ? a : b; }
  static ATTNKIT_INLINE float hmax(reg a) noexcept { return a; }
  static ATTNKIT_INLINE float hsum(reg a) noexcept { return a; }
  static ATTNKIT_INLINE reg neg_inf_to_zero(reg a) noexcept { return a == -std::numeric_limits<float>::infinity() ? 0.f : a; }
  static ATTNKIT_INLINE reg exp(reg x) noexcept { return std::exp(x); }
  static ATTNKIT_INLINE reg tanh(reg x) noexcept { return std::tanh(x); }
  /// lo <= j <= hi per lane, and x where m holds else -inf (the vectorized mask of a tile).
  static ATTNKIT_INLINE bool between(reg j, reg lo, reg hi) noexcept { return lo <= j && j <= hi; }
  static ATTNKIT_INLINE reg or_neg_inf(bool m, reg x) noexcept { return m ? x : -std::numeric_limits<float>::infinity(); }
};

/// xsimd architectures: batch<float, Arch>.
template <class Arch>
struct vec_xsimd {
  using reg = xsimd::batch<float, Arch>;
  using ireg = xsimd::batch<std::int32_t, Arch>;
  static constexpr int width = static_cast<int>(reg::size);
  static ATTNKIT_INLINE reg load(const float* p) noexcept { return reg::load_unaligned(p); }
  static ATTNKIT_INLINE void store(float* p, reg r) noexcept { r.store_unaligned(p); }
  static ATTNKIT_INLINE reg set1(float x) noexcept { return reg(x); }
  static ATTNKIT_INLINE reg zero() noexcept { return reg(0.f); }
  static ATTNKIT_INLINE reg fma(reg a, reg b, reg c) noexcept { return xsimd::fma(a, b, c); }
  // (b == 0 is an ordered compare: a NaN b is not 0 and propagates.)
  static ATTNKIT_INLINE reg fma_nz(reg a, reg b, reg c) noexcept { return xsimd::select(b == zero(), c, fma(a, b, c)); }
  static ATTNKIT_INLINE reg max(reg a, reg b) noexcept { return xsimd::max(a, b); }
  static ATTNKIT_INLINE float hsum(reg a) noexcept { return xsimd::hadd(a); }
  static ATTNKIT_INLINE float hmax(reg a) noexcept {
    alignas(64) float t[width];
    a.store_unaligned(t);
    float m = t[0];
    for (int i = 1; i < width; ++i) m = t[i] > m ? t[i] : m;
    return m;
  }
  static ATTNKIT_INLINE reg tanh(reg x) noexcept { return xsimd::tanh(x); }
  static ATTNKIT_INLINE reg neg_inf_to_zero(reg a) noexcept {
    return xsimd::select(a == reg(-std::numeric_limits<float>::infinity()), zero(), a);
  }
  static ATTNKIT_INLINE auto between(reg j, reg lo, reg hi) noexcept { return (lo <= j) & (j <= hi); }
  template <class M>
  static ATTNKIT_INLINE reg or_neg_inf(M m, reg x) noexcept {
    return xsimd::select(m, x, reg(-std::numeric_limits<float>::infinity()));
  }

  /// exp(x) in about 2 ulp, at a fraction of xsimd::exp's cost (no special-case branches).
  /// x = n ln2 + r with |r| <= ln2/2 (ln2 split hi/lo so r is exact), exp(r) by a degree-6
  /// minimax polynomial, 2^n built in the exponent bits. x is clamped to [-87.34, 88.38] so
  /// n + 127 stays in [1, 254] (no exponent overflow); outside that range the result is exactly
  /// 0 (below: the true value would be subnormal, and -inf masked scores must give 0) or +inf
  /// (above, including the sliver (88.38, 88.72] where float could still hold the value); NaN
  /// stays NaN.
  static ATTNKIT_INLINE reg exp(reg x) noexcept {
    const reg lo = set1(-87.33654f), hi = set1(88.3762626647949f);
    const auto underflow = x < lo;
    const auto overflow = x > hi;
    reg xc = xsimd::min(xsimd::max(x, lo), hi);
    const reg n = xsimd::nearbyint(xc * set1(1.44269504088896341f));
    reg r = xsimd::fnma(n, set1(0.693359375f), xc);  // ln2 hi (exact in 9 bits)
    r = xsimd::fnma(n, set1(-2.12194440e-4f), r);    // ln2 lo
    reg p = set1(1.9875691500e-4f);
    p = xsimd::fma(p, r, set1(1.3981999507e-3f));
    p = xsimd::fma(p, r, set1(8.3334519073e-3f));
    p = xsimd::fma(p, r, set1(4.1665795894e-2f));
    p = xsimd::fma(p, r, set1(1.6666665459e-1f));
    p = xsimd::fma(p, r, set1(5.0000001201e-1f));
    p = xsimd::fma(p * r, r, r + set1(1.f));
    const ireg e = (xsimd::to_int(n) + ireg(127)) << 23;
    reg y = p * xsimd::bitwise_cast<reg>(e);
    y = xsimd::select(underflow, zero(), y);
    y = xsimd::select(overflow, set1(std::numeric_limits<float>::infinity()), y);
    return xsimd::select(xsimd::isnan(x), x, y);  // NaN in, NaN out (the clamp made it a number)
  }
};

template <xsimd_arch Arch>
struct vec<Arch> : vec_xsimd<Arch> {};

#if XSIMD_WITH_AVX512F
/// AVX-512: the same exp with the 2^n scaling done by vscalefps, which also produces exact 0 and
/// inf at the ends of the range (no selects), so the clamp only has to keep x finite.
template <avx512_arch Arch>
struct vec<Arch> : vec_xsimd<Arch> {
  using reg = typename vec_xsimd<Arch>::reg;
  static ATTNKIT_INLINE reg exp(reg x) noexcept {
    // Clamp to [-110, 100]: n = round(x log2e) in [-159, 145], so 2^n * p rounds to exactly 0 (a
    // masked -inf score must weigh exactly 0) or overflows to +inf; -inf and +inf stay ordered.
    // Operand order matters: max_ps / min_ps return their second operand when either is NaN, so
    // a NaN x passes through the clamp and the result is NaN.
    __m512 xc = _mm512_min_ps(_mm512_set1_ps(100.f), _mm512_max_ps(_mm512_set1_ps(-110.f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
    return _mm512_scalef_ps(p, n);
  }
};
#endif

}  // namespace simd
}  // namespace attnkit

#if ATTNKIT_WITH_AVX512BF16
// avx512bf16 registers are avx512bw's (xsimd kernels then resolve to the avx512bw overloads).
namespace xsimd::types {
template <class T>
struct get_bool_simd_register<T, attnkit::avx512bf16> {
  using type = simd_avx512_bool_register<T>;
};
XSIMD_DECLARE_SIMD_REGISTER_ALIAS(attnkit::avx512bf16, avx512bw);
}  // namespace xsimd::types
#endif
