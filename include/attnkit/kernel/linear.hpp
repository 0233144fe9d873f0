#pragma once
/// @file linear.hpp  lightning_attention and linear_attention: one chunked kernel for causal
/// linear attention with per-head decay (lightning = identity feature map), plus its recurrent
/// one-token step and the non-causal form.
///
/// Semantics (DESIGN.md section 2), per batch b and query head h (KV head h / (Hq / Hkv)):
///
///     o_t = scale * sum_{s <= t} lambda_h^(t-s) (phi(q_t) . phi(k_s)) v_s
///     S_t = lambda_h S_{t-1} + phi(k_t) v_t^T,   o_t = scale * phi(q_t)^T S_t
///
/// Chunked form (Lightning Attention-2), chunk of n <= C tokens starting at t0, local i, j < n,
/// S the state before the chunk, p^k = lambda^k:
///
///     O_c   = (Lambda Q_c) S + [(Q_c K_c^T) * M] V_c,   Lambda = diag(p^(i+1)),  M_ij = p^(i-j), j <= i
///     S    <- p^n S + (Gamma K_c)^T V_c,                  Gamma = diag(p^(n-1-j))
///
/// Every power is lambda^k with 0 <= k <= C, read from a per-task table exp(k log lambda) computed
/// in double: the factorization lambda^(i-j) = lambda^i / lambda^j, which overflows for long
/// chunks or small lambda, never appears, so nothing is ever larger than 1 and small powers merely
/// underflow (flushed to 0 below FLT_MIN, so no subnormals slow the GEMMs); the state is fp32 and
/// decays by p^n <= 1 per chunk, so no length overflows or produces NaN.
///
/// GEMM shapes (rows of the outputs are tokens or state rows; vectors run along columns):
///   scores  A[i][j]    = Qs_i . K_j            A operand Qs (row-major), B = K^T (packed)
///   output  O_c        = [Qd | A] [S ; V_c]    one product with inner dimension Dk + n: the
///                                              decayed queries against the state and the masked
///                                              scores against the chunk's values together
///   state   S          = p^n S + Kd^T V_c      A operand Kd^T (packed), beta = p^n
/// Triangular work is skipped per register block (row block i0 only reads keys < i0 + MR).
/// Normalization appends a column of ones to V and z as the matching column of S, so the
/// denominator phi(q_t) . z_t comes out of the same products.
///
/// Parallelism: one task per (batch, query head), chunks in order inside it; tasks are
/// independent and deterministic, so results are bitwise identical for any executor.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

#include "attnkit/core/args.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/validate.hpp"
#include "attnkit/kernel/scratch.hpp"
#include "attnkit/linear/feature_map.hpp"
#include "attnkit/linear/options.hpp"
#include "attnkit/mask/causal.hpp"
#include "attnkit/simd/microkernel.hpp"

