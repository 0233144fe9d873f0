// Serving benchmarks: the layouts and masks of an inference server (core/batch.hpp, tree_mask,
// block_layout, sliding windows), each against the plain call it should cost the same as.
//
//   BM_paged_decode/<kv>/<layout>/B:<B>/L:<L>/threads:<t>     Sq = 1, Hq = 32, Hkv = 8, d = 128,
//        causal. layout = contig (a bshd cache [B, L, 8, 128]) or page:<16|128> (a pool
//        [pages, page, 8, 128] with a block table of shuffled page ids holding the same tokens).
//        GB/s of K + V; "max_diff": |paged - contiguous| over the output (0 = bitwise).
//        layout = contig_tile:<16|128> (B = 1, L = 65536, 1 thread): the contiguous call with
//        attnkit::tiling{96, n, 512}, i.e. the KV tile a page of n keys forces on the paged call.
//   BM_ragged/<kv>/<form>/seqs:<n>/threads:<t>     8 sequences of 1k..32k keys (78k in all), one
//        decode query each, in one call: form = page:<16|128> (strided q [8, 1, 32, 128] on a
//        paged_kv) or varlen (varlen q + varlen_kv); seqs:1 is one 32k sequence in the same form
//        (contig: a bshd [1, 32k, 8, 128] strided call). "max_diff": batched vs per-sequence calls.
//   BM_draft/<kv>/<layout>/<mask>/Sq:<n>/L:16384/threads:<t>   Sq draft queries (the last Sq of
//        the L keys): mask = causal, chain (tree_mask of a chain) or tree (a Medusa-like tree).
//   BM_block_sparse/N:<N>/density:<p>/threads:<t>  prefill, Sq = Sk = N, H = Hkv = 8, d = 128, fp32:
//        per-head random 64 x 64 block matrices (diagonal forced on), block_layout_from_block_mask
//        + block_sparse_attention. "density" counter: the visited fraction (layout.density()).
//   BM_flash/<dense|causal|causal_layout>/N:<N>/threads:<t>   the same shape without a mask,
//        causal, and causal as block_sparse_attention over block_layout<causal>::from_mask.
//   BM_layout_build/<from_mask_causal|from_block_mask>/N:<N>   building the layouts (1 thread).
//   BM_key_mass/<none|all|last:64>/N:4096/threads:<t>   causal prefill (H = 8, d = 128) without
//        key_mass_out, with it over all queries, and over the last 64 (SnapKV's window).
//   BM_sliding_window/<and_causal|primitive>/N:<N>/threads:<t>   W = 1024 (from_total) & causal,
//        H = 8, d = 128 prefill, as flash_attention(.., from_total(1024) & causal{}) and as
//        sliding_window_attention(.., from_total(1024), causal{}); "us_per_token".
//
// Bandwidth cases report "GB/s" and "bw_ceiling" (fraction of BM_read_bandwidth, the same-process
// 4-accumulator prefetched sum over 256 MiB); prefill cases "GFLOP/s" over the kept pairs and "ceiling" (SGEMM).
//
// Run (about 15 minutes on 2 contended Zen 5 cores; ~4.5 GB of memory):
//   bench_serving --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
//                 --benchmark_out=serving.json --benchmark_out_format=json
#include <attnkit/attnkit.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_support.hpp"

namespace {

namespace ab = attnkit_bench;
namespace ak = attnkit;
using ak::index_t;
constexpr int Hq = 32, Hkv = 8, D = 128;

/// Fast deterministic fill, uniform in [-1.7, 1.7] (std ~1): a 2 GiB cache is generated in about
/// a second (timing does not depend on the values).
template <class T>
void fill_fast(T* p, std::size_t n, std::uint64_t seed) {
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  for (std::size_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    const float f = (static_cast<float>(s >> 40) * 0x1p-24f * 2.f - 1.f) * 1.7f;
    p[i] = ak::from_float<T>(f);
  }
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    m = (d > m || std::isnan(d)) ? d : m;
  }
  return m;
}

// ---- serving data: sequences packed along seq ([1, total, Hkv, D] = bshd [B, L, ...] when all
// lengths are equal), and the same tokens in a page pool with a shuffled block table ----------
template <class T>
struct serving_data {
  std::vector<std::int32_t> lens, starts;  // starts: B + 1 offsets into the packed rows
  std::vector<T> k, v;                     // packed rows
  int page = 0;                            // page size of the pool below (0: none)
  index_t pages = 0, max_pages = 0;
  std::vector<T> pk, pv;
  std::vector<std::int32_t> table;

