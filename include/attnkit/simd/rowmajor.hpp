#pragma once
/// @file rowmajor.hpp  Register-blocked products for few query rows (decode: one query times a
/// GQA group), with the vector along the head dimension instead of along the rows.
///
///   dot_rows:  S^T[j * lds + r] = sum_c q[r * ldq + c] * float(k[j * ldk + c])     r < R, j < nk, c < d
///   axpy_rows: o[r * ldo + c] = alpha[r] * o[r * ldo + c] + sum_j p[j * ldp + r] * float(v[j * ldv + c])
///                                                                                  r < R, c < dv
///
/// microkernel.hpp makes rows the SIMD lanes, which pads a 4-row decode group to 16 lanes. Here a
/// K row (or V row) is loaded as vectors along d, widened to fp32 in registers (convert.hpp), and
/// used against every query row held in registers, so K and V are streamed once from the caller's
/// memory with no staging copy and no lanes wasted for any R.
///
/// dot_rows keeps RB rows x NK keys of accumulators with RB * NK = lanes (AVX-512: 4x4, 2x8,
/// 1x16; AVX2: 4x2, 2x4, 1x8), sums along d in vectors (tail: masked loads), then one
/// transpose-add reduction (lane_sums: xsimd::haddp; own code on AVX-512) turns the RB * NK
/// accumulators into one vector (lane i = sum of accumulator i) whose lanes are scattered to S^T. Keys are processed in chunks of `lanes` keys, every row block
/// of a chunk in turn, so each K row comes from memory once and is re-read from L1.
///
/// axpy_rows keeps RB rows x CB vectors of O in registers, loops over keys broadcasting p, and ends
/// with o = fma(o, alpha, acc) (the first key chunk) or o += acc (later chunks of kKeyChunk keys:
/// blocked summation, and the V chunk x column block being reused by all row blocks stays in L1).
///
/// Both prefetch (prefetcht1) the rows a few KiB ahead of the ones they read, into the caller's
/// next tile: the decode engine's K and V come from DRAM, often 4 KiB apart (bshd caches), where
/// the hardware prefetchers do not keep enough misses in flight.
///
/// Accuracy: each dot product is `lanes` sequential partial sums joined by a tree (scalar backend:
/// blocks of kScalarDotBlock products summed from zero, then added); each axpy sum is sequential
/// within chunks of kKeyChunk keys. Both are at least as accurate as one sequential fp32
/// loop (fewer roundings in sequence). No alignment is required for any pointer; strides are in
/// elements and may be anything >= the row length (q, k, v are never read past element d-1 / dv-1
/// of a row, st never written past column R-1, o never past column dv-1).
#include <cstdint>
#include <type_traits>

#include "attnkit/core/types.hpp"
#include "attnkit/simd/arch.hpp"
#include "attnkit/simd/convert.hpp"
#include "attnkit/simd/quant.hpp"

