#pragma once
/// @file microkernel.hpp  The one register-blocked product both attention GEMMs use.
///
/// Rows of a tile are SIMD lanes. The kernels keep queries transposed (Q^T: [D x R]) and
/// accumulate S^T = K Q^T and O^T += V^T P^T, so the streamed operands K and V are read as
/// broadcast scalars straight from the caller's memory (any seq/head strides, no packing for
/// fp32), while Q^T, P^T and O^T are vectors along the rows. The softmax then runs down columns
/// with no horizontal reductions, and rescaling by alpha is one vector multiply.
///
///     C[i][r] = beta[r] * C[i][r] + sum_p A(i, p) * B[p][r],  A(i, p) = a[i * sa_i + p * sa_p]
///
/// q.k: A = K (sa_i = key stride, sa_p = 1), B = Q^T, no beta.  p.v: A = V^T (sa_i = 1, sa_p =
/// key stride), B = P^T, beta = alpha. Register blocking (blocking<Arch>) comes from the register
/// count and the vector width, so the loop nest never changes per architecture.
#include <type_traits>

#include "attnkit/simd/arch.hpp"
#include "attnkit/simd/prefetch.hpp"

namespace attnkit::simd {

/// MR rows of A times NV vectors of B per micro-tile: MR * NV accumulators, NV loads and one
/// broadcast live at once. mr / nv: the fixed tile (linear.hpp). gemm_rows splits the rows into
/// passes of at most nv_max vectors and gives a pass of nv vectors mr_of(nv) rows of A: a
/// narrower pass takes more rows, so each micro-tile keeps about as many FMAs per load (AVX-512:
/// 64 rows are one 6 x 4 pass, 96 rows two 8 x 3 passes, 32 rows 12 x 2).
template <class Arch>
struct blocking {
  static constexpr int mr = 4, nv = 2;  // 16 registers (SSE/AVX)
  static constexpr int nv_max = 2;
  static constexpr int mr_of(int v) { return v == 1 ? 8 : 4; }
};
template <>
struct blocking<scalar> {
  static constexpr int mr = 4, nv = 4;
  static constexpr int nv_max = 4;
  static constexpr int mr_of(int) { return 4; }
};
template <class Arch>
  requires std::is_base_of_v<xsimd::avx2, Arch>
struct blocking<Arch> {
  static constexpr int mr = 4, nv = 3;  // 12 accumulators + 3 loads + 1 broadcast = 16 ymm
  static constexpr int nv_max = 3;
  static constexpr int mr_of(int v) { return v == 3 ? 4 : v == 2 ? 6 : 8; }
};
template <class Arch>
  requires std::is_base_of_v<xsimd::avx512f, Arch>
struct blocking<Arch> {
  static constexpr int mr = 8, nv = 3;  // 24 accumulators + 3 loads + 1 broadcast <= 32 zmm
  static constexpr int nv_max = 4;
  static constexpr int mr_of(int v) { return v == 4 ? 6 : v == 3 ? 8 : 12; }
};

// Accumulators always start at zero; the tile's sum is combined with C only at the end
// (C = acc, C = beta * C + acc, or C += acc). Together with gemm_rows' k-chunking this makes long
// sums blocked (error ~ (chunk + k / chunk) eps instead of k eps).
enum class store_mode { overwrite, scale_add, add };

template <class Arch, int MR, int NV, store_mode Mode, bool UnitP, bool Skip0>
ATTNKIT_INLINE void micro_tile(const float* ATTNKIT_RESTRICT a, index_t sa_i, index_t sa_p,
                               const float* ATTNKIT_RESTRICT b, index_t ldb, float* ATTNKIT_RESTRICT c,
                               index_t ldc, const float* beta, index_t kdim) noexcept {
  using V = vec<Arch>;
  using R = typename V::reg;
  R acc[MR][NV];
  ATTNKIT_UNROLL for (int i = 0; i < MR; ++i)
    ATTNKIT_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  const float* ap[MR];
  ATTNKIT_UNROLL for (int i = 0; i < MR; ++i) ap[i] = a + i * sa_i;
  for (index_t p = 0; p < kdim; ++p) {
    R bv[NV];
    ATTNKIT_UNROLL for (int v = 0; v < NV; ++v) bv[v] = V::load(b + p * ldb + v * V::width);
    const index_t off = UnitP ? p : p * sa_p;
    ATTNKIT_UNROLL for (int i = 0; i < MR; ++i) {
      const R x = V::set1(ap[i][off]);
      ATTNKIT_UNROLL for (int v = 0; v < NV; ++v)
        acc[i][v] = Skip0 ? V::fma_nz(x, bv[v], acc[i][v]) : V::fma(x, bv[v], acc[i][v]);
    }
  }
  if constexpr (Mode == store_mode::scale_add) {
    R bt[NV];
    for (int v = 0; v < NV; ++v) bt[v] = V::load(beta + v * V::width);
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v)
        V::store(c + i * ldc + v * V::width, V::fma(V::load(c + i * ldc + v * V::width), bt[v], acc[i][v]));
  } else if constexpr (Mode == store_mode::add) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) V::store(c + i * ldc + v * V::width, V::load(c + i * ldc + v * V::width) + acc[i][v]);
  } else {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) V::store(c + i * ldc + v * V::width, acc[i][v]);
  }
}

