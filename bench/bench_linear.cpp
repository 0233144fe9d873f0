// Linear / lightning attention benchmarks, fp32, batch 1, H = Hq = Hkv = 8, d = Dk = Dv = 128,
// 2 threads, lightning decays (attnkit::lightning_decays(8)):
//
//   BM_lightning/N:<N>            attnkit::lightning_attention, chunked (one call, whole sequence)
//   BM_recurrence/N:<N>           the straightforward token-by-token recurrence
//                                   S = lambda S + k v^T,  o = q^T S
//                                 as plain loops over a float state (vectorized by the compiler at
//                                 -O3 -march=native), heads split over the 2 threads
//   BM_lightning_recurrent/N:<N>  attnkit's own SIMD token-by-token recurrence (the decode step,
//                                 linear_tiling{.step_max = N}) over the whole sequence in one call:
//                                 what the chunked form gains over a well-vectorized recurrence
//   BM_lightning_decode/N:<N>     attnkit::lightning_attention called once per token (Sq = 1,
//                                 state in place): decode through the public API, call overhead
//                                 included
//   BM_flash_causal/N:<N>         attnkit::flash_attention with causal{} (softmax attention) at
//                                 the same shapes, N <= 16384: where linear attention starts to win
//
// N in {1024, 4096, 16384, 65536}; lightning and flash also at 64 ... 512 (the crossover). Counters: "ns/token" (wall time / N: constant for a linear-time
// kernel), "GFLOP/s" and "ceiling" (fraction of the SGEMM ceiling measured in this binary, see
// bench_support.hpp). FLOPs: linear kernels are credited with the recurrence's 4 * Dk * Dv per token
// and head (state update + readout; the chunked kernel's extra intra-chunk work is not counted);
// flash with 4 * d per unmasked (query, key) pair and head, as bench_attention.
//
// Run e.g.:  bench_linear --benchmark_filter='lightning|recurrence|flash'
//            bench_linear --benchmark_filter='BM_lightning/' --benchmark_repetitions=3
#include <attnkit/attnkit.hpp>
#include <attnkit/kernel/linear.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "bench_support.hpp"

namespace {

namespace ab = attnkit_bench;
constexpr int kHeads = 8, kDim = 128, kThreads = 2;

struct problem {
  int n = 0;
  std::vector<float> q, k, v, o, state;
  std::vector<float> decays;
};

// The last length's tensors are kept, so consecutive benchmarks reuse (and do not re-touch) them.
problem& data_for(int n) {
  static problem p;
  if (p.n == n) return p;
  p = problem{};
  p.n = n;
  const std::size_t sz = std::size_t(n) * kHeads * kDim;
  p.q = ab::randn(sz, 1);
  p.k = ab::randn(sz, 2);
  p.v = ab::randn(sz, 3);
  // Unit-norm-ish q, k so that the undecayed heads' outputs stay O(sqrt(N)) (numbers, not speed).
  for (auto* t : {&p.q, &p.k})
    for (auto& x : *t) x *= 0.088f;
  p.o.assign(sz, 0.f);
  p.state.assign(std::size_t(kHeads) * kDim * kDim, 0.f);
  p.decays = attnkit::lightning_decays(kHeads);
  return p;
}

// Times each iteration (manual time = wall time). Counters: "ns/token" (mean wall time per
// token) and "best_ns/token" (the fastest iteration): on a shared machine another process taking
// one of the two cores stalls a whole call (a scheduler slice, ~10 ms, dwarfs a 2 ms call), and
// interference only ever slows a run down, so the best iteration is the kernel's own speed (as
// bench_support's ceilings are best-of).
template <class F>
void timed_loop(benchmark::State& state, int n, F&& body) {
  double total = 0, best = 1e300;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    total += s;
    best = std::min(best, s);
  }
  state.counters["ns/token"] = benchmark::Counter(total * 1e9 / (double(state.iterations()) * n));
  state.counters["best_ns/token"] = benchmark::Counter(best * 1e9 / n);
}

void set_linear_flops(benchmark::State& state, int n) {
  ab::set_flop_counters(state, 4.0 * n * double(kDim) * kDim * kHeads, kThreads);
}

// q, k, v, o of the first n tokens, [1, n, H, d].
auto views(problem& p, int n) {
  return std::tuple{attnkit::bshd<const float>(p.q.data(), 1, n, kHeads, kDim),
                    attnkit::bshd<const float>(p.k.data(), 1, n, kHeads, kDim),
                    attnkit::bshd<const float>(p.v.data(), 1, n, kHeads, kDim),
                    attnkit::bshd(p.o.data(), 1, n, kHeads, kDim)};
}