namespace attnkit {
namespace detail {

/// The resolved trailing arguments of a linear call.
template <class Exec>
struct linear_call_args {
  Exec exec;
  std::optional<float> scale{};
  std::optional<workspace> ws{};
  linear_state state{};
  std::optional<linear_normalize> normalize{};
  linear_tiling tiling{};
  std::optional<decay> decays{};
  bool causal = false;
};

template <bool Lightning, class A>
constexpr bool check_linear_argument() {
  using T = std::remove_cvref_t<A>;
  check_argument<A>();  // the generic "is a policy/option" and executor-concept messages
  constexpr bool common = declares<T, policy_kind::executor> || std::is_same_v<T, scale> ||
                          std::is_same_v<T, workspace> || std::is_same_v<T, linear_state> ||
                          std::is_same_v<T, linear_normalize> || std::is_same_v<T, linear_tiling>;
  if constexpr (Lightning)
    static_assert(common || std::is_same_v<T, causal> || std::is_same_v<T, decay>,
                  "attnkit::lightning_attention: accepts an executor, scale, linear_state, linear_normalize, "
                  "linear_tiling and workspace (it is always causal; the decay is its 5th argument)");
  else
    static_assert(common || std::is_same_v<T, causal> || std::is_same_v<T, decay>,
                  "attnkit::linear_attention: accepts causal{}, decay, an executor, scale, linear_state, "
                  "linear_normalize, linear_tiling and workspace (no score, other mask or normalizer policies)");
  static_assert(!(Lightning && std::is_same_v<T, decay>),
                "attnkit::lightning_attention: the decay is the 5th argument; do not pass it again");
  return true;
}

template <bool Lightning, class... Args>
auto resolve_linear_args(Args&&... args) {
  (check_linear_argument<Lightning, Args>(), ...);
  static_assert(count_kind<policy_kind::executor, Args...> <= 1, "attnkit: more than one executor given");
  static_assert(count_type<scale, Args...> <= 1 && count_type<workspace, Args...> <= 1 &&
                    count_type<linear_state, Args...> <= 1 && count_type<linear_normalize, Args...> <= 1 &&
                    count_type<linear_tiling, Args...> <= 1 && count_type<decay, Args...> <= 1 &&
                    count_type<causal, Args...> <= 1,
                "attnkit: an option is given more than once");
  auto e = pick<policy_kind::executor, default_executor>(args...);
  linear_call_args<decltype(e)> r{.exec = std::move(e)};
  if (auto o = pick_option<scale>(args...)) r.scale = o->value;
  r.ws = pick_option<workspace>(args...);
  if (auto o = pick_option<linear_state>(args...)) r.state = *o;
  r.normalize = pick_option<linear_normalize>(args...);
  if (auto o = pick_option<linear_tiling>(args...)) r.tiling = *o;
  r.decays = pick_option<decay>(args...);
  r.causal = count_type<causal, Args...> > 0;
  return r;
}

/// dst[0..n) = float(src[0..n)).
template <class T>
ATTNKIT_INLINE void load_row(const T* src, float* dst, index_t n) noexcept {
  if constexpr (std::is_same_v<std::remove_cv_t<T>, float>) std::memcpy(dst, src, sizeof(float) * std::size_t(n));
  else
    for (index_t i = 0; i < n; ++i) dst[i] = to_float(src[i]);
}

/// dst[0..n) = src[0..n) * f.
template <class Arch>
ATTNKIT_INLINE void scale_row(const float* src, float* dst, index_t n, float f) noexcept {
  using V = simd::vec<Arch>;
  index_t i = 0;
  const auto fv = V::set1(f);
  for (; i + V::width <= n; i += V::width) V::store(dst + i, V::load(src + i) * fv);
  for (; i < n; ++i) dst[i] = src[i] * f;
}

/// dst[0..n) = a[0..n) * b[0..n).
template <class Arch>
ATTNKIT_INLINE void mul_rows(const float* a, const float* b, float* dst, index_t n) noexcept {
  using V = simd::vec<Arch>;
  index_t i = 0;
  for (; i + V::width <= n; i += V::width) V::store(dst + i, V::load(a + i) * V::load(b + i));
  for (; i < n; ++i) dst[i] = a[i] * b[i];
}

/// Register blocking of the linear kernel's products: MR rows x NV vectors of accumulators.
/// AVX-512: 6 x 4 (24 accumulators + 4 loads + 1 broadcast of 32 zmm); NV = 4 divides the common
/// Dv = 64 / 128 and chunk = 64 columns exactly. AVX2: 4 x 3 (of 16 ymm).
template <class Arch>
struct linear_blocking {
  static constexpr int mr = 4, nv = 2;
};
template <>
struct linear_blocking<scalar> {
  static constexpr int mr = 4, nv = 4;
};
template <class Arch>
  requires std::is_base_of_v<xsimd::avx2, Arch>
struct linear_blocking<Arch> {
  static constexpr int mr = 4, nv = 3;
};
template <class Arch>
  requires std::is_base_of_v<xsimd::avx512f, Arch>
struct linear_blocking<Arch> {
  static constexpr int mr = 6, nv = 4;
};

/// C[MR x NV*W] (= | = beta * C +) A[MR x kdim] B[kdim x NV*W]; A row-major (a[i * lda + p]),
/// B and C rows contiguous. Accumulators start at zero; beta * C is added once at the end.
template <class Arch, int MR, int NV, bool ScaleAdd>
ATTNKIT_INLINE void linear_tile(const float* ATTNKIT_RESTRICT a, index_t lda, const float* ATTNKIT_RESTRICT b,
                                index_t ldb, float* ATTNKIT_RESTRICT c, index_t ldc, float beta,
                                index_t kdim) noexcept {
  using V = simd::vec<Arch>;
  using R = typename V::reg;
  constexpr int W = V::width;
  R acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int u = 0; u < NV; ++u) acc[i][u] = V::zero();
  for (index_t p = 0; p < kdim; ++p) {
    R bv[NV];
    for (int u = 0; u < NV; ++u) bv[u] = V::load(b + p * ldb + u * W);
    for (int i = 0; i < MR; ++i) {
      const R x = V::set1(a[i * lda + p]);
      for (int u = 0; u < NV; ++u) acc[i][u] = V::fma(x, bv[u], acc[i][u]);
    }
  }
  if constexpr (ScaleAdd) {
    const R bt = V::set1(beta);
    for (int i = 0; i < MR; ++i)
      for (int u = 0; u < NV; ++u) V::store(c + i * ldc + u * W, V::fma(V::load(c + i * ldc + u * W), bt, acc[i][u]));
  } else {
    for (int i = 0; i < MR; ++i)
      for (int u = 0; u < NV; ++u) V::store(c + i * ldc + u * W, acc[i][u]);
  }
}

// Remainders resolved at compile time: m in [1, MR], nv in [1, NV].
template <class Arch, int MR, int NV, bool ScaleAdd>
ATTNKIT_INLINE void linear_rows(int m, const float* a, index_t lda, const float* b, index_t ldb, float* c, index_t ldc,
                                float beta, index_t kdim) noexcept {
  if constexpr (MR > 0) {
    if (m == MR) linear_tile<Arch, MR, NV, ScaleAdd>(a, lda, b, ldb, c, ldc, beta, kdim);
    else linear_rows<Arch, MR - 1, NV, ScaleAdd>(m, a, lda, b, ldb, c, ldc, beta, kdim);
  }
}
template <class Arch, int NV, bool ScaleAdd>
ATTNKIT_INLINE void linear_block(int nv, int m, const float* a, index_t lda, const float* b, index_t ldb, float* c,
                                 index_t ldc, float beta, index_t kdim) noexcept {
  if constexpr (NV > 0) {
    if (nv == NV) linear_rows<Arch, linear_blocking<Arch>::mr, NV, ScaleAdd>(m, a, lda, b, ldb, c, ldc, beta, kdim);
    else linear_block<Arch, NV - 1, ScaleAdd>(nv, m, a, lda, b, ldb, c, ldc, beta, kdim);
  }
}

/// C[m x ncol] (= | = beta * C +) A[m x k] B[k x ncol], ncol a multiple of the vector width.
/// Column groups outer (the B panel stays in L1 across row blocks), row blocks inner. Tri: row
/// block [i0, i0 + mm) uses inner dimension kdim + i0 + mm (the causal output product: the
/// masked scores of a row block are zero beyond its last row).
template <class Arch, bool ScaleAdd, bool Tri>
void linear_gemm(index_t m, index_t ncol, index_t kdim, const float* a, index_t lda, const float* b, index_t ldb,
                 float* c, index_t ldc, float beta) noexcept {
  constexpr index_t W = simd::vec<Arch>::width;
  constexpr int MR = linear_blocking<Arch>::mr, NV = linear_blocking<Arch>::nv;
  const index_t nvec = ncol / W;
  for (index_t v0 = 0; v0 < nvec; v0 += NV) {
    const int nv = static_cast<int>(std::min<index_t>(NV, nvec - v0));
    for (index_t i0 = 0; i0 < m; i0 += MR) {
      const int mm = static_cast<int>(std::min<index_t>(MR, m - i0));
      linear_block<Arch, NV, ScaleAdd>(nv, mm, a + i0 * lda, lda, b + v0 * W, ldb, c + i0 * ldc + v0 * W, ldc, beta,
                                       Tri ? kdim + i0 + mm : kdim);
    }
  }
}

/// The lower-triangular product A = Q K^T of a chunk: row block [i0, i0 + mm) computes only
/// columns [0, i0 + mm) rounded up to the vector width (the keys its rows can see).
template <class Arch>
void linear_gemm_lower(index_t m, index_t kdim, const float* a, index_t lda, const float* b, index_t ldb, float* c,
                       index_t ldc) noexcept {
  constexpr index_t W = simd::vec<Arch>::width;
  constexpr int MR = linear_blocking<Arch>::mr, NV = linear_blocking<Arch>::nv;
  for (index_t i0 = 0; i0 < m; i0 += MR) {
    const int mm = static_cast<int>(std::min<index_t>(MR, m - i0));
    const index_t nvec = align_up(i0 + mm, W) / W;
    for (index_t v0 = 0; v0 < nvec; v0 += NV)
      linear_block<Arch, NV, false>(static_cast<int>(std::min<index_t>(NV, nvec - v0)), mm, a + i0 * lda, lda,
                                    b + v0 * W, ldb, c + i0 * ldc + v0 * W, ldc, 0.f, kdim);
  }
}

/// Everything one linear call needs, resolved and validated once.
template <class Arch, class TQ, class TK, class TV, class Phi>
struct linear_call {
  using V = simd::vec<Arch>;
  using R = typename V::reg;
  static constexpr index_t W = V::width;
  static constexpr index_t MR = linear_blocking<Arch>::mr;

