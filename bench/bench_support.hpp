#pragma once
/// @file bench_support.hpp  Shared by every bench/bench_*.cpp: the machine's SGEMM (compute) and
/// read-bandwidth (memory) ceilings measured in the same process, Google Benchmark counters that
/// report a kernel against them, deterministic random data, and a main() with sane defaults.
///
///   set_flop_counters(state, flops_per_iter, threads)   "GFLOP/s", "ceiling", "ceiling_GFLOP/s"
///   set_bytes_counters(state, bytes_per_iter[, threads]) "GB/s" (+ "bw_ceiling", "bw_ceiling_GB/s")
///
/// Rates are per wall-clock second: register every benchmark with ->UseRealTime() (the kernels run
/// on OpenMP threads, so the main thread's CPU time would overstate them by up to `threads`x).
///
/// Including this header registers BM_sgemm_ceiling/threads:{1,2} and
/// BM_read_bandwidth/threads:{1,2}, so the ceilings land in the same JSON as the kernels.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <xsimd/xsimd.hpp>

#include <attnkit/simd/prefetch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#ifndef ATTNKIT_BENCH_HAVE_DNNL
#define ATTNKIT_BENCH_HAVE_DNNL 0
#endif
#if ATTNKIT_BENCH_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace attnkit_bench {

// ---- random data ----------------------------------------------------------------------------

/// Fill p[0, n) with N(0, 1) samples from a fixed seed (splitmix64 + Box-Muller: fast, and the
/// same numbers on every platform and standard library).
inline void fill_randn(float* p, std::size_t n, std::uint64_t seed = 42) {
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E5ull;
  auto next = [&s]() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  // Uniform in (0, 1]: never 0, so log() is finite.
  auto uniform = [&]() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; };
  for (std::size_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double t = 2.0 * std::numbers::pi * uniform();
    p[i] = static_cast<float>(r * std::cos(t));
    if (i + 1 < n) p[i + 1] = static_cast<float>(r * std::sin(t));
  }
}
inline void fill_randn(std::vector<float>& v, std::uint64_t seed = 42) { fill_randn(v.data(), v.size(), seed); }
/// A vector of n N(0, 1) samples from `seed`.
inline std::vector<float> randn(std::size_t n, std::uint64_t seed = 42) {
  std::vector<float> v(n);
  fill_randn(v, seed);
  return v;
}

// ---- SGEMM ceiling --------------------------------------------------------------------------

/// Library that measures the SGEMM ceiling: "oneDNN" (dnnl_sgemm) when the bench was built with
/// it (ATTNKIT_BENCH_HAVE_DNNL), else "Eigen".
inline const char* sgemm_backend() noexcept { return ATTNKIT_BENCH_HAVE_DNNL ? "oneDNN" : "Eigen"; }

/// Square size of the ceiling's GEMM. 2048^3 * 2 = 17 GFLOP: large enough for both backends to
/// reach their plateau on this machine (checked against 3072 and 4096) and short enough
/// (~0.1 s per run on one Zen 5 core) for several runs.
inline constexpr int sgemm_ceiling_size = 2048;
/// Timed runs of the ceiling's GEMM: at least sgemm_ceiling_runs and sgemm_ceiling_seconds (at
/// most 4x the runs); the ceiling is the best of them. Interference from other processes only ever
/// slows a run down, so the best run is the closest to the machine's peak, and a longer window
/// makes catching one undisturbed run more likely on a shared machine.
inline constexpr int sgemm_ceiling_runs = 10;
inline constexpr double sgemm_ceiling_seconds = 1.5;

/// Sets OpenMP's and Eigen's thread counts for its lifetime (oneDNN's OpenMP runtime uses
/// omp_get_max_threads(); Eigen's GEMM uses Eigen::nbThreads()).
class scoped_threads {
 public:
  explicit scoped_threads(int threads) : eigen_prev_(Eigen::nbThreads()) {
#if defined(_OPENMP)
    omp_prev_ = omp_get_max_threads();
    omp_set_num_threads(threads);
#endif
    Eigen::setNbThreads(threads);
  }
  ~scoped_threads() {
#if defined(_OPENMP)
    omp_set_num_threads(omp_prev_);
#endif
    Eigen::setNbThreads(eigen_prev_);
  }
  scoped_threads(const scoped_threads&) = delete;
  scoped_threads& operator=(const scoped_threads&) = delete;

 private:
  int eigen_prev_;
  int omp_prev_ = 1;
};

/// C[M x N] = A[M x K] * B[K x N], all row-major and contiguous, on `threads` threads, with the
/// ceiling's backend.
inline void sgemm(int M, int N, int K, const float* A, const float* B, float* C, int threads) {
  scoped_threads guard(threads);
#if ATTNKIT_BENCH_HAVE_DNNL
  // dnnl_sgemm takes row-major matrices.
  if (dnnl_sgemm('N', 'N', M, N, K, 1.f, A, K, B, N, 0.f, C, N) != dnnl_success) {
    std::fprintf(stderr, "attnkit_bench: dnnl_sgemm failed\n");
    std::abort();
  }
#else
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMat>(C, M, N).noalias() =
      Eigen::Map<const RowMat>(A, M, K) * Eigen::Map<const RowMat>(B, K, N);
#endif
}

