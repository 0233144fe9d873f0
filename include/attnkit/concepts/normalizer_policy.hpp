#pragma once
/// @file normalizer_policy.hpp  A normalizer turns a row of scores into weights, tile by tile,
/// with an explicit, mergeable per-row state (as FlashInfer's state_t).
#include <concepts>

#include "attnkit/core/context.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

/// Row state shared by the built-in normalizers: running max m and sum l of exp(x - m).
/// A row with nothing kept has m = -inf, l = 0 (the identity of merge).
struct row_state {
  float m;
  float l;
};

/// Requirements:
///  - `static constexpr policy_kind kind = policy_kind::normalizer;`
///  - `static constexpr bool has_lse;` whether an LSE exists (sigmoid: no);
///  - `row_state init() const`;
///  - `template <class Arch> void step(row_state* st, float* alpha, float* x, index_t ld,
///    index_t rows, index_t nk, float c) const`: one tile with rows as SIMD lanes: the logit of
///    row r and key j is c * x[j * ld + r] with c > 0 (masked ones are -inf; rows is a multiple of
///    vec<Arch>::width); kernels pass the softmax scale as c when no score policy needs the
///    scaled value first, else c = 1.
///    Turns x into unnormalized weights in place, updates st[r], and writes alpha[r], the factor by
///    which row r's accumulated output must be rescaled;
///  - `static row_state merge(row_state a, float& wa, row_state b, float& wb)`: combine two
///    partial states over disjoint key sets; wa/wb receive the factors for their accumulators;
///  - `float finalize(const head_ctx&, const row_state&, float& lse) const`: the factor that
///    turns the accumulated row into the output; writes the row's LSE (natural log of the
///    denominator) where has_lse;
///  - `template <class T> void reference(const head_ctx&, T* x, index_t n, T& lse) const`: the
///    straightforward two-pass formula in precision T (the fp64 oracle, the naive fp32 baseline);
///  - `void validate(const problem_dims&) const`.
template <class N>
concept normalizer_policy = requires(const N& n, row_state& st, float* x, double* xd, index_t len,
                                     const head_ctx& c, const problem_dims& d, float& fl, double& dl) {
  requires N::kind == policy_kind::normalizer;
  { N::has_lse } -> std::convertible_to<bool>;
  { n.init() } -> std::same_as<row_state>;
  n.template step<scalar>(&st, x, x, len, len, len, fl);
  { N::merge(st, fl, st, fl) } -> std::same_as<row_state>;
  { n.finalize(c, st, fl) } -> std::same_as<float>;
  n.reference(c, x, len, fl);
  n.reference(c, xd, len, dl);
  n.validate(d);
};

}  // namespace attnkit