namespace attnkit::simd {

namespace rowmajor_detail {

template <class Arch>
struct rm_blocking {
  static constexpr int width = vec<Arch>::width;
  static constexpr bool wide_regs = avx512_arch<Arch>;  // 32 vector registers
  /// dot_rows: accumulators per tile (RB * NK); one lane_sums reduces them, so = width (scalar: 8).
  static constexpr int dot_acc = width == 1 ? 8 : width;
  /// axpy_rows: vectors of O per tile for RB rows. Budget: RB * CB accumulators + CB loads + 1.
  static constexpr int axpy_cb(int rb) { return wide_regs ? (rb >= 4 ? 4 : 8) : (rb >= 4 ? 2 : rb == 2 ? 4 : 8); }
  /// Column block: the widest tile; narrower tiles cover it in several passes.
  static constexpr int axpy_cols = 8 * width;
};

/// Keys per axpy chunk: sums restart from zero every kKeyChunk keys (blocked summation), and a
/// chunk of V times one column block (32 x 8 vectors) stays in L1 across the row blocks.
inline constexpr index_t kKeyChunk = 32;

/// Scalar backend (width 1): dot_rows sums each q.k in blocks of this many products (see dot_tile).
inline constexpr index_t kScalarDotBlock = 16;

/// Keep a loaded vector in a register: without this GCC folds the load into every FMA that uses
/// it (vfmadd231ps mem, ...), turning 4 loads per 16 FMAs into 16 and making the tile load-bound.
template <class Reg>
ATTNKIT_INLINE void pin(Reg& r) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  if constexpr (!std::is_same_v<Reg, float>) {
    auto x = static_cast<typename Reg::register_type>(r);
    __asm__("" : "+v"(x));
    r = x;
  }
#else
  (void)r;
#endif
}

// ---- prefetch ---------------------------------------------------------------------------------

/// Software prefetch of the rows read next (dot_rows: K, axpy_rows: V; prefetch.hpp), so that a
/// decode tile's DRAM misses overlap with the arithmetic on the rows before it instead of being
/// exposed one row at a time. The look-ahead is a byte budget (kPrefetchBytes of row data, at
/// most kPrefetchMaxKeys rows), so it reaches into the caller's next tile, which the engines read
/// at the same stride right after this call.
inline constexpr index_t kPrefetchBytes = 16384;
inline constexpr index_t kPrefetchMaxKeys = 64;
inline constexpr index_t kPrefetchAny = index_t(1) << 62;

/// Rows of `len` elements of T to prefetch ahead (1 .. kPrefetchMaxKeys).
template <class T>
ATTNKIT_INLINE index_t prefetch_keys(index_t len) noexcept {
  const index_t bytes = len * static_cast<index_t>(sizeof(T));
  const index_t n = bytes > 0 ? kPrefetchBytes / bytes : kPrefetchMaxKeys;
  return n < 1 ? 1 : n > kPrefetchMaxKeys ? kPrefetchMaxKeys : n;
}

/// The kernels' own look-ahead, rows [pf, pf + nk) of k (within pf_rows), where it is spread
/// between the loads: rows one after another in memory (head-major caches). Rows a stride apart
/// (bshd, page pools) keep a burst per row (nullptr), which measured faster there unless the
/// caller names whole token rows (`ahead`; bench/results/decode-prefetch-xeon-2026-12-04.md).
template <class Arch, class T>
ATTNKIT_INLINE line_feed* look_ahead(const kv_rows<T>& k, index_t nk, index_t len, index_t pf, index_t pf_rows,
                                     line_feed& own) noexcept {
  if (quantized_type<T> || vec<Arch>::width == 1 || k.ld * index_t(sizeof(T)) != row_bytes<T>(len)) return nullptr;
  const index_t n = nk < pf_rows - pf ? nk : pf_rows - pf;
  own = line_feed(k.p, static_cast<std::uintptr_t>(pf * k.ld) * sizeof(T), n, row_bytes<T>(len), k.ld * index_t(sizeof(T)));
  return &own;
}

// ---- dot_rows ---------------------------------------------------------------------------------

/// Lane i of the result = horizontal sum of rows[i], i < width. xsimd::haddp, except on AVX-512:
/// xsimd 8.1's avx512f haddp returns the lanes permuted (0 1 4 5 2 3 6 7 8 9 12 13 ...), and its
/// _mm512_undefined_ps-based shuffles trip GCC 12's -Wuninitialized. This one is a transpose-add
/// tree (unpck, shufps, shuff32x4: 30 shuffles + 15 adds for 16 vectors) using the zero-masked
/// intrinsic forms with an all-ones mask, which compile to the plain instructions.
template <class Arch>
struct lane_sums {
  using Reg = typename vec<Arch>::reg;
  static ATTNKIT_INLINE Reg run(const Reg* rows) noexcept { return xsimd::haddp(rows); }
};
#if XSIMD_WITH_AVX512F
template <avx512_arch Arch>
struct lane_sums<Arch> {
  using Reg = typename vec<Arch>::reg;
  static ATTNKIT_INLINE Reg run(const Reg* rows) noexcept {
    constexpr __mmask16 all = 0xffff;
    __m512 t[8], w[4];
    // Per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3) for each pair (a, b) = rows 2i, 2i+1.
    ATTNKIT_UNROLL for (int i = 0; i < 8; ++i) {
      const __m512 a = rows[2 * i], b = rows[2 * i + 1];
      t[i] = _mm512_add_ps(_mm512_maskz_unpacklo_ps(all, a, b), _mm512_maskz_unpackhi_ps(all, a, b));
    }
    // Per 128-bit lane: the lane's partial sums of rows 4i .. 4i+3.
    ATTNKIT_UNROLL for (int i = 0; i < 4; ++i) {
      const __m512 c = t[2 * i], d = t[2 * i + 1];
      w[i] = _mm512_add_ps(_mm512_maskz_shuffle_ps(all, c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm512_maskz_shuffle_ps(all, c, d, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    // Transpose the 4 x 4 blocks of 128 bits and add: block g of the result = sum of w[g]'s blocks.
    const __m512 y0 = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, w[0], w[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_maskz_shuffle_f32x4(all, w[0], w[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 y1 = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, w[2], w[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_maskz_shuffle_f32x4(all, w[2], w[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, y0, y1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_maskz_shuffle_f32x4(all, y0, y1, _MM_SHUFFLE(3, 1, 3, 1)));
  }
};
#endif

/// RB rows x NK keys, kv <= NK of them valid (the others re-read the last valid key; not stored).
template <class Arch, class TK, int RB, int NK>
ATTNKIT_INLINE void dot_tile(int kv, index_t d, const float* ATTNKIT_RESTRICT q, index_t ldq, const kv_rows<TK>& k,
                             float* ATTNKIT_RESTRICT st, index_t lds, line_feed* pf = nullptr) noexcept {
  using V = vec<Arch>;
  using Reg = typename V::reg;
  constexpr int W = V::width;
  constexpr int A = RB * NK;
  static_assert(W == 1 || A <= W, "dot_tile: one lane_sums reduces at most `width` accumulators");
  const float* qp[RB];
  kv_row<TK> kp[NK];
  ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) qp[r] = q + r * ldq;
  ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) kp[j] = row_at(k, j < kv ? j : kv - 1);
  Reg acc[A];
  ATTNKIT_UNROLL for (int i = 0; i < A; ++i) acc[i] = V::zero();
  index_t c = 0;
  if constexpr (std::is_same_v<TK, qint4> && W > 1) {
    // Whole groups of 32 (d % 32 == 0): the nibble half and the group scale of each vector are
    // known at compile time (kv_load_q4), one scale broadcast per key and group.
    for (; c + 32 <= d; c += 32)
      ATTNKIT_UNROLL for (int h = 0; h < 32 / W; ++h) {
        Reg kr[NK];
        ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) {
          kr[j] = kv_load_q4<Arch>(kp[j], c, h);
          if constexpr (RB > 1) pin(kr[j]);
        }
        ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) {
          Reg qr = V::load(qp[r] + c + h * W);
          if constexpr (NK > 1) pin(qr);
          ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) acc[j * RB + r] = V::fma(qr, kr[j], acc[j * RB + r]);
        }
      }
  }
  if constexpr (W == 1) {
    // One lane: a single chain over d would be the only partial sum. Blocks of kScalarDotBlock
    // products are summed from zero and then added, as the prefill engine's q.k does on this
    // backend (qk_chunk() in mainloop.hpp), so both engines give the scalar backend the same logits.
    for (index_t c0 = 0; c0 < d; c0 += kScalarDotBlock) {
      const index_t ce = d - c0 < kScalarDotBlock ? d : c0 + kScalarDotBlock;
      Reg blk[A];
      ATTNKIT_UNROLL for (int i = 0; i < A; ++i) blk[i] = V::zero();
      for (c = c0; c < ce; ++c) {
        Reg kr[NK];
        ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) kr[j] = kv_load<Arch>(kp[j], c);
        ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) {
          const Reg qr = V::load(qp[r] + c);
          ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) blk[j * RB + r] = V::fma(qr, kr[j], blk[j * RB + r]);
        }
      }
      ATTNKIT_UNROLL for (int i = 0; i < A; ++i) acc[i] = c0 == 0 ? blk[i] : acc[i] + blk[i];
    }
  } else {
    for (; c + W <= d; c += W) {
      Reg kr[NK];
      // The look-ahead's lines a load at a time (line_feed), once per line of the rows read.
      if constexpr (!quantized_type<TK>)
        if (pf && (c * index_t(sizeof(TK))) % 64 < W * index_t(sizeof(TK)))
          ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) pf->next();
      ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) {
        kr[j] = kv_load<Arch>(kp[j], c);
        if constexpr (RB > 1) pin(kr[j]);
      }
      ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) {
        Reg qr = V::load(qp[r] + c);
        if constexpr (NK > 1) pin(qr);
        ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) acc[j * RB + r] = V::fma(qr, kr[j], acc[j * RB + r]);
      }
    }
  }
  if constexpr (W > 1) {
    if (c < d) {
      const int n = static_cast<int>(d - c);
      Reg kr[NK];
      ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) kr[j] = kv_load_n<Arch>(kp[j], c, n);
      ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) {
        const Reg qr = load_widen_n<Arch>(qp[r] + c, n);
        ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) acc[j * RB + r] = V::fma(qr, kr[j], acc[j * RB + r]);
      }
    }
  }
  // qint8: the row's scale multiplies the score (q . s k8 = s (q . k8)).
  float f[NK];
  ATTNKIT_UNROLL for (int j = 0; j < NK; ++j) f[j] = row_scaled<TK> ? kv_factor(kp[j]) : 1.f;
  if constexpr (W == 1) {
    for (int j = 0; j < kv; ++j)
      ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) {
        if constexpr (row_scaled<TK>) st[j * lds + r] = acc[j * RB + r] * f[j];
        else st[j * lds + r] = acc[j * RB + r];
      }
  } else {
    Reg rows[W];
    ATTNKIT_UNROLL for (int i = 0; i < W; ++i) rows[i] = i < A ? acc[i] : V::zero();
    const Reg s = lane_sums<Arch>::run(rows);  // lane i = horizontal sum of acc[i]
    alignas(64) float t[W];
    s.store_aligned(t);
    for (int j = 0; j < kv; ++j)
      ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) {
        if constexpr (row_scaled<TK>) st[j * lds + r] = t[j * RB + r] * f[j];
        else st[j * lds + r] = t[j * RB + r];
      }
  }
}

