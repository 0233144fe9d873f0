// Attention benchmarks: attnkit's flash and dense kernels against a straightforward Eigen
// materialized attention, fp32, batch 1.
//
//   prefill  BM_<kernel>/N:<N>/d:<d>/threads:<t>     H = Hq = Hkv = 8, Sq = Sk = N
//            kernels: flash_causal, flash, dense, eigen, eigen_causal
//            N in {512, ..., 8192}, d in {64, 128}, threads in {1, 2}
//   bf16     BM_flash_bf16[_pairs][_causal]/N:<N>/d:<d>/threads:<t>, N in {1024, 4096}: bf16 Q/K/V
//            widened to fp32 (xsimd's default arch) or in bf16 pairs (attnkit::avx512bf16, the
//            default arch where the compiler targets AVX512-BF16), against
//            BM_bf16_dot_ceiling (peak vdpbf16ps and vfmadd231ps GFLOP/s, same process)
//   decode   BM_<kernel>_decode/Sk:<Sk>/threads:<t>   Sq = 1, Hq = 32, Hkv = 8, d = 128
//            kernels: flash, dense; Sk in {1024, 4096, 16384}
//
// FLOPs = 4 * d * (unmasked (i, j) pairs) * Hq: causal counts N(N+1)/2 pairs. The eigen_causal
// baseline computes the full N x N products and masks them, but is credited with the causal FLOPs
// only, so its GFLOP/s is "useful work per second", comparable to flash_causal's.
// Decode also reports GB/s with bytes = K + V read once (2 * Sk * Hkv * d * 4).
// ATTNKIT_BENCH_CHECK=1 also checks every attnkit kernel's output against the Eigen baseline.
//
// Run e.g.:  bench_attention --benchmark_filter='N:(512|1024|2048)/|ceiling|bandwidth'
//            bench_attention --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//                            --benchmark_out=attention.json --benchmark_out_format=json
#include <attnkit/attnkit.hpp>

#include <Eigen/Core>

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "bench_support.hpp"

