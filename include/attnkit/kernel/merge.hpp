#pragma once
/// @file merge.hpp  merge_states: combine attention results computed over disjoint key sets
/// (KV split across devices or calls, a prefix cache plus new tokens, ...).
///
///   LSE = log sum_i exp(LSE_i),   O = sum_i O_i * exp(LSE_i - LSE)
///
/// A part with LSE_i = -inf (it kept no key) is the identity; if every part is -inf the row is
/// fully masked: O = 0, LSE = -inf. The operation is associative and commutative (up to rounding).
/// Exact for softmax attention (each O_i normalized by its own denominator). With a learned sink,
/// compute the parts without the sink and add it as one more part whose O is 0 and LSE = s_h.
#include <cmath>
#include <limits>
#include <span>

#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/validate.hpp"

namespace attnkit {

/// One partial result: O [B, Sq, Hq, Dv] and its LSE, contiguous float [B, Hq, Sq].
struct attention_state {
  tensor_view<const float> o;
  const float* lse;
};

/// out (and lse_out when not null) = the merge of `parts`. out must not overlap any part's O or
/// LSE; lse_out may be null. Every LSE must be finite or -inf (NaN / +inf: invalid_argument).
inline void merge_states(std::span<const attention_state> parts, tensor_view<float> out, float* lse_out = nullptr) {
  constexpr const char* fn = "merge_states";
  if (parts.empty()) detail::fail(fn, "parts: expected at least one partial state, got 0");
  detail::check_view(fn, "out", out);
  detail::check_distinct_elements(fn, "out", out);
  const index_t B = out.batch(), S = out.seq(), H = out.heads(), D = out.dim(), n_lse = B * H * S;
  const auto ro = detail::range_of(out);
  const auto rl = detail::range_of(lse_out, lse_out ? n_lse : 0);
  for (std::size_t p = 0; p < parts.size(); ++p) {
    detail::check_view(fn, "parts[i].o", parts[p].o);
    for (int ax = 0; ax < 4; ++ax)
      if (parts[p].o.extents[ax] != out.extents[ax])
        detail::fail(fn, "parts[", p, "].o: expected the shape of out, got extent ", parts[p].o.extents[ax],
                     " instead of ", out.extents[ax], " on axis ", ax);
    if (!parts[p].lse && n_lse > 0) detail::fail(fn, "parts[", p, "].lse: expected non-null, got nullptr");
    const auto rp = detail::range_of(parts[p].o), rpl = detail::range_of(parts[p].lse, n_lse);
    if (ro.overlaps(rp) || ro.overlaps(rpl)) detail::fail(fn, "out: expected memory disjoint from parts[", p, "]");
    if (rl.overlaps(rp) || rl.overlaps(rpl) || rl.overlaps(ro))
      detail::fail(fn, "lse_out: expected memory disjoint from out and parts[", p, "]");
  }
  // An LSE is a log of a sum of exponentials: finite or -inf (nothing kept). NaN or +inf would
  // turn every row it meets into NaN; reject it before anything is written.
  for (std::size_t p = 0; p < parts.size(); ++p)
    for (index_t li = 0; li < n_lse; ++li)
      if (std::isnan(parts[p].lse[li]) || parts[p].lse[li] == std::numeric_limits<float>::infinity())
        detail::fail(fn, "parts[", p, "].lse: expected finite values or -inf, got ", parts[p].lse[li], " at index ", li);
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t s = 0; s < S; ++s) {
        const index_t li = (b * H + h) * S + s;
        float m = neg_inf;
        for (const auto& p : parts) m = p.lse[li] > m ? p.lse[li] : m;
        float* dst = out.row(b, s, h);
        if (m == neg_inf) {  // every part fully masked
          for (index_t c = 0; c < D; ++c) dst[c] = 0.f;
          if (lse_out) lse_out[li] = neg_inf;
          continue;
        }
        float sum = 0.f;
        for (const auto& p : parts) sum += std::exp(p.lse[li] - m);  // exp(-inf) = 0: identity
        for (index_t c = 0; c < D; ++c) dst[c] = 0.f;
        for (const auto& p : parts) {
          const float w = std::exp(p.lse[li] - m) / sum;
          if (w == 0.f) continue;  // also skips a -inf part's O, whatever it holds
          const float* src = p.o.row(b, s, h);
          for (index_t c = 0; c < D; ++c) dst[c] += w * src[c];
        }
        if (lse_out) lse_out[li] = m + std::log(sum);
      }
}

}  // namespace attnkit
