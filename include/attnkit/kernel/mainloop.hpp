#pragma once
/// @file mainloop.hpp  The one attention mainloop. dense_attention and flash_attention (and the
/// window / sparse / sink primitives built on flash) are this loop with different tilings; every
/// variant comes from the score, mask and normalizer policies it is instantiated with.
///
/// Work unit (one executor task): batch b, KV head hk, and a block of bq queries for all
/// g = Hq / Hkv query heads that share hk (GQA packing: each K/V tile is read once for the group).
/// Its R = g * bq rows are SIMD lanes (row r = head (r / bq), query q0 + r % bq), padded to Rp.
///
///   Q^T [Dk x Rp] = scale * q       (packed once per unit)
///   for each KV tile [j0, j1):     mask.classify -> empty: skip (K/V never touched)
///     S^T [nk x Rp] = K Q^T         (microkernel, K read in place when fp32)
///     score policy, then mask (only on partial tiles), then normalizer.step -> P^T, alpha
///     O^T [Dv x Rp] = alpha * O^T + V^T P^T
///   epilogue: O = O^T * normalizer.finalize(row), LSE, probabilities, key mass
///
/// Tasks never depend on the thread count and each owns its outputs, so results are bitwise
/// identical for any executor.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "attnkit/core/args.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/validate.hpp"
#include "attnkit/kernel/operands.hpp"
#include "attnkit/kernel/scratch.hpp"
#include "attnkit/mask/key_range.hpp"
#include "attnkit/simd/bf16dot.hpp"
#include "attnkit/simd/finite.hpp"
#include "attnkit/simd/microkernel.hpp"
#include "attnkit/simd/rowmajor.hpp"
#include "attnkit/simd/transpose.hpp"

namespace attnkit {

/// The tile engines of the mainloop. Both share the plan, the key traversal, the score / mask /
/// normalizer passes on S^T and the epilogue; they differ in where Q and O live and in the two
/// products:
///  - prefill: rows are SIMD lanes (Q^T, O^T; K and V broadcast from memory), for many rows;
///  - decode: rows are rows (vectors along the head dim, q.k reduced across lanes, P V as
///    broadcast-p axpys), for the few rows of a decode step or a short draft: no lanes wasted on
///    padding, K/V converted from bf16/fp16 in registers.
enum class engine : std::uint8_t { prefill, decode };

/// What a flash / dense call runs: which engine, its tiles and KV splits, and why (plan_of).
struct attention_plan {
  engine kind = engine::prefill;
  index_t rows = 0;        ///< rows per task: all query heads of a GQA group x a block of queries
  index_t block_q = 0;     ///< queries per task
  index_t block_kv = 0;    ///< keys per tile
  index_t kv_splits = 1;   ///< parts the keys of each (batch, KV head) are split into
  index_t split_len = 0;   ///< keys per part when kv_splits > 1
  index_t tasks = 0;       ///< executor tasks of the main pass
  index_t kv_heads_per_task = 1;  ///< KV heads a split task interleaves tile by tile (decode)
  const char* reason = "";
};

namespace detail {

enum class kernel_kind { dense, flash };

/// Where row r, column c of the Q and O accumulators sit in scratch (the engine's tile layout):
/// prefill keeps them transposed (rows contiguous, stride 1), decode row-major.
struct tile_layout {
  index_t rs = 1, cs = 1;  // row and column strides
  constexpr index_t at(index_t r, index_t c) const noexcept { return r * rs + c * cs; }
};

/// Few rows per KV head (decode, short drafts) take the decode engine.
inline constexpr index_t decode_rows_max = 16;

template <class A>
inline constexpr bool has_apply_block = requires(const A& s, const head_ctx& c, float* x, index_t n) {
  s.template apply_block<scalar>(c, x, n, n, n, n, n);
};

/// Everything one call needs, resolved and validated once.
template <class Arch, class TQ, class TK, class TV, class Args>
struct attention_call {
  using V = simd::vec<Arch>;
  using Norm = decltype(Args::norm);
  using Mask = decltype(Args::mask);
  using Score = decltype(Args::score);
  // bf16 Q, K and V on an arch with the bf16 pair product: the prefill engine's two products run
  // in bf16 pairs (simd/bf16dot.hpp; P rounded to bf16 before P V).
  static constexpr bool bf16_inputs = simd::bf16_dot_arch<Arch> && std::is_same_v<std::remove_cv_t<TQ>, bf16> &&
                                      std::is_same_v<std::remove_cv_t<TK>, bf16> &&
                                      std::is_same_v<std::remove_cv_t<TV>, bf16>;

  operands<TQ, TK, TV> x;
  const row_source<TQ>& q = x.q;
  const row_source<TK>& k = x.k;
  const row_source<TV>& v = x.v;
  const row_source<float>& o = x.o;
  const Args& a;
  problem_dims d;
  float scale;
  bool dense;
  index_t g = 0, bq = 0, n_qb = 0, block_kv = 0, rows_p = 0;
  index_t n_split = 1, split_len = 0;  // split-KV for decode shapes (flash only): parts of the longest sequence
  index_t split_kv = 0;                // the tiling's split_kv
  static constexpr index_t max_head_group = 8;
  index_t head_group = 1;              // KV heads per split task (decode), interleaved tile by tile
  index_t ws_head = 0;                 // floats of one head's scratch; a worker holds head_group of them
  engine eng = engine::prefill;
  tile_layout ql, ol;                  // Q and O accumulator layouts of the engine
  bool pairs = false;                  // prefill in bf16 pairs (bf16_inputs)
  bool v_flags = false;                // prefill: V's NaN / Inf keys flagged once per call (flag_v)
  mutable const std::uint8_t* vfl = nullptr;  // those flags, [b][hk][j], set by run() before any tile
  const char* reason = "";

  // Scratch layout (floats, per worker).
  index_t off_qt = 0, off_ot = 0, off_st = 0, off_kc = 0, off_vc = 0, off_pb = 0, off_rng = 0, off_state = 0,
          off_alpha = 0, off_fac = 0, off_osave = 0, off_mp = 0, off_ma = 0, off_mc = 0, off_mt = 0, total = 0;
  // key_mass_out, flash: each tile's weights and alpha kept for the epilogue (mass_store).
  static constexpr index_t mass_store_floats = index_t(1) << 21;  // 8 MiB per worker
  bool mass_store = false;
  index_t mass_tiles = 0;

  attention_call(const operands<TQ, TK, TV>& x_, const Args& a_, float scale_, bool dense_)
      : x(x_), a(a_), d(x.d), scale(scale_), dense(dense_) {}
  attention_call(const attention_call&) = delete;  // q, k, v, o refer into x

