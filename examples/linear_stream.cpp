// Lightning (decayed linear) attention as a model uses it: prefill a prompt of N tokens with
// lightning_attention (the chunked path) returning the final state, then generate T tokens one at
// a time with lightning_step (the O(Dk * Dv) recurrence, continuing the state in place). Every
// output row (prompt and generated) and the final state are checked against the fp64 linear
// reference run over the whole sequence, by the library's criterion: kernel error vs fp64 at most
// 2x the naive fp32 recurrence's error plus a floor of 4 float ulps of the output's magnitude.
// Exits non-zero on a miss.
//
//   build/release/examples/linear_stream [prompt=4096] [steps=64]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include <attnkit/attnkit.hpp>
#include <attnkit/ref/linear.hpp>  // ref::linear_attention<T>: the token-by-token recurrence in T

namespace ak = attnkit;

namespace {

template <class A, class B>
double max_err(const A& a, const B& b, std::size_t n) {
  double e = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = std::abs(double(a[i]) - double(b[i]));
    e = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(e, d);
  }
  return e;
}
template <class A>
double max_abs(const A& a) {
  double m = 0;
  for (auto x : a) m = std::max(m, std::abs(double(x)));
  return m;
}

// The criterion; prints both errors.
bool check(const char* what, double e, double en, double ref_mag) {
  const double floor = 4.0 * std::numeric_limits<float>::epsilon() * std::max(1e-30, ref_mag);
  const bool ok = e <= 2.0 * en + floor;
  std::printf("  %-34s max err vs fp64 %.2e (naive fp32 %.2e, bound %.2e) %s\n", what, e, en, 2.0 * en + floor,
              ok ? "ok" : "MISS");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const ak::index_t N = argc > 1 ? std::atol(argv[1]) : 4096, T = argc > 2 ? std::atol(argv[2]) : 64;
  const ak::index_t H = 8, D = 128, L = N + T;  // 8 heads of d = 128 (MHA), batch 1
  if (N < 1 || T < 1) {
    std::fprintf(stderr, "usage: linear_stream [prompt >= 1] [steps >= 1]\n");
    return 2;
  }
  std::mt19937 g(3);
  std::normal_distribution<float> n;
  // The whole sequence's q, k, v [1, L, H, D]: the prompt is rows [0, N), generated token t is
  // row N + t (in a model it would come from the previous step's output; here it is random).
  std::vector<float> q(L * H * D), k(L * H * D), v(L * H * D), o(L * H * D, 0.f);
  for (auto* b : {&q, &k, &v})
    for (auto& x : *b) x = n(g);
  const std::vector<float> lambda = ak::lightning_decays(H);  // exp(-2^(-8h/H)): 0.61 .. 0.996
  const auto rows = [&](const std::vector<float>& b, ak::index_t t0, ak::index_t len) {
    return ak::bshd(b.data() + t0 * H * D, 1, len, H, D);
  };
  const auto out_rows = [&](ak::index_t t0, ak::index_t len) { return ak::bshd(o.data() + t0 * H * D, 1, len, H, D); };

  std::printf("attnkit %s, arch %s: lightning attention, %ld heads of d = %ld, prompt %ld, %ld generated tokens\n",
              ATTNKIT_VERSION_STRING, ak::default_arch::name(), long(H), long(D), long(N), long(T));

  // Prefill: the chunked kernel over the prompt, returning the state S [1, H, D, D]. Repeated 3
  // times (each run starts from a zero state and overwrites S) to report the best time.
  std::vector<float> S(H * D * D);
  double prefill = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    ak::lightning_attention(rows(q, 0, N), rows(k, 0, N), rows(v, 0, N), out_rows(0, N), lambda,
                            ak::linear_state{.out = S.data()});
    prefill = std::min(prefill, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  // Generation: one token per call, the state updated in place (lightning_step = Sq = 1 with
  // linear_state{S, S}). Each step runs once (it advances the state); the median step is reported.
  std::vector<double> step_s(T);
  for (ak::index_t t = 0; t < T; ++t) {
    const auto t0 = std::chrono::steady_clock::now();
    ak::lightning_step(rows(q, N + t, 1), rows(k, N + t, 1), rows(v, N + t, 1), out_rows(N + t, 1), lambda, S.data());
    step_s[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::vector<double> sorted = step_s;
  std::sort(sorted.begin(), sorted.end());
  const double step_median = sorted[sorted.size() / 2];

  // fp64 reference and naive fp32 recurrence over the whole sequence, in one causal pass.
  const ak::ref::linear_options opt{.causal = true, .decays = lambda};
  const auto ref = ak::ref::linear_attention<double>(rows(q, 0, L), rows(k, 0, L), rows(v, 0, L), {}, opt);
  const auto naive = ak::ref::linear_attention<float>(rows(q, 0, L), rows(k, 0, L), rows(v, 0, L), {}, opt);

  const std::size_t np = std::size_t(N * H * D), nt = std::size_t(T * H * D);
  const double mag = max_abs(ref.o);
  bool ok = true;
  ok &= check("prefill outputs (chunked)", max_err(o.data(), ref.o.data(), np), max_err(naive.o.data(), ref.o.data(), np),
              mag);
  ok &= check("generated outputs (lightning_step)", max_err(o.data() + np, ref.o.data() + np, nt),
              max_err(naive.o.data() + np, ref.o.data() + np, nt), mag);
  ok &= check("final state S", max_err(S, ref.state, S.size()), max_err(naive.state, ref.state, S.size()),
              max_abs(ref.state));
  for (float x : o)
    if (!std::isfinite(x)) ok = false;

  std::printf("time (wall clock, this machine may be shared with other jobs; prefill on the default executor,\n"
              "%d thread(s); a step this small runs on the calling thread): prefill %.2f us per prompt token\n"
              "(best of 3 runs of %ld tokens), generation %.2f us per step token (median of %ld steps)\n",
              ak::default_executor{}.concurrency(), prefill / double(N) * 1e6, long(N), step_median * 1e6, long(T));
  std::printf("%s\n", ok ? "OK" : "MISMATCH: an error exceeds 2x the naive fp32 error");
  return ok ? 0 : 1;
}