namespace {

namespace ab = attnkit_bench;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstHeadMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using HeadMap = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;

// ---- data: Q [1, Sq, Hq, d], K/V [1, Sk, Hkv, d], O [1, Sq, Hq, d], contiguous (bshd) ---------

struct shape {
  int sq, sk, hq, hkv, d;
  bool operator==(const shape&) const = default;
};

struct problem {
  shape s{};
  std::vector<float> q, k, v, o;
  std::vector<attnkit::bf16> qb, kb, vb;  // the same values rounded to bf16 (the bf16 kernels)
};

// The last shape's tensors are kept: benchmarks are registered shape by shape, so consecutive
// kernels reuse the same data instead of regenerating (and first-touching) it.
problem& data_for(const shape& s) {
  static problem p;
  if (p.s == s && !p.q.empty()) return p;
  p = problem{};
  p.s = s;
  const auto n = [](std::int64_t a, std::int64_t b, std::int64_t c) { return static_cast<std::size_t>(a * b * c); };
  p.q = ab::randn(n(s.sq, s.hq, s.d), 1);
  p.k = ab::randn(n(s.sk, s.hkv, s.d), 2);
  p.v = ab::randn(n(s.sk, s.hkv, s.d), 3);
  p.o.assign(n(s.sq, s.hq, s.d), 0.f);
  const auto round = [](const std::vector<float>& x) {
    std::vector<attnkit::bf16> r(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) r[i] = attnkit::bf16(x[i]);
    return r;
  };
  p.qb = round(p.q), p.kb = round(p.k), p.vb = round(p.v);
  return p;
}

// ---- the Eigen baseline: per head S = scale Q K^T, row softmax, O = P V -------------------------

// One head's S at a time (N x N floats: 256 MB at N = 8192), kept across calls.
RowMat& eigen_scores(int sq, int sk) {
  static RowMat S;
  if (S.rows() != sq || S.cols() != sk) {
    S = RowMat();  // free the old one first
    S.resize(sq, sk);
    S.setZero();  // first touch outside the timed loop
  }
  return S;
}

void eigen_attention(const problem& p, float* out, bool causal, int threads) {
  // Plain ints (not a structured binding): they are used inside the OpenMP region.
  const int sq = p.s.sq, sk = p.s.sk, hq = p.s.hq, hkv = p.s.hkv, d = p.s.d;
  const int g = hq / hkv;
  const float scale = 1.f / std::sqrt(float(d));
  RowMat& S = eigen_scores(sq, sk);
  Eigen::setNbThreads(threads);
  for (int h = 0; h < hq; ++h) {
    const int hk = h / g;
    const ConstHeadMap Q(p.q.data() + h * d, sq, d, Eigen::OuterStride<>(hq * d));
    const ConstHeadMap K(p.k.data() + hk * d, sk, d, Eigen::OuterStride<>(hkv * d));
    const ConstHeadMap V(p.v.data() + hk * d, sk, d, Eigen::OuterStride<>(hkv * d));
    HeadMap O(out + h * d, sq, d, Eigen::OuterStride<>(hq * d));
    S.noalias() = (scale * Q) * K.transpose();  // the scalar folds into the GEMM's alpha
#pragma omp parallel for num_threads(threads) schedule(static, 16)
    for (int i = 0; i < sq; ++i) {
      // causal (bottom-right aligned): keep j <= i + sk - sq; masked entries become 0.
      const int len = causal ? std::min(sk, i + sk - sq + 1) : sk;
      if (len <= 0) {
        S.row(i).setZero();
        continue;
      }
      auto r = S.row(i).head(len).array();
      r = (r - r.maxCoeff()).exp();
      r *= 1.f / r.sum();
      if (len < sk) S.row(i).tail(sk - len).setZero();
    }
    O.noalias() = S * V;
  }
}

// ---- benchmarks -----------------------------------------------------------------------------

// bf16 Q/K/V: flash_bf16* widen to fp32 (xsimd's default arch); flash_bf16_pairs* run the bf16
// pair products (attnkit::avx512bf16 with bf16_products::pairs, built where the compiler flags
// allow AVX512-BF16).
enum class kernel { flash_causal, flash, dense, eigen, eigen_causal, flash_bf16, flash_bf16_causal, flash_bf16_pairs,
                    flash_bf16_pairs_causal };

const char* name_of(kernel k) {
  switch (k) {
    case kernel::flash_causal: return "flash_causal";
    case kernel::flash: return "flash";
    case kernel::dense: return "dense";
    case kernel::eigen: return "eigen";
    case kernel::eigen_causal: return "eigen_causal";
    case kernel::flash_bf16: return "flash_bf16";
    case kernel::flash_bf16_causal: return "flash_bf16_causal";
    case kernel::flash_bf16_pairs: return "flash_bf16_pairs";
    case kernel::flash_bf16_pairs_causal: return "flash_bf16_pairs_causal";
  }
  return "?";
}
bool is_causal(kernel k) {
  return k == kernel::flash_causal || k == kernel::eigen_causal || k == kernel::flash_bf16_causal ||
         k == kernel::flash_bf16_pairs_causal;
}
bool is_bf16(kernel k) { return k >= kernel::flash_bf16; }
bool is_pairs(kernel k) { return k == kernel::flash_bf16_pairs || k == kernel::flash_bf16_pairs_causal; }

// The bf16 kernels: Arch is xsimd's default arch (widening) or avx512bf16 (pairs).
template <class Arch>
void run_bf16(problem& p, bool causal, int threads) {
  const auto [sq, sk, hq, hkv, d] = p.s;
  const auto q = attnkit::bshd(static_cast<const attnkit::bf16*>(p.qb.data()), 1, sq, hq, d);
  const auto k = attnkit::bshd(static_cast<const attnkit::bf16*>(p.kb.data()), 1, sk, hkv, d);
  const auto v = attnkit::bshd(static_cast<const attnkit::bf16*>(p.vb.data()), 1, sk, hkv, d);
  const auto o = attnkit::bshd(p.o.data(), 1, sq, hq, d);
  const attnkit::openmp exec{threads};
  // The pair kernels ask for the pairs: by default the engine takes them on AMD CPUs only.
  constexpr attnkit::bf16_products how{attnkit::simd::bf16_dot_arch<Arch> ? attnkit::bf16_products::pairs
                                                                         : attnkit::bf16_products::automatic};
  if (causal) attnkit::flash_attention<Arch>(q, k, v, o, attnkit::causal{}, exec, how);
  else attnkit::flash_attention<Arch>(q, k, v, o, exec, how);
}

void run_kernel(kernel kind, problem& p, int threads) {
  const auto [sq, sk, hq, hkv, d] = p.s;
  const auto q = attnkit::bshd(static_cast<const float*>(p.q.data()), 1, sq, hq, d);
  const auto k = attnkit::bshd(static_cast<const float*>(p.k.data()), 1, sk, hkv, d);
  const auto v = attnkit::bshd(static_cast<const float*>(p.v.data()), 1, sk, hkv, d);
  const auto o = attnkit::bshd(p.o.data(), 1, sq, hq, d);
  const attnkit::openmp exec{threads};
  switch (kind) {
    case kernel::flash_causal: attnkit::flash_attention(q, k, v, o, attnkit::causal{}, exec); break;
    case kernel::flash: attnkit::flash_attention(q, k, v, o, exec); break;
    case kernel::dense: attnkit::dense_attention(q, k, v, o, exec); break;
    case kernel::eigen: eigen_attention(p, p.o.data(), false, threads); break;
    case kernel::eigen_causal: eigen_attention(p, p.o.data(), true, threads); break;
    case kernel::flash_bf16:
    case kernel::flash_bf16_causal: run_bf16<xsimd::default_arch>(p, is_causal(kind), threads); break;
    case kernel::flash_bf16_pairs:
    case kernel::flash_bf16_pairs_causal:
#if ATTNKIT_WITH_AVX512BF16
      run_bf16<attnkit::avx512bf16>(p, is_causal(kind), threads);
#endif
      break;
  }
}

// Unmasked (i, j) pairs for one head: causal keeps j <= i + sk - sq.
double pairs(const shape& s, bool causal) {
  if (!causal) return double(s.sq) * s.sk;
  double n = 0;
  for (std::int64_t i = 0; i < s.sq; ++i) n += double(std::clamp<std::int64_t>(i + s.sk - s.sq + 1, 0, s.sk));
  return n;
}

// ATTNKIT_BENCH_CHECK=1 in the environment: after timing, compare each attnkit kernel's output
// with the Eigen baseline ("max_err" counter; the benchmark errors out above 1e-3).
bool check_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("ATTNKIT_BENCH_CHECK");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

void bm_attention(benchmark::State& state, kernel kind, shape s, int threads) {
  if (is_pairs(kind) && !(ATTNKIT_WITH_AVX512BF16 && attnkit::arch_available<attnkit::avx512bf16>())) {
    state.SkipWithError("needs AVX512-BF16 (compiler flags and CPU)");
    return;
  }
  problem& p = data_for(s);
  run_kernel(kind, p, threads);  // warm-up: thread scratch, Eigen's S, output pages
  for (auto _ : state) {
    run_kernel(kind, p, threads);
    benchmark::ClobberMemory();
  }
  ab::set_flop_counters(state, 4.0 * s.d * pairs(s, is_causal(kind)) * s.hq, threads);
  if (s.sq == 1) ab::set_bytes_counters(state, 2.0 * s.sk * s.hkv * s.d * sizeof(float), threads);
  if (check_enabled() && kind != kernel::eigen && kind != kernel::eigen_causal && !is_bf16(kind)) {
    // The kernel's last output against the Eigen baseline with the same mask.
    std::vector<float> ref(p.o.size());
    eigen_attention(p, ref.data(), is_causal(kind), threads);
    double err = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) err = std::max(err, double(std::abs(p.o[i] - ref[i])));
    state.counters["max_err"] = err;
    if (!(err <= 1e-3)) state.SkipWithError("output differs from the Eigen baseline by more than 1e-3");
  }
}

