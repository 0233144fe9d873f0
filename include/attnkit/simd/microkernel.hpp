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

namespace attnkit::simd {

/// MR rows of A times NV vectors of B per micro-tile: MR * NV accumulators, NV loads and one
/// broadcast live at once.
template <class Arch>
struct blocking {
  static constexpr int mr = 4, nv = 2;  // 16 registers (SSE/AVX)
};
template <>
struct blocking<scalar> {
  static constexpr int mr = 4, nv = 4;
};
template <class Arch>
  requires std::is_base_of_v<xsimd::avx2, Arch>
struct blocking<Arch> {
  static constexpr int mr = 4, nv = 3;  // 12 accumulators + 3 loads + 1 broadcast = 16 ymm
};
template <class Arch>
  requires std::is_base_of_v<xsimd::avx512f, Arch>
struct blocking<Arch> {
  static constexpr int mr = 8, nv = 3;  // 24 accumulators + 3 loads + 1 broadcast <= 32 zmm
};

template <class Arch, int MR, int NV, bool Beta, bool UnitP>
ATTNKIT_INLINE void micro_tile(const float* ATTNKIT_RESTRICT a, index_t sa_i, index_t sa_p,
                               const float* ATTNKIT_RESTRICT b, index_t ldb, float* ATTNKIT_RESTRICT c,
                               index_t ldc, const float* beta, index_t kdim) noexcept {
  using V = vec<Arch>;
  using R = typename V::reg;
  R acc[MR][NV];
  if constexpr (Beta) {
    R bt[NV];
    for (int v = 0; v < NV; ++v) bt[v] = V::load(beta + v * V::width);
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = V::load(c + i * ldc + v * V::width) * bt[v];
  } else {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  }
  const float* ap[MR];
  for (int i = 0; i < MR; ++i) ap[i] = a + i * sa_i;
  for (index_t p = 0; p < kdim; ++p) {
    R bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + p * ldb + v * V::width);
    const index_t off = UnitP ? p : p * sa_p;
    for (int i = 0; i < MR; ++i) {
      const R x = V::set1(ap[i][off]);
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(x, bv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) V::store(c + i * ldc + v * V::width, acc[i][v]);
}

// Row remainder: MR-1, MR-2, ... 1 resolved at compile time.
template <class Arch, int MR, int NV, bool Beta, bool UnitP>
ATTNKIT_INLINE void micro_rows(int m, const float* a, index_t sa_i, index_t sa_p, const float* b, index_t ldb,
                               float* c, index_t ldc, const float* beta, index_t kdim) noexcept {
  if constexpr (MR > 0) {
    if (m == MR) micro_tile<Arch, MR, NV, Beta, UnitP>(a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
    else micro_rows<Arch, MR - 1, NV, Beta, UnitP>(m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
  }
}
template <class Arch, int NV, bool Beta, bool UnitP>
ATTNKIT_INLINE void micro_cols(int nv, int m, const float* a, index_t sa_i, index_t sa_p, const float* b,
                               index_t ldb, float* c, index_t ldc, const float* beta, index_t kdim) noexcept {
  if constexpr (NV > 0) {
    constexpr int MR = blocking<Arch>::mr;
    if (nv == NV) micro_rows<Arch, MR, NV, Beta, UnitP>(m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
    else micro_cols<Arch, NV - 1, Beta, UnitP>(nv, m, a, sa_i, sa_p, b, ldb, c, ldc, beta, kdim);
  }
}

/// C[m x rows] (=|+=) A[m x kdim] * B[kdim x rows]; rows is a multiple of vec<Arch>::width and
/// C, B, beta have row length ldc / ldb >= rows.
template <class Arch, bool Beta, bool UnitP>
void gemm_rows(index_t m, index_t rows, index_t kdim, const float* a, index_t sa_i, index_t sa_p, const float* b,
               index_t ldb, float* c, index_t ldc, const float* beta) noexcept {
  using V = vec<Arch>;
  constexpr int MR = blocking<Arch>::mr, NV = blocking<Arch>::nv;
  const index_t nvec = rows / V::width;
  for (index_t v0 = 0; v0 < nvec; v0 += NV) {
    const int nv = static_cast<int>(nvec - v0 < NV ? nvec - v0 : NV);
    const index_t r0 = v0 * V::width;
    for (index_t i0 = 0; i0 < m; i0 += MR) {
      const int mm = static_cast<int>(m - i0 < MR ? m - i0 : MR);
      micro_cols<Arch, NV, Beta, UnitP>(nv, mm, a + i0 * sa_i, sa_i, sa_p, b + r0, ldb, c + i0 * ldc + r0, ldc,
                                        Beta ? beta + r0 : nullptr, kdim);
    }
  }
}

}  // namespace attnkit::simd