/// The last rem (0 < rem < NK) keys of a chunk: the narrowest power-of-two tile that holds them.
template <class Arch, class TK, int RB, int NK>
ATTNKIT_INLINE void dot_key_tail(int rem, index_t d, const float* q, index_t ldq, const kv_rows<TK>& k, float* st,
                                 index_t lds) noexcept {
  if constexpr (NK > 1) {
    if (rem <= NK / 2) return dot_key_tail<Arch, TK, RB, NK / 2>(rem, d, q, ldq, k, st, lds);
  }
  dot_tile<Arch, TK, RB, NK>(rem, d, q, ldq, k, st, lds);
}

/// RB rows against kc keys (kc <= dot_acc).
template <class Arch, class TK, int RB>
void dot_block(int kc, index_t d, const float* q, index_t ldq, const kv_rows<TK>& k, float* st, index_t lds,
               index_t pf, line_feed* feed) noexcept {
  constexpr int NK = rm_blocking<Arch>::dot_acc / RB;
  int j = 0;
  for (; j + NK <= kc; j += NK) {
    if (pf) prefetch_kv(k, j + pf, NK, d);
    dot_tile<Arch, TK, RB, NK>(NK, d, q, ldq, k.shift(j), st + j * lds, lds, feed);
  }
  if (pf && j < kc) prefetch_kv(k, j + pf, kc - j, d);
  if (j < kc) dot_key_tail<Arch, TK, RB, NK>(kc - j, d, q, ldq, k.shift(j), st + j * lds, lds);
}