  tensor_view<TQ> q;
  tensor_view<TK> k;
  tensor_view<TV> v;
  tensor_view<float> o;
  Phi phi;
  problem_dims d;
  bool causal = true, normalize = false;
  float scale = 1.f, eps = 1e-6f;
  std::span<const float> decays;  ///< empty: lambda = 1 for every head
  linear_state st{};

  index_t g = 1, C = 64, Cp = 64, Dk = 0, Dv = 0, Dva = 0, Dvp = 0, ldqa = 0;
  bool step = false;
  // Scratch layout (floats, per worker).
  index_t off_qs = 0, off_qa = 0, off_kr = 0, off_kt = 0, off_kdt = 0, off_sv = 0, off_ob = 0, off_pw = 0,
          off_ext = 0, off_kdec = 0;
  index_t off_qv = 0, off_kv = 0, off_vv = 0, off_acc = 0, off_ss = 0, off_zs = 0;
  index_t total = 0;

  void plan(const linear_tiling& t) {
    g = d.hq / d.hkv;
    Dk = d.dk, Dv = d.dv;
    Dva = Dv + (normalize ? 1 : 0);  // normalization: V gets a column of ones, S the column z
    Dvp = align_up(Dva, W);
    C = std::max<index_t>(1, t.chunk);
    Cp = align_up(C, W);
    ldqa = Dk + Cp;
    step = causal && d.sq <= t.step_max;
    index_t at = 0;
    auto take = [&](index_t n) { const index_t x = at; at += align_up(n, scratch_align); return x; };
    if (step) {
      off_qv = take(Dk);
      off_kv = take(Dk);
      off_vv = take(Dvp);
      off_acc = take(Dvp);
      off_ss = take(st.out ? 0 : Dk * Dv);
      off_zs = take(normalize && !st.z_out ? Dk : 0);
    } else {
      off_qs = take(C * Dk);
      off_qa = take(C * ldqa);
      off_kr = take(C * Dk);
      off_kt = take(Dk * Cp);
      off_kdt = take(causal ? Dk * Cp : 0);
      off_sv = take((Dk + C) * Dvp);
      off_ob = take(C * Dvp);
      off_pw = take(C + 1);
      off_ext = take(2 * Cp + W);
      off_kdec = take(Cp);
    }
    total = at;
  }

