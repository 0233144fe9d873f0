#pragma once
/// @file bf16dot.hpp  The prefill products in bf16 pairs (AVX512-BF16 `vdpbf16ps`: per fp32 lane,
/// acc += a0 * b0 + a1 * b1 over two bf16 pairs, twice the fp32 FMA rate).
///
/// The layout is microkernel.hpp's (rows of the tile are SIMD lanes, A broadcast, B vectors along
/// the rows); what changes is that the reduction index runs in pairs. B is packed pair-interleaved
/// per row, B2[p / 2][r][p % 2], and A's pair (A(i, p), A(i, p + 1)) is broadcast as one 32-bit
/// value, so it must sit in two adjacent bf16:
///  - S^T = K Q^T: the pairs run along the head dim, adjacent in every K row: K is read in place
///    from the caller's memory (any strides), Q^T is packed once per task (pack_rows);
///  - O^T += V^T P^T: the pairs run along the keys, which are a row stride apart in V: each V tile
///    is packed to [key pair][channel][2] (pack_pairs), and P^T, rounded to bf16, to
///    [key pair][row][2] (pack_cols).
/// An odd reduction length ends with a half pair: its A element is loaded alone (16 bits, the
/// other half zero) and B's packed partner is zero, so nothing past the operand is read and no
/// garbage enters the sum.
///
/// Rounding points (FlashAttention's): Q, K and V are bf16 already; P is rounded to bf16 (round to
/// nearest even) just before P V, after the normalizer has summed it in fp32; products are exact
/// and accumulate in fp32 (chunks of kc summed from zero, as gemm_rows); softmax, rescaling and O
/// stay fp32. vdpbf16ps treats subnormal inputs and results as zero.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "attnkit/core/types.hpp"
#include "attnkit/simd/arch.hpp"
#include "attnkit/simd/microkernel.hpp"

namespace attnkit::simd {

/// Whether vdpbf16ps outruns widening bf16 and FMA on this CPU (bf16_products::automatic): on
/// AMD (Zen 4 / Zen 5 issue it at the FMA rate, so it does twice the work per instruction), not
/// on Intel Xeons (half the FMA rate: measured 238 vs 479 GFLOP/s, bench/results/bf16-xeon-2026-12-04.md).
/// The CPU vendor, read once; a fixed property of the machine, so results do not vary by run.
inline bool bf16_pairs_fast() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  static const bool amd = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0u), "c"(0u));
    char v[13] = {};
    std::memcpy(v, &b, 4), std::memcpy(v + 4, &d, 4), std::memcpy(v + 8, &c, 4);
    return std::strcmp(v, "AuthenticAMD") == 0;
  }();
  return amd;
#else
  return false;
#endif
}

/// Archs with the bf16 pair product (the tile engine packs for it and calls gemm_bf16).
template <class Arch>
concept bf16_dot_arch = std::is_base_of_v<avx512bf16, Arch>;

// Declared for every build (the engine names them in branches other archs discard); defined
// where the compiler flags allow AVX512-BF16.
template <bf16_dot_arch Arch>
void gemm_bf16(index_t m, index_t rows, index_t kdim, const bf16* a, index_t sa_i, index_t sa_p, const bf16* b,
               index_t ldb, float* c, index_t ldc, const float* beta, index_t kc = 64,
               const prefetch_stream* pf = nullptr) noexcept;
template <bf16_dot_arch Arch>
void pack_cols(const float* p, index_t ld, index_t n, index_t rows, bf16* out) noexcept;
template <bf16_dot_arch Arch>
void pack_pairs(const bf16* v, index_t ld, index_t n, index_t dv, bf16* out) noexcept;

#if ATTNKIT_WITH_AVX512BF16
namespace bf16_detail {

// The pair at a (two bf16) as one 32-bit broadcast; a half pair loads a[0] alone.
template <bool Half>
ATTNKIT_INLINE __m512i pair_at(const std::uint16_t* a) noexcept {
  if constexpr (Half) return _mm512_set1_epi32(static_cast<int>(a[0]));
  else {
    std::uint32_t x;
    std::memcpy(&x, a, 4);
    return _mm512_set1_epi32(static_cast<int>(x));
  }
}

template <int MR, int NV, bool Half>
ATTNKIT_INLINE void pair_step(__m512 (&acc)[MR][NV], const std::uint16_t* ATTNKIT_RESTRICT a, index_t sa_i,
                              const std::uint16_t* ATTNKIT_RESTRICT b) noexcept {
  __m512bh bv[NV];
  ATTNKIT_UNROLL for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * 32);
  ATTNKIT_UNROLL for (int i = 0; i < MR; ++i) {
    const __m512bh x = (__m512bh)pair_at<Half>(a + i * sa_i);
    ATTNKIT_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], x, bv[v]);
  }
}

