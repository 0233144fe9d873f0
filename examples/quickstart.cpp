// attnkit quickstart: several attention variants on random data, each checked against the fp64
// reference (max abs error, next to a naive fp32 implementation's) and timed.
//
//   build/release/examples/quickstart [seq_len=2048]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <attnkit/attnkit.hpp>
#include <attnkit/eigen.hpp>  // attnkit::ref: the fp64 reference (uses Eigen)

namespace ak = attnkit;

namespace {

std::vector<float> randn(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

template <class A, class B>
double max_err(const A& a, const B& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(double(a[i]) - double(b[i])));
  return e;
}

// Runs one variant with the flash kernel, times it (best of 5), and compares with the reference
// on the first `check_rows` queries' worth of a smaller problem so the fp64 check stays quick.
template <class... P>
bool demo(const char* name, ak::index_t S, ak::index_t Hq, ak::index_t Hkv, ak::index_t D, const P&... policies) {
  const auto q = randn(S * Hq * D, 1), k = randn(S * Hkv * D, 2), v = randn(S * Hkv * D, 3);
  std::vector<float> o(S * Hq * D);
  auto Q = ak::bshd(q.data(), 1, S, Hq, D), K = ak::bshd(k.data(), 1, S, Hkv, D), V = ak::bshd(v.data(), 1, S, Hkv, D);
  auto O = ak::bshd(o.data(), 1, S, Hq, D);

  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    ak::flash_attention(Q, K, V, O, policies...);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  // Count only the (query, key) pairs the mask keeps: that is the work done.
  const auto args = ak::resolve_args(policies...);
  double pairs = 0;
  for (ak::index_t i = 0; i < S; ++i)
    for (ak::index_t j = 0; j < S; ++j) pairs += args.mask.keep(ak::head_ctx{0, 0, 0}, i, j);
  const double gflops = 4.0 * D * pairs * Hq / best * 1e-9;

  // Accuracy on the last 64 queries (they see the most keys), vs fp64 and vs a naive fp32 version.
  const ak::index_t Sq = std::min<ak::index_t>(64, S);
  auto Qs = ak::bshd(q.data() + (S - Sq) * Hq * D, 1, Sq, Hq, D);
  std::vector<float> os(Sq * Hq * D);
  ak::flash_attention(Qs, K, V, ak::bshd(os.data(), 1, Sq, Hq, D), policies...);
  const auto ref = ak::ref::attention<double>(Qs, K, V, policies...);
  const auto naive = ak::ref::attention<float>(Qs, K, V, policies...);
  const double e = max_err(os, ref.o), en = max_err(naive.o, ref.o);
  std::printf("%-44s %8.2f ms %8.1f GFLOP/s   max err vs fp64 %.2e (naive fp32 %.2e)\n", name, best * 1e3, gflops, e,
              en);
  return e <= 2 * en + 1e-6;  // the accuracy criterion (with a small floor for exact naive results)
}

}  // namespace

int main(int argc, char** argv) {
  const ak::index_t S = argc > 1 ? std::atoll(argv[1]) : 2048;
  std::printf("attnkit %s, arch %s, seq %lld, fp32\n", ATTNKIT_VERSION_STRING, ak::default_arch::name(), (long long)S);
  std::printf("%-44s %11s %16s\n", "variant (flash kernel)", "time", "speed");

  bool ok = demo("causal, 8 heads, d=128", S, 8, 8, 128, ak::causal{});
  ok &= demo("non-causal, 8 heads, d=64", S, 8, 8, 64);
  ok &= demo("StreamingLLM: 4 sink tokens + window 256, causal, d=128", S, 8, 8, 128,
       (ak::sink_tokens{4} | ak::sliding_window::from_total(256)) & ak::causal{});
  const float sinks[8] = {0.5f, 1.f, -1.f, 2.f, 0.f, 3.f, -2.f, 1.5f};
  ok &= demo("GQA 8q/2kv, learned sink logit, causal, d=64", S, 8, 2, 64, ak::causal{}, ak::softmax_with_sink{sinks});
  ok &= demo("softcap 30 + causal (Gemma-2 style), d=128", S, 8, 8, 128, ak::softcap{30.f}, ak::causal{});
  if (!ok) std::printf("MISMATCH: a variant's error exceeds 2x the naive fp32 error\n");
  return ok ? 0 : 1;
}