  void plan(const tiling& t) {
    g = d.hq / d.hkv;
    bq = std::max<index_t>(1, std::min<index_t>(d.sq, t.rows / g));
    block_kv = (dense || t.block_kv <= 0) ? std::max<index_t>(d.sk, 1) : t.block_kv;
    // A block-sparse mask's blocks: tiles that never straddle two blocks keep full blocks full
    // and skipped blocks unread.
    if (const auto [hq, hk] = block_hint(a.mask); !dense && hq > 0) {
      bq = fit_block(bq, hq);
      block_kv = hk <= block_kv ? hk : fit_block(block_kv, hk);
    }
    n_qb = d.sq > 0 ? (d.sq + bq - 1) / bq : 0;
    rows_p = align_up(g * bq, V::width);
    // Every arch takes the decode engine for few rows, the scalar backend included (one-lane
    // "vectors": rowmajor.hpp's width-1 paths, which tests/kernel/test_rowmajor.cpp checks over
    // every small shape, and the scalar fuzzer under ASan + UBSan).
    if (dense) reason = "dense: one tile of all keys (probabilities materialized)";
    else if (g * d.sq <= decode_rows_max) {
      eng = engine::decode;
      reason = "decode: g x Sq <= 16 rows per KV head; vectors along the head dim, K/V streamed once per group";
    } else
      reason = "prefill: more than 16 rows per KV head; rows as SIMD lanes";
    pairs = bf16_inputs && eng == engine::prefill &&
            (a.bf16 == bf16_products::pairs || (a.bf16 == bf16_products::automatic && simd::bf16_pairs_fast()));
    if (pairs && !dense)
      reason = a.bf16 == bf16_products::pairs
                   ? "prefill in bf16 pairs (requested): more than 16 rows per KV head; rows as SIMD lanes, vdpbf16ps"
                   : "prefill in bf16 pairs: more than 16 rows per KV head; rows as SIMD lanes, vdpbf16ps (this "
                     "CPU, AMD, issues it at the FMA rate)";
    else if (bf16_inputs && eng == engine::prefill && !dense)
      reason = a.bf16 == bf16_products::widened
                   ? "prefill, bf16 widened to fp32 (requested): more than 16 rows per KV head; rows as SIMD lanes"
                   : "prefill, bf16 widened to fp32: more than 16 rows per KV head; rows as SIMD lanes (this CPU is "
                     "not AMD: its vdpbf16ps is slower than widening and FMA)";
    ql = eng == engine::decode ? tile_layout{d.dk, 1} : tile_layout{1, rows_p};
    ol = eng == engine::decode ? tile_layout{d.dv, 1} : tile_layout{1, rows_p};
    index_t at = 0;
    auto take = [&](index_t n) { const index_t o = at; at += align_up(n, scratch_align); return o; };
    off_qt = take(d.dk * rows_p);
    off_ot = take(d.dv * rows_p);
    off_st = take(block_kv * rows_p);
    // The prefill engine widens bf16 / fp16 tiles into these; decode converts in registers.
    // (In bf16 pairs K is read in place; V's tile is packed into off_vc, or widened there when it
    // holds NaN / Inf; P^T is packed into off_pb.)
    off_kc = take(std::is_same_v<std::remove_cv_t<TK>, float> || eng == engine::decode || pairs ? 0 : block_kv * d.dk);
    off_vc = take(std::is_same_v<std::remove_cv_t<TV>, float> || eng == engine::decode ? 0 : block_kv * d.dv);
    off_pb = take(pairs ? (block_kv + 1) / 2 * rows_p : 0);
    if constexpr (has_key_ranges<Mask>) off_rng = take(2 * Mask::n_ranges * rows_p);
    off_state = take(2 * rows_p);
    off_alpha = take(rows_p);
    off_fac = take(rows_p);
    off_osave = take(eng == engine::decode ? d.dv * rows_p : 0);
    // key_mass_out (never batched, so every sequence has d.sk keys): the tiles' weights p~ and the
    // normalizer's alphas are kept, and the epilogue weighs p~ by the row's later rescalings and
    // final factor, the same weights O got, instead of recomputing every tile's scores. Calls
    // whose weights exceed mass_store_floats recompute.
    mass_store = a.key_mass && !dense && rows_p * d.sk <= mass_store_floats;
    mass_tiles = mass_store ? max_tiles(d.sk) : 0;
    off_mp = take(mass_store ? rows_p * d.sk : 0);
    off_ma = take(mass_tiles * rows_p);
    off_mc = take(mass_store ? g * rows_p : 0);
    off_mt = take(mass_store ? (2 * mass_tiles + 1) * index_t(sizeof(index_t) / sizeof(float)) : 0);
    total = at;
    // Split the keys of decode-like calls (a single q block) so that few (batch, head) groups
    // still fill every thread.
    if (!dense && !a.key_mass && n_qb == 1) {
      split_kv = t.split_kv;
      split_len = split_len_of(d.sk);
      n_split = splits_of(d.sk);  // not monotone in sk (the part length grows past 64 parts)
      if (x.batched())
        for (index_t b = 0; b < d.batch; ++b) n_split = std::max(n_split, splits_of(x.sk_of(b)));
    }
    // Decode splits of a cache whose heads' rows of a position are nearer than its positions
    // (bshd, page pools) take up to 8 KV heads each, as long as that leaves two tasks per worker.
    // (Head-major caches gained nothing from it: each head's rows are one stream already.)
    ws_head = align_up(total, scratch_align);
    // Several q blocks read every V tile: whether a tile holds NaN / Inf (it then takes the
    // zero-skipping product) is found once per key before the tiles instead of on every visit
    // (6% of a 64 x 64 block-sparse call). Strided calls only (batched ones keep the per-tile
    // check: their sequences' key ranges would need an offset table), and at most 2^28 flags.
    v_flags = eng == engine::prefill && n_qb > 1 && !x.batched() && d.batch * d.hkv * d.sk <= (index_t(1) << 28);
    const auto near = [](index_t head_ld, index_t ld) { return (head_ld < 0 ? -head_ld : head_ld) < ld; };
    if (n_split > 1 && eng == engine::decode && near(k.head_ld(), k.ld()) && near(v.head_ld(), v.ld())) {
      const index_t want = 2 * index_t(a.exec.concurrency());
      head_group = std::min(d.hkv, max_head_group);
      while (head_group > 1 && d.batch * n_head_groups() * n_split < want)
        head_group = (head_group + 1) / 2;
    }
  }
  // Tiles of one walk over sk keys: sk / block_kv whole tiles, plus one partial tile per key span
  // (at most 4) and one more per page boundary (a tile never crosses one).
  index_t max_tiles(index_t sk) const noexcept {
    const auto cuts = [&](const row_addressing& r) { return r.table ? sk / r.page + 1 : 0; };
    return sk / block_kv + 4 + cuts(k);
  }
  index_t worker_floats() const noexcept { return head_group * ws_head; }
  index_t n_head_groups() const noexcept { return (d.hkv + head_group - 1) / head_group; }

