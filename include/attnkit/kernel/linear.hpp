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
/// Normalization appends a column of ones to V and z as the matching column of S (so the state
/// update carries z along); the causal path then takes each row's denominator scale * phi(q_t) .
/// z_t from z_t itself, run token by token within the chunk (O(n Dk)), not from the product's
/// ones column (which sums the rounded scores q_i . k_j; see Conditioning).
///
/// Conditioning of the normalized form: den_t = scale * phi(q_t) . z_t. With a feature map of
/// both signs (identity_features, or a feature_fn that can be negative) den_t changes sign along
/// the sequence; near a crossing it is far smaller than its terms, and every fp32 implementation
/// then errs by about u * kappa_t relative, kappa_t = scale * sum_c |phi(q_t)_c| Z_tc / |den_t|
/// (Z_t the decayed sum of |phi(k_s)|), unbounded as den_t -> 0: two fp32 implementations (this
/// kernel and the naive recurrence, or the recurrence with another summation order) differ by
/// large multiples of u there, and which is closer to fp64 is luck. The kernel is no worse than
/// the naive recurrence on such inputs (Linear.NormalizedIdentityNoWorseThanNaive; numbers in
/// docs/numerics.md). Use normalization with positive feature maps (elu_plus_one, relu_features,
/// a positive feature_fn): den_t is then a sum of positive terms, kappa_t ~ 1, and the output is
/// as accurate as the unnormalized one. The eps of linear_normalize only keeps the division
/// finite; it does not make an ill-conditioned row accurate.
///
/// Calls with Sq <= linear_tiling::step_max (decode) skip the chunking and run the recurrence
/// token by token, in the caller's state buffer, with the accumulators in registers.
/// Scratch is per worker (thread-local, or the caller's `workspace`, see linear_workspace_size):
/// nothing is allocated in the hot loop.
///
/// Parallelism: tasks over (batch, runs of up to 4 query heads), chunks in order inside a task
/// and heads in order inside a chunk (see linear_call::plan); tasks are independent and
/// deterministic and a head's arithmetic does not depend on the grouping, so results are
/// bitwise identical for any executor and thread count.
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
#include "attnkit/simd/convert.hpp"
#include "attnkit/simd/microkernel.hpp"
#include "attnkit/simd/transpose.hpp"

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

/// Register blocking of the linear products on AVX-512: 6 x 4 (NV = 4 divides the common Dv = 64,
/// 128 and the chunk exactly, measured 5% faster here than attention's 8 x 3); elsewhere the
/// shared simd::blocking.
template <class Arch>
struct linear_blocking : simd::blocking<Arch> {};
template <simd::avx512_arch Arch>
struct linear_blocking<Arch> {
  static constexpr int mr = 6, nv = 4;
};