  index_t state_off(index_t b, index_t h) const { return (b * d.hq + h) * Dk * Dv; }
  index_t z_off(index_t b, index_t h) const { return (b * d.hq + h) * Dk; }

  // ---- chunked path -------------------------------------------------------------------------

  // pw[x] = lambda^x for x in [0, C]; ext[x] = pw[C-1-x] for x < C and 0 beyond, so that row i's
  // mask-and-decay factors for keys j = 0.. are the contiguous ext[C-1-i+j] (= lambda^(i-j)).
  void powers(float* ws, float lambda) const {
    float* pw = ws + off_pw;
    float* ext = ws + off_ext;
    const double ll = std::log(double(lambda));
    for (index_t x = 0; x <= C; ++x) {
      // exp of a difference-free exponent in double: no overflow, and an underflow becomes a
      // clean 0 (values below FLT_MIN are flushed so the products never see subnormals).
      const float p = static_cast<float>(std::exp(double(x) * ll));
      pw[x] = p < FLT_MIN ? 0.f : p;
    }
    for (index_t x = 0; x < 2 * Cp + W; ++x) ext[x] = x < C ? pw[C - 1 - x] : 0.f;
  }

  void load_state(float* sv, index_t b, index_t h) const {
    const float* s_in = st.in ? st.in + state_off(b, h) : nullptr;
    const float* z_in = st.z_in ? st.z_in + z_off(b, h) : nullptr;
    for (index_t c = 0; c < Dk; ++c) {
      float* row = sv + c * Dvp;
      if (s_in) std::memcpy(row, s_in + c * Dv, sizeof(float) * std::size_t(Dv));
      else std::fill(row, row + Dv, 0.f);
      if (normalize) row[Dv] = z_in ? z_in[c] : 0.f;
      std::fill(row + Dva, row + Dvp, 0.f);
    }
  }

  void store_state(const float* sv, index_t b, index_t h) const {
    if (st.out)
      for (index_t c = 0; c < Dk; ++c) std::memcpy(st.out + state_off(b, h) + c * Dv, sv + c * Dvp, sizeof(float) * std::size_t(Dv));
    if (st.z_out)
      for (index_t c = 0; c < Dk; ++c) st.z_out[z_off(b, h) + c] = sv[c * Dvp + Dv];
  }

  // Qs rows = scale * phi(q) (for the scores) and the first Dk columns of [Qd | A] = Qs * p^(i+1).
  void pack_q(float* ws, index_t b, index_t h, index_t t0, index_t n, bool decayed) const {
    const float* pw = ws + off_pw;
    float* qs = ws + off_qs;
    float* qa = ws + off_qa;
    for (index_t i = 0; i < n; ++i) {
      float* r = qs + i * Dk;
      load_row(q.row(b, t0 + i, h), r, Dk);
      apply_features<Arch>(phi, r, Dk);
      scale_row<Arch>(r, r, Dk, scale);
      scale_row<Arch>(r, qa + i * ldqa, Dk, decayed ? pw[i + 1] : 1.f);
    }
  }

  // K^T [Dk x Cp] = phi(k)^T with columns >= n zero; with decay also Kd^T = K^T * p^(n-1-j).
  void pack_k(float* ws, index_t b, index_t hk, index_t j0, index_t n, bool decayed) const {
    float* kr = ws + off_kr;
    float* kt = ws + off_kt;
    for (index_t j = 0; j < n; ++j) {
      load_row(k.row(b, j0 + j, hk), kr + j * Dk, Dk);
      apply_features<Arch>(phi, kr + j * Dk, Dk);
    }
    transpose(kr, n, Dk, kt, Cp);
    if (n < Cp)
      for (index_t c = 0; c < Dk; ++c) std::fill(kt + c * Cp + n, kt + (c + 1) * Cp, 0.f);
    if (decayed) {
      const float* pw = ws + off_pw;
      float* kdec = ws + off_kdec;
      for (index_t j = 0; j < Cp; ++j) kdec[j] = j < n ? pw[n - 1 - j] : 0.f;
      float* kdt = ws + off_kdt;
      for (index_t c = 0; c < Dk; ++c) mul_rows<Arch>(kt + c * Cp, kdec, kdt + c * Cp, Cp);
    }
  }