  // Each sequence is split by its own length alone (never the thread count or the batch), so a
  // sequence of a batched call gives bitwise the result of its own call. Caches shorter than
  // 2 x split_kv are not split; at most max_splits parts (enough to fill any machine, and the
  // partials stay small).
  index_t split_len_of(index_t sk) const noexcept {
    constexpr index_t max_splits = 64;
    if (split_kv == 0 || sk < 2 * split_kv) return std::max<index_t>(sk, 1);
    return align_up(std::max(split_kv, (sk + max_splits - 1) / max_splits), block_kv);
  }
  index_t splits_of(index_t sk) const noexcept { return (sk + split_len_of(sk) - 1) / split_len_of(sk); }

  // A tile size near `want` that tiles `block` exactly: a multiple of it, or a divisor of it.
  static index_t fit_block(index_t want, index_t block) noexcept {
    if (want >= block) return want / block * block;
    for (index_t t = want; t > 1; --t)
      if (block % t == 0) return t;
    return 1;
  }

  attention_plan describe() const {
    const index_t groups = d.batch * d.hkv;
    const index_t split_tasks = d.batch * n_head_groups() * n_split;
    return {eng, g * bq, bq, block_kv, n_split, split_len, n_split > 1 ? split_tasks : groups * n_qb, head_group, reason};
  }

  head_ctx ctx(index_t b, index_t hk, index_t hh) const { return {b, hk * g + hh, x.q_offset_of(b)}; }

  // Combined tile class over the group's heads (they differ only for head-dependent masks).
  tile_class classify(index_t b, index_t hk, index_t q0, index_t q1, index_t j0, index_t j1) const {
    tile_class c = a.mask.classify(ctx(b, hk, 0), q0, q1, j0, j1);
    for (index_t hh = 1; hh < g; ++hh)
      if (a.mask.classify(ctx(b, hk, hh), q0, q1, j0, j1) != c) return tile_class::partial;
    return c;
  }

  // Pointer and key stride of K (or V) rows j0.. as fp32: in place for float, converted otherwise.
  template <class T>
  static const float* rows_fp32(const row_source<T>& t, index_t b, index_t j0, index_t nk, index_t hk,
                                float* conv, index_t& ld) {
    if constexpr (std::is_same_v<std::remove_cv_t<T>, float>) {
      ld = t.ld();
      return t.row(b, j0, hk);
    } else if constexpr (quantized_type<std::remove_cv_t<T>>) {
      // A tile never leaves a run of rows at one stride (for_each_tile), so rows() covers it.
      const index_t D = t.dim();
      simd::dequant_rows<Arch>(t.rows(b, j0, hk), nk, D, conv, D);
      ld = D;
      return conv;
    } else {
      const index_t D = t.dim();
      for (index_t j = 0; j < nk; ++j) simd::widen_n<Arch>(t.row(b, j0 + j, hk), conv + j * D, D);
      ld = D;
      return conv;
    }
  }

  // The softmax scale is folded into the normalizer's exp (exp(fma(x, scale, -m))), so the logit
  // is rounded once, as in a plain fp32 implementation, instead of through a pre-scaled q. A score
  // policy needs the scaled value itself: then the tile is scaled first and the step gets 1.
  bool fold_scale() const noexcept { return Score::is_identity && scale > 0.f; }
  float step_scale() const noexcept { return fold_scale() ? scale : 1.f; }

  // The prefill engine's q.k: one FMA chain per logit where the product is the bottleneck (SIMD
  // prefill; Eigen's GEMM, the naive comparator there, sums the same way, and blocks of 16 measured
  // 8% slower at N = 4096, d = 128), blocks of 16 summed from zero elsewhere: dense_attention's
  // tasks of at most decode_rows_max rows (the naive GEMV sums in partial sums there, and a single
  // chain was 2.2x its error on average at large logits) and the scalar backend. The decode engine
  // sums in vector lanes (the scalar backend: in blocks of 16 too, rowmajor.hpp kScalarDotBlock).
  // See docs/numerics.md. (Never per sequence, so batched calls stay bitwise their strided calls.)
  index_t qk_chunk() const noexcept {
    const bool blocked = std::is_same_v<Arch, scalar> || (dense && g * bq <= decode_rows_max);
    return blocked ? simd::rowmajor_detail::kScalarDotBlock : std::max<index_t>(d.dk, 1);
  }

  // S^T for keys [j0, j0 + nk): q.k, scale (unless folded), score policy, mask.
  // pf: rows the prefill engine prefetches during q.k (the tile's V).
  // kf: decode's look-ahead named by the caller (group_feed), else the kernel's own.
  void scores(float* ws, index_t b, index_t hk, index_t q0, index_t nq, index_t j0, index_t nk, tile_class cls,
              const simd::prefetch_stream* pf = nullptr, simd::line_feed* kf = nullptr) const {
    float* st = ws + off_st;
    if (eng == engine::decode) {
      // The kernels' look-ahead stays inside the run of rows at one stride (a page of a paged
      // cache); when the tile ends a run, the next run's first rows are fetched here instead (a
      // page is a tile or a few, so the hardware prefetchers never start).
      const index_t run = k.run(j0);
      if (nk == run && j0 + nk < x.sk_of(b)) {
        using simd::rowmajor_detail::prefetch_keys;
        const index_t next = k.run(j0 + nk);
        simd::prefetch_kv(k.rows(b, j0 + nk, hk), 0, std::min(prefetch_keys<std::remove_cv_t<TK>>(d.dk), next), d.dk);
        simd::prefetch_kv(v.rows(b, j0 + nk, hk), 0, std::min(prefetch_keys<std::remove_cv_t<TV>>(d.dv), next), d.dv);
      }
      simd::dot_rows<Arch>(g * nq, nk, d.dk, ws + off_qt, d.dk, k.rows(b, j0, hk), st, rows_p, run, kf);
    } else if (pairs) {
      if constexpr (bf16_inputs)
        simd::gemm_bf16<Arch>(nk, rows_p, d.dk, k.row(b, j0, hk), k.ld(), 2, reinterpret_cast<const bf16*>(ws + off_qt),
                              rows_p, st, rows_p, nullptr, align_up(d.dk, 2), pf);
    } else {
      index_t ldk;
      const float* kp = rows_fp32(k, b, j0, nk, hk, ws + off_kc, ldk);
      simd::gemm_rows<Arch, true>(nk, rows_p, d.dk, kp, ldk, 1, ws + off_qt, rows_p, st, rows_p, nullptr, qk_chunk(), pf);
    }
    if (!fold_scale()) {
      const auto vs = V::set1(scale);
      for (index_t t = 0; t < nk * rows_p; t += V::width) V::store(st + t, V::load(st + t) * vs);
    }
    // The mask comes after the score policy (softcap(-inf) would be a number).
    const bool ranged = has_key_ranges<Mask> && (Mask::elementwise || cls == tile_class::partial) && nk < (1 << 24);
    for (index_t hh = 0; hh < g; ++hh) {
      const head_ctx c = ctx(b, hk, hh);
      float* x = st + hh * nq;
      if constexpr (!Score::is_identity) {
        if constexpr (has_apply_block<Score>) a.score.template apply_block<Arch>(c, x, rows_p, q0, nq, j0, nk);
        else
          for (index_t jj = 0; jj < nk; ++jj)
            for (index_t ii = 0; ii < nq; ++ii) x[jj * rows_p + ii] = a.score.apply(c, x[jj * rows_p + ii], q0 + ii, j0 + jj);
      }
      if (!ranged && (Mask::elementwise || cls == tile_class::partial))
        for (index_t jj = 0; jj < nk; ++jj)
          for (index_t ii = 0; ii < nq; ++ii)
            if (!a.mask.keep(c, q0 + ii, j0 + jj)) x[jj * rows_p + ii] = -std::numeric_limits<float>::infinity();
    }
    if (ranged) mask_by_ranges(ws, b, hk, q0, nq, j0, nk);
  }

