// Packaging test consumer: dense causal attention through the public API of an installed (or
// add_subdirectory'd) attnkit, checked against the fp64 reference. Exit 0 iff it agrees.
#include <attnkit/attnkit.hpp>
#include <attnkit/eigen.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  constexpr attnkit::index_t B = 2, S = 19, H = 2, D = 16;
  const std::size_t n = static_cast<std::size_t>(B * S * H * D);
  std::vector<float> q(n), k(n), v(n), o(n, -1.0f);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto* x : {&q, &k, &v})
    for (float& e : *x) e = dist(rng);

  const auto qv = attnkit::bshd<const float>(q.data(), B, S, H, D);
  const auto kv = attnkit::bshd<const float>(k.data(), B, S, H, D);
  const auto vv = attnkit::bshd<const float>(v.data(), B, S, H, D);
  attnkit::dense_attention(qv, kv, vv, attnkit::bshd(o.data(), B, S, H, D), attnkit::causal{});
  const auto ref = attnkit::ref::attention<double>(qv, kv, vv, attnkit::causal{});

  if (ref.o.size() != n) {
    std::printf("FAIL: reference returned %zu outputs, expected %zu\n", ref.o.size(), n);
    return 1;
  }
  // Outputs are convex combinations of V rows (|v| <= 1), so fp32 error is a few ulps of 1.
  constexpr double tol = 1e-5;
  double max_err = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double err = std::abs(static_cast<double>(o[i]) - ref.o[i]);
    if (!(err <= tol)) {  // also catches NaN
      std::printf("FAIL: o[%zu] = %.9g, reference %.9g (|error| %.3g > %.1g)\n", i,
                  static_cast<double>(o[i]), ref.o[i], err, tol);
      return 1;
    }
    max_err = err > max_err ? err : max_err;
  }
  std::printf("attnkit %s: dense causal attention matches the fp64 reference (max |error| %.3g)\n",
              ATTNKIT_PACKAGE_HOW, max_err);
  return 0;
}
