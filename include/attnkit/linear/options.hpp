#pragma once
/// @file options.hpp  Arguments of lightning_attention and linear_attention: per-head decays (and
/// the two standard decay schedules), recurrent state in/out, normalization, chunk tuning.
///
///     attnkit::lightning_attention(q, k, v, o, attnkit::lightning_decays(H),
///                                  attnkit::linear_state{.in = S, .out = S});
#include <cmath>
#include <concepts>
#include <limits>
#include <span>
#include <vector>

#include "attnkit/core/context.hpp"
#include "attnkit/score/alibi.hpp"

namespace attnkit {

/// Per-query-head decay lambda_h in (0, 1], one per query head (length Hq). lambda = 1 is plain
/// (undecayed) causal linear attention. The 5th argument of lightning_attention; an option of
/// linear_attention (causal only). Converts from anything std::span<const float> accepts
/// (std::vector<float>, std::array, a span). The data must outlive the call.
struct decay {
  static constexpr policy_kind kind = policy_kind::option;
  std::span<const float> lambda;

  constexpr decay() = default;
  template <class R>
    requires std::convertible_to<const R&, std::span<const float>>
  constexpr decay(const R& r) noexcept : lambda(r) {}  // NOLINT: implicit by design
};

/// Lightning Attention-2 / TransNormerLLM decays: lambda_h = exp(-slope_h) with the ALiBi slopes
/// 2^(-8 h / H), h = 1..H (non-powers of two interleave as in ALiBi; see alibi::standard_slopes).
/// With `layer`/`n_layers` (TransNormerLLM's per-layer schedule), slope_h is multiplied by
/// 1 - layer / (n_layers - 1) + 1e-5, so the last layer decays almost not at all.
inline std::vector<float> lightning_decays(index_t heads, index_t layer = 0, index_t n_layers = 1) {
  const std::vector<float> s = alibi::standard_slopes(heads);
  const double f = n_layers > 1 ? 1.0 - double(layer) / double(n_layers - 1) + 1e-5 : 1.0;
  std::vector<float> out(s.size());
  for (std::size_t h = 0; h < s.size(); ++h) out[h] = static_cast<float>(std::exp(-double(s[h]) * f));
  return out;
}

/// RetNet's multi-scale retention decays: lambda_h = 1 - 2^(-5 - h), h = 0..H-1.
inline std::vector<float> retention_decays(index_t heads) {
  std::vector<float> out(static_cast<std::size_t>(heads));
  for (index_t h = 0; h < heads; ++h) out[h] = static_cast<float>(1.0 - std::ldexp(1.0, int(-5 - h)));
  return out;
}

/// Recurrent state passed in and/or returned, fp32, contiguous:
///   S [B, Hq, Dk, Dv]  (S[b][h] = sum_s lambda_h^(t-s) phi(k_s) v_s^T, row c = feature c of k)
///   z [B, Hq, Dk]      (z[b][h] = sum_s lambda_h^(t-s) phi(k_s); only with linear_normalize)
/// A null `in` starts from zero; a null `out` discards the final state. `in == out` updates in
/// place (decode); otherwise in and out must not overlap. With linear_normalize, z_in is required
/// exactly when `in` is given, and z_out exactly when `out` is given (S and z belong together).
/// The state is per query head (the decay is), so GQA groups do not share it.
/// Calling with a state continues exactly where the call that produced it stopped: a prompt can
/// be processed in pieces of any length and then token by token (Sq = 1, O(Dk * Dv) per head).
struct linear_state {
  static constexpr policy_kind kind = policy_kind::option;
  const float* in = nullptr;
  float* out = nullptr;
  const float* z_in = nullptr;
  float* z_out = nullptr;
};

/// Normalize each output row by its total weight: o_t = num_t / (den_t (+|-) eps) with
/// num_t = sum_s w_ts v_s, den_t = sum_s w_ts = scale * phi(q_t) . z_t and w_ts = scale *
/// lambda^(t-s) phi(q_t) . phi(k_s). eps is added with den's sign (subtracted when den < 0), so
/// the divisor's magnitude is at least eps: a zero denominator (e.g. relu features that are all
/// zero) gives a finite output (0 when num is 0 too), never NaN. For positive feature maps
/// (elu_plus_one) this is the usual num / (den + eps). Default eps 1e-6.
struct linear_normalize {
  static constexpr policy_kind kind = policy_kind::option;
  float eps = 1e-6f;
};

/// Tuning of the chunked kernel. chunk: tokens per chunk (the intra-chunk dense block). Work per
/// token and head is 4 Dk Dv (state update and readout, independent of the chunk) plus about
/// chunk * (Dk + Dv) for the masked block, while small chunks make the state update a thin GEMM:
/// at Dk = Dv = 128 on Zen 5 the time is flat from 24 to 56 and 10% higher at 96; 48 is also a
/// multiple of the register block (6 rows AVX-512, 4 AVX2) and of the vector width.
/// Calls with Sq <= step_max (causal) run the token-by-token recurrence instead (O(Dk * Dv) per
/// token and head, working in the caller's state buffer), which is what decode uses.
struct linear_tiling {
  static constexpr policy_kind kind = policy_kind::option;
  index_t chunk = 48;
  index_t step_max = 4;
};

}  // namespace attnkit
