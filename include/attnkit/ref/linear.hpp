#pragma once
/// @file linear.hpp  The oracle of linear / lightning attention: the token-by-token recurrence in
/// precision T, straight from the definition (DESIGN.md section 2):
///
///     S_t = lambda_h S_{t-1} + phi(k_t) v_t^T,   z_t = lambda_h z_{t-1} + phi(k_t)
///     o_t = scale * phi(q_t)^T S_t               (normalized: divided by scale * phi(q_t) . z_t
///                                                 (+|-) eps, eps with the denominator's sign)
///
/// Non-causal: S and z are the sums over all keys (no decay) and every query reads the final S.
/// T = double is the fp64 reference the kernels are tested against; T = float (with lambda and
/// every product in float, state updated one token at a time) is the naive fp32 implementation
/// whose error sets the accuracy bar.
#include <span>
#include <vector>

#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/types.hpp"
#include "attnkit/linear/feature_map.hpp"

namespace attnkit::ref {

/// Inputs of the reference beyond q, k, v and the feature map. Empty decays = all 1.
/// state_in [B,Hq,Dk,Dv] and z_in [B,Hq,Dk] (float) may be null (zero state).
struct linear_options {
  bool causal = true;
  std::span<const float> decays{};
  float scale = 1.f;
  bool normalize = false;
  float eps = 1e-6f;
  const float* state_in = nullptr;
  const float* z_in = nullptr;
};

/// o [B,Sq,Hq,Dv], the final state [B,Hq,Dk,Dv] and z [B,Hq,Dk], contiguous, in precision T.
template <class T>
struct linear_result {
  index_t batch = 0, sq = 0, hq = 0, dk = 0, dv = 0;
  std::vector<T> o, state, z;
  T out(index_t b, index_t i, index_t h, index_t c) const { return o[((b * sq + i) * hq + h) * dv + c]; }
};

template <class T, class TQ, class TK, class TV, class Phi = identity_features>
linear_result<T> linear_attention(tensor_view<TQ> q, tensor_view<TK> k, tensor_view<TV> v, const Phi& phi = {},
                                  const linear_options& opt = {}) {
  const index_t B = q.batch(), Sq = q.seq(), Sk = k.seq(), Hq = q.heads(), Hkv = k.heads(), Dk = q.dim(),
                Dv = v.dim(), group = Hq / Hkv;
  linear_result<T> r;
  r.batch = B, r.sq = Sq, r.hq = Hq, r.dk = Dk, r.dv = Dv;
  r.o.assign(B * Sq * Hq * Dv, T(0));
  r.state.assign(B * Hq * Dk * Dv, T(0));
  r.z.assign(B * Hq * Dk, T(0));
  std::vector<T> qf(Dk), kf(Dk), vf(Dv);
  const T scale = T(opt.scale), eps = T(opt.eps);
  auto emit = [&](index_t b, index_t i, index_t h, const T* S, const T* z) {
    for (index_t c = 0; c < Dk; ++c) qf[c] = T(phi(T(to_float(q(b, i, h, c))))) * scale;
    T den = 0;
    if (opt.normalize) {
      for (index_t c = 0; c < Dk; ++c) den += qf[c] * z[c];
      den = den >= T(0) ? den + eps : den - eps;
    }
    T* o = r.o.data() + ((b * Sq + i) * Hq + h) * Dv;
    for (index_t c = 0; c < Dk; ++c)
      for (index_t e = 0; e < Dv; ++e) o[e] += qf[c] * S[c * Dv + e];
    if (opt.normalize)
      for (index_t e = 0; e < Dv; ++e) o[e] /= den;
  };
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < Hq; ++h) {
      const index_t hk = h / group;
      const T lambda = opt.decays.empty() ? T(1) : T(opt.decays[h]);
      T* S = r.state.data() + (b * Hq + h) * Dk * Dv;
      T* z = r.z.data() + (b * Hq + h) * Dk;
      if (opt.state_in)
        for (index_t x = 0; x < Dk * Dv; ++x) S[x] = T(opt.state_in[(b * Hq + h) * Dk * Dv + x]);
      if (opt.z_in)
        for (index_t x = 0; x < Dk; ++x) z[x] = T(opt.z_in[(b * Hq + h) * Dk + x]);
      auto absorb = [&](index_t j, T lam) {
        for (index_t c = 0; c < Dk; ++c) kf[c] = T(phi(T(to_float(k(b, j, hk, c)))));
        for (index_t e = 0; e < Dv; ++e) vf[e] = T(to_float(v(b, j, hk, e)));
        for (index_t c = 0; c < Dk; ++c) {
          for (index_t e = 0; e < Dv; ++e) S[c * Dv + e] = lam * S[c * Dv + e] + kf[c] * vf[e];
          z[c] = lam * z[c] + kf[c];
        }
      };
      if (opt.causal) {  // Sq == Sk
        for (index_t t = 0; t < Sq; ++t) {
          absorb(t, lambda);
          emit(b, t, h, S, z);
        }
      } else {
        for (index_t j = 0; j < Sk; ++j) absorb(j, T(1));
        for (index_t i = 0; i < Sq; ++i) emit(b, i, h, S, z);
      }
    }
  return r;
}

}  // namespace attnkit::ref