  // A partial tile of a mask with key ranges: each row's intervals, relative to j0 and clamped to
  // [-1, nk] (exact in float for nk < 2^24), then one compare per key and row vector. Padding
  // rows keep everything (their results are discarded). Bitwise the same as keep per element.
  void mask_by_ranges(float* ws, index_t b, index_t hk, index_t q0, index_t nq, index_t j0, index_t nk) const {
    if constexpr (has_key_ranges<Mask>) {
      constexpr int N = Mask::n_ranges;
      float* lo = ws + off_rng;
      float* hi = lo + N * rows_p;
      std::fill(lo, lo + N * rows_p, -1.f);
      std::fill(hi, hi + N * rows_p, float(nk));
      const auto rel = [&](index_t x) { return float(std::clamp<index_t>(x - j0, -1, nk)); };
      for (index_t hh = 0; hh < g; ++hh)
        for (index_t ii = 0; ii < nq; ++ii) {
          index_t l[N], h[N];
          a.mask.ranges(ctx(b, hk, hh), q0 + ii, l, h);
          for (int t = 0; t < N; ++t) lo[t * rows_p + hh * nq + ii] = rel(l[t]), hi[t * rows_p + hh * nq + ii] = rel(h[t]);
        }
      float* st = ws + off_st;
      for (index_t jj = 0; jj < nk; ++jj) {
        const auto jv = V::set1(float(jj));
        for (index_t r = 0; r < rows_p; r += V::width) {
          auto m = V::between(jv, V::load(lo + r), V::load(hi + r));
          for (int t = 1; t < N; ++t) m = m | V::between(jv, V::load(lo + t * rows_p + r), V::load(hi + t * rows_p + r));
          V::store(st + jj * rows_p + r, V::or_neg_inf(m, V::load(st + jj * rows_p + r)));
        }
      }
    }
  }

  // bf16 pairs: Q^T packed as bf16 pairs (row r = head r / nq, query q0 + r % nq). False when the
  // call does not run in pairs.
  bool pack_q_pairs(float* qt, index_t b, index_t hk, index_t q0, index_t nq) const {
    if constexpr (bf16_inputs)
      if (pairs) {
        simd::pack_rows([&](index_t r) { return q.row(b, q0 + r % nq, hk * g + r / nq); }, g * nq, d.dk, rows_p,
                        reinterpret_cast<bf16*>(qt));
        return true;
      }
    return false;
  }

  // Q^T (unscaled: see step_scale; padded rows zero: their results are computed and discarded), O^T = 0,
  // row states = init.
  void prologue(float* ws, index_t b, index_t hk, index_t q0, index_t nq) const {
    float* qt = ws + off_qt;
    if (!pack_q_pairs(qt, b, hk, q0, nq)) {
      // A head's query rows are one seq stride apart (strided and varlen q alike). fp32 prefill
      // transposes them in register blocks (element by element, the strided stores were 13% of
      // a 64 x 64 block-sparse call) and zeroes only the padding rows of each column.
      constexpr bool fp32_q = std::is_same_v<std::remove_cv_t<TQ>, float>;
      if (fp32_q && eng == engine::prefill) {
        for (index_t c = 0; g * nq < rows_p && c < d.dk; ++c)
          std::fill(qt + c * rows_p + g * nq, qt + (c + 1) * rows_p, 0.f);
      } else
        std::fill(qt, qt + d.dk * rows_p, 0.f);
      for (index_t hh = 0; hh < g; ++hh) {
        if constexpr (fp32_q)
          if (eng == engine::prefill) {
            simd::transpose_rows<Arch>(q.row(b, q0, hk * g + hh), q.ld(), nq, d.dk, qt + hh * nq, rows_p);
            continue;
          }
        for (index_t ii = 0; ii < nq; ++ii) {
          const auto* src = q.row(b, q0 + ii, hk * g + hh);
          for (index_t c = 0; c < d.dk; ++c) qt[ql.at(hh * nq + ii, c)] = to_float(src[c]);
        }
      }
    }
    std::fill(ws + off_ot, ws + off_ot + d.dv * rows_p, 0.f);
    // decode writes S^T only for the real rows; the padding lanes the normalizer also runs on
    // must hold numbers.
    if (eng == engine::decode) std::fill(ws + off_st, ws + off_st + block_kv * rows_p, 0.f);
    auto* state = reinterpret_cast<row_state*>(ws + off_state);
    for (index_t r = 0; r < rows_p; ++r) state[r] = a.norm.init();
  }

  // The tiles of keys in [jb, je) for one (b, hk, q block), one at a time: tiles start at each of
  // the mask's key spans (union over the group's heads), so keys no query can keep are never
  // visited, and end at page boundaries (a tile's rows are one stride apart); empty tiles are
  // passed over (their K and V are never touched). dense keeps its one tile of all keys (its
  // probabilities cover every key). A walk is a cursor, so several heads' walks can be
  // interleaved tile by tile without changing any head's tiles.
  struct tile_walk {
    key_spans sp;
    int t = 0;
    index_t j0 = 0, jb = 0, je = 0;
  };
  struct tile {
    index_t j0, nk;
    tile_class cls;
  };
  tile_walk walk(index_t b, index_t hk, index_t q0, index_t nq, index_t jb, index_t je) const {
    tile_walk w;
    if (dense) w.sp = key_spans::all(x.sk_of(b));
    else
      for (index_t hh = 0; hh < g; ++hh) w.sp = w.sp | spans_of(a.mask, ctx(b, hk, hh), q0, q0 + nq, x.sk_of(b));
    w.jb = jb, w.je = je;
    w.j0 = w.sp.n > 0 ? std::max(jb, w.sp.lo[0]) : je;
    return w;
  }
  bool next(tile_walk& w, index_t b, index_t hk, index_t q0, index_t nq, tile& out) const {
    while (w.t < w.sp.n) {
      const index_t end = std::min(w.je, w.sp.hi[w.t]);
      if (w.j0 >= end) {
        if (++w.t < w.sp.n) w.j0 = std::max(w.jb, w.sp.lo[w.t]);
        continue;
      }
      const index_t j0 = w.j0, nk = std::min({block_kv, end - j0, k.run(j0)});
      w.j0 += nk;
      out = {j0, nk, classify(b, hk, q0, q0 + nq, j0, j0 + nk)};
      if (out.cls != tile_class::empty) return true;
    }
    return false;
  }
  // f(tile, next tile or nullptr): the walk looks one tile ahead, so the prefill engine can
  // prefetch the tile it visits next (block-sparse and windowed walks jump).
  template <class F>
  void for_each_tile(index_t b, index_t hk, index_t q0, index_t nq, index_t jb, index_t je, F&& f) const {
    tile_walk w = walk(b, hk, q0, nq, jb, je);
    tile t{}, n{};
    for (bool more = next(w, b, hk, q0, nq, t); more; t = n) {
      more = next(w, b, hk, q0, nq, n);
      f(t, more ? &n : nullptr);
    }
  }