template <int MR, int NV, store_mode Mode>
ATTNKIT_INLINE void micro_tile(const std::uint16_t* ATTNKIT_RESTRICT a, index_t sa_i, index_t sa_p,
                               const std::uint16_t* ATTNKIT_RESTRICT b, index_t ldb, float* ATTNKIT_RESTRICT c,
                               index_t ldc, const float* beta, index_t kdim) noexcept {
  __m512 acc[MR][NV];
  ATTNKIT_UNROLL for (int i = 0; i < MR; ++i)
    ATTNKIT_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  const index_t pairs = kdim / 2;
  for (index_t pp = 0; pp < pairs; ++pp) pair_step<MR, NV, false>(acc, a + pp * sa_p, sa_i, b + pp * 2 * ldb);
  if (kdim & 1) pair_step<MR, NV, true>(acc, a + pairs * sa_p, sa_i, b + pairs * 2 * ldb);
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      float* cp = c + i * ldc + v * 16;
      if constexpr (Mode == store_mode::scale_add)
        _mm512_storeu_ps(cp, _mm512_fmadd_ps(_mm512_loadu_ps(cp), _mm512_loadu_ps(beta + v * 16), acc[i][v]));
      else if constexpr (Mode == store_mode::add) _mm512_storeu_ps(cp, _mm512_add_ps(_mm512_loadu_ps(cp), acc[i][v]));
      else _mm512_storeu_ps(cp, acc[i][v]);
    }
}