  index_t total() const { return starts.back(); }
  ak::tensor_view<const T> packed(const std::vector<T>& x) const { return ak::bshd(x.data(), 1, total(), Hkv, D); }
  ak::tensor_view<const T> pool(const std::vector<T>& x) const {
    return {x.data(), {pages, page, Hkv, D}, {index_t(page) * Hkv * D, Hkv * D, D, 1}};
  }
  ak::paged_kv<const T> paged() const { return {pool(pk), pool(pv), table, max_pages, lens}; }
  ak::varlen_kv<const T> varlen() const { return {packed(k), packed(v), starts}; }
};

template <class T>
serving_data<T>& data_for(const std::vector<std::int32_t>& lens, int page) {
  static serving_data<T> c;
  if (c.lens != lens) {
    c = serving_data<T>{};
    c.lens = lens;
    c.starts.assign(1, 0);
    for (auto l : lens) c.starts.push_back(c.starts.back() + l);
    const std::size_t n = std::size_t(c.total()) * Hkv * D;
    c.k.resize(n), c.v.resize(n);
    fill_fast(c.k.data(), n, 2), fill_fast(c.v.data(), n, 3);
  }
  if (c.page != page) {
    c.pk.clear(), c.pk.shrink_to_fit(), c.pv.clear(), c.pv.shrink_to_fit();
    c.page = page;
    if (page > 0) {
      const index_t B = index_t(lens.size());
      c.max_pages = 0, c.pages = B;  // a few spare pages: the pool is not exactly the sum of the needs
      for (auto l : lens) c.max_pages = std::max<index_t>(c.max_pages, (l + page - 1) / page), c.pages += (l + page - 1) / page;
      std::vector<std::int32_t> ids(c.pages);
      std::iota(ids.begin(), ids.end(), 0);
      std::mt19937 g(7);
      std::shuffle(ids.begin(), ids.end(), g);
      c.table.assign(B * c.max_pages, -1);
      const std::size_t row = std::size_t(Hkv) * D, psz = std::size_t(page) * row;
      c.pk.assign(std::size_t(c.pages) * psz, ak::from_float<T>(0.f));
      c.pv.assign(c.pk.size(), ak::from_float<T>(0.f));
      std::size_t next = 0;
      for (index_t b = 0; b < B; ++b)
        for (index_t p = 0; p * page < lens[b]; ++p) {
          const std::int32_t id = ids[next++];
          c.table[b * c.max_pages + p] = id;
          const index_t t0 = p * page, nrows = std::min<index_t>(page, lens[b] - t0);
          const std::size_t src = (std::size_t(c.starts[b]) + t0) * row;
          std::memcpy(c.pk.data() + id * psz, c.k.data() + src, nrows * row * sizeof(T));
          std::memcpy(c.pv.data() + id * psz, c.v.data() + src, nrows * row * sizeof(T));
        }
    }
  }
  return c;
}

std::string engine_label(const ak::attention_plan& p) {
  return std::string(p.kind == ak::engine::decode ? "decode" : "prefill") + " engine, splits " +
         std::to_string(p.kv_splits) + ", tasks " + std::to_string(p.tasks);
}