// ---- axpy_rows --------------------------------------------------------------------------------

/// RB rows x CB vectors of columns; with Tail the last vector has nlast < width valid lanes.
/// alpha == nullptr: o += acc, else o = fma(o, alpha[r], acc).
template <class Arch, class TV, int RB, int CB, bool Tail, bool Skip0>
ATTNKIT_INLINE void axpy_tile(index_t nk, int nlast, const float* ATTNKIT_RESTRICT p, index_t ldp,
                              const kv_rows<TV>& v, float* ATTNKIT_RESTRICT o, index_t ldo, const float* alpha,
                              index_t pf, line_feed* feed) noexcept {
  using V = vec<Arch>;
  using Reg = typename V::reg;
  constexpr int W = V::width;
  Reg acc[RB][CB];
  ATTNKIT_UNROLL for (int r = 0; r < RB; ++r)
    ATTNKIT_UNROLL for (int b = 0; b < CB; ++b) acc[r][b] = V::zero();
  [[maybe_unused]] const bool q4_aligned = v.c0 % 32 == 0;
  for (index_t j = 0; j < nk; ++j) {
    const kv_row<TV> vj = row_at(v, j);
    const float* pj = p + j * ldp;
    if (pf) prefetch_kv(v, j + pf, 1, (CB - 1) * W + (Tail ? nlast : W));
    Reg vr[CB];
    ATTNKIT_UNROLL for (int b = 0; b < CB; ++b) {
      if constexpr (!quantized_type<TV>)  // as dot_tile: a line at a time between the loads
        if (feed && (b * W * index_t(sizeof(TV))) % 64 < W * index_t(sizeof(TV))) feed->next();
      if (Tail && b == CB - 1) vr[b] = kv_load_n<Arch>(vj, b * W, nlast);
      else if constexpr (std::is_same_v<TV, qint4> && W > 1)  // group-aligned tile: nibble half known
        vr[b] = q4_aligned ? kv_load_q4<Arch>(vj, b * W / 32 * 32, (b * W % 32) / W) : kv_load<Arch>(vj, b * W);
      else vr[b] = kv_load<Arch>(vj, b * W);
      if constexpr (RB > 1) pin(vr[b]);
    }
    // qint8: the row's scale multiplies the weight (p s) instead of every value.
    const float f = row_scaled<TV> ? kv_factor(vj) : 1.f;
    ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) {
      if constexpr (Skip0)  // a zero weight skips its key: bitwise the same as fma(0, v, acc) for finite v
        if (pj[r] == 0.f) continue;
      Reg x = V::set1(row_scaled<TV> ? pj[r] * f : pj[r]);
      if constexpr (CB > 1) pin(x);
      ATTNKIT_UNROLL for (int b = 0; b < CB; ++b) acc[r][b] = V::fma(x, vr[b], acc[r][b]);
    }
  }
  ATTNKIT_UNROLL for (int r = 0; r < RB; ++r) {
    float* orow = o + r * ldo;
    const Reg a = V::set1(alpha ? alpha[r] : 1.f);
    ATTNKIT_UNROLL for (int b = 0; b < CB; ++b) {
      if (Tail && b == CB - 1) {
        const Reg ov = load_widen_n<Arch>(orow + b * W, nlast);
        store_n<Arch>(orow + b * W, alpha ? V::fma(ov, a, acc[r][b]) : ov + acc[r][b], nlast);
      } else {
        const Reg ov = V::load(orow + b * W);
        V::store(orow + b * W, alpha ? V::fma(ov, a, acc[r][b]) : ov + acc[r][b]);
      }
    }
  }
}