  // Flags of V rows [jb, je) of (b, hk): 1 where the row (as fp32) holds NaN or Inf.
  void flag_v(float* ws, std::uint8_t* fl, index_t b, index_t hk, index_t jb, index_t je) const {
    for (index_t j0 = jb, nk; j0 < je; j0 += nk) {
      nk = std::min({block_kv, je - j0, v.run(j0)});
      index_t ldv;
      const float* vp = rows_fp32(v, b, j0, nk, hk, ws + off_vc, ldv);
      for (index_t jj = 0; jj < nk; ++jj) fl[j0 + jj] = !simd::all_finite<Arch>(vp + jj * ldv, 1, d.dv, ldv);
    }
  }
  // Whether V rows [j0, j0 + nk) are all finite: from the flags, or by reading them (vp: the
  // tile as fp32 or, for bf16 pairs, in place).
  template <class T>
  bool v_finite(index_t b, index_t hk, index_t j0, index_t nk, const T* vp, index_t ldv) const {
    if (!vfl) return simd::all_finite<Arch>(vp, nk, d.dv, ldv);
    const std::uint8_t* f = vfl + (b * d.hkv + hk) * d.sk + j0;
    return std::find(f, f + nk, std::uint8_t(1)) == f + nk;
  }

  // A decode split task interleaving gn KV heads of a cache whose heads lie side by side in each
  // position's row (bshd, page pools): head gi (of hk - gi .. hk - gi + gn - 1) fetches slice gi
  // of the next tile's positions, all gn heads' rows of each, spread between its loads; so every
  // position's rows come in as one run (per-head bursts 4 KiB apart stall on the miss buffers).
  // Stays in the tile's run of rows (page); false where the layout does not allow it.
  template <class Src>
  bool group_feed(const Src& s, index_t b, index_t hk, index_t j0, index_t nk, index_t len, index_t gi, index_t gn,
                  simd::line_feed& f) const {
    using E = std::remove_cv_t<std::remove_pointer_t<decltype(s.row(0, 0, 0))>>;
    if constexpr (quantized_type<E>) return false;
    else {
      if (gn <= 1 || s.head_ld() != len) return false;
      const index_t end = std::min(j0 + s.run(j0), x.sk_of(b));
      const index_t ah = nk / 2;  // half a tile ahead: fp32 5% faster than one, 18% than two
      const index_t lo = std::min(end, j0 + ah + gi * nk / gn), hi = std::min(end, j0 + ah + (gi + 1) * nk / gn);
      const auto es = static_cast<index_t>(sizeof(E));
      f = simd::line_feed(s.row(b, j0, hk - gi), static_cast<std::uintptr_t>((lo - j0) * s.ld() * es), hi - lo,
                          gn * len * es, s.ld() * es);
      return true;
    }
  }

  // One tile of the mainloop: scores, normalizer step, O += P V. (gi, gn): decode's head group.
  void kv_tile(float* ws, index_t b, index_t hk, index_t q0, index_t nq, index_t j0, index_t nk, tile_class cls,
               const tile* nxt = nullptr, index_t gi = 0, index_t gn = 1) const {
    auto* state = reinterpret_cast<row_state*>(ws + off_state);
    // Prefill: this tile's V is prefetched during q.k and the next tile's K during P V (a bshd
    // input's rows are 4 KiB apart, where the hardware prefetchers do not reach; prefetch.hpp).
    // (An empty stream prefetches nothing: decode and dense.)
    const bool pre = eng == engine::prefill && !dense;
    const auto pv = pre ? simd::stream_of(v.rows(b, j0, hk), nk, d.dv) : simd::prefetch_stream{};
    const auto pk = pre && nxt ? simd::stream_of(k.rows(b, nxt->j0, hk), nxt->nk, d.dk) : simd::prefetch_stream{};
    simd::line_feed fk, fv;
    const bool grouped = eng == engine::decode && group_feed(k, b, hk, j0, nk, d.dk, gi, gn, fk) &&
                         group_feed(v, b, hk, j0, nk, d.dv, gi, gn, fv);
    scores(ws, b, hk, q0, nq, j0, nk, cls, &pv, grouped ? &fk : nullptr);
    a.norm.template step<Arch>(state, ws + off_alpha, ws + off_st, rows_p, rows_p, nk, step_scale());
    if (eng == engine::decode) {
      const auto vp = v.rows(b, j0, hk);
      // NaN / Inf in V (quantized: a scale) at a masked key would enter as 0 * NaN. Any
      // non-finite contribution leaves O non-finite, so the tile is redone from a copy of O, with
      // zero weights skipping their keys, only when O comes out non-finite: bitwise the result of
      // checking V first (skipping a zero weight equals fma(0, v, acc) for finite v), without a
      // pass over V that would take the tile's first DRAM misses.
      float* ot = ws + off_ot;
      const index_t n_o = g * nq * d.dv;
      std::copy_n(ot, n_o, ws + off_osave);
      simd::axpy_rows<Arch>(g * nq, nk, d.dv, ws + off_st, rows_p, vp, ot, d.dv, ws + off_alpha, v.run(j0),
                            grouped ? &fv : nullptr);
      if (!simd::all_finite<Arch>(ot, 1, n_o, n_o)) {
        std::copy_n(ws + off_osave, n_o, ot);
        simd::axpy_rows<Arch, true>(g * nq, nk, d.dv, ws + off_st, rows_p, vp, ot, d.dv, ws + off_alpha, v.run(j0));
      }
      return;
    }
    if constexpr (bf16_inputs)
      if (pairs && v_finite(b, hk, j0, nk, v.row(b, j0, hk), v.ld())) {
        auto* pb = reinterpret_cast<bf16*>(ws + off_pb);
        auto* vb = reinterpret_cast<bf16*>(ws + off_vc);
        simd::pack_cols<Arch>(ws + off_st, rows_p, nk, rows_p, pb);
        simd::pack_pairs<Arch>(v.row(b, j0, hk), v.ld(), nk, d.dv, vb);
        simd::gemm_bf16<Arch>(d.dv, rows_p, nk, vb, 2, 2 * d.dv, pb, rows_p, ws + off_ot, rows_p, ws + off_alpha, 64,
                              &pk);
        return;
      }
    index_t ldv;
    const float* vp = rows_fp32(v, b, j0, nk, hk, ws + off_vc, ldv);
    if (v_finite(b, hk, j0, nk, vp, ldv))
      simd::gemm_rows<Arch, false>(d.dv, rows_p, nk, vp, 1, ldv, ws + off_st, rows_p, ws + off_ot, rows_p,
                                   ws + off_alpha, 64, &pk);
    else
      simd::gemm_rows<Arch, false, true>(d.dv, rows_p, nk, vp, 1, ldv, ws + off_st, rows_p, ws + off_ot, rows_p,
                                         ws + off_alpha, 64, &pk);
  }

