#pragma once
/// @file options.hpp  Optional arguments of the entry points, passed in any order with the
/// policies: `attnkit::flash_attention(q, k, v, o, causal{}, scale{0.1f}, lse_out{lse})`.
#include <cstddef>
#include <span>

#include "attnkit/core/context.hpp"

namespace attnkit {

/// Softmax scale applied to q . k before the score policy. Default 1/sqrt(Dk).
struct scale {
  static constexpr policy_kind kind = policy_kind::option;
  float value;
};
/// Key-axis position of query 0. Default Sk - Sq (bottom-right alignment; decode sees the cache).
struct query_offset {
  static constexpr policy_kind kind = policy_kind::option;
  index_t value;
};
/// Write each row's log-sum-exp (natural log of its softmax denominator, scale, bias and sink
/// included) to a contiguous float [B, Hq, Sq] buffer. Fully masked rows get -inf (s_h with a sink).
struct lse_out {
  static constexpr policy_kind kind = policy_kind::option;
  float* data;
};
/// dense_attention only: write the attention probabilities to a contiguous float [B, Hq, Sq, Sk].
struct probs_out {
  static constexpr policy_kind kind = policy_kind::option;
  float* data;
};
/// Write each key's attention mass sum_i p_ij (per query head) to a contiguous float [B, Hq, Sk]
/// buffer (what H2O-style KV eviction ranks keys by). last_queries = w > 0 sums only over the
/// last w queries (SnapKV's observation window; the rows before it cost nothing extra); 0: all.
/// flash keeps a q block's weights for it while they fit in 8 MiB of scratch per worker (tiling
/// rows x Sk floats: Sk up to ~21k at the default 96 rows) and recomputes the scores beyond; the
/// q blocks of one (batch, KV head) then run in order (they add into the same rows).
struct key_mass_out {
  static constexpr policy_kind kind = policy_kind::option;
  float* data;
  index_t last_queries = 0;
};
/// Write each row's maximum logit (scaled, after the score policy, over the keys it keeps; -inf
/// for a fully masked row; a sink logit not included) to a contiguous float buffer laid out as
/// the LSE ([B, Hq, Sq], or [Hq, total_q] for varlen queries): FlexAttention's max_scores. Only
/// for softmax-family normalizers (they keep the running maximum).
struct row_max_out {
  static constexpr policy_kind kind = policy_kind::option;
  float* data;
};
/// Caller-provided scratch: a call whose needs fit allocates nothing (see *_workspace_size()).
struct workspace {
  static constexpr policy_kind kind = policy_kind::option;
  std::span<std::byte> bytes;
};

/// How the prefill engine multiplies bf16 q, k and v where the arch has AVX512-BF16
/// (attnkit::avx512bf16): `pairs` (vdpbf16ps on bf16 pairs; P rounded to bf16 for P V),
/// `widened` (bf16 widened to fp32, fp32 FMAs, as on every other arch), or `automatic` (default):
/// pairs where vdpbf16ps outruns widening + FMA, i.e. on AMD Zen 4 / Zen 5, widened elsewhere
/// (on Intel Xeons it issues at half the FMA rate: bench/results/bf16-xeon-2026-12-04.md).
/// plan_of's reason names the choice. Requesting pairs for a call that cannot take them (not
/// all of q, k, v bf16, or an arch without AVX512-BF16) is an invalid_argument; the decode
/// engine and dense_attention widen in registers whatever is asked.
struct bf16_products {
  static constexpr policy_kind kind = policy_kind::option;
  enum mode_t { automatic, pairs, widened } mode = automatic;
};

/// Tile sizes of the attention mainloop (tuning knob). Defaults measured on AVX-512 (Zen 5): 96
/// rows share each 64-key K/V tile (32 KiB at d = 128: it stays in L1 across the row passes).
/// rows: query rows per task, all heads of a GQA group together (rounded to the SIMD width);
/// block_kv: keys per tile (dense_attention always uses one tile of all keys);
/// split_kv: flash with a single query block (decode) splits the keys into chunks of this many.
struct tiling {
  static constexpr policy_kind kind = policy_kind::option;
  index_t rows = 96;
  index_t block_kv = 64;
  index_t split_kv = 512;
};

}  // namespace attnkit