/// Measure the SGEMM ceiling now (no cache): best of at least `runs` square n^3 GEMMs (more while
/// under `seconds` in total, up to 4 * runs), in GFLOP/s.
inline double measure_sgemm_gflops(int threads, int n = sgemm_ceiling_size, int runs = sgemm_ceiling_runs,
                                   double seconds = sgemm_ceiling_seconds) {
  const std::size_t nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  const std::vector<float> A = randn(nn, 1001), B = randn(nn, 1002);
  std::vector<float> C(nn);
  for (int w = 0; w < 2; ++w) sgemm(n, n, n, A.data(), B.data(), C.data(), threads);  // JIT, pages, clocks
  double best = 0, total = 0;
  for (int r = 0; r < 4 * runs && (r < runs || total < seconds); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    sgemm(n, n, n, A.data(), B.data(), C.data(), threads);
    benchmark::DoNotOptimize(C.data());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * double(n) * n / s * 1e-9);
    total += s;
  }
  return best;
}

/// The machine's SGEMM ceiling in GFLOP/s for `threads` threads, measured once per thread count
/// in this process (see measure_sgemm_gflops) and cached. Prints the backend once and each
/// measured ceiling to stderr.
inline double sgemm_gflops(int threads) {
  static std::mutex mutex;
  static std::map<int, double> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  if (cache.empty())
    std::fprintf(stderr, "attnkit_bench: SGEMM ceiling backend: %s\n",
                 ATTNKIT_BENCH_HAVE_DNNL ? "oneDNN (dnnl_sgemm)" : "Eigen (GEMM product)");
  const double g = measure_sgemm_gflops(threads);
  std::fprintf(stderr, "attnkit_bench: SGEMM ceiling, %d thread(s), %d^3, best of >= %d runs / %.1f s: %.1f GFLOP/s\n",
               threads, sgemm_ceiling_size, sgemm_ceiling_runs, sgemm_ceiling_seconds, g);
  cache.emplace(threads, g);
  return g;
}

// ---- read-bandwidth ceiling -------------------------------------------------------------------

/// Bytes streamed by the bandwidth ceiling: 256 MiB, far beyond any last-level cache.
inline constexpr std::size_t read_ceiling_bytes = std::size_t(256) << 20;

/// The bandwidth ceiling's buffer (all ones), allocated and touched once, kept for the process.
inline const std::vector<float>& read_ceiling_buffer() {
  static const std::vector<float> buf(read_ceiling_bytes / sizeof(float), 1.f);
  return buf;
}

/// Sum of p[0, n) on `threads` threads: the read-bandwidth kernel. It must read as fast as the
/// machine allows, or every fraction reported against it is inflated: four independent vector
/// accumulators (one would be add-latency bound) and a software prefetch 32 KiB ahead (a core's
/// hardware prefetchers alone keep too few misses in flight). The one-accumulator sum used before
/// read 1.3-1.45x below the machine (bench/results/decode-xeon-2026-12-04.md).
inline float parallel_sum(const float* p, std::int64_t n, int threads) {
  using B = xsimd::batch<float>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size), U = 4 * W;
  constexpr std::uintptr_t ahead = 32768;
  float total = 0.f;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total)
#endif
  for (std::int64_t c = 0; c < n; c += 4096) {
    const std::int64_t e = std::min<std::int64_t>(n, c + 4096);
    B a0(0.f), a1(0.f), a2(0.f), a3(0.f);
    std::int64_t i = c;
    for (; i + U <= e; i += U) {
      attnkit::simd::prefetch_bytes(p + i, ahead, U * sizeof(float));
      a0 += B::load_unaligned(p + i);
      a1 += B::load_unaligned(p + i + W);
      a2 += B::load_unaligned(p + i + 2 * W);
      a3 += B::load_unaligned(p + i + 3 * W);
    }
    float acc = xsimd::hadd((a0 + a1) + (a2 + a3));
    for (; i < e; ++i) acc += p[i];
    total += acc;
  }
  (void)threads;
  return total;
}

/// The machine's DRAM read bandwidth in GB/s (1e9 bytes/s) for `threads` threads: best of 20
/// sums over read_ceiling_bytes, measured once per thread count and cached.
inline double read_gbps(int threads) {
  static std::mutex mutex;
  static std::map<int, double> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  const std::vector<float>& buf = read_ceiling_buffer();
  const std::int64_t n = static_cast<std::int64_t>(buf.size());
  benchmark::DoNotOptimize(parallel_sum(buf.data(), n, threads));
  double best = 0;
  for (int r = 0; r < 20; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(parallel_sum(buf.data(), n, threads));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(read_ceiling_bytes) / s * 1e-9);
  }
  std::fprintf(stderr, "attnkit_bench: read-bandwidth ceiling, %d thread(s), %zu MiB, best of 20: %.1f GB/s\n",
               threads, read_ceiling_bytes >> 20, best);
  cache.emplace(threads, best);
  return best;
}