/// The last nv (0 < nv < CB) vectors of columns, nlast lanes valid in the last one.
template <class Arch, class TV, int RB, int CB, bool Skip0>
ATTNKIT_INLINE void axpy_col_tail(int nv, int nlast, index_t nk, const float* p, index_t ldp, const kv_rows<TV>& v,
                                  float* o, index_t ldo, const float* alpha, index_t pf, line_feed* feed) noexcept {
  if constexpr (CB > 1) {
    if (nv < CB) return axpy_col_tail<Arch, TV, RB, CB - 1, Skip0>(nv, nlast, nk, p, ldp, v, o, ldo, alpha, pf, feed);
  }
  if (nlast < vec<Arch>::width) axpy_tile<Arch, TV, RB, CB, true, Skip0>(nk, nlast, p, ldp, v, o, ldo, alpha, pf, feed);
  else axpy_tile<Arch, TV, RB, CB, false, Skip0>(nk, nlast, p, ldp, v, o, ldo, alpha, pf, feed);
}

/// RB rows, ncols columns (one column block), nk keys.
template <class Arch, class TV, int RB, bool Skip0>
void axpy_block(index_t ncols, index_t nk, const float* p, index_t ldp, const kv_rows<TV>& v, float* o,
                index_t ldo, const float* alpha, index_t pf, line_feed* feed) noexcept {
  constexpr int W = vec<Arch>::width;
  constexpr int CB = rm_blocking<Arch>::axpy_cb(RB);
  index_t c = 0;
  for (; c + CB * W <= ncols; c += CB * W)
    axpy_tile<Arch, TV, RB, CB, false, Skip0>(nk, W, p, ldp, v.cols(c), o + c, ldo, alpha, pf, feed);
  if (c < ncols) {
    const index_t rem = ncols - c;
    const int nv = static_cast<int>((rem + W - 1) / W);
    const int nlast = static_cast<int>(rem - (nv - 1) * W);
    axpy_col_tail<Arch, TV, RB, CB, Skip0>(nv, nlast, nk, p, ldp, v.cols(c), o + c, ldo, alpha, pf, feed);
  }
}

}  // namespace rowmajor_detail