// BM_bf16_dot_ceiling/threads:T: the issue rate of vdpbf16ps (4 flops per fp32 lane) and of
// vfmadd231ps (2 per lane) on register operands, 24 independent accumulators: the peak GFLOP/s of
// any bf16 pair product and of any fp32 FMA product on this machine ("bf16_dot_GFLOP/s",
// "fma_GFLOP/s"). The bf16 pair path pays only where their ratio is well above 1.
#if ATTNKIT_WITH_AVX512BF16
template <bool Bf16>
__attribute__((noinline)) double peak_loop(long n) {
  __m512 acc[24];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512 x = _mm512_set1_ps(1e-9f), y = _mm512_set1_ps(1.f);
  benchmark::DoNotOptimize(x);
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < 24; ++j)
      acc[j] = Bf16 ? _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_castps_si512(x), (__m512bh)_mm512_castps_si512(y))
                    : _mm512_fmadd_ps(x, y, acc[j]);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& a : acc) benchmark::DoNotOptimize(a);
  return 24.0 * n * 16 * (Bf16 ? 4 : 2) / s * 1e-9;
}
#endif
void bm_bf16_dot_ceiling(benchmark::State& state, int threads) {
#if ATTNKIT_WITH_AVX512BF16
  if (!attnkit::arch_available<attnkit::avx512bf16>()) {
    state.SkipWithError("the CPU lacks AVX512-BF16");
    return;
  }
  double dot = 0, fma = 0;
  for (auto _ : state) {
#pragma omp parallel for num_threads(threads) reduction(+ : dot, fma)
    for (int t = 0; t < threads; ++t) {
      dot += peak_loop<true>(20'000'000);
      fma += peak_loop<false>(20'000'000);
    }
  }
  state.counters["bf16_dot_GFLOP/s"] = dot / double(state.iterations());
  state.counters["fma_GFLOP/s"] = fma / double(state.iterations());
#else
  (void)threads;
  state.SkipWithError("built without AVX512-BF16 (compile with -mavx512bf16)");
#endif
}