// Row remainder: MR-1, MR-2, ... 1 resolved at compile time.
template <class Arch, int MR, int NV, store_mode Mode, bool UnitP, bool Skip0>
ATTNKIT_INLINE void micro_rows(int m, const float* a, index_t sa_i, index_t sa_p, const float* b, index_t ldb,
                               float* c, index_t ldc, const float* beta, index_t kdim) noexcept {
  if constexpr (MR > 0) {
    if (m == MR) micro_tile<Arch, MR, NV, Mode, UnitP, Skip0>(a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
    else micro_rows<Arch, MR - 1, NV, Mode, UnitP, Skip0>(m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
  }
}
template <class Arch, int MR, int NV, store_mode Mode, bool UnitP, bool Skip0 = false>
ATTNKIT_INLINE void micro_cols(int nv, int m, const float* a, index_t sa_i, index_t sa_p, const float* b,
                               index_t ldb, float* c, index_t ldc, const float* beta, index_t kdim) noexcept {
  if constexpr (NV > 0) {
    if (nv == NV) micro_rows<Arch, MR, NV, Mode, UnitP, Skip0>(m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
    else micro_cols<Arch, MR, NV - 1, Mode, UnitP, Skip0>(nv, m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
  }
}

/// One pass of NV vectors of rows: micro-tiles of mr_of(NV) rows of A, the last rows of m in
/// tiles of 4, 2 and 1 (fewer instantiations than every count below MR).
template <class Arch, int NV, bool UnitP, bool Skip0>
void gemm_pass(index_t m, index_t kdim, const float* a, index_t sa_i, index_t sa_p, const float* b, index_t ldb,
               float* c, index_t ldc, const float* beta, index_t kc, const prefetch_stream* pf) noexcept {
  constexpr int MR = blocking<Arch>::mr_of(NV);
  const auto rows = [&]<int M>(index_t i0) {
    if (pf) pf->slice(i0, i0 + M, m);
    float* ct = c + i0 * ldc;
    const float* at = a + i0 * sa_i;
    for (index_t p0 = 0; p0 < kdim || p0 == 0; p0 += kc) {
      const index_t kk = kdim - p0 < kc ? kdim - p0 : kc;
      const float* ap = at + p0 * sa_p;
      const float* bp = b + p0 * ldb;
      if (p0 > 0) micro_tile<Arch, M, NV, store_mode::add, UnitP, Skip0>(ap, sa_i, sa_p, bp, ldb, ct, ldc, nullptr, kk);
      else if (beta) micro_tile<Arch, M, NV, store_mode::scale_add, UnitP, Skip0>(ap, sa_i, sa_p, bp, ldb, ct, ldc, beta, kk);
      else micro_tile<Arch, M, NV, store_mode::overwrite, UnitP, Skip0>(ap, sa_i, sa_p, bp, ldb, ct, ldc, nullptr, kk);
    }
  };
  index_t i0 = 0;
  for (; i0 + MR <= m; i0 += MR) rows.template operator()<MR>(i0);
  if constexpr (MR > 4)
    for (; i0 + 4 <= m; i0 += 4) rows.template operator()<4>(i0);
  if constexpr (MR > 2)
    for (; i0 + 2 <= m; i0 += 2) rows.template operator()<2>(i0);
  for (; i0 < m; ++i0) rows.template operator()<1>(i0);
}

/// C[m x rows] = A[m x kdim] * B[kdim x rows] (beta == nullptr), or
/// C = beta[r] * C + A * B. rows is a multiple of vec<Arch>::width; C, B and beta have row length
/// ldc / ldb >= rows. The k dimension is split into chunks of kc, each summed from zero (blocked
/// summation; see store_mode). Skip0: where B is exactly 0 the product is skipped (A may hold NaN
/// or Inf there: the values of masked keys), bitwise the same as the plain path elsewhere.
/// (Every C element is the same sequence of FMAs whatever the blocking.) pf: rows the caller
/// reads next, prefetched over the first pass (prefetch.hpp).
template <class Arch, bool UnitP, bool Skip0 = false>
void gemm_rows(index_t m, index_t rows, index_t kdim, const float* a, index_t sa_i, index_t sa_p, const float* b,
               index_t ldb, float* c, index_t ldc, const float* beta, index_t kc = 64,
               const prefetch_stream* pf = nullptr) noexcept {
  using V = vec<Arch>;
  constexpr int NV = blocking<Arch>::nv_max;
  // Vectors of rows in passes of near-equal width (64 rows on AVX-512: one pass of 4, 80: 3 + 2).
  const index_t nvec = rows / V::width;
  const index_t passes = (nvec + NV - 1) / NV;
  for (index_t t = 0, v0 = 0; t < passes; ++t) {
    const int nv = static_cast<int>((nvec - v0 + (passes - t) - 1) / (passes - t));
    const index_t r0 = v0 * V::width;
    v0 += nv;
    const float* bt = b + r0;
    float* ct = c + r0;
    const float* bb = beta ? beta + r0 : nullptr;
    const prefetch_stream* pp = t == 0 ? pf : nullptr;
    if constexpr (NV >= 4)
      if (nv == 4) { gemm_pass<Arch, 4, UnitP, Skip0>(m, kdim, a, sa_i, sa_p, bt, ldb, ct, ldc, bb, kc, pp); continue; }
    if constexpr (NV >= 3)
      if (nv == 3) { gemm_pass<Arch, 3, UnitP, Skip0>(m, kdim, a, sa_i, sa_p, bt, ldb, ct, ldc, bb, kc, pp); continue; }
    if (nv == 2) gemm_pass<Arch, 2, UnitP, Skip0>(m, kdim, a, sa_i, sa_p, bt, ldb, ct, ldc, bb, kc, pp);
    else gemm_pass<Arch, 1, UnitP, Skip0>(m, kdim, a, sa_i, sa_p, bt, ldb, ct, ldc, bb, kc, pp);
  }
}

}  // namespace attnkit::simd
