// Decode benchmarks: one step (or a short draft) against a long KV cache, the memory-bound case.
//
//   BM_decode/<kv>/<layout>/Sq:<Sq>/L:<L>/threads:<t>   Hq = 32, Hkv = 8, d = 128, causal, KV in
//                      kv = f32 | bf16 | fp16, layout bshd [1, L, 8, 128] or bhsd [1, 8, L, 128]
//   BM_decode_tiles/<kv>/<layout>/Sq:1/L:65536/block_kv:<n>/threads:<t>   the same call with
//                      attnkit::tiling{96, n, 512} (n = 64 is the default tile): the engine's
//                      tile size, measured without touching the library
//
// Bytes = K + V read once (2 * L * Hkv * d * sizeof(kv)); "bw_ceiling" is that rate over the
// read-bandwidth ceiling measured in the same process (BM_read_bandwidth: a vectorized sum over
// 256 MiB). L = 4096 fits in the 32 MiB L3 (fp32: 32 MiB in all), so its fraction can exceed 1;
// L >= 16384 streams from DRAM.
//
// Run:  bench_decode --benchmark_filter='decode|bandwidth' --benchmark_repetitions=5
//                    --benchmark_report_aggregates_only=true
#include <attnkit/attnkit.hpp>

#include <string>
#include <vector>

#include "bench_support.hpp"

namespace {

namespace ab = attnkit_bench;
constexpr int Hq = 32, Hkv = 8, D = 128;

template <class T>
struct cache {
  int L = 0, sq = 0;
  std::vector<float> q, o;
  std::vector<T> k, v;
};

template <class T>
cache<T>& data_for(int L, int sq) {
  static cache<T> c;
  if (c.L == L && c.sq == sq) return c;
  c = cache<T>{};
  c.L = L, c.sq = sq;
  c.q = ab::randn(std::size_t(sq) * Hq * D, 1);
  c.o.assign(std::size_t(sq) * Hq * D, 0.f);
  const std::vector<float> k = ab::randn(std::size_t(L) * Hkv * D, 2), v = ab::randn(std::size_t(L) * Hkv * D, 3);
  c.k.resize(k.size()), c.v.resize(v.size());
  for (std::size_t i = 0; i < k.size(); ++i) c.k[i] = attnkit::from_float<T>(k[i]), c.v[i] = attnkit::from_float<T>(v[i]);
  return c;
}

template <class T>
void bm_decode(benchmark::State& state, int L, int sq, int threads, bool head_major, attnkit::tiling tiles) {
  cache<T>& c = data_for<T>(L, sq);
  const auto q = attnkit::bshd(static_cast<const float*>(c.q.data()), 1, sq, Hq, D);
  // Layout: bshd (keys of one head 4 KiB apart) or bhsd (each head's keys contiguous, as a paged
  // cache's pages are).
  const auto k = head_major ? attnkit::bhsd(static_cast<const T*>(c.k.data()), 1, Hkv, L, D)
                            : attnkit::bshd(static_cast<const T*>(c.k.data()), 1, L, Hkv, D);
  const auto v = head_major ? attnkit::bhsd(static_cast<const T*>(c.v.data()), 1, Hkv, L, D)
                            : attnkit::bshd(static_cast<const T*>(c.v.data()), 1, L, Hkv, D);
  const auto o = attnkit::bshd(c.o.data(), 1, sq, Hq, D);
  const auto run = [&] { attnkit::flash_attention(q, k, v, o, attnkit::causal{}, attnkit::openmp{threads}, tiles); };
  run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  ab::set_bytes_counters(state, 2.0 * L * Hkv * D * sizeof(T), threads);
  const auto plan = attnkit::plan_of(q, k, v, o, attnkit::causal{}, attnkit::openmp{threads}, tiles);
  state.SetLabel(plan.kind == attnkit::engine::decode ? "decode engine" : "prefill engine");
}

template <class T>
void register_kv(const char* kv) {
  for (int sq : {1, 4, 16})
    for (int L : {4096, 16384, 65536})
      for (int t : {1, 2})
        for (bool hm : {false, true}) {
          if (sq > 1 && L != 16384) continue;
          const std::string name = std::string("BM_decode/") + kv + (hm ? "/bhsd" : "/bshd") + "/Sq:" +
                                   std::to_string(sq) + "/L:" + std::to_string(L) + "/threads:" + std::to_string(t);
          benchmark::RegisterBenchmark(name.c_str(), bm_decode<T>, L, sq, t, hm, attnkit::tiling{})
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
}

template <class T>
void register_tiles(const char* kv) {
  constexpr int L = 65536;
  for (int bkv : {64, 128, 256})
    for (int t : {1, 2})
      for (bool hm : {false, true}) {
        const std::string name = std::string("BM_decode_tiles/") + kv + (hm ? "/bhsd" : "/bshd") + "/Sq:1/L:" +
                                 std::to_string(L) + "/block_kv:" + std::to_string(bkv) + "/threads:" + std::to_string(t);
        benchmark::RegisterBenchmark(name.c_str(), bm_decode<T>, L, 1, t, hm, attnkit::tiling{96, bkv, 512})
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
}

const bool registered = [] {
  register_kv<float>("f32");
  register_kv<attnkit::bf16>("bf16");
  register_kv<attnkit::fp16>("fp16");
  register_tiles<float>("f32");
  register_tiles<attnkit::bf16>("bf16");
  return true;
}();

}  // namespace

ATTNKIT_BENCH_MAIN()