void bm_lightning(benchmark::State& state) {
  const int n = int(state.range(0));
  problem& p = data_for(n);
  const auto [q, k, v, o] = views(p, n);
  auto run = [&] { attnkit::lightning_attention(q, k, v, o, p.decays, attnkit::openmp{kThreads}); };
  run();  // scratch and pages warm
  timed_loop(state, n, run);
  set_linear_flops(state, n);
}

void bm_lightning_recurrent(benchmark::State& state) {
  const int n = int(state.range(0));
  problem& p = data_for(n);
  const auto [q, k, v, o] = views(p, n);
  auto run = [&] {
    attnkit::lightning_attention(q, k, v, o, p.decays, attnkit::openmp{kThreads},
                                 attnkit::linear_tiling{.chunk = 48, .step_max = n});
  };
  run();
  timed_loop(state, n, run);
  set_linear_flops(state, n);
}

// The straightforward recurrence, one (head) task per OpenMP iteration.
void recurrence(problem& p, int n) {
#pragma omp parallel for num_threads(kThreads) schedule(static)
  for (int h = 0; h < kHeads; ++h) {
    std::vector<float> S(std::size_t(kDim) * kDim, 0.f);
    const float lambda = p.decays[h];
    for (int t = 0; t < n; ++t) {
      const float* q = p.q.data() + (std::size_t(t) * kHeads + h) * kDim;
      const float* k = p.k.data() + (std::size_t(t) * kHeads + h) * kDim;
      const float* v = p.v.data() + (std::size_t(t) * kHeads + h) * kDim;
      float* o = p.o.data() + (std::size_t(t) * kHeads + h) * kDim;
      for (int e = 0; e < kDim; ++e) o[e] = 0.f;
      for (int c = 0; c < kDim; ++c) {
        float* s = S.data() + std::size_t(c) * kDim;
        for (int e = 0; e < kDim; ++e) {
          s[e] = lambda * s[e] + k[c] * v[e];
          o[e] += q[c] * s[e];
        }
      }
    }
  }
}

void bm_recurrence(benchmark::State& state) {
  const int n = int(state.range(0));
  problem& p = data_for(n);
  recurrence(p, std::min(n, 256));
  timed_loop(state, n, [&] { recurrence(p, n); });
  set_linear_flops(state, n);
}

// One API call per token, state updated in place (what a decode loop does).
void bm_lightning_decode(benchmark::State& state) {
  const int n = int(state.range(0));
  problem& p = data_for(n);
  auto run = [&] {
    std::fill(p.state.begin(), p.state.end(), 0.f);
    for (int t = 0; t < n; ++t) {
      const std::size_t off = std::size_t(t) * kHeads * kDim;
      attnkit::lightning_attention(attnkit::bshd<const float>(p.q.data() + off, 1, 1, kHeads, kDim),
                                   attnkit::bshd<const float>(p.k.data() + off, 1, 1, kHeads, kDim),
                                   attnkit::bshd<const float>(p.v.data() + off, 1, 1, kHeads, kDim),
                                   attnkit::bshd(p.o.data() + off, 1, 1, kHeads, kDim), p.decays,
                                   attnkit::linear_state{p.state.data(), p.state.data()}, attnkit::openmp{kThreads});
    }
  };
  run();
  timed_loop(state, n, run);
  set_linear_flops(state, n);
}

void bm_flash_causal(benchmark::State& state) {
  const int n = int(state.range(0));
  problem& p = data_for(n);
  const auto [q, k, v, o] = views(p, n);
  auto run = [&] { attnkit::flash_attention(q, k, v, o, attnkit::causal{}, attnkit::openmp{kThreads}); };
  run();
  timed_loop(state, n, run);
  ab::set_flop_counters(state, 4.0 * kDim * kHeads * (double(n) * (n + 1) / 2), kThreads);
}

const bool registered = [] {
  // At least ~1 s per benchmark (a few iterations even at N = 65536) so that "best_ns/token" has
  // several runs to choose from.
  auto reg = [](const char* name, void (*fn)(benchmark::State&), std::initializer_list<int> ns) {
    for (int n : ns)
      benchmark::RegisterBenchmark((std::string(name) + "/N:" + std::to_string(n)).c_str(), fn)
          ->Arg(n)
          ->UseManualTime()
          ->MinTime(1.0)
          ->Unit(benchmark::kMillisecond);
  };
  reg("BM_lightning", bm_lightning, {64, 128, 256, 512, 1024, 4096, 16384, 65536});
  reg("BM_recurrence", bm_recurrence, {1024, 4096, 16384, 65536});
  reg("BM_lightning_recurrent", bm_lightning_recurrent, {1024, 4096, 16384, 65536});
  reg("BM_lightning_decode", bm_lightning_decode, {1024, 4096});
  reg("BM_flash_causal", bm_flash_causal, {64, 128, 256, 512, 1024, 4096, 16384});
  return true;
}();

}  // namespace

ATTNKIT_BENCH_MAIN()