  // The mainloop proper over keys [jb, je).
  void kv_loop(float* ws, index_t b, index_t hk, index_t q0, index_t nq, index_t jb, index_t je) const {
    for_each_tile(b, hk, q0, nq, jb, je, [&](const tile& t, const tile* n) { kv_tile(ws, b, hk, q0, nq, t.j0, t.nk, t.cls, n); });
  }

  // The normalizer's final factor per row, then O and LSE (and probabilities / key mass).
  void epilogue(float* ws, index_t b, index_t hk, index_t q0, index_t nq) const {
    const auto* state = reinterpret_cast<const row_state*>(ws + off_state);
    const float* ot = ws + off_ot;
    float* fac = ws + off_fac;
    for (index_t r = 0; r < g * nq; ++r) {
      const index_t hh = r / nq, ii = r % nq;
      float lse = 0.f;
      fac[r] = a.norm.finalize(ctx(b, hk, hh), state[r], lse);
      if constexpr (Norm::has_lse) {
        if (a.lse) a.lse[x.lse_index(b, hk * g + hh, q0 + ii)] = lse;
        if (a.row_max) a.row_max[x.lse_index(b, hk * g + hh, q0 + ii)] = state[r].m;  // m is in logit units
      }
      if (eng == engine::decode) {
        float* dst = o.row(b, q0 + ii, hk * g + hh);
        for (index_t c = 0; c < d.dv; ++c) dst[c] = ot[ol.at(r, c)] * fac[r];
      }
    }
    if (eng == engine::prefill) {
      // O^T transposed to each head's rows, each row times its factor.
      for (index_t hh = 0; hh < g; ++hh)
        simd::transpose_rows<Arch>(ot + hh * nq, rows_p, d.dv, nq, o.row(b, q0, hk * g + hh), o.ld(), fac + hh * nq);
    }
    if (a.probs) write_probs(ws, b, hk, q0, nq);
    if (a.key_mass && q0 + nq > mass_from()) accumulate_key_mass(ws, b, hk, q0, nq);
  }

  // key_mass_out sums rows [mass_from(), sq) (all, or the last_queries observation window).
  index_t mass_from() const noexcept { return a.mass_last > 0 ? std::max<index_t>(0, d.sq - a.mass_last) : 0; }

  void unit(float* ws, index_t b, index_t hk, index_t qb) const {
    const index_t q0 = qb * bq, nq = std::min(bq, x.sq_of(b) - q0);
    if (nq <= 0) return;  // a varlen sequence with fewer queries than the longest
    prologue(ws, b, hk, q0, nq);
    if (mass_store && q0 + nq > mass_from()) {
      auto* tl = reinterpret_cast<index_t*>(ws + off_mt);  // [0]: tiles, then (j0, nk) per tile
      tl[0] = 0;
      for_each_tile(b, hk, q0, nq, 0, x.sk_of(b), [&](const tile& t, const tile* n) {
        const index_t j0 = t.j0, nk = t.nk;
        assert(tl[0] < mass_tiles);
        kv_tile(ws, b, hk, q0, nq, j0, nk, t.cls, n);
        std::copy_n(ws + off_st, nk * rows_p, ws + off_mp + j0 * rows_p);
        std::copy_n(ws + off_alpha, rows_p, ws + off_ma + tl[0] * rows_p);
        tl[1 + 2 * tl[0]] = j0, tl[2 + 2 * tl[0]] = nk, ++tl[0];
      });
    } else
      kv_loop(ws, b, hk, q0, nq, 0, x.sk_of(b));
    epilogue(ws, b, hk, q0, nq);
  }

  // Split-KV (decode shapes: one q block, long cache). Each split leaves its unnormalized partial
  // (row states, O^T) in `part`; the merge combines them in split order with the normalizer's
  // merge, so the sink logit (added in finalize) enters once and results do not depend on threads.
  index_t part_floats() const { return align_up(2 * rows_p + d.dv * rows_p, scratch_align); }
  //
  // A split task takes `head_group` consecutive KV heads and interleaves their walks tile by tile:
  // in a bshd cache or a page pool the heads' rows of a position are neighbours, so the task
  // streams whole runs of memory instead of one head's 512-byte rows 4 KiB apart; each head's
  // tiles and arithmetic are those of its own walk, so results do not depend on the grouping.
  void split_unit(float* ws, float* parts, index_t b, index_t h0, index_t sp) const {
    const index_t nq = std::min(bq, x.sq_of(b)), sk = x.sk_of(b), len = split_len_of(sk);
    const index_t jb = sp * len, je = std::min(sk, jb + len), nh = std::min(head_group, d.hkv - h0);
    if (nq <= 0 || (sp > 0 && jb >= sk)) return;  // past this sequence's parts: never merged
    tile_walk w[max_head_group];
    for (index_t i = 0; i < nh; ++i) {
      prologue(ws + i * ws_head, b, h0 + i, 0, nq);
      w[i] = walk(b, h0 + i, 0, nq, jb, je);
    }
    for (bool more = true; more;) {
      more = false;
      for (index_t i = 0; i < nh; ++i)
        if (tile t; next(w[i], b, h0 + i, 0, nq, t)) {
          kv_tile(ws + i * ws_head, b, h0 + i, 0, nq, t.j0, t.nk, t.cls, nullptr, i, nh);
          more = true;
        }
    }
    for (index_t i = 0; i < nh; ++i) {
      float* part = parts + ((b * d.hkv + h0 + i) * n_split + sp) * part_floats();
      std::copy_n(ws + i * ws_head + off_state, 2 * rows_p, part);
      std::copy_n(ws + i * ws_head + off_ot, d.dv * rows_p, part + 2 * rows_p);
    }
  }
  void merge_unit(float* ws, const float* parts, index_t b, index_t hk) const {
    const index_t nq = std::min(bq, x.sq_of(b));
    if (nq <= 0) return;
    auto* state = reinterpret_cast<row_state*>(ws + off_state);
    float* ot = ws + off_ot;
    std::copy_n(parts, 2 * rows_p, ws + off_state);
    std::copy_n(parts + 2 * rows_p, d.dv * rows_p, ot);
    for (index_t sp = 1, n = splits_of(x.sk_of(b)); sp < n; ++sp) {
      const float* p = parts + sp * part_floats();
      const auto* ps = reinterpret_cast<const row_state*>(p);
      for (index_t r = 0; r < g * nq; ++r) {
        float wa, wb;
        state[r] = Norm::merge(state[r], wa, ps[r], wb);
        for (index_t c = 0; c < d.dv; ++c)
          ot[ol.at(r, c)] = ot[ol.at(r, c)] * wa + p[2 * rows_p + ol.at(r, c)] * wb;
      }
    }
    epilogue(ws, b, hk, 0, nq);
  }