const bool registered = [] {
  const int H = 8;
  const auto prefill = [&](std::initializer_list<int> ns, std::initializer_list<kernel> ks) {
    for (int n : ns)
      for (int d : {64, 128})
        for (int t : {1, 2})
          for (kernel k : ks) {
            const std::string name = std::string("BM_") + name_of(k) + "/N:" + std::to_string(n) +
                                     "/d:" + std::to_string(d) + "/threads:" + std::to_string(t);
            benchmark::RegisterBenchmark(name.c_str(), bm_attention, k, shape{n, n, H, H, d}, t)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
          }
  };
  prefill({512, 1024, 2048, 4096, 8192},
          {kernel::flash_causal, kernel::flash, kernel::dense, kernel::eigen, kernel::eigen_causal});
  prefill({1024, 4096}, {kernel::flash_bf16, kernel::flash_bf16_causal, kernel::flash_bf16_pairs,
                         kernel::flash_bf16_pairs_causal});
  for (int t : {1, 2})
    benchmark::RegisterBenchmark(("BM_bf16_dot_ceiling/threads:" + std::to_string(t)).c_str(), bm_bf16_dot_ceiling, t)
        ->UseRealTime();
  for (int sk : {1024, 4096, 16384})
    for (int t : {1, 2})
      for (kernel k : {kernel::flash, kernel::dense}) {
        const std::string name = std::string("BM_") + name_of(k) + "_decode/Sk:" + std::to_string(sk) +
                                 "/threads:" + std::to_string(t);
        benchmark::RegisterBenchmark(name.c_str(), bm_attention, k, shape{1, sk, 32, 8, 128}, t)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
  return true;
}();

}  // namespace

ATTNKIT_BENCH_MAIN()