  // dst[c * ldd + j] = src[j * cols + c], j < n, c < cols; blocked so both sides stay in L1.
  static void transpose(const float* ATTNKIT_RESTRICT src, index_t n, index_t cols, float* ATTNKIT_RESTRICT dst,
                        index_t ldd) noexcept {
    constexpr index_t B = 16;
    for (index_t j0 = 0; j0 < n; j0 += B) {
      const index_t j1 = std::min(n, j0 + B);
      for (index_t c0 = 0; c0 < cols; c0 += B) {
        const index_t c1 = std::min(cols, c0 + B);
        for (index_t c = c0; c < c1; ++c)
          for (index_t j = j0; j < j1; ++j) dst[c * ldd + j] = src[j * cols + c];
      }
    }
  }

  // Rows Dk.. of [S ; V]: v_j, then 1 (normalization column), then zero padding.
  void pack_v(float* ws, index_t b, index_t hk, index_t j0, index_t n) const {
    float* sv = ws + off_sv;
    for (index_t j = 0; j < n; ++j) {
      float* row = sv + (Dk + j) * Dvp;
      load_row(v.row(b, j0 + j, hk), row, Dv);
      if (normalize) row[Dv] = 1.f;
      std::fill(row + Dva, row + Dvp, 0.f);
    }
  }

  // A = (Qs K^T) * M into columns Dk.. of [Qd | A]; row block i0 computes only keys < i0 + mm
  // (what the output product of that block reads).
  void scores(float* ws, index_t n) const {
    const float* ext = ws + off_ext;
    float* qa = ws + off_qa;
    linear_gemm_lower<Arch>(n, Dk, ws + off_qs, Dk, ws + off_kt, Cp, qa + Dk, ldqa);
    for (index_t i = 0; i < n; ++i) {
      float* row = qa + i * ldqa + Dk;
      const float* e = ext + (C - 1 - i);
      // keys j <= i get lambda^(i-j); the rounded-up vector tail multiplies by ext's zeros and is
      // then overwritten with exact zeros up to the row block's end (so even an inf score of a
      // future key leaves no NaN behind).
      const index_t jv = align_up(i + 1, W), jend = std::min(n, (i / MR + 1) * MR);
      for (index_t j = 0; j < jv; j += W) V::store(row + j, V::load(row + j) * V::load(e + j));
      for (index_t j = i + 1; j < jend; ++j) row[j] = 0.f;
    }
  }

  // O_c = [Qd | A] [S ; V_c] (inner dimension Dk + keys < i0 + mm) or, non-causal, Q S.
  void output(float* ws, index_t n, bool intra) const {
    if (intra) linear_gemm<Arch, false, true>(n, Dvp, Dk, ws + off_qa, ldqa, ws + off_sv, Dvp, ws + off_ob, Dvp, 0.f);
    else linear_gemm<Arch, false, false>(n, Dvp, Dk, ws + off_qa, ldqa, ws + off_sv, Dvp, ws + off_ob, Dvp, 0.f);
  }

  // S = beta * S + A^T V_c with A^T the packed [Dk x Cp] (Kd^T or K^T), beta = p^n (or 1).
  void update_state(float* ws, index_t n, const float* at, float beta) const {
    float* sv = ws + off_sv;
    linear_gemm<Arch, true, false>(Dk, Dvp, n, at, Cp, sv + Dk * Dvp, Dvp, sv, Dvp, beta);
  }

  void emit_row(const float* src, float* dst) const {
    if (normalize) {
      // |divisor| >= eps, with den's sign: never a division by zero, never NaN from finite input.
      const float den = src[Dv];
      const float dd = den >= 0.f ? den + eps : den - eps;
      for (index_t c = 0; c < Dv; ++c) dst[c] = src[c] / dd;
    } else {
      std::memcpy(dst, src, sizeof(float) * std::size_t(Dv));
    }
  }

  void epilogue(float* ws, index_t b, index_t h, index_t t0, index_t n) const {
    const float* ob = ws + off_ob;
    for (index_t i = 0; i < n; ++i) emit_row(ob + i * Dvp, o.row(b, t0 + i, h));
  }