// ---- counters -------------------------------------------------------------------------------

/// Counters for a kernel doing `flops_per_iter` floating-point operations per iteration on
/// `threads` threads: "GFLOP/s", "ceiling" (fraction of sgemm_gflops(threads)) and
/// "ceiling_GFLOP/s" (the ceiling itself). Call after the timing loop (the first call for a thread
/// count measures the ceiling, ~1 s). Needs ->UseRealTime() on the benchmark.
inline void set_flop_counters(benchmark::State& state, double flops_per_iter, int threads) {
  using C = benchmark::Counter;
  const double peak = sgemm_gflops(threads);
  state.counters["GFLOP/s"] = C(flops_per_iter * 1e-9, C::kIsIterationInvariantRate);
  state.counters["ceiling"] = C(flops_per_iter * 1e-9 / peak, C::kIsIterationInvariantRate);
  state.counters["ceiling_GFLOP/s"] = C(peak);
}

/// "GB/s" (1e9 bytes per second) for a kernel moving `bytes_per_iter` bytes per iteration. With
/// threads > 0 also "bw_ceiling" (fraction of read_gbps(threads)) and "bw_ceiling_GB/s". Data that
/// fits in cache and is reused across iterations can exceed the DRAM ceiling (fraction > 1).
inline void set_bytes_counters(benchmark::State& state, double bytes_per_iter, int threads = 0) {
  using C = benchmark::Counter;
  state.counters["GB/s"] = C(bytes_per_iter * 1e-9, C::kIsIterationInvariantRate);
  if (threads > 0) {
    const double peak = read_gbps(threads);
    state.counters["bw_ceiling"] = C(bytes_per_iter * 1e-9 / peak, C::kIsIterationInvariantRate);
    state.counters["bw_ceiling_GB/s"] = C(peak);
  }
}

// ---- ceiling benchmarks (registered by including this header) --------------------------------

/// BM_sgemm_ceiling/threads:T: the ceiling's GEMM as a benchmark of its own (its GFLOP/s) plus the
/// cached best-of ceiling ("ceiling_GFLOP/s"); the label names the backend.
inline void bm_sgemm_ceiling(benchmark::State& state, int threads) {
  const int n = sgemm_ceiling_size;
  const std::size_t nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  const std::vector<float> A = randn(nn, 1001), B = randn(nn, 1002);
  std::vector<float> C(nn);
  sgemm(n, n, n, A.data(), B.data(), C.data(), threads);
  for (auto _ : state) {
    sgemm(n, n, n, A.data(), B.data(), C.data(), threads);
    benchmark::ClobberMemory();
  }
  set_flop_counters(state, 2.0 * n * double(n) * n, threads);
  state.SetLabel(sgemm_backend());
}

/// BM_read_bandwidth/threads:T: the bandwidth ceiling's sum as a benchmark ("GB/s"), plus the
/// cached best-of ceiling ("bw_ceiling_GB/s").
inline void bm_read_bandwidth(benchmark::State& state, int threads) {
  const std::vector<float>& buf = read_ceiling_buffer();
  const std::int64_t n = static_cast<std::int64_t>(buf.size());
  benchmark::DoNotOptimize(parallel_sum(buf.data(), n, threads));
  for (auto _ : state) benchmark::DoNotOptimize(parallel_sum(buf.data(), n, threads));
  set_bytes_counters(state, double(read_ceiling_bytes), threads);
}

namespace detail {
inline const bool ceilings_registered = [] {
  for (int t : {1, 2}) {
    benchmark::RegisterBenchmark(("BM_sgemm_ceiling/threads:" + std::to_string(t)).c_str(), bm_sgemm_ceiling, t)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_read_bandwidth/threads:" + std::to_string(t)).c_str(), bm_read_bandwidth, t)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();
}  // namespace detail

// ---- main -------------------------------------------------------------------------------------

/// Default minimum time per benchmark (seconds) unless --benchmark_min_time is given: the full
/// sweeps then run in minutes. One iteration of a slow case (e.g. N = 8192) exceeds it anyway.
inline constexpr const char* default_min_time = "--benchmark_min_time=0.2";

/// Google Benchmark's main with attnkit's defaults (flags given on the command line win) and the
/// SGEMM backend in the JSON context ("sgemm_backend").
inline int run_main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string min_time = default_min_time;
  args.insert(args.begin() + (argc > 0 ? 1 : 0), min_time.data());  // later flags override it
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::AddCustomContext("sgemm_backend", sgemm_backend());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace attnkit_bench

/// Use instead of BENCHMARK_MAIN() to get attnkit_bench::run_main's defaults.
#define ATTNKIT_BENCH_MAIN() \
  int main(int argc, char** argv) { return ::attnkit_bench::run_main(argc, argv); }