/// S^T[j * lds + r] = sum_{c < d} q[r * ldq + c] * float(k[j * ldk + c])  for r < R, j < nk.
/// R >= 1 (any size; tuned for 1..64), d >= 1, nk >= 0. TK: float, bf16, fp16, or (kv_rows form)
/// a quantized type, dequantized in registers (quant.hpp; qint8: the row scale multiplies the
/// score). No alignment needed. Reads q/k rows only up to element d-1; writes st rows only up to
/// column R-1.
///
/// pf_rows: rows of k from k[0] at stride ldk that exist and may be prefetched (default: any; a
/// paged cache passes the rows left in the page, so the look-ahead never pulls in other pages).
/// ahead: the lines to prefetch instead of the kernel's own look-ahead, issued one per load of
/// the first row block and the rest at the end (the decode engine's head groups: group_feed).
template <class Arch, class TK>
void dot_rows(index_t R, index_t nk, index_t d, const float* q, index_t ldq, const kv_rows<TK>& k, float* st,
              index_t lds, index_t pf_rows = rowmajor_detail::kPrefetchAny, line_feed* ahead = nullptr) noexcept {
  static_assert(element_type<TK> || quantized_type<TK>,
                "dot_rows: TK must be float, attnkit::bf16, attnkit::fp16 or a quantized type");
  using namespace rowmajor_detail;
  constexpr int KC = rm_blocking<Arch>::dot_acc;  // keys per chunk: every row block reuses them from L1
  const index_t pf = prefetch_keys<char>(row_bytes<TK>(d));  // the first row block prefetches rows j + pf
  line_feed own, *feed = ahead ? ahead : look_ahead<Arch>(k, nk, d, pf, pf_rows, own);
  for (index_t j0 = 0; j0 < nk; j0 += KC) {
    const int kc = static_cast<int>(nk - j0 < KC ? nk - j0 : KC);
    const kv_rows<TK> kj = k.shift(j0);
    float* sj = st + j0 * lds;
    const index_t pfc = !feed && j0 + kc + pf <= pf_rows ? pf : 0;  // a burst's look-ahead stays in range
    index_t r = 0;
    for (; r + 4 <= R; r += 4) dot_block<Arch, TK, 4>(kc, d, q + r * ldq, ldq, kj, sj + r, lds, r == 0 ? pfc : 0, r == 0 ? feed : nullptr);
    if (R - r >= 2) {
      dot_block<Arch, TK, 2>(kc, d, q + r * ldq, ldq, kj, sj + r, lds, r == 0 ? pfc : 0, r == 0 ? feed : nullptr);
      r += 2;
    }
    if (R - r >= 1) dot_block<Arch, TK, 1>(kc, d, q + r * ldq, ldq, kj, sj + r, lds, r == 0 ? pfc : 0, r == 0 ? feed : nullptr);
  }
  if (feed) feed->rest();
}
template <class Arch, class TK>
void dot_rows(index_t R, index_t nk, index_t d, const float* q, index_t ldq, const TK* k, index_t ldk, float* st,
              index_t lds, index_t pf_rows = rowmajor_detail::kPrefetchAny) noexcept {
  static_assert(element_type<TK>, "dot_rows: TK must be float, attnkit::bf16 or attnkit::fp16");
  dot_rows<Arch>(R, nk, d, q, ldq, kv_rows<TK>{k, ldk}, st, lds, pf_rows);
}