  void chunked_task(float* ws, index_t b, index_t h, float lambda) const {
    const index_t hk = h / g;
    float* sv = ws + off_sv;
    powers(ws, causal ? lambda : 1.f);
    load_state(sv, b, h);
    if (causal) {
      const float pn_full = (ws + off_pw)[C];
      for (index_t t0 = 0; t0 < d.sq; t0 += C) {
        const index_t n = std::min(C, d.sq - t0);
        pack_q(ws, b, h, t0, n, true);
        pack_k(ws, b, hk, t0, n, true);
        pack_v(ws, b, hk, t0, n);
        scores(ws, n);
        output(ws, n, true);
        epilogue(ws, b, h, t0, n);
        update_state(ws, n, ws + off_kdt, n == C ? pn_full : (ws + off_pw)[n]);
      }
    } else {
      for (index_t j0 = 0; j0 < d.sk; j0 += C) {
        const index_t n = std::min(C, d.sk - j0);
        pack_k(ws, b, hk, j0, n, false);
        pack_v(ws, b, hk, j0, n);
        update_state(ws, n, ws + off_kt, 1.f);
      }
      for (index_t i0 = 0; i0 < d.sq; i0 += C) {
        const index_t n = std::min(C, d.sq - i0);
        pack_q(ws, b, h, i0, n, false);
        output(ws, n, false);
        epilogue(ws, b, h, i0, n);
      }
    }
    store_state(sv, b, h);
  }

  // ---- recurrent path (decode) ----------------------------------------------------------------

  // Columns [e0, e0 + NB*W) of S = lambda * S_src + k v^T (S_src = 0 without a source) and
  // acc = q^T S, row by row with the accumulators in registers.
  template <int NB, bool HasSrc>
  ATTNKIT_INLINE void step_cols(index_t e0, float* S, const float* src, float lambda, const float* kv, const float* vv,
                                const float* qv, float* acc) const noexcept {
    R vr[NB], ac[NB];
    for (int u = 0; u < NB; ++u) vr[u] = V::load(vv + e0 + u * W), ac[u] = V::zero();
    const R lam = V::set1(lambda);
    for (index_t c = 0; c < Dk; ++c) {
      const R kc = V::set1(kv[c]), qc = V::set1(qv[c]);
      float* srow = S + c * Dv + e0;
      for (int u = 0; u < NB; ++u) {
        R s = kc * vr[u];
        if constexpr (HasSrc) s = V::fma(lam, V::load(src + c * Dv + e0 + u * W), s);
        V::store(srow + u * W, s);
        ac[u] = V::fma(qc, s, ac[u]);
      }
    }
    for (int u = 0; u < NB; ++u) V::store(acc + e0 + u * W, ac[u]);
  }

  template <bool HasSrc>
  void step_state(float* S, const float* src, float lambda, const float* kv, const float* vv, const float* qv,
                  float* acc) const noexcept {
    constexpr int NB = W >= 16 ? 4 : (W == 1 ? 4 : 2);
    index_t e0 = 0;
    for (; e0 + NB * W <= Dv; e0 += NB * W) step_cols<NB, HasSrc>(e0, S, src, lambda, kv, vv, qv, acc);
    for (; e0 + W <= Dv; e0 += W) step_cols<1, HasSrc>(e0, S, src, lambda, kv, vv, qv, acc);
    if (e0 < Dv) {
      for (index_t e = e0; e < Dv; ++e) acc[e] = 0.f;
      for (index_t c = 0; c < Dk; ++c)
        for (index_t e = e0; e < Dv; ++e) {
          float s = kv[c] * vv[e];
          if constexpr (HasSrc) s = lambda * src[c * Dv + e] + s;
          S[c * Dv + e] = s;
          acc[e] += qv[c] * s;
        }
    }
  }

  void step_task(float* ws, index_t b, index_t h, float lambda) const {
    const index_t hk = h / g;
    float* S = st.out ? st.out + state_off(b, h) : ws + off_ss;
    const float* s_in = st.in ? st.in + state_off(b, h) : nullptr;
    float* z = st.z_out ? st.z_out + z_off(b, h) : ws + off_zs;
    const float* z_in = st.z_in ? st.z_in + z_off(b, h) : nullptr;
    float* qv = ws + off_qv;
    float* kv = ws + off_kv;
    float* vv = ws + off_vv;
    float* acc = ws + off_acc;
    for (index_t t = 0; t < d.sq; ++t) {
      load_row(q.row(b, t, h), qv, Dk);
      apply_features<Arch>(phi, qv, Dk);
      scale_row<Arch>(qv, qv, Dk, scale);
      load_row(k.row(b, t, hk), kv, Dk);
      apply_features<Arch>(phi, kv, Dk);
      load_row(v.row(b, t, hk), vv, Dv);
      const float* src = t == 0 ? s_in : S;  // in place after the first token (or when in == out)
      if (src) step_state<true>(S, src, lambda, kv, vv, qv, acc);
      else step_state<false>(S, src, lambda, kv, vv, qv, acc);
      if (normalize) {
        const float* zs = t == 0 ? z_in : z;
        float den = 0.f;
        for (index_t c = 0; c < Dk; ++c) {
          const float zc = zs ? lambda * zs[c] + kv[c] : kv[c];
          z[c] = zc;
          den += qv[c] * zc;
        }
        acc[Dv] = den;
      }
      emit_row(acc, o.row(b, t, h));
    }
    if (d.sq == 0) {  // no token: the state passes through unchanged
      if (st.out && st.out + state_off(b, h) != s_in)
        for (index_t x = 0; x < Dk * Dv; ++x) S[x] = s_in ? s_in[x] : 0.f;
      if (st.z_out && st.z_out + z_off(b, h) != z_in)
        for (index_t x = 0; x < Dk; ++x) z[x] = z_in ? z_in[x] : 0.f;
    }
  }

