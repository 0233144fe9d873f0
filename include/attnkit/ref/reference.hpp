#pragma once
/// @file reference.hpp  The oracle: straightforward materialized attention in precision T (Eigen
/// GEMMs, then every policy's scalar path element by element, then the normalizer's two-pass
/// formula). T = double is the fp64 reference every kernel is tested against; T = float is the
/// "naive fp32 implementation" whose error sets the accuracy bar (FlashAttention's criterion).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "attnkit/core/args.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/validate.hpp"
#include "attnkit/mask/combinators.hpp"

namespace attnkit::ref {

/// Everything a call can produce, contiguous: o [B,Sq,Hq,Dv], lse [B,Hq,Sq] (empty for
/// normalizers without one), key_mass [B,Hq,Sk], and probs [B,Hq,Sq,Sk] only when the call asked
/// for them (a probs_out argument; empty otherwise).
template <class T>
struct result {
  problem_dims dims{};
  std::vector<T> o, lse, probs, key_mass;
  T out(index_t b, index_t i, index_t h, index_t d) const { return o[((b * dims.sq + i) * dims.hq + h) * dims.dv + d]; }
};

/// Reference attention with the same arguments as the kernels (policies and options in any order;
/// executors are ignored). Outputs are returned in the result, never written through a pointer:
/// O, LSE and key mass always; the probabilities only when a `probs_out` argument is given (its
/// pointer is ignored; `probs_out{}` will do), as dense_attention writes them only when asked.
///
/// Memory: one (b, h) at a time. Besides the result, the working set is that head's Q, K, V and
/// its Sq x Sk score matrix (32 MiB in fp64 at Sq = Sk = 2048), independent of B and Hq; the
/// probabilities of every head (B * Hq * Sq * Sk values: 1 GiB at 2048 x 2048 x 32 heads) exist
/// only on request. The per-head products are the same Eigen GEMMs whether or not probabilities
/// are kept, so both forms give bitwise the same O, LSE and key mass.
template <class T, class TQ, class TK, class TV, class... Args>
result<T> attention(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, Args&&... args) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  constexpr bool keep_probs = detail::count_type<probs_out, Args...> > 0;
  const auto a = resolve_args(args...);
  problem_dims d{q.batch(), q.seq(), k.seq(), q.heads(), k.heads(), q.dim(), v.dim(), k.seq() - q.seq()};
  if (a.q_offset) d.q_offset = *a.q_offset;
  a.score.validate(d);
  a.mask.validate(d);
  a.norm.validate(d);
  const T sc = a.scale ? T(*a.scale) : T(1) / std::sqrt(T(d.dk));
  using N = decltype(a.norm);
  result<T> r;
  r.dims = d;
  r.o.assign(d.batch * d.sq * d.hq * d.dv, T(0));
  if (N::has_lse) r.lse.assign(d.batch * d.hq * d.sq, T(0));
  if (keep_probs) r.probs.assign(d.batch * d.hq * d.sq * d.sk, T(0));
  r.key_mass.assign(d.batch * d.hq * d.sk, T(0));
  const index_t group = d.hq / d.hkv;
  Mat Q(d.sq, d.dk), K(d.sk, d.dk), V(d.sk, d.dv), S(d.sq, d.sk);
  for (index_t b = 0; b < d.batch; ++b)
    for (index_t h = 0; h < d.hq; ++h) {
      const index_t hk = h / group;
      for (index_t i = 0; i < d.sq; ++i)
        for (index_t c = 0; c < d.dk; ++c) Q(i, c) = T(to_float(q(b, i, h, c)));
      for (index_t j = 0; j < d.sk; ++j) {
        for (index_t c = 0; c < d.dk; ++c) K(j, c) = T(to_float(k(b, j, hk, c)));
        for (index_t c = 0; c < d.dv; ++c) V(j, c) = T(to_float(v(b, j, hk, c)));
      }
      if (d.sk > 0 && d.sq > 0) S.noalias() = (Q * K.transpose()) * sc;
      const head_ctx ctx{b, h, d.q_offset};
      T* mass = r.key_mass.data() + (b * d.hq + h) * d.sk;
      for (index_t i = 0; i < d.sq; ++i) {
        T* row = S.data() + i * d.sk;
        for (index_t j = 0; j < d.sk; ++j)
          row[j] = a.mask.keep(ctx, i, j) ? a.score.apply(ctx, row[j], i, j) : -std::numeric_limits<T>::infinity();
        T lse = 0;
        a.norm.reference(ctx, row, d.sk, lse);
        if (N::has_lse) r.lse[(b * d.hq + h) * d.sq + i] = lse;
        for (index_t j = 0; j < d.sk; ++j) mass[j] += row[j];
        if constexpr (keep_probs) std::copy_n(row, d.sk, r.probs.data() + ((b * d.hq + h) * d.sq + i) * d.sk);
      }
      if (d.sk > 0 && d.sq > 0) {
        // A key of weight exactly 0 (masked) contributes nothing, whatever V holds: the GEMM runs
        // on V with non-finite entries zeroed, and those entries are added back only where the
        // weight is non-zero (0 * NaN would otherwise poison rows that never kept the key).
        Mat O;
        if (V.allFinite()) O.noalias() = S * V;
        else {
          const Mat Vf = V.unaryExpr([](T x) { return std::isfinite(x) ? x : T(0); });
          O.noalias() = S * Vf;
          for (index_t j = 0; j < d.sk; ++j)
            for (index_t c = 0; c < d.dv; ++c)
              if (!std::isfinite(V(j, c)))
                for (index_t i = 0; i < d.sq; ++i)
                  if (S(i, j) != T(0)) O(i, c) += S(i, j) * V(j, c);
        }
        for (index_t i = 0; i < d.sq; ++i)
          for (index_t c = 0; c < d.dv; ++c) r.o[((b * d.sq + i) * d.hq + h) * d.dv + c] = O(i, c);
      }
    }
  return r;
}

}  // namespace attnkit::ref