/// o[r * ldo + c] = alpha[r] * o[r * ldo + c] + sum_{j < nk} p[j * ldp + r] * float(v[j * ldv + c])
/// for r < R, c < dv. alpha == nullptr means alpha = 1. nk == 0 just scales o. o must be finite
/// where alpha is 0 (0 * NaN is NaN). R >= 1, dv >= 1. TV: float, bf16, fp16 or (kv_rows form) a
/// quantized type (qint8: the row scale multiplies the weight, p s, once per key and row). No
/// alignment needed. Reads v rows only up to element dv-1, p rows only up to column R-1. Skip0: a
/// weight of exactly 0 skips its key (before any scale is applied), so NaN / Inf in v or its
/// scales there (masked cache slots) contribute nothing. pf_rows, ahead: as for dot_rows.
template <class Arch, bool Skip0 = false, class TV>
void axpy_rows(index_t R, index_t nk, index_t dv, const float* p, index_t ldp, const kv_rows<TV>& v, float* o,
               index_t ldo, const float* alpha, index_t pf_rows = rowmajor_detail::kPrefetchAny,
               line_feed* ahead = nullptr) noexcept {
  static_assert(element_type<TV> || quantized_type<TV>,
                "axpy_rows: TV must be float, attnkit::bf16, attnkit::fp16 or a quantized type");
  using namespace rowmajor_detail;
  constexpr index_t CW = rm_blocking<Arch>::axpy_cols;
  const index_t pf = prefetch_keys<char>(row_bytes<TV>(dv));  // the first row block prefetches rows j + pf
  line_feed own, *feed = ahead ? ahead : look_ahead<Arch>(v, nk, dv, pf, pf_rows, own);
  for (index_t j0 = 0; j0 < nk || j0 == 0; j0 += kKeyChunk) {
    const index_t kc = nk - j0 < kKeyChunk ? nk - j0 : kKeyChunk;
    const float* pj = p + j0 * ldp;
    const kv_rows<TV> vj = v.shift(j0);
    const float* a = j0 == 0 ? alpha : nullptr;  // later chunks add to the already scaled o
    const index_t pfc = !feed && j0 + kc + pf <= pf_rows ? pf : 0;
    for (index_t c0 = 0; c0 < dv; c0 += CW) {
      const index_t nc = dv - c0 < CW ? dv - c0 : CW;
      const kv_rows<TV> vc = vj.cols(c0);
      index_t r = 0;
      for (; r + 4 <= R; r += 4) axpy_block<Arch, TV, 4, Skip0>(nc, kc, pj + r, ldp, vc, o + r * ldo + c0, ldo, a ? a + r : nullptr, r == 0 ? pfc : 0, r == 0 ? feed : nullptr);
      if (R - r >= 2) {
        axpy_block<Arch, TV, 2, Skip0>(nc, kc, pj + r, ldp, vc, o + r * ldo + c0, ldo, a ? a + r : nullptr, r == 0 ? pfc : 0, r == 0 ? feed : nullptr);
        r += 2;
      }
      if (R - r >= 1) axpy_block<Arch, TV, 1, Skip0>(nc, kc, pj + r, ldp, vc, o + r * ldo + c0, ldo, a ? a + r : nullptr, r == 0 ? pfc : 0, r == 0 ? feed : nullptr);
    }
  }
  if (feed) feed->rest();
}
template <class Arch, class TV, bool Skip0 = false>
void axpy_rows(index_t R, index_t nk, index_t dv, const float* p, index_t ldp, const TV* v, index_t ldv, float* o,
               index_t ldo, const float* alpha, index_t pf_rows = rowmajor_detail::kPrefetchAny) noexcept {
  static_assert(element_type<TV>, "axpy_rows: TV must be float, attnkit::bf16 or attnkit::fp16");
  axpy_rows<Arch, Skip0>(R, nk, dv, p, ldp, kv_rows<TV>{v, ldv}, o, ldo, alpha, pf_rows);
}

}  // namespace attnkit::simd