  void task(float* ws, index_t b, index_t h) const {
    const float lambda = decays.empty() ? 1.f : decays[h];
    if (step) step_task(ws, b, h, lambda);
    else chunked_task(ws, b, h, lambda);
  }
};

/// Validate (everything, before anything is written), plan and run one linear call.
template <class Arch, class TQ, class TK, class TV, class Phi, class A>
void run_linear(const char* fn, tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> o,
                const Phi& phi, bool causal_, std::optional<decay> dec, const A& a) {
  static_assert(arch_tag<Arch>, "attnkit: Arch must be an xsimd architecture (e.g. xsimd::avx2) or attnkit::scalar");
  static_assert(element_type<std::remove_cv_t<TQ>> && element_type<std::remove_cv_t<TK>> &&
                    element_type<std::remove_cv_t<TV>>,
                "attnkit: q, k and v elements must be float, attnkit::bf16 or attnkit::fp16");
  static_assert(feature_map<Phi>, "attnkit: the feature map must be identity_features, elu_plus_one, relu_features "
                                  "or feature_fn{f} (T operator()(T) for float and double, static is_identity)");
  const problem_dims d = check_attention(fn, q, k, v, o);
  if (causal_ && d.sq != d.sk)
    fail(fn, "k: expected seq equal to q's seq (", d.sq,
         ") for causal linear attention (earlier tokens enter through linear_state), got ", d.sk);
  if (dec) {
    if (!causal_) fail(fn, "decay: only causal linear attention decays; pass attnkit::causal{} as well");
    if (static_cast<index_t>(dec->lambda.size()) != d.hq)
      fail(fn, "decay: expected one value per query head (", d.hq, "), got ", dec->lambda.size());
    for (index_t h = 0; h < d.hq; ++h) {
      const float x = dec->lambda[h];
      if (!(x > 0.f && x <= 1.f)) fail(fn, "decay: expected lambda in (0, 1] for every head, got ", x, " for head ", h);
    }
  }
  if (a.scale && !std::isfinite(*a.scale)) fail(fn, "scale: expected a finite value, got ", *a.scale);
  if (a.normalize && !(a.normalize->eps > 0.f && std::isfinite(a.normalize->eps)))
    fail(fn, "linear_normalize: expected eps finite and > 0, got ", a.normalize->eps);
  if (a.tiling.chunk < 1) fail(fn, "linear_tiling: expected chunk >= 1, got ", a.tiling.chunk);
  if (a.tiling.step_max < 0) fail(fn, "linear_tiling: expected step_max >= 0, got ", a.tiling.step_max);

  // State buffers: S [B,Hq,Dk,Dv], z [B,Hq,Dk].
  const linear_state& s = a.state;
  const bool norm = a.normalize.has_value();
  if (!norm && (s.z_in || s.z_out))
    fail(fn, "linear_state: z_in/z_out are only kept with linear_normalize, got ", s.z_in ? "z_in" : "z_out",
         " without it");
  if (norm && (s.in != nullptr) != (s.z_in != nullptr))
    fail(fn, "linear_state: with linear_normalize, expected z_in exactly when in is given, got ",
         s.in ? "in without z_in" : "z_in without in");
  if (norm && (s.out != nullptr) != (s.z_out != nullptr))
    fail(fn, "linear_state: with linear_normalize, expected z_out exactly when out is given, got ",
         s.out ? "out without z_out" : "z_out without out");
  const index_t ns = d.batch * d.hq * d.dk * d.dv, nz = d.batch * d.hq * d.dk;
  if (s.out) check_output(fn, "linear_state.out", s.out, ns, q, k, v, o);
  if (s.z_out) check_output(fn, "linear_state.z_out", s.z_out, nz, q, k, v, o);
  const byte_range ro = range_of(o), rin = range_of(s.in, ns), rout = range_of(s.out, ns), rzin = range_of(s.z_in, nz),
                   rzout = range_of(s.z_out, nz);
  if (rin.overlaps(ro)) fail(fn, "linear_state.in: expected memory disjoint from out, got an overlapping buffer");
  if (rzin.overlaps(ro)) fail(fn, "linear_state.z_in: expected memory disjoint from out, got an overlapping buffer");
  if (s.in && s.out && s.in != s.out && rin.overlaps(rout))
    fail(fn, "linear_state.in: expected the same buffer as linear_state.out (in-place update) or a disjoint one, "
             "got a partial overlap");
  if (s.z_in && s.z_out && s.z_in != s.z_out && rzin.overlaps(rzout))
    fail(fn, "linear_state.z_in: expected the same buffer as linear_state.z_out (in-place update) or a disjoint "
             "one, got a partial overlap");
  if (rout.overlaps(rzout)) fail(fn, "linear_state.z_out: expected memory disjoint from linear_state.out, got an overlap");
  if (rin.overlaps(rzout)) fail(fn, "linear_state.z_out: expected memory disjoint from linear_state.in, got an overlap");
  if (rzin.overlaps(rout)) fail(fn, "linear_state.out: expected memory disjoint from linear_state.z_in, got an overlap");

  linear_call<Arch, TQ, TK, TV, Phi> call{.q = q,
                                          .k = k,
                                          .v = v,
                                          .o = o,
                                          .phi = phi,
                                          .d = d,
                                          .causal = causal_,
                                          .normalize = norm,
                                          .scale = a.scale ? *a.scale : 1.f,
                                          .eps = norm ? a.normalize->eps : 1e-6f,
                                          .decays = dec ? dec->lambda : std::span<const float>{},
                                          .st = s};
  call.plan(a.tiling);
  const scratch_source src{a.ws ? &*a.ws : nullptr, call.total, a.exec.concurrency()};
  src.check(fn);
  // A decode step of a few small heads is cheaper than waking the executor's threads: below about
  // 64K state-element updates in all, the tasks run in order on the calling thread (the same
  // tasks, so the results are the same bits either way).
  const index_t work = d.batch * d.hq * (std::max(d.sq, d.sk) + 1) * d.dk * d.dv;
  if (work < (index_t(1) << 16)) {
    for (index_t t = 0; t < d.batch * d.hq; ++t) call.task(src.get(0), t / d.hq, t % d.hq);
    return;
  }
  a.exec.parallel_for(d.batch * d.hq, [&](index_t t, int w) { call.task(src.get(w), t / d.hq, t % d.hq); });
}

}  // namespace detail

