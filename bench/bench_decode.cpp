// Decode benchmarks: one step (or a short draft) against a long KV cache, the memory-bound case.
//
//   BM_decode/<kv>/<layout>/Sq:<Sq>/L:<L>/threads:<t>   Hq = 32, Hkv = 8, d = 128, causal, KV in
//                      kv = f32 | bf16 | fp16, layout bshd [1, L, 8, 128] or bhsd [1, 8, L, 128]
//   BM_decode_tiles/<kv>/<layout>/Sq:1/L:65536/block_kv:<n>/threads:<t>   the same call with
//                      attnkit::tiling{96, n, 512} (n = 64 is the default tile): the engine's
//                      tile size, measured without touching the library
//
//   BM_decode/<q>/<layout>/Sq:1/L:<L>/threads:<t>    the same call with a quantized KV cache
//                      (core/quant.hpp), q = i8 (qint8: int8 + one fp32 scale per token and
//                      head) | i4 (qint4: int4 pairs + one fp32 scale per 32 values) | i8c
//                      (K qint8_channel, blocks of 64 rows, V qint8: KIVI), filled by append_kv;
//                      scales in the same layout as the values
//
// Bytes = K + V read once (2 * L * Hkv * d * sizeof(kv)); "bw_ceiling" is that rate over the
// read-bandwidth ceiling measured in the same process (BM_read_bandwidth: a 4-accumulator,
// software-prefetched sum over 256 MiB); for a quantized cache, values plus scales. L = 4096 fits
// in the 32 MiB L3 (fp32: 32 MiB in all), so its fraction can exceed 1; L = 16384 (64-128 MiB)
// still partly hits the L3 between iterations; L = 65536 is the DRAM figure.
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

// ---- quantized caches ------------------------------------------------------------------------

template <class EK, class EV>
struct qcache {
  int L = 0;
  bool hm = false;
  std::vector<float> q, o, ks, vs;
  std::vector<EK> k;
  std::vector<EV> v;
  attnkit::quantized<EK> kq;
  attnkit::quantized<EV> vq;
};

// A quantized view [1, L, Hkv, D] over values / scales in bshd or bhsd order.
template <class E>
attnkit::quantized<E> qview(E* vals, float* sc, int L, bool hm, int block) {
  using Tr = attnkit::quant_traits<E>;
  const int Dp = D / int(Tr::per_byte), nd = Tr::group == 0 ? 1 : int(Tr::by_channel ? D : D / Tr::group);
  const int Ls = Tr::by_channel ? (L + block - 1) / block : L;
  if (hm) return {attnkit::bhsd(vals, 1, Hkv, L, Dp), attnkit::bhsd(sc, 1, Hkv, Ls, nd), block};
  return {attnkit::bshd(vals, 1, L, Hkv, Dp), attnkit::bshd(sc, 1, Ls, Hkv, nd), block};
}

template <class EK, class EV>
qcache<EK, EV>& qdata_for(int L, bool hm) {
  static qcache<EK, EV> c;
  if (c.L == L && c.hm == hm) return c;
  c = qcache<EK, EV>{};
  c.L = L, c.hm = hm;
  c.q = ab::randn(std::size_t(Hq) * D, 1);
  c.o.assign(std::size_t(Hq) * D, 0.f);
  const std::vector<float> k = ab::randn(std::size_t(L) * Hkv * D, 2), v = ab::randn(std::size_t(L) * Hkv * D, 3);
  constexpr int block = 64;
  c.k.resize(k.size() / attnkit::quant_traits<EK>::per_byte), c.v.resize(v.size() / attnkit::quant_traits<EV>::per_byte);
  c.ks.resize(k.size()), c.vs.resize(v.size());  // at most one scale per value
  c.kq = qview(c.k.data(), c.ks.data(), L, hm, block);
  c.vq = qview(c.v.data(), c.vs.data(), L, hm, block);
  attnkit::append_kv(c.kq, c.vq, 0, attnkit::bshd(k.data(), 1, L, Hkv, D), attnkit::bshd(v.data(), 1, L, Hkv, D));
  return c;
}

template <class E>
double bytes_of(const attnkit::quantized<E>& q) {
  const auto& e = q.scales.extents;
  return double(q.batch()) * q.seq() * q.heads() * q.values.dim() + 4.0 * e[0] * e[1] * e[2] * e[3];
}

template <class EK, class EV>
void bm_decode_q(benchmark::State& state, int L, int threads, bool head_major) {
  auto& c = qdata_for<EK, EV>(L, head_major);
  const auto q = attnkit::bshd(static_cast<const float*>(c.q.data()), 1, 1, Hq, D);
  const attnkit::quantized<const EK> k = c.kq;
  const attnkit::quantized<const EV> v = c.vq;
  const auto o = attnkit::bshd(c.o.data(), 1, 1, Hq, D);
  const auto run = [&] { attnkit::flash_attention(q, k, v, o, attnkit::causal{}, attnkit::openmp{threads}); };
  run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  ab::set_bytes_counters(state, bytes_of(k) + bytes_of(v), threads);
  const auto plan = attnkit::plan_of(q, k, v, o, attnkit::causal{}, attnkit::openmp{threads});
  state.SetLabel(plan.kind == attnkit::engine::decode ? "decode engine" : "prefill engine");
}

template <class EK, class EV>
void register_q(const char* kv) {
  for (int L : {16384, 65536})
    for (int t : {1, 2})
      for (bool hm : {false, true}) {
        const std::string name = std::string("BM_decode/") + kv + (hm ? "/bhsd" : "/bshd") + "/Sq:1/L:" +
                                 std::to_string(L) + "/threads:" + std::to_string(t);
        benchmark::RegisterBenchmark(name.c_str(), bm_decode_q<EK, EV>, L, t, hm)
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
  register_q<attnkit::qint8, attnkit::qint8>("i8");
  register_q<attnkit::qint4, attnkit::qint4>("i4");
  register_q<attnkit::qint8_channel, attnkit::qint8>("i8c");
  return true;
}();

}  // namespace

ATTNKIT_BENCH_MAIN()
