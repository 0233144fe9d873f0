#pragma once
/// @file types.hpp  16-bit storage types (bf16, fp16). Compute is always fp32.
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace attnkit {

/// bfloat16 storage: the upper 16 bits of an IEEE binary32.
/// Conversion from float rounds to nearest, ties to even; NaN stays a (quiet) NaN.
struct bf16 {
  std::uint16_t bits = 0;
  constexpr bf16() = default;
  explicit bf16(float f) noexcept : bits(from_float(f)) {}
  explicit operator float() const noexcept { return to_float(bits); }

  static std::uint16_t from_float(float f) noexcept {
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
  }
  static float to_float(std::uint16_t b) noexcept { return std::bit_cast<float>(std::uint32_t(b) << 16); }
  static bf16 from_bits(std::uint16_t b) noexcept { bf16 r; r.bits = b; return r; }
};

/// IEEE binary16 storage. Conversion from float rounds to nearest, ties to even, with
/// gradual underflow to subnormals, overflow to +-inf and NaN preserved.
struct fp16 {
  std::uint16_t bits = 0;
  constexpr fp16() = default;
  explicit fp16(float f) noexcept : bits(from_float(f)) {}
  explicit operator float() const noexcept { return to_float(bits); }

  static std::uint16_t from_float(float f) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    const std::uint32_t sign = (u >> 16) & 0x8000u;
    const std::uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
    if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u); // rounds to >= 65520: inf
    if (a < 0x38800000u) {
      // Result is subnormal (or zero): value = a * 2^24 in units of the smallest subnormal.
      // Adding 0.5f (exponent 2^-1) aligns the mantissa so the FPU does the RNE rounding.
      const float r = std::bit_cast<float>(a) + 0.5f;
      return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(r) - 0x3f000000u));
    }
    // Normal: rebias exponent (127 -> 15) and round the 13 dropped bits to nearest even.
    std::uint32_t m = a + 0xc8000fffu + ((a >> 13) & 1u);  // 0xc8000000 = -(112 << 23)
    return static_cast<std::uint16_t>(sign | (m >> 13));
  }
  static float to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    const std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));  // inf / NaN
    if (e == 0) {  // zero / subnormal: m * 2^-24, exact in float
      const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
      return sign ? -v : v;
    }
    return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
  }
  static fp16 from_bits(std::uint16_t b) noexcept { fp16 r; r.bits = b; return r; }
};

// Views reinterpret arrays of these as packed 16-bit words (e.g. model weights loaded as uint16).
static_assert(sizeof(bf16) == 2 && sizeof(fp16) == 2 && std::is_trivially_copyable_v<bf16> &&
              std::is_trivially_copyable_v<fp16>);

/// Element types accepted for Q/K/V. O, LSE and probabilities are always float.
template <class T>
concept element_type = std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, fp16>;

/// Widen any element to float.
inline float to_float(float x) noexcept { return x; }
inline float to_float(bf16 x) noexcept { return bf16::to_float(x.bits); }
inline float to_float(fp16 x) noexcept { return fp16::to_float(x.bits); }

/// Widen n contiguous elements to float, element by element (portable; the kernels use the
/// arch-keyed simd::widen_n, which is vectorized).
template <class T>
inline void to_float_n(const T* src, float* dst, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = to_float(src[i]);
}

/// Narrow a float to an element type (round to nearest even).
template <class T>
T from_float(float f) noexcept {
  if constexpr (std::is_same_v<T, float>) return f;
  else return T(f);
}

}  // namespace attnkit
