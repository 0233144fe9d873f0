// StreamingLLM decoding with attnkit: a KV cache that keeps 4 sink tokens and a window of recent
// tokens, prefilled with a prompt and then extended one token at a time. Each step is
// sink_attention (causal by construction) and is checked against the fp64 reference with the
// same mask; exits non-zero on a mismatch.
//
//   build/release/examples/streaming [prompt=512] [steps=16]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <attnkit/attnkit.hpp>
#include <attnkit/eigen.hpp>

namespace ak = attnkit;

int main(int argc, char** argv) {
  const ak::index_t prompt = argc > 1 ? std::atol(argv[1]) : 512, steps = argc > 2 ? std::atol(argv[2]) : 16;
  const ak::index_t Hq = 8, Hkv = 2, D = 64, cap = prompt + steps, sinks = 4, window = 128;
  std::mt19937 g(1);
  std::normal_distribution<float> n;
  // Cache [1, Hkv, cap, D]: capacity for every token; the view's length grows with each step.
  std::vector<float> kc(Hkv * cap * D), vc(Hkv * cap * D);
  for (auto& x : kc) x = n(g);
  for (auto& x : vc) x = n(g);
  auto cache = [&](std::vector<float>& b, ak::index_t len) {
    return ak::tensor_view<const float>{b.data(), {1, len, Hkv, D}, {Hkv * cap * D, D, cap * D, 1}};
  };
  const ak::attention_sinks s{sinks, window};
  double worst = 0;
  for (ak::index_t t = 0; t <= steps; ++t) {
    const ak::index_t len = prompt + t, sq = t == 0 ? prompt : 1;  // prefill, then one token per step
    std::vector<float> q(sq * Hq * D), o(sq * Hq * D);
    for (auto& x : q) x = n(g);
    const auto qv = ak::bshd(static_cast<const float*>(q.data()), 1, sq, Hq, D);
    ak::sink_attention(qv, cache(kc, len), cache(vc, len), ak::bshd(o.data(), 1, sq, Hq, D), s);
    const auto ref = ak::ref::attention<double>(qv, cache(kc, len), cache(vc, len), ak::streaming_mask(sinks, window));
    double e = 0;
    for (std::size_t i = 0; i < o.size(); ++i) e = std::max(e, std::abs(o[i] - ref.o[i]));
    worst = std::max(worst, e);
    if (t == 0 || t == steps)
      std::printf("%s: %ld queries over %ld cached tokens (4 sinks + window %ld), max error vs fp64 %.2e\n",
                  t == 0 ? "prefill" : "step", long(sq), long(len), long(window), e);
  }
  const bool ok = worst < 1e-4;
  std::printf("%s: max error over all steps %.2e\n", ok ? "OK" : "MISMATCH", worst);
  return ok ? 0 : 1;
}