/// Causal linear attention with per-head decay (Lightning Attention-2):
///
///     o_t = scale * sum_{s <= t} lambda_h^(t-s) (q_t . k_s) v_s
///
/// q [B,S,Hq,Dk], k [B,S,Hkv,Dk], v [B,S,Hkv,Dv] (float, bf16 or fp16), out [B,S,Hq,Dv] float;
/// Hq % Hkv == 0 (GQA: query head h reads KV head h / (Hq/Hkv)); q and k have the same length
/// (earlier tokens enter through the state). `lambda`: one decay in (0, 1] per query head
/// (lightning_decays(H), retention_decays(H), or all 1 for plain causal linear attention).
/// Then, in any order: scale (default 1, not 1/sqrt(Dk): linear attention has no softmax to
/// temper), linear_state (state in/out, [B,Hq,Dk,Dv] fp32), linear_normalize, linear_tiling,
/// workspace, an executor. Chunked (O(S * (Dk*Dv + C*(Dk+Dv))) per head, constant time per
/// token at any length); Sq <= linear_tiling::step_max runs the O(Dk * Dv) recurrent step.
template <class Arch = default_arch, class TQ, class TK, class TV, class... Args>
void lightning_attention(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out, decay lambda,
                         Args&&... args) {
  const auto a = detail::resolve_linear_args<true>(std::forward<Args>(args)...);
  detail::run_linear<Arch>("lightning_attention", q, k, v, out, identity_features{}, true, std::optional<decay>(lambda),
                           a);
}

/// One recurrent decode step: lightning_attention with Sq = 1, continuing `state` in place
/// (S [B,Hq,Dk,Dv], and z [B,Hq,Dk] when normalizing). O(Dk * Dv) per head.
template <class Arch = default_arch, class TQ, class TK, class TV, class... Args>
void lightning_step(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out, decay lambda,
                    float* state, Args&&... args) {
  if (q.seq() != 1) detail::fail("lightning_step", "q: expected seq 1 (one decode step), got ", q.seq());
  lightning_attention<Arch>(q, k, v, out, lambda, linear_state{state, state}, std::forward<Args>(args)...);
}

/// Linear attention with a feature map phi (identity_features, elu_plus_one, relu_features or
/// feature_fn{f}):
///   causal (pass attnkit::causal{}):  o_t = scale * sum_{s <= t} lambda_h^(t-s) (phi(q_t).phi(k_s)) v_s,
///       the lightning kernel (decay 1 unless attnkit::decay{lambdas} is given); Sq == Sk.
///   non-causal (default):             o_i = scale * phi(q_i)^T (S_in + sum_j phi(k_j) v_j^T),
///       any Sq and Sk, no decay.
/// Options as lightning_attention: scale (default 1), linear_state, linear_normalize (divide by
/// scale * phi(q) . z (+|-) eps), linear_tiling, workspace, executor.
template <class Arch = default_arch, class TQ, class TK, class TV, class Phi, class... Args>
void linear_attention(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out, const Phi& phi,
                      Args&&... args) {
  const auto a = detail::resolve_linear_args<false>(std::forward<Args>(args)...);
  detail::run_linear<Arch>("linear_attention", q, k, v, out, phi, a.causal, a.decays, a);
}

}  // namespace attnkit
