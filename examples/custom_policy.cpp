// Policies of your own: a mask functor (FlexAttention's mask_mod) and a score functor
// (score_mod), combined with built-in policies, checked against the fp64 reference; exits
// non-zero on a mismatch. A full policy type is a small struct too: see include/attnkit/concepts/.
//
//   build/release/examples/custom_policy
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <attnkit/attnkit.hpp>
#include <attnkit/eigen.hpp>

namespace ak = attnkit;

int main() {
  const ak::index_t S = 300, H = 4, D = 64;
  std::mt19937 g(2);
  std::normal_distribution<float> n;
  std::vector<float> q(S * H * D), k(S * H * D), v(S * H * D), o(S * H * D);
  for (auto* b : {&q, &k, &v})
    for (auto& x : *b) x = n(g);
  const auto qv = ak::bshd(static_cast<const float*>(q.data()), 1, S, H, D);
  const auto kv = ak::bshd(static_cast<const float*>(k.data()), 1, S, H, D);
  const auto vv = ak::bshd(static_cast<const float*>(v.data()), 1, S, H, D);

  // Mask: every query also keeps every 16th key (a "global" stride), on top of a causal window;
  // combined with `&` and `|` like any built-in mask. keep(batch, head, query, key) -> bool.
  const auto strided = ak::mask_fn{[](ak::index_t, ak::index_t, ak::index_t, ak::index_t j) { return j % 16 == 0; }};
  const auto mask = (ak::sliding_window::from_total(64) | strided) & ak::causal{};
  // Score: a per-head relative-position bias, in float for the kernel and double for the
  // reference. f(score, batch, head, query, key) -> score.
  const auto bias = ak::score_fn{[](auto s, ak::index_t, ak::index_t h, ak::index_t i, ak::index_t j) {
    using T = decltype(s);
    return s - T(0.01) * T(h + 1) * T(i > j ? i - j : j - i);
  }};
  ak::flash_attention(qv, kv, vv, ak::bshd(o.data(), 1, S, H, D), mask, bias);
  const auto ref = ak::ref::attention<double>(qv, kv, vv, mask, bias);
  double e = 0;
  for (std::size_t i = 0; i < o.size(); ++i) e = std::max(e, std::abs(o[i] - ref.o[i]));
  const bool ok = e < 1e-4;
  std::printf("%s: causal window 64 | every 16th key, with a relative-position score: max error vs fp64 %.2e\n",
              ok ? "OK" : "MISMATCH", e);
  return ok ? 0 : 1;
}