template <int MR, int NV, store_mode Mode>
ATTNKIT_INLINE void micro_rows(int m, const std::uint16_t* a, index_t sa_i, index_t sa_p, const std::uint16_t* b,
                               index_t ldb, float* c, index_t ldc, const float* beta, index_t kdim) noexcept {
  if constexpr (MR > 0) {
    if (m == MR) micro_tile<MR, NV, Mode>(a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
    else micro_rows<MR - 1, NV, Mode>(m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
  }
}
template <int MR, int NV, store_mode Mode>
ATTNKIT_INLINE void micro_cols(int nv, int m, const std::uint16_t* a, index_t sa_i, index_t sa_p,
                               const std::uint16_t* b, index_t ldb, float* c, index_t ldc, const float* beta,
                               index_t kdim) noexcept {
  if constexpr (NV > 0) {
    if (nv == NV) micro_rows<MR, NV, Mode>(m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
    else micro_cols<MR, NV - 1, Mode>(nv, m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
  }
}

}  // namespace bf16_detail

/// gemm_rows (microkernel.hpp) with bf16 pairs: C[m x rows] = A * B, or C = beta[r] * C + A * B.
/// A(i, p) = a[i * sa_i + (p / 2) * sa_p + p % 2] (bf16); B packed [(kdim + 1) / 2][rows][2]
/// (ldb = rows of B's pair rows, >= rows; a half pair's partner zero). rows % 16 == 0. kc: the
/// reduction chunk summed from zero (even).
template <bf16_dot_arch Arch>
void gemm_bf16(index_t m, index_t rows, index_t kdim, const bf16* a, index_t sa_i, index_t sa_p, const bf16* b,
               index_t ldb, float* c, index_t ldc, const float* beta, index_t kc, const prefetch_stream* pf) noexcept {
  using namespace bf16_detail;
  constexpr int MR = 8, NV = 3;  // 24 accumulators + 3 B vectors + 1 broadcast <= 32 zmm
  const auto* a16 = reinterpret_cast<const std::uint16_t*>(a);
  const auto* b16 = reinterpret_cast<const std::uint16_t*>(b);
  const index_t nvec = rows / 16;
  for (index_t v0 = 0; v0 < nvec; v0 += NV) {
    const int nv = static_cast<int>(nvec - v0 < NV ? nvec - v0 : NV);
    for (index_t i0 = 0; i0 < m; i0 += MR) {
      const int mm = static_cast<int>(m - i0 < MR ? m - i0 : MR);
      if (pf && v0 == 0) pf->slice(i0, i0 + mm, m);
      float* ct = c + i0 * ldc + v0 * 16;
      for (index_t p0 = 0; p0 < kdim || p0 == 0; p0 += kc) {
        const index_t kk = kdim - p0 < kc ? kdim - p0 : kc;
        const std::uint16_t* ap = a16 + i0 * sa_i + (p0 / 2) * sa_p;
        const std::uint16_t* bp = b16 + (p0 / 2) * 2 * ldb + v0 * 32;
        if (p0 > 0) micro_cols<MR, NV, store_mode::add>(nv, mm, ap, sa_i, sa_p, bp, ldb, ct, ldc, nullptr, kk);
        else if (beta)
          micro_cols<MR, NV, store_mode::scale_add>(nv, mm, ap, sa_i, sa_p, bp, ldb, ct, ldc, beta + v0 * 16, kk);
        else micro_cols<MR, NV, store_mode::overwrite>(nv, mm, ap, sa_i, sa_p, bp, ldb, ct, ldc, nullptr, kk);
      }
    }
  }
}

/// P^T [n x rows] fp32 (row stride ld) to B2 [(n + 1) / 2][rows][2] bf16, rounded to nearest
/// even; a half pair's partner is zero. rows % 16 == 0.
template <bf16_dot_arch Arch>
void pack_cols(const float* p, index_t ld, index_t n, index_t rows, bf16* out) noexcept {
  // cvtne2ps gives [bf16(x0..x15) | bf16(y0..y15)]; the permute interleaves it to x0 y0 x1 y1 ...
  const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  auto* o = reinterpret_cast<std::uint16_t*>(out);
  for (index_t j = 0; j < n; j += 2) {
    const float* x = p + j * ld;
    const float* y = j + 1 < n ? x + ld : nullptr;
    for (index_t r = 0; r < rows; r += 16) {
      const __m512 xv = _mm512_loadu_ps(x + r), yv = y ? _mm512_loadu_ps(y + r) : _mm512_setzero_ps();
      const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(yv, xv);
      _mm512_storeu_si512(o + j * rows + 2 * r, _mm512_permutexvar_epi16(inter, w));
    }
  }
}

/// n rows of V (bf16, row stride ld, dv columns) to A2 [(n + 1) / 2][dv][2]: the pair of keys
/// (2t, 2t + 1) of channel c at A2[t][c]; a half pair's partner is zero. Reads v rows only up to
/// column dv - 1.
template <bf16_dot_arch Arch>
void pack_pairs(const bf16* v, index_t ld, index_t n, index_t dv, bf16* out) noexcept {
  const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37,
                                      5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  const auto* v16 = reinterpret_cast<const std::uint16_t*>(v);
  auto* o = reinterpret_cast<std::uint16_t*>(out);
  for (index_t j = 0; j < n; j += 2) {
    const std::uint16_t* x = v16 + j * ld;
    const std::uint16_t* y = j + 1 < n ? x + ld : nullptr;
    std::uint16_t* dst = o + j * dv;
    for (index_t c = 0; c < dv; c += 32) {
      const int m = static_cast<int>(dv - c < 32 ? dv - c : 32);
      const __mmask32 k = m == 32 ? ~__mmask32(0) : (__mmask32(1) << m) - 1;
      const __m512i xv = _mm512_maskz_loadu_epi16(k, x + c);
      const __m512i yv = y ? _mm512_maskz_loadu_epi16(k, y + c) : _mm512_setzero_si512();
      // words c .. c + 15 interleaved, then c + 16 .. c + 31: 2 * m words in all.
      const __mmask32 k0 = m >= 16 ? ~__mmask32(0) : (__mmask32(1) << (2 * m)) - 1;
      const __mmask32 k1 = m <= 16 ? 0 : m == 32 ? ~__mmask32(0) : (__mmask32(1) << (2 * (m - 16))) - 1;
      _mm512_mask_storeu_epi16(dst + 2 * c, k0, _mm512_permutex2var_epi16(xv, lo, yv));
      _mm512_mask_storeu_epi16(dst + 2 * c + 32, k1, _mm512_permutex2var_epi16(xv, hi, yv));
    }
  }
}
#endif

/// Q^T pairs: row r's elements (2t, 2t + 1) at out[t][r][2] for r < n (row pointers row(r), d
/// elements each), rows [n, rows) and an odd d's last partner zero. Any arch (runs once per task).
template <class RowAt>
void pack_rows(RowAt&& row, index_t n, index_t d, index_t rows, bf16* out) noexcept {
  std::memset(static_cast<void*>(out), 0, sizeof(bf16) * static_cast<std::size_t>(2 * ((d + 1) / 2) * rows));
  for (index_t r = 0; r < n; ++r) {
    const bf16* x = row(r);
    for (index_t c = 0; c < d; ++c) out[(c / 2) * 2 * rows + 2 * r + c % 2] = x[c];
  }
}

}  // namespace attnkit::simd