// ---- 1. paged vs contiguous decode ---------------------------------------------------------
template <class T>
void bm_paged_decode(benchmark::State& state, int B, int L, int page, int threads, int tile) {
  serving_data<T>& c = data_for<T>(std::vector<std::int32_t>(B, L), page);
  const std::vector<float> qd = ab::randn(std::size_t(B) * Hq * D, 1);
  std::vector<float> od(qd.size()), ref(qd.size());
  const auto q = ak::bshd(qd.data(), B, 1, Hq, D);
  const auto o = ak::bshd(od.data(), B, 1, Hq, D);
  const auto kc = ak::bshd(c.k.data(), B, L, Hkv, D), vc = ak::bshd(c.v.data(), B, L, Hkv, D);
  const ak::openmp ex{threads};
  // tile > 0: the contiguous call with KV tiles of `tile` keys (attnkit::tiling), which is what a
  // page of that size forces on the paged call (tiles end at page boundaries).
  const ak::tiling tiles = tile > 0 ? ak::tiling{96, tile, 512} : ak::tiling{};
  const auto run = [&] {
    if (page == 0) ak::flash_attention(q, kc, vc, o, ak::causal{}, ex, tiles);
    else ak::flash_attention(q, c.paged(), o, ak::causal{}, ex);
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  ab::set_bytes_counters(state, 2.0 * B * L * Hkv * D * sizeof(T), threads);
  ak::flash_attention(q, kc, vc, ak::bshd(ref.data(), B, 1, Hq, D), ak::causal{}, ex);
  state.counters["max_diff"] = max_abs_diff(od, ref);
  state.SetLabel(engine_label(page == 0 ? ak::plan_of(q, kc, vc, o, ak::causal{}, ex, tiles)
                                        : ak::plan_of(q, c.paged(), o, ak::causal{}, ex)));
}

// ---- 2. ragged batch -----------------------------------------------------------------------
const std::vector<std::int32_t> ragged_lens = {1024, 2048, 4096, 8192, 16384, 32768, 3072, 12288};

enum class form { contig, paged, varlen };

template <class T>
void bm_ragged(benchmark::State& state, form f, int page, bool one, int threads) {
  const std::vector<std::int32_t> lens = one ? std::vector<std::int32_t>{32768} : ragged_lens;
  serving_data<T>& c = data_for<T>(lens, f == form::paged ? page : 0);
  const index_t B = index_t(lens.size());
  const std::vector<float> qd = ab::randn(std::size_t(B) * Hq * D, 1);
  std::vector<float> od(qd.size()), ref(qd.size());
  std::vector<std::int32_t> q_starts(B + 1);
  std::iota(q_starts.begin(), q_starts.end(), 0);
  const auto qs = ak::bshd(qd.data(), B, 1, Hq, D);                      // strided [B, 1, Hq, D]
  const ak::varlen<const float> qv{ak::bshd(qd.data(), 1, B, Hq, D), q_starts};  // packed [1, B, Hq, D]
  const auto os = ak::bshd(od.data(), B, 1, Hq, D);
  const auto ov = ak::bshd(od.data(), 1, B, Hq, D);
  const ak::openmp ex{threads};
  const auto run = [&] {
    if (f == form::contig)
      ak::flash_attention(qs, c.packed(c.k), c.packed(c.v), os, ak::causal{}, ex);
    else if (f == form::paged)
      ak::flash_attention(qs, c.paged(), os, ak::causal{}, ex);
    else
      ak::flash_attention(qv, c.varlen(), ov, ak::causal{}, ex);
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  ab::set_bytes_counters(state, 2.0 * c.total() * Hkv * D * sizeof(T), threads);
  // Each sequence on its own (strided call on its packed rows).
  for (index_t b = 0; b < B; ++b) {
    const std::size_t off = std::size_t(c.starts[b]) * Hkv * D;
    ak::flash_attention(ak::bshd(qd.data() + b * Hq * D, 1, 1, Hq, D), ak::bshd(c.k.data() + off, 1, lens[b], Hkv, D),
                        ak::bshd(c.v.data() + off, 1, lens[b], Hkv, D), ak::bshd(ref.data() + b * Hq * D, 1, 1, Hq, D),
                        ak::causal{}, ex);
  }
  state.counters["max_diff"] = max_abs_diff(od, ref);
  state.counters["keys"] = double(c.total());
  if (f == form::contig) state.SetLabel(engine_label(ak::plan_of(qs, c.packed(c.k), c.packed(c.v), os, ak::causal{}, ex)));
  else if (f == form::paged) state.SetLabel(engine_label(ak::plan_of(qs, c.paged(), os, ak::causal{}, ex)));
  else state.SetLabel(engine_label(ak::plan_of(qv, c.varlen(), ov, ak::causal{}, ex)));
}

// ---- 3. drafts -----------------------------------------------------------------------------
enum class draft_mask { causal, chain, tree };

// A Medusa-like tree of n drafts: 4 top-1..4 candidates for the next token, then children of the
// best candidates (more for better-ranked parents), breadth first. parents[i] < i.
std::vector<std::int32_t> medusa_tree(int n) {
  static const std::int32_t t16[16] = {-1, -1, -1, -1, 0, 0, 0, 1, 1, 2, 4, 4, 5, 7, 10, 10};
  static const std::int32_t t4[4] = {-1, -1, 0, 0};
  if (n == 4) return {t4, t4 + 4};
  return {t16, t16 + 16};
}

template <class T>
void bm_draft(benchmark::State& state, int sq, draft_mask m, int page, int threads) {
  constexpr int L = 16384;
  serving_data<T>& c = data_for<T>({L}, page);
  const std::vector<float> qd = ab::randn(std::size_t(sq) * Hq * D, 1);
  std::vector<float> od(qd.size()), ref(qd.size());
  const auto q = ak::bshd(qd.data(), 1, sq, Hq, D);
  const auto o = ak::bshd(od.data(), 1, sq, Hq, D);
  const auto kc = c.packed(c.k), vc = c.packed(c.v);
  std::vector<std::int32_t> parents(sq);
  if (m == draft_mask::chain) std::iota(parents.begin(), parents.end(), -1);
  else if (m == draft_mask::tree) parents = medusa_tree(sq);
  const ak::openmp ex{threads};
  const auto run = [&] {
    if (m == draft_mask::causal) {
      if (page == 0) ak::flash_attention(q, kc, vc, o, ak::causal{}, ex);
      else ak::flash_attention(q, c.paged(), o, ak::causal{}, ex);
    } else {
      const ak::tree_mask tm(parents);
      if (page == 0) ak::flash_attention(q, kc, vc, o, tm, ex);
      else ak::flash_attention(q, c.paged(), o, tm, ex);
    }
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  ab::set_bytes_counters(state, 2.0 * L * Hkv * D * sizeof(T), threads);
  state.counters["us_per_draft"] =
      benchmark::Counter(sq * 1e-6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  if (m == draft_mask::chain) {  // a chain is causal
    ak::flash_attention(q, kc, vc, ak::bshd(ref.data(), 1, sq, Hq, D), ak::causal{}, ex);
    state.counters["max_diff"] = max_abs_diff(od, ref);
  }
  state.SetLabel(engine_label(page == 0 ? ak::plan_of(q, kc, vc, o, ak::causal{}, ex)
                                        : ak::plan_of(q, c.paged(), o, ak::causal{}, ex)));
}

// ---- 4. block-sparse prefill ---------------------------------------------------------------
constexpr int Hp = 8, BLK = 64;

struct prefill_data {
  int N = 0;
  std::vector<float> q, k, v, o;
  ak::tensor_view<float> view(std::vector<float>& x) { return ak::bshd(x.data(), 1, N, Hp, D); }
};
prefill_data& prefill_for(int N) {
  static prefill_data c;
  if (c.N == N) return c;
  c = prefill_data{};
  c.N = N;
  const std::size_t n = std::size_t(N) * Hp * D;
  c.q.resize(n), c.k.resize(n), c.v.resize(n), c.o.assign(n, 0.f);
  fill_fast(c.q.data(), n, 11), fill_fast(c.k.data(), n, 12), fill_fast(c.v.data(), n, 13);
  return c;
}

// Per-head random block matrix [1][Hp][nb][nb]: each block with probability p, diagonal on.
std::vector<std::uint8_t> random_blocks(int N, double p) {
  const index_t nb = N / BLK;
  std::vector<std::uint8_t> m(std::size_t(Hp) * nb * nb);
  std::mt19937_64 g(1234 + std::uint64_t(p * 1000));
  std::uniform_real_distribution<double> u(0, 1);
  for (index_t h = 0; h < Hp; ++h)
    for (index_t i = 0; i < nb; ++i)
      for (index_t j = 0; j < nb; ++j) m[(h * nb + i) * nb + j] = (i == j || u(g) < p) ? 1 : 0;
  return m;
}

void bm_block_sparse(benchmark::State& state, int N, double p, int threads) {
  prefill_data& c = prefill_for(N);
  const index_t nb = N / BLK;
  const std::vector<std::uint8_t> m = random_blocks(N, p);
  const auto layout = ak::block_layout_from_block_mask(m.data(), 1, Hp, nb, nb, BLK, BLK);
  const auto q = c.view(c.q), k = c.view(c.k), v = c.view(c.v), o = c.view(c.o);
  const ak::openmp ex{threads};
  for (auto _ : state) {
    ak::block_sparse_attention(q, k, v, o, layout, ex);
    benchmark::ClobberMemory();
  }
  const double kept = double(std::count(m.begin(), m.end(), std::uint8_t(1)));  // blocks over all heads
  const double visited = kept / double(m.size());
  ab::set_flop_counters(state, 4.0 * D * kept * BLK * BLK, threads);
  state.counters["density"] = visited;
}

enum class flash_kind { dense, causal, causal_layout };

void bm_flash(benchmark::State& state, int N, flash_kind f, int threads) {
  prefill_data& c = prefill_for(N);
  const auto q = c.view(c.q), k = c.view(c.k), v = c.view(c.v), o = c.view(c.o);
  const ak::openmp ex{threads};
  const auto layout = f == flash_kind::causal_layout
                          ? ak::block_layout<ak::causal>::from_mask(ak::causal{}, {.sq = N, .sk = N}, BLK, BLK)
                          : ak::block_layout<ak::causal>{};
  for (auto _ : state) {
    if (f == flash_kind::dense) ak::flash_attention(q, k, v, o, ex);
    else if (f == flash_kind::causal) ak::flash_attention(q, k, v, o, ak::causal{}, ex);
    else ak::block_sparse_attention(q, k, v, o, layout, ex);
    benchmark::ClobberMemory();
  }
  const double pairs = f == flash_kind::dense ? double(N) * N : double(N) * (N + 1) / 2;
  ab::set_flop_counters(state, 4.0 * D * Hp * pairs, threads);
}

void bm_layout_build(benchmark::State& state, int N, bool from_mask) {
  std::vector<std::uint8_t> m;
  if (!from_mask) m = random_blocks(N, 0.1);
  const index_t nb = N / BLK;
  double density = 0;
  for (auto _ : state) {
    if (from_mask) {
      auto l = ak::block_layout<ak::causal>::from_mask(ak::causal{}, {.sq = N, .sk = N}, BLK, BLK);
      benchmark::DoNotOptimize(l.q_blocks());
      density = l.density();
    } else {
      auto l = ak::block_layout_from_block_mask(m.data(), 1, Hp, nb, nb, BLK, BLK);
      benchmark::DoNotOptimize(l.q_blocks());
      density = l.density();
    }
  }
  state.counters["density"] = density;
}

// ---- key mass (H2O / SnapKV statistics) ----------------------------------------------------
// Causal prefill without key mass, with it over all queries, and over the last 64 (SnapKV's
// observation window).
void bm_key_mass(benchmark::State& state, int N, index_t last, bool on, int threads) {
  prefill_data& c = prefill_for(N);
  const auto q = c.view(c.q), k = c.view(c.k), v = c.view(c.v), o = c.view(c.o);
  std::vector<float> mass(std::size_t(Hp) * N);
  const ak::openmp ex{threads};
  for (auto _ : state) {
    if (on) ak::flash_attention(q, k, v, o, ak::causal{}, ak::key_mass_out{mass.data(), last}, ex);
    else ak::flash_attention(q, k, v, o, ak::causal{}, ex);
    benchmark::ClobberMemory();
  }
  ab::set_flop_counters(state, 4.0 * D * Hp * (double(N) * (N + 1) / 2), threads);
}

// ---- 5. sliding window ---------------------------------------------------------------------
constexpr int W = 1024;

void bm_sliding(benchmark::State& state, int N, bool primitive, int threads) {
  prefill_data& c = prefill_for(N);
  const auto q = c.view(c.q), k = c.view(c.k), v = c.view(c.v), o = c.view(c.o);
  const ak::openmp ex{threads};
  const auto w = ak::sliding_window::from_total(W);
  for (auto _ : state) {
    if (primitive) ak::sliding_window_attention(q, k, v, o, w, ak::causal{}, ex);
    else ak::flash_attention(q, k, v, o, w & ak::causal{}, ex);
    benchmark::ClobberMemory();
  }
  double pairs = 0;  // query i keeps keys max(0, i - W + 1) .. i
  for (index_t i = 0; i < N; ++i) pairs += double(std::min<index_t>(i + 1, W));
  ab::set_flop_counters(state, 4.0 * D * Hp * pairs, threads);
  using C = benchmark::Counter;
  state.counters["us_per_token"] = C(N * 1e-6, C::kIsIterationInvariantRate | C::kInvert);
  // Time per token normalized to a full window (pairs / W tokens of W keys): the first W - 1
  // queries keep fewer keys, so short sequences are cheaper per token by the arithmetic alone.
  state.counters["us_per_wtoken"] = C(pairs / W * 1e-6, C::kIsIterationInvariantRate | C::kInvert);
  state.counters["keys_per_token"] = pairs / N;
}

// ---- registration --------------------------------------------------------------------------
template <class F, class... A>
void reg(const std::string& name, benchmark::TimeUnit unit, F f, A... a) {
  benchmark::RegisterBenchmark(name.c_str(), f, a...)->UseRealTime()->Unit(unit);
}
std::string ts(int t) { return "/threads:" + std::to_string(t); }

template <class T>
void register_serving(const std::string& kv) {
  const auto us = benchmark::kMicrosecond;
  for (int L : {16384, 65536})
    for (int B : {1, 4})
      for (int page : {0, 16, 128})
        for (int t : {1, 2})
          reg("BM_paged_decode/" + kv + (page == 0 ? "/contig" : "/page:" + std::to_string(page)) + "/B:" +
                  std::to_string(B) + "/L:" + std::to_string(L) + ts(t),
              us, bm_paged_decode<T>, B, L, page, t, 0);
  for (int tile : {16, 128})  // diagnostic: the contiguous call with the tiles a page size forces
    reg("BM_paged_decode/" + kv + "/contig_tile:" + std::to_string(tile) + "/B:1/L:65536" + ts(1), us,
        bm_paged_decode<T>, 1, 65536, 0, 1, tile);
  for (bool one : {true, false}) {
    const std::string s = one ? "/seqs:1" : "/seqs:8";
    for (int t : {1, 2})
      if (one) reg("BM_ragged/" + kv + "/contig" + s + ts(t), us, bm_ragged<T>, form::contig, 0, one, t);
    for (int t : {1, 2}) reg("BM_ragged/" + kv + "/varlen" + s + ts(t), us, bm_ragged<T>, form::varlen, 0, one, t);
    for (int page : {16, 128})
      for (int t : {1, 2})
        reg("BM_ragged/" + kv + "/page:" + std::to_string(page) + s + ts(t), us, bm_ragged<T>, form::paged, page, one, t);
  }
  for (int page : {0, 16})
    for (int t : {1, 2}) {
      const std::string lay = page == 0 ? "/contig" : "/page:16";
      reg("BM_draft/" + kv + lay + "/causal/Sq:1/L:16384" + ts(t), us, bm_draft<T>, 1, draft_mask::causal, page, t);
      for (int sq : {4, 16}) {
        reg("BM_draft/" + kv + lay + "/causal/Sq:" + std::to_string(sq) + "/L:16384" + ts(t), us, bm_draft<T>, sq,
            draft_mask::causal, page, t);
        reg("BM_draft/" + kv + lay + "/chain/Sq:" + std::to_string(sq) + "/L:16384" + ts(t), us, bm_draft<T>, sq,
            draft_mask::chain, page, t);
        reg("BM_draft/" + kv + lay + "/tree/Sq:" + std::to_string(sq) + "/L:16384" + ts(t), us, bm_draft<T>, sq,
            draft_mask::tree, page, t);
      }
    }
}

const bool registered = [] {
  register_serving<float>("f32");
  register_serving<ak::bf16>("bf16");
  const auto ms = benchmark::kMillisecond;
  for (int N : {8192, 32768})
    for (int t : {1, 2}) {
      if (N > 8192 && t == 1) continue;  // 1 thread only where cheap
      reg("BM_flash/dense/N:" + std::to_string(N) + ts(t), ms, bm_flash, N, flash_kind::dense, t);
      for (double p : {0.5, 0.25, 0.1, 0.05}) {
        char d[16];
        std::snprintf(d, sizeof d, "%g", p);
        reg("BM_block_sparse/N:" + std::to_string(N) + "/density:" + d + ts(t), ms, bm_block_sparse, N, p, t);
      }
      reg("BM_flash/causal/N:" + std::to_string(N) + ts(t), ms, bm_flash, N, flash_kind::causal, t);
      if (N == 8192) reg("BM_flash/causal_layout/N:" + std::to_string(N) + ts(t), ms, bm_flash, N, flash_kind::causal_layout, t);
    }
  for (int N : {8192, 32768, 65536}) {
    reg("BM_layout_build/from_mask_causal/N:" + std::to_string(N), ms, bm_layout_build, N, true);
    if (N <= 32768) reg("BM_layout_build/from_block_mask/N:" + std::to_string(N), ms, bm_layout_build, N, false);
  }
  for (int t : {1, 2}) {
    reg("BM_key_mass/none/N:4096" + ts(t), ms, bm_key_mass, 4096, index_t(0), false, t);
    reg("BM_key_mass/all/N:4096" + ts(t), ms, bm_key_mass, 4096, index_t(0), true, t);
    reg("BM_key_mass/last:64/N:4096" + ts(t), ms, bm_key_mass, 4096, index_t(64), true, t);
  }
  for (int N : {4096, 16384, 65536})
    for (int t : {1, 2})
      for (bool prim : {false, true})
        reg("BM_sliding_window/" + std::string(prim ? "primitive" : "and_causal") + "/N:" + std::to_string(N) + ts(t), ms,
            bm_sliding, N, prim, t);
  return true;
}();

}  // namespace

ATTNKIT_BENCH_MAIN()
