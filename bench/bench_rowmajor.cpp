// Decode micro-kernels (simd/rowmajor.hpp): dot_rows (S^T = K Q^T) and axpy_rows (O = alpha O +
// P V) for a few query rows per KV head, one thread, data resident in L1/L2, default_arch (the
// build's -march=native: AVX-512 on Zen 4/5).
//
//   BM_rowmajor_<kernel>/<type>/R:<R>/d:128/nk:64    kernel in {dot, axpy, pair}, type in {float, bf16}
//
// FLOPs: dot and axpy 2 * R * nk * d each, pair (dot then axpy, what one decode KV tile costs)
// 4 * R * nk * d. "ceiling" is the fraction of the measured 1-thread SGEMM rate. "GB/s" counts
// the K and/or V bytes the kernel streams (the DRAM-bound decode regime's figure of merit: the
// kernel keeps up with memory if this exceeds the DRAM bandwidth, BM_read_bandwidth).
//
// Run e.g.:  bench_rowmajor --benchmark_filter=rowmajor
#include <attnkit/simd/rowmajor.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "bench_support.hpp"

namespace {

namespace ab = attnkit_bench;
using Arch = attnkit::default_arch;
using attnkit::index_t;

enum class kernel { dot, axpy, pair };

template <class T>
std::vector<T> to_elems(const std::vector<float>& x) {
  std::vector<T> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = attnkit::from_float<T>(x[i]);
  return r;
}

template <class T>
void bm(benchmark::State& state, kernel kd, int R, int d, int nk) {
  const auto q = ab::randn(std::size_t(R) * d, 1);
  const auto k = to_elems<T>(ab::randn(std::size_t(nk) * d, 2));
  const auto v = to_elems<T>(ab::randn(std::size_t(nk) * d, 3));
  std::vector<float> st(std::size_t(nk) * R), o(std::size_t(R) * d, 0.f), alpha(std::size_t(R), 0.5f);
  // pair feeds the scores to axpy as p; with alpha = 0.5 o stays bounded either way.
  std::vector<float> p(std::size_t(nk) * R, 1.f / float(nk));
  auto run = [&] {
    if (kd != kernel::axpy)
      attnkit::simd::dot_rows<Arch, T>(R, nk, d, q.data(), d, k.data(), d, st.data(), R);
    if (kd != kernel::dot)
      attnkit::simd::axpy_rows<Arch, T>(R, nk, d, kd == kernel::pair ? st.data() : p.data(), R, v.data(), d,
                                        o.data(), d, alpha.data());
    benchmark::ClobberMemory();
  };
  run();
  for (auto _ : state) {
    run();
    if (kd == kernel::pair) benchmark::DoNotOptimize(o.data());
  }
  const double one = 2.0 * R * double(nk) * d;
  ab::set_flop_counters(state, kd == kernel::pair ? 2 * one : one, 1);
  const double bytes = double(nk) * d * sizeof(T) * (kd == kernel::pair ? 2 : 1);
  ab::set_bytes_counters(state, bytes);
}

const bool registered = [] {
  const char* kn[] = {"dot", "axpy", "pair"};
  for (int ki = 0; ki < 3; ++ki)
    for (int R : {1, 4, 8, 16}) {
      const auto kd = static_cast<kernel>(ki);
      const std::string suffix = "/R:" + std::to_string(R) + "/d:128/nk:64";
      benchmark::RegisterBenchmark(("BM_rowmajor_" + std::string(kn[ki]) + "/float" + suffix).c_str(),
                                   [=](benchmark::State& s) { bm<float>(s, kd, R, 128, 64); })
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_rowmajor_" + std::string(kn[ki]) + "/bf16" + suffix).c_str(),
                                   [=](benchmark::State& s) { bm<attnkit::bf16>(s, kd, R, 128, 64); })
          ->UseRealTime();
    }
  return true;
}();

}  // namespace

ATTNKIT_BENCH_MAIN()