  // dense only: the single tile's weights, scaled by the final factor, are the probabilities.
  void write_probs(float* ws, index_t b, index_t hk, index_t q0, index_t nq) const {
    const float* st = ws + off_st;
    const float* fac = ws + off_fac;
    const bool skipped = d.sk == 0 || classify(b, hk, q0, q0 + nq, 0, d.sk) == tile_class::empty;
    for (index_t hh = 0; hh < g; ++hh)
      for (index_t ii = 0; ii < nq; ++ii) {
        float* dst = a.probs + (((b * d.hq) + hk * g + hh) * d.sq + q0 + ii) * d.sk;
        const index_t r = hh * nq + ii;
        for (index_t j = 0; j < d.sk; ++j) dst[j] = skipped ? 0.f : st[j * rows_p + r] * fac[r];
      }
  }

  // key_mass[b, h, j] += sum_i p_ij. One tile (dense): read the weights left in S^T. Several
  // (flash): the kept weights (mass_store), else recompute each tile's scores and replay the
  // normalizer step from the row's final state, which reproduces exp(x - m_final) exactly (the
  // running max can no longer grow).
  void accumulate_key_mass(float* ws, index_t b, index_t hk, index_t q0, index_t nq) const {
    float* st = ws + off_st;
    const float* fac = ws + off_fac;
    const index_t i0 = std::max<index_t>(0, mass_from() - q0);  // rows before the window add nothing
    if (mass_store) {
      // Tiles last to first; c[hh] = the final factor times the alphas of the later tiles, on
      // head hh's rows in the window (0 elsewhere: fma_nz skips those rows, whatever their p~).
      float* c = ws + off_mc;
      std::fill_n(c, g * rows_p, 0.f);
      for (index_t hh = 0; hh < g; ++hh)
        for (index_t ii = i0; ii < nq; ++ii) c[hh * rows_p + hh * nq + ii] = fac[hh * nq + ii];
      const auto* tl = reinterpret_cast<const index_t*>(ws + off_mt);
      for (index_t t = tl[0] - 1; t >= 0; --t) {
        const index_t j0 = tl[1 + 2 * t], nk = tl[2 + 2 * t];
        for (index_t jj = 0; jj < nk; ++jj) {
          const float* pj = ws + off_mp + (j0 + jj) * rows_p;
          for (index_t hh = 0; hh < g; ++hh) {
            auto acc = V::zero();
            for (index_t r = 0; r < rows_p; r += V::width)
              acc = V::fma_nz(V::load(pj + r), V::load(c + hh * rows_p + r), acc);
            a.key_mass[((b * d.hq) + hk * g + hh) * d.sk + j0 + jj] += V::hsum(acc);
          }
        }
        const float* al = ws + off_ma + t * rows_p;
        for (index_t i = 0; i < g * rows_p; i += V::width)
          V::store(c + i, V::load(c + i) * V::load(al + i % rows_p));
      }
      return;
    }
    auto* state = reinterpret_cast<row_state*>(ws + off_state);
    float* alpha = ws + off_alpha;
    for_each_tile(b, hk, q0, nq, 0, d.sk, [&](const tile& t, const tile*) {
      const index_t j0 = t.j0, nk = t.nk;
      if (!dense) {
        scores(ws, b, hk, q0, nq, j0, nk, t.cls);
        a.norm.template step<Arch>(state, alpha, st, rows_p, rows_p, nk, step_scale());
      }
      for (index_t hh = 0; hh < g; ++hh) {
        float* dst = a.key_mass + ((b * d.hq) + hk * g + hh) * d.sk + j0;
        for (index_t jj = 0; jj < nk; ++jj) {
          float s = 0.f;
          for (index_t ii = i0; ii < nq; ++ii) s += st[jj * rows_p + hh * nq + ii] * fac[hh * nq + ii];
          dst[jj] += s;
        }
      }
    });
  }

  // Call-wide scratch: split-KV partials (decode) or V's flags (prefill; bytes, never both).
  index_t partial_floats() const {
    return n_split > 1 ? d.batch * d.hkv * n_split * part_floats() : v_flags ? (d.batch * d.hkv * d.sk + 3) / 4 : 0;
  }

