#pragma once
/// @file feature_map.hpp  Feature maps phi of linear attention, applied elementwise to q and k.
///
/// A feature map has `template <class T> T operator()(T x) const` (the scalar path: tails and the
/// fp64 reference, T = float or double) and may have `template <class Arch> void apply(float* x,
/// index_t n) const` (in place over a contiguous row; the kernel uses it when present).
/// `is_identity` lets the kernel skip the pass altogether.
#include <cmath>
#include <concepts>
#include <type_traits>
#include <utility>

#include "attnkit/config.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

/// phi(x) = x: lightning attention's (and plain linear attention's) feature map.
struct identity_features {
  static constexpr bool is_identity = true;
  template <class T>
  T operator()(T x) const noexcept { return x; }
};

/// phi(x) = elu(x) + 1 = x + 1 for x > 0, exp(x) otherwise (Katharopoulos et al.): positive, so
/// normalization never divides by a sign-changing sum.
struct elu_plus_one {
  static constexpr bool is_identity = false;
  template <class T>
  T operator()(T x) const noexcept { return x > T(0) ? x + T(1) : std::exp(x); }
  /// Vector path: attnkit's fast exp (about 2 ulp; exactly 0 below -87.3 where the true value
  /// would be subnormal).
  template <class Arch>
  void apply(float* x, index_t n) const noexcept {
    using V = simd::vec<Arch>;
    index_t i = 0;
    if constexpr (V::width > 1) {
      const auto one = V::set1(1.f), zero = V::zero();
      for (; i + V::width <= n; i += V::width) {
        const auto r = V::load(x + i);
        V::store(x + i, xsimd::select(r > zero, r + one, V::exp(xsimd::min(r, zero))));
      }
    }
    for (; i < n; ++i) x[i] = (*this)(x[i]);
  }
};

/// phi(x) = max(x, 0). All-zero features give a zero denominator: see linear_normalize's eps.
struct relu_features {
  static constexpr bool is_identity = false;
  template <class T>
  T operator()(T x) const noexcept { return x > T(0) ? x : T(0); }
  template <class Arch>
  void apply(float* x, index_t n) const noexcept {
    using V = simd::vec<Arch>;
    index_t i = 0;
    if constexpr (V::width > 1)
      for (; i + V::width <= n; i += V::width) V::store(x + i, V::max(V::load(x + i), V::zero()));
    for (; i < n; ++i) x[i] = (*this)(x[i]);
  }
};

/// A user feature map: any callable float -> float (a generic one also serves the fp64
/// reference in double), applied elementwise on the scalar path.
template <class F>
struct feature_fn {
  static constexpr bool is_identity = false;
  F f;
  template <class T>
  T operator()(T x) const {
    if constexpr (std::is_invocable_r_v<T, const F&, T>) return static_cast<T>(f(x));
    else return static_cast<T>(f(static_cast<float>(x)));
  }
};
template <class F>
feature_fn(F) -> feature_fn<F>;

/// What linear_attention accepts as its feature map.
template <class P>
concept feature_map = requires(const P& p, float x, double y) {
  { P::is_identity } -> std::convertible_to<bool>;
  { p(x) } -> std::convertible_to<float>;
  { p(y) } -> std::convertible_to<double>;
};

namespace detail {
/// x[0..n) = phi(x[0..n)) in place, by the vector path when the map has one.
template <class Arch, class P>
ATTNKIT_INLINE void apply_features(const P& phi, float* x, index_t n) {
  if constexpr (P::is_identity) return;
  else if constexpr (requires { phi.template apply<Arch>(x, n); }) phi.template apply<Arch>(x, n);
  else
    for (index_t i = 0; i < n; ++i) x[i] = phi(x[i]);
}
}  // namespace detail

}  // namespace attnkit