/// C[m x ncol] (= | = beta * C +) A[m x k] B[k x ncol], ncol a multiple of the vector width, on
/// the shared register-blocked microkernel (simd::micro_cols). Column groups outer
/// (the B panel stays in L1 across row blocks), row blocks inner. Tri: row block [i0, i0 + mm)
/// uses inner dimension kdim + i0 + mm (the causal output product: the masked scores of a row
/// block are zero beyond its last row).
template <class Arch, bool ScaleAdd, bool Tri>
void linear_gemm(index_t m, index_t ncol, index_t kdim, const float* a, index_t lda, const float* b, index_t ldb,
                 float* c, index_t ldc, float beta) noexcept {
  constexpr index_t W = simd::vec<Arch>::width;
  constexpr int MR = linear_blocking<Arch>::mr, NV = linear_blocking<Arch>::nv;
  constexpr auto mode = ScaleAdd ? simd::store_mode::scale_add : simd::store_mode::overwrite;
  alignas(64) float betas[NV * W];  // the microkernel scales per column: here every column by beta
  for (auto& x : betas) x = beta;
  const index_t nvec = ncol / W;
  for (index_t v0 = 0; v0 < nvec; v0 += NV) {
    const int nv = static_cast<int>(std::min<index_t>(NV, nvec - v0));
    for (index_t i0 = 0; i0 < m; i0 += MR) {
      const int mm = static_cast<int>(std::min<index_t>(MR, m - i0));
      simd::micro_cols<Arch, MR, NV, mode, true>(nv, mm, a + i0 * lda, lda, 1, b + v0 * W, ldb, c + i0 * ldc + v0 * W, ldc,
                                             betas, Tri ? kdim + i0 + mm : kdim);
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
      simd::micro_cols<Arch, MR, NV, simd::store_mode::overwrite, true>(
          static_cast<int>(std::min<index_t>(NV, nvec - v0)), mm, a + i0 * lda, lda, 1, b + v0 * W, ldb,
          c + i0 * ldc + v0 * W, ldc, nullptr, kdim);
  }
}

/// r[0..n) = src[0..n) * s and qa[0..n) = r * f (src may be r).
template <class Arch>
ATTNKIT_INLINE void scale_two(const float* src, float* r, float* qa, index_t n, float s, float f) noexcept {
  using V = simd::vec<Arch>;
  index_t i = 0;
  const auto sv = V::set1(s), fv = V::set1(f);
  for (; i + V::width <= n; i += V::width) {
    const auto x = V::load(src + i) * sv;
    V::store(r + i, x);
    V::store(qa + i, x * fv);
  }
  for (; i < n; ++i) {
    const float x = src[i] * s;
    r[i] = x;
    qa[i] = x * f;
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
  std::span<const float> decays{};  ///< empty: lambda = 1 for every head
  linear_state st{};

  index_t g = 1, C = 64, Cp = 64, Dk = 0, Dv = 0, Dva = 0, Dvp = 0, ldsv = 0, ldqa = 0;
  bool step = false;
  index_t group = 1, n_groups = 1;  ///< heads per task (same batch), tasks per batch
  // Scratch layout (floats, per worker): shared chunk buffers, then `group` head slots of
  // head_floats each ([S ; V] rows, decay powers).
  index_t off_qs = 0, off_qa = 0, off_kr = 0, off_kt = 0, off_kdt = 0, off_ob = 0, off_kdec = 0, off_kn = 0,
          off_zr = 0, off_zt = 0, off_qt = 0, off_head = 0;
  index_t head_floats = 0, hs_pw = 0, hs_ext = 0;
  index_t off_qv = 0, off_kv = 0, off_vv = 0, off_acc = 0, off_ss = 0, off_zs = 0;
  index_t total = 0;

  // Tasks: (batch, a run of `group` consecutive query heads). A task walks the sequence chunk by
  // chunk and, per chunk, head by head, each head with its own state slot: the rows it streams
  // are then one token's neighbouring heads (2 KB runs for 4 heads of d = 128) instead of lone
  // 512-byte rows a head stride apart, and a chunk's K^T is packed once for the heads that share
  // it (GQA). Measured with 2 threads at d = 128, H = 8: 10-13% faster, and the time per token
  // grows 8% instead of 19% from N = 1k to 64k (DRAM, TLB). group: as many heads as keeps every
  // worker busy, at most 4 (4 state slots of (Dk + C) x Dv floats stay in L2), whole GQA groups
  // when they fit. The grouping only changes the order in which heads are visited, never a
  // head's arithmetic, so the results are the same bits for any group size and thread count.
  void plan(const linear_tiling& t, int workers) {
    g = d.hq / d.hkv;
    Dk = d.dk, Dv = d.dv;
    Dva = Dv + (normalize ? 1 : 0);  // normalization: V gets a column of ones, S the column z
    Dvp = align_up(Dva, W);
    // Row stride of [S ; V] and of the output scratch: a multiple of 256 bytes (e.g. Dv = 128)
    // would put the output product's B panel (kdim rows x 4 vectors) into a quarter of L1's sets
    // and evict it by conflict; one extra vector spreads the rows over all sets.
    ldsv = Dvp * index_t(sizeof(float)) % 256 == 0 ? Dvp + W : Dvp;
    C = std::max<index_t>(1, t.chunk);
    Cp = align_up(C, W);
    ldqa = Dk + Cp;
    step = causal && d.sq <= t.step_max;
    const index_t heads = std::max<index_t>(1, d.batch * d.hq), w = std::max(workers, 1);
    group = step ? 1 : std::clamp<index_t>((heads + w - 1) / w, 1, std::min<index_t>(4, d.hq));
    if (g > 1 && group >= g) group = group / g * g;
    n_groups = (d.hq + group - 1) / group;
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
      off_kr = take(std::is_same_v<std::remove_cv_t<TK>, float> ? 0 : C * Dk);
      off_kt = take(Dk * Cp);
      off_kdt = take(causal ? Dk * Cp : 0);
      off_ob = take(C * ldsv);
      off_kdec = take(Cp);
      const bool dens = normalize && causal;  // denominators(): z rows, z and q columns, z0
      off_kn = take(dens ? C * Dk : 0);
      off_zt = take(dens ? Dk * Cp : 0);
      off_qt = take(dens ? Dk * Cp : 0);
      off_zr = take(dens ? Dk : 0);
      hs_pw = align_up((Dk + C) * ldsv, scratch_align);
      hs_ext = hs_pw + align_up(C + 1, scratch_align);
      head_floats = hs_ext + align_up(2 * Cp + W, scratch_align);
      off_head = take(group * head_floats);
    }
    total = at;
  }

  index_t state_off(index_t b, index_t h) const { return (b * d.hq + h) * Dk * Dv; }
  index_t z_off(index_t b, index_t h) const { return (b * d.hq + h) * Dk; }

  // ---- chunked path -------------------------------------------------------------------------

  // pw[x] = lambda^x for x in [0, C]; ext[x] = pw[C-1-x] for x < C and 0 beyond, so that row i's
  // mask-and-decay factors for keys j = 0.. are the contiguous ext[C-1-i+j] (= lambda^(i-j)).
  void powers(float* hs, float lambda) const {
    float* pw = hs + hs_pw;
    float* ext = hs + hs_ext;
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
      float* row = sv + c * ldsv;
      if (s_in) std::memcpy(row, s_in + c * Dv, sizeof(float) * std::size_t(Dv));
      else std::fill(row, row + Dv, 0.f);
      if (normalize) row[Dv] = z_in ? z_in[c] : 0.f;
      std::fill(row + Dva, row + Dvp, 0.f);
    }
  }

  void store_state(const float* sv, index_t b, index_t h) const {
    if (st.out)
      for (index_t c = 0; c < Dk; ++c) std::memcpy(st.out + state_off(b, h) + c * Dv, sv + c * ldsv, sizeof(float) * std::size_t(Dv));
    if (st.z_out)
      for (index_t c = 0; c < Dk; ++c) st.z_out[z_off(b, h) + c] = sv[c * ldsv + Dv];
  }

  // Qs rows = scale * phi(q) (for the scores) and the first Dk columns of [Qd | A] = Qs * p^(i+1).
  void pack_q(float* ws, const float* hs, index_t b, index_t h, index_t t0, index_t n, bool decayed) const {
    const float* pw = hs + hs_pw;
    float* qs = ws + off_qs;
    float* qa = ws + off_qa;
    for (index_t i = 0; i < n; ++i) {
      float* r = qs + i * Dk;
      const auto* src = q.row(b, t0 + i, h);
      const float f = decayed ? pw[i + 1] : 1.f;
      if constexpr (std::is_same_v<std::remove_cv_t<TQ>, float> && Phi::is_identity) {
        scale_two<Arch>(src, r, qa + i * ldqa, Dk, scale, f);
      } else {
        simd::widen_n<Arch>(src, r, Dk);
        apply_features<Arch>(phi, r, Dk);
        scale_two<Arch>(r, r, qa + i * ldqa, Dk, scale, f);
      }
    }
  }

  // K^T [Dk x Cp] = phi(k)^T with columns >= n zero. fp32 keys are transposed straight from the
  // caller's rows (phi is elementwise, so it is applied after the transpose, to the n real
  // columns only). Shared by the query heads of a GQA group within a task.
  void pack_k(float* ws, index_t b, index_t hk, index_t j0, index_t n) const {
    float* kt = ws + off_kt;
    if constexpr (std::is_same_v<std::remove_cv_t<TK>, float>) {
      simd::transpose_rows<Arch>(k.row(b, j0, hk), k.strides[1], n, Dk, kt, Cp);
    } else {
      float* kr = ws + off_kr;
      for (index_t j = 0; j < n; ++j) simd::widen_n<Arch>(k.row(b, j0 + j, hk), kr + j * Dk, Dk);
      simd::transpose_rows<Arch>(kr, Dk, n, Dk, kt, Cp);
    }
    if constexpr (!Phi::is_identity)
      for (index_t c = 0; c < Dk; ++c) apply_features<Arch>(phi, kt + c * Cp, n);
    if (n < Cp)
      for (index_t c = 0; c < Dk; ++c) std::fill(kt + c * Cp + n, kt + (c + 1) * Cp, 0.f);
  }

  // Kd^T = K^T * p^(n-1-j): the keys as the state update weighs them (per head: its decay).
  void decay_k(float* ws, const float* hs, index_t n) const {
    const float* pw = hs + hs_pw;
    const float* kt = ws + off_kt;
    float* kdec = ws + off_kdec;
    float* kdt = ws + off_kdt;
    for (index_t j = 0; j < Cp; ++j) kdec[j] = j < n ? pw[n - 1 - j] : 0.f;
    for (index_t c = 0; c < Dk; ++c) mul_rows<Arch>(kt + c * Cp, kdec, kdt + c * Cp, Cp);
  }

  // Rows Dk.. of [S ; V]: v_j, then 1 (normalization column), then zero padding.
  void pack_v(float* sv, index_t b, index_t hk, index_t j0, index_t n) const {
    for (index_t j = 0; j < n; ++j) {
      float* row = sv + (Dk + j) * ldsv;
      simd::widen_n<Arch>(v.row(b, j0 + j, hk), row, Dv);
      if (normalize) row[Dv] = 1.f;
      std::fill(row + Dva, row + Dvp, 0.f);
    }
  }

  // A = (Qs K^T) * M into columns Dk.. of [Qd | A]; row block i0 computes only keys < i0 + mm
  // (what the output product of that block reads).
  void scores(float* ws, const float* hs, index_t n) const {
    const float* ext = hs + hs_ext;
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

  // O_c = [Qd | A] [S ; V_c] (inner dimension Dk + keys < i0 + mm) or, non-causal, Q S, into
  // dst rows (ldc apart): the caller's output rows when no epilogue is needed, else scratch.
  void output(float* ws, const float* sv, index_t n, bool intra, float* dst, index_t ldc) const {
    if (intra) linear_gemm<Arch, false, true>(n, Dvp, Dk, ws + off_qa, ldqa, sv, ldsv, dst, ldc, 0.f);
    else linear_gemm<Arch, false, false>(n, Dvp, Dk, ws + off_qa, ldqa, sv, ldsv, dst, ldc, 0.f);
  }
  // Normalized causal chunk: each row's denominator scale * phi(q_i) . z_i from z_i itself, run
  // token by token from the chunk's starting z (column Dv of the state rows, before the update):
  // z_i = lambda z_(i-1) + phi(k_i), den_i = sum_c qs_ic z_ic, as the recurrence defines it. The
  // product's normalization column (sum_j A_ij + Qd z) has the same value, but it sums the rounded
  // scores q_i . k_j; where the denominator cancels (features of both signs, e.g. identity) that
  // rounding is divided by a small den and its errors reached 4-8x the naive recurrence's (see
  // the conditioning note at the top of this file). O(n Dk) per chunk and head, vectorized (three
  // transposes of [n x Dk]); the dot keeps the recurrence's order, one FMA chain over features.
  void denominators(float* ws, const float* sv, float lambda, index_t n) const {
    float* zr = ws + off_kn;  // rows z_i, token-major (first phi(k_i), transposed back from K^T)
    float* zt = ws + off_zt;  // z_i as columns [Dk x Cp]
    float* qt = ws + off_qt;  // qs_i as columns [Dk x Cp]
    float* z0 = ws + off_zr;  // the chunk's starting z
    simd::transpose_rows<Arch>(ws + off_kt, Cp, Dk, n, zr, Dk);
    for (index_t c = 0; c < Dk; ++c) z0[c] = sv[c * ldsv + Dv];
    const R lam = V::set1(lambda);
    for (index_t i = 0; i < n; ++i) {  // z_i = lambda z_(i-1) + phi(k_i), vectors along the features
      const float* prev = i ? zr + (i - 1) * Dk : z0;
      float* row = zr + i * Dk;
      index_t c = 0;
      for (; c + W <= Dk; c += W) V::store(row + c, V::fma(lam, V::load(prev + c), V::load(row + c)));
      for (; c < Dk; ++c) row[c] = std::fma(lambda, prev[c], row[c]);
    }
    // den_i = sum_c qs_ic z_ic, one FMA chain over the features per row (the recurrence's order),
    // rows as lanes.
    simd::transpose_rows<Arch>(zr, Dk, n, Dk, zt, Cp);
    simd::transpose_rows<Arch>(ws + off_qs, Dk, n, Dk, qt, Cp);
    float* ob = ws + off_ob;
    alignas(64) float den[W];
    index_t i0 = 0;
    for (; i0 + W <= n; i0 += W) {
      R acc = V::zero();
      for (index_t c = 0; c < Dk; ++c) acc = V::fma(V::load(qt + c * Cp + i0), V::load(zt + c * Cp + i0), acc);
      V::store(den, acc);
      for (index_t t = 0; t < W; ++t) ob[(i0 + t) * ldsv + Dv] = den[t];
    }
    for (; i0 < n; ++i0) {
      float d0 = 0.f;
      for (index_t c = 0; c < Dk; ++c) d0 = std::fma(qt[c * Cp + i0], zt[c * Cp + i0], d0);
      ob[i0 * ldsv + Dv] = d0;
    }
  }

  // Without normalization and with Dv a multiple of the vector width the product's rows are the
  // output rows: written in place, no scratch round trip.
  bool direct_out() const noexcept { return !normalize && Dv == Dvp; }
  void output_rows(float* ws, const float* sv, index_t b, index_t h, index_t t0, index_t n, bool intra) const {
    if (direct_out()) {
      output(ws, sv, n, intra, o.row(b, t0, h), o.strides[1]);
    } else {
      output(ws, sv, n, intra, ws + off_ob, ldsv);
      if (normalize && intra) denominators(ws, sv, lambda_of(h), n);
      epilogue(ws, b, h, t0, n);
    }
  }

  // S = beta * S + A^T V_c with A^T the packed [Dk x Cp] (Kd^T or K^T), beta = p^n (or 1).
  void update_state(float* sv, index_t n, const float* at, float beta) const {
    linear_gemm<Arch, true, false>(Dk, Dvp, n, at, Cp, sv + Dk * ldsv, ldsv, sv, ldsv, beta);
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
    for (index_t i = 0; i < n; ++i) emit_row(ob + i * ldsv, o.row(b, t0 + i, h));
  }

  float lambda_of(index_t h) const noexcept { return decays.empty() ? 1.f : decays[h]; }

  // Heads [h0, h1) of batch b, chunk by chunk (see plan()).
  void chunked_task(float* ws, index_t b, index_t h0, index_t h1) const {
    auto slot = [&](index_t h) { return ws + off_head + (h - h0) * head_floats; };
    for (index_t h = h0; h < h1; ++h) {
      powers(slot(h), causal ? lambda_of(h) : 1.f);
      load_state(slot(h), b, h);
    }
    if (causal) {
      for (index_t t0 = 0; t0 < d.sq; t0 += C) {
        const index_t n = std::min(C, d.sq - t0);
        index_t packed = -1;  // KV head whose K^T is in scratch
        for (index_t h = h0; h < h1; ++h) {
          float* hs = slot(h);
          const index_t hk = h / g;
          if (hk != packed) pack_k(ws, b, hk, t0, n), packed = hk;
          pack_q(ws, hs, b, h, t0, n, true);
          decay_k(ws, hs, n);
          pack_v(hs, b, hk, t0, n);
          scores(ws, hs, n);
          output_rows(ws, hs, b, h, t0, n, true);
          update_state(hs, n, ws + off_kdt, (hs + hs_pw)[n]);
        }
      }
    } else {
      for (index_t j0 = 0; j0 < d.sk; j0 += C) {
        const index_t n = std::min(C, d.sk - j0);
        index_t packed = -1;
        for (index_t h = h0; h < h1; ++h) {
          float* hs = slot(h);
          const index_t hk = h / g;
          if (hk != packed) pack_k(ws, b, hk, j0, n), packed = hk;
          pack_v(hs, b, hk, j0, n);
          update_state(hs, n, ws + off_kt, 1.f);
        }
      }
      for (index_t i0 = 0; i0 < d.sq; i0 += C) {
        const index_t n = std::min(C, d.sq - i0);
        for (index_t h = h0; h < h1; ++h) {
          pack_q(ws, slot(h), b, h, i0, n, false);
          output_rows(ws, slot(h), b, h, i0, n, false);
        }
      }
    }
    for (index_t h = h0; h < h1; ++h) store_state(slot(h), b, h);
  }

  // ---- recurrent path (decode) ----------------------------------------------------------------

  // Columns [e0, e0 + NB*W) of S = lambda * S_src + k v^T (S_src = 0 without a source) and
  // acc = q^T S, row by row with the accumulators in registers.
  template <int NB, bool HasSrc>
  ATTNKIT_INLINE void step_cols(index_t e0, float* S, const float* src, float lambda, const float* kv, const float* vv,
                                const float* qv, float* acc) const noexcept {
    R vr[NB], ac[NB];
    ATTNKIT_UNROLL for (int u = 0; u < NB; ++u) vr[u] = V::load(vv + e0 + u * W), ac[u] = V::zero();
    const R lam = V::set1(lambda);
    for (index_t c = 0; c < Dk; ++c) {
      const R kc = V::set1(kv[c]), qc = V::set1(qv[c]);
      float* srow = S + c * Dv + e0;
      ATTNKIT_UNROLL for (int u = 0; u < NB; ++u) {
        R s = kc * vr[u];
        if constexpr (HasSrc) s = V::fma(lam, V::load(src + c * Dv + e0 + u * W), s);
        V::store(srow + u * W, s);
        ac[u] = V::fma(qc, s, ac[u]);
      }
    }
    ATTNKIT_UNROLL for (int u = 0; u < NB; ++u) V::store(acc + e0 + u * W, ac[u]);
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
      simd::widen_n<Arch>(q.row(b, t, h), qv, Dk);
      apply_features<Arch>(phi, qv, Dk);
      scale_row<Arch>(qv, qv, Dk, scale);
      simd::widen_n<Arch>(k.row(b, t, hk), kv, Dk);
      apply_features<Arch>(phi, kv, Dk);
      simd::widen_n<Arch>(v.row(b, t, hk), vv, Dv);
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

  /// Task t of n_tasks(): batch t / n_groups, query heads [h0, min(h0 + group, Hq)).
  index_t n_tasks() const noexcept { return d.batch * n_groups; }
  void task(float* ws, index_t t) const {
    const index_t b = t / n_groups, h0 = (t % n_groups) * group, h1 = std::min(d.hq, h0 + group);
    if (step)
      for (index_t h = h0; h < h1; ++h) step_task(ws, b, h, lambda_of(h));
    else
      chunked_task(ws, b, h0, h1);
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
  call.plan(a.tiling, a.exec.concurrency());
  const scratch_source src{a.ws ? &*a.ws : nullptr, call.total, a.exec.concurrency()};
  src.check(fn);
  // Small calls (a decode step) run their tasks in order on the calling thread: waking the
  // executor's threads costs more than it saves below about 512K state-element updates in all
  // (~10 us of work; e.g. one d = 128 step of 8 heads: 10 us inline vs 19 us on 2 OpenMP
  // threads, measured). Same tasks, so the same bits either way.
  const index_t work = d.batch * d.hq * (std::max(d.sq, d.sk) + 1) * d.dk * d.dv;
  if (work < (index_t(1) << 19)) {
    for (index_t t = 0; t < call.n_tasks(); ++t) call.task(src.get(0), t);
    return;
  }
  a.exec.parallel_for(call.n_tasks(), [&](index_t t, int w) { call.task(src.get(w), t); });
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

/// One recurrent decode step: lightning_attention with Sq = 1, continuing `state` (S [B,Hq,Dk,Dv]
/// fp32) in place; O(Dk * Dv) per head. Without normalization (a normalized decode passes
/// linear_state{S, S, z, z} and linear_normalize to lightning_attention itself).
template <class Arch = default_arch, class TQ, class TK, class TV, class... Args>
void lightning_step(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out, decay lambda,
                    float* state, Args&&... args) {
  if (q.seq() != 1) detail::fail("lightning_step", "q: expected seq 1 (one decode step), got ", q.seq());
  if (state == nullptr) detail::fail("lightning_step", "state: expected a [B, Hq, Dk, Dv] fp32 buffer, got nullptr");
  lightning_attention<Arch>(q, k, v, out, lambda, linear_state{state, state}, std::forward<Args>(args)...);
}

/// Linear attention with a feature map phi (identity_features, elu_plus_one, relu_features or
/// feature_fn{f}):
///   causal (pass attnkit::causal{}):  o_t = scale * sum_{s <= t} lambda_h^(t-s) (phi(q_t).phi(k_s)) v_s,
///       the lightning kernel (decay 1 unless attnkit::decay{lambdas} is given); Sq == Sk.
///   non-causal (default):             o_i = scale * phi(q_i)^T (S_in + sum_j phi(k_j) v_j^T),
///       any Sq and Sk, no decay.
/// Options as lightning_attention: scale (default 1), linear_state, linear_normalize (divide by
/// scale * phi(q) . z (+|-) eps; well-conditioned only for positive feature maps: see
/// Conditioning at the top of this file), linear_tiling, workspace, executor.
template <class Arch = default_arch, class TQ, class TK, class TV, class Phi, class... Args>
void linear_attention(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out, const Phi& phi,
                      Args&&... args) {
  const auto a = detail::resolve_linear_args<false>(std::forward<Args>(args)...);
  detail::run_linear<Arch>("linear_attention", q, k, v, out, phi, a.causal, a.decays, a);
}

/// Bytes of `workspace` that lightning_attention (Lightning = true) or linear_attention with the
/// same views, executor concurrency `workers` and trailing options needs so that it allocates
/// nothing; pass the same linear_state / linear_normalize / linear_tiling / causal{} options as
/// the call (the decay and the feature map do not matter).
template <class Arch = default_arch, bool Lightning = true, class TQ, class TK, class TV, class... Args>
index_t linear_workspace_size(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, tensor_view<float> out,
                              int workers, Args&&... args) {
  const auto a = detail::resolve_linear_args<false>(std::forward<Args>(args)...);
  if (k.heads() < 1 || q.heads() % k.heads() != 0)
    detail::fail("linear_workspace_size", "q: expected heads divisible by k's heads (", k.heads(), "), got ", q.heads());
  detail::linear_call<Arch, TQ, TK, TV, identity_features> call{
      .q = q,
      .k = k,
      .v = v,
      .o = out,
      .phi = {},
      .d = {q.batch(), q.seq(), k.seq(), q.heads(), k.heads(), q.dim(), v.dim(), 0},
      .causal = Lightning || a.causal,
      .normalize = a.normalize.has_value(),
      .st = a.state};
  call.plan(a.tiling, workers);
  return detail::scratch_source::bytes_needed(call.total, std::max(workers, 1), 0);
}

}  // namespace attnkit