  template <class Exec>
  void run(const Exec& ex) const {
    const scratch_source src{a.ws ? &*a.ws : nullptr, worker_floats(), ex.concurrency(), partial_floats()};
    src.check(dense ? "dense_attention" : "flash_attention");
    if (v_flags) {
      auto* fl = reinterpret_cast<std::uint8_t*>(src.partials(partial_floats()));
      constexpr index_t chunk = 4096;
      const index_t n_c = (d.sk + chunk - 1) / chunk;
      ex.parallel_for(d.batch * d.hkv * n_c, [&](index_t t, int w) {
        const index_t bh = t / n_c, j0 = t % n_c * chunk, b = bh / d.hkv, hk = bh % d.hkv;
        flag_v(src.get(w), fl + bh * d.sk, b, hk, j0, std::min(d.sk, j0 + chunk));
      });
      vfl = fl;
    }
    if (a.key_mass) {
      // Every q block of a (b, hk) in the observation window adds into the same key_mass rows: one
      // task per (b, hk), those blocks in order. The blocks before the window run as usual first.
      const index_t qb_mass = mass_from() / bq, before = d.batch * d.hkv * qb_mass;
      ex.parallel_for(before, [&](index_t t, int w) { unit(src.get(w), t / qb_mass / d.hkv, t / qb_mass % d.hkv, t % qb_mass); });
      ex.parallel_for(d.batch * d.hkv, [&](index_t t, int w) {
        const index_t b = t / d.hkv, hk = t % d.hkv;
        for (index_t hh = 0; hh < g; ++hh)
          std::fill_n(a.key_mass + ((b * d.hq) + hk * g + hh) * d.sk, d.sk, 0.f);
        float* ws = src.get(w);
        for (index_t qb = qb_mass; qb < n_qb; ++qb) unit(ws, b, hk, qb);
      });
      return;
    }
    if (n_split > 1) {
      const index_t groups = d.batch * d.hkv, pf = part_floats();
      float* parts = src.partials(groups * n_split * pf);
      // Head groups fastest: tasks running at the same time stream neighbouring memory of a bshd
      // cache. Partial slot: (b, hk, split).
      const index_t n_hg = n_head_groups();
      ex.parallel_for(d.batch * n_hg * n_split, [&](index_t t, int w) {
        const index_t b = t / (n_split * n_hg), sp = (t / n_hg) % n_split, hg = t % n_hg;
        split_unit(src.get(w), parts, b, hg * head_group, sp);
      });
      ex.parallel_for(groups, [&](index_t t, int w) {
        merge_unit(src.get(w), parts + t * n_split * pf, t / d.hkv, t % d.hkv);
      });
      return;
    }
    // Latest q blocks first: under causal masks they are the longest, so dynamic scheduling
    // finishes with short tasks (longest-processing-time order).
    ex.parallel_for(d.batch * d.hkv * n_qb, [&](index_t t, int w) {
      const index_t qb = n_qb - 1 - t % n_qb, bh = t / n_qb;
      unit(src.get(w), bh / d.hkv, bh % d.hkv, qb);
    });
  }
};

/// Validate the arguments and plan one call of the mainloop on validated operands, then hand the
/// planned call to `f`.
template <class T>
constexpr const char* elem_name() noexcept {
  using U = std::remove_cv_t<T>;
  return std::is_same_v<U, float> ? "float" : std::is_same_v<U, bf16> ? "bf16" : std::is_same_v<U, fp16> ? "fp16" : "quantized";
}

template <class Arch, class F, class TQ, class TK, class TV, class... Args>
auto with_planned_call(const char* fn, kernel_kind kind, const tiling& t, F&& f, operands<TQ, TK, TV> x,
                       Args&&... args) {
  static_assert(arch_tag<Arch>, "attnkit: Arch must be an xsimd architecture (e.g. xsimd::avx2) or attnkit::scalar");
  static_assert(!simd::bf16_dot_arch<Arch> || ATTNKIT_WITH_AVX512BF16,
                "attnkit: attnkit::avx512bf16 code must be compiled with -mavx512bf16 and the AVX-512 BW flags");
  static_assert(element_type<std::remove_cv_t<TQ>> &&
                    (element_type<std::remove_cv_t<TK>> || quantized_type<std::remove_cv_t<TK>>) &&
                    (element_type<std::remove_cv_t<TV>> || quantized_type<std::remove_cv_t<TV>>),
                "attnkit: q, k and v elements must be float, attnkit::bf16 or attnkit::fp16 (k and v may also be "
                "quantized views: attnkit::qint8, qint4, qint8_channel)");
  const auto a = resolve_args(args...);
  using A = std::remove_cvref_t<decltype(a)>;
  if constexpr (!decltype(a.norm)::has_lse)
    if (a.lse) fail(fn, "lse_out: the normalizer has no log-sum-exp (sigmoid); do not request one");
  problem_dims& d = x.d;
  if (a.q_offset) {
    if (x.batched())
      fail(fn, "query_offset: a paged or varlen call places each sequence's queries at its end (from the lengths); "
               "do not pass one");
    if (*a.q_offset > max_offset || *a.q_offset < -max_offset)
      fail(fn, "query_offset: expected |offset| <= 2^32, got ", *a.q_offset);
    d.q_offset = *a.q_offset;
  }
  if constexpr (!decltype(a.norm)::has_lse)
    if (a.row_max) fail(fn, "row_max_out: the normalizer keeps no running maximum (sigmoid); do not request one");
  if (a.key_mass && a.mass_last < 0)
    fail(fn, "key_mass_out: expected last_queries >= 0 (0: all queries), got ", a.mass_last);
  if (x.batched() && (a.probs || a.key_mass))
    fail(fn, a.probs ? "probs_out" : "key_mass_out",
         ": not available for a paged or varlen call (its layout is per strided batch); call per sequence");
  // B * Hq * Sq (Hq * total_q) cannot overflow: out has that many distinct elements within 2^62 bytes.
  const index_t rows_total = x.q_start ? d.hq * x.total_q : d.batch * d.hq * d.sq;
  const index_t n_probs = a.probs ? checked_mul(fn, "probs_out", rows_total, d.sk) : 0;
  const index_t n_mass = a.key_mass ? checked_mul(fn, "key_mass_out", d.batch * d.hq, d.sk) : 0;
  if (a.scale && !std::isfinite(*a.scale)) fail(fn, "scale: expected a finite value, got ", *a.scale);
  if (a.tiles && (a.tiles->rows < 1 || a.tiles->block_kv < 0 || a.tiles->split_kv < 1))
    fail(fn, "tiling: expected rows >= 1, block_kv >= 0 and split_kv >= 1, got {", a.tiles->rows, ", ",
         a.tiles->block_kv, ", ", a.tiles->split_kv, "}");
  if (a.bf16 == bf16_products::pairs && !attention_call<Arch, TQ, TK, TV, A>::bf16_inputs)
    fail(fn, "bf16_products: pairs need bf16 q, k and v and an arch with AVX512-BF16 (attnkit::avx512bf16), got ",
         elem_name<TQ>(), " q, ", elem_name<TK>(), " k, ", elem_name<TV>(), " v on ", Arch::name());
  validate_policies(fn, d, a.score, a.mask, a.norm);
  check_output(fn, "lse_out", a.lse, a.lse ? rows_total : 0, x.ranges);
  check_output(fn, "row_max_out", a.row_max, a.row_max ? rows_total : 0, x.ranges);
  if (a.probs && kind != kernel_kind::dense)
    fail(fn, "probs_out: only dense_attention materializes probabilities");
  check_output(fn, "probs_out", a.probs, n_probs, x.ranges);
  check_output(fn, "key_mass_out", a.key_mass, n_mass, x.ranges);
  const range_pair outs[] = {{a.lse, a.lse ? rows_total : 0}, {a.probs, n_probs}, {a.key_mass, n_mass},
                             {a.row_max, a.row_max ? rows_total : 0}};
  for (int i = 0; i < 4; ++i)
    for (int j = i + 1; j < 4; ++j)
      if (range_of(outs[i].p, outs[i].n).overlaps(range_of(outs[j].p, outs[j].n)))
        fail(fn, "outputs: expected lse_out, probs_out, key_mass_out and row_max_out to be disjoint, got overlapping "
                 "buffers");

  const float sc = a.scale ? *a.scale : 1.f / std::sqrt(float(d.dk));
  attention_call<Arch, TQ, TK, TV, A> call(x, a, sc, kind == kernel_kind::dense);
  call.plan(a.tiles ? *a.tiles : t);
  return f(call);
}

template <class Arch, class... Args>
void run_attention(const char* fn, kernel_kind kind, const tiling& t, Args&&... args) {
  with_planned_call<Arch>(fn, kind, t, [](const auto& call) { call.run(call.a.exec); }, std::forward<Args>(args)...);
}

template <class Arch, class... Args>
index_t workspace_bytes(const char* fn, kernel_kind kind, const tiling& t, Args&&... args) {
  return with_planned_call<Arch>(fn, kind, t, [](const auto& call) {
    return scratch_source::bytes_needed(call.worker_floats(), call.a.exec.concurrency(), call.partial_floats());
  }, std::forward<Args>(args)...);
}

}  // namespace detail
}  // namespace attnkit
