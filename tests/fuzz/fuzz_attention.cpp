// attnkit_fuzz_<arch>: a seeded random differential fuzzer for dense_attention and
// flash_attention on the architecture this TU is compiled for (ATTNKIT_TEST_ARCH).
//
//   attnkit_fuzz_avx512 --seed S --cases N [--time-limit SEC] [--only I] [--verbose]
//
// Case I of seed S is drawn from its own generator (seeded from S and I), so a failing case is
// reproduced alone with `--seed S --only I`. Each case draws a shape (tails, decode shapes, GQA
// ratios, odd head dims, empty Sq / Sk), an element type, layouts, one policy combination from a
// fixed table (template instantiations are bounded: everything else varies at run time), its
// runtime parameters, options, an executor and an engine, and checks:
//   - accuracy: max error vs ref::attention<double> <= 2x that of ref::attention<float> on the
//     same inputs, floor 4 float ulps of max|ref| (tests/common/test_util.hpp's criterion), for
//     O, LSE and key mass;
//   - fully masked rows: O exactly 0, LSE exactly -inf (softmax_with_sink: the sink logit);
//   - nothing written outside the outputs (guard elements, strided padding), Sq = 0 writes nothing;
//   - bitwise identical results for a second executor / thread count;
//   - poisoning: NaN / +-Inf put into K or V at some key positions (or NaN into one Q entry)
//     leave every row that does not keep them bitwise unchanged; NaN in a kept K entry (or in Q)
//     makes the row's O NaN, NaN in a kept V entry makes that column NaN.
//   - batched layouts (flash cases without query_offset; drawn from their own generator, so the
//     strided case is the same with or without them): the case's B sequences as a paged_kv pool
//     (random page size, shuffled pages, NaN / +-Inf garbage in spare pages and rows past the
//     length, unused block-table entries -1 or out of range) with the strided q, and / or packed
//     varlen q with varlen_kv (garbage between rows) or the pool; each against the same fp64
//     reference and criterion, fully masked rows, stray writes, poisoning (paged), and bitwise
//     equal to the strided call where the tiles are the same (varlen_kv; pages of a multiple of
//     64 keys under masks whose spans start at key 0);
//   - quantized K / V (about 17% of cases, their own generator, Q float): qint8, qint4 (D % 32 ==
//     0) and qint8_channel (random block; dividing the page size / Sk where a leg needs it) on K
//     and / or V, float on the other side or both quantized, one pair per policy row; quantized by
//     append_kv into the case's layouts (padding: garbage values, NaN scales), paged pools and
//     packed varlen_kv rows of them (garbage values and NaN / Inf scales where unused); the same
//     checks against the fp64 reference and naive fp32 run on the DEQUANTIZED values, poison
//     planted in the scale that governs the drawn element;
// plus malformed calls: a valid call with one thing broken must throw attnkit::invalid_argument
// naming the entry point and the argument, and leave every buffer unchanged (one strided, one
// batched and one quantized per case: block-table ids, lengths, offsets, query_offset /
// key_mass_out; scales' shapes, qint4 dims, by-channel blocks, out over the scales).
//
// Output: one line per failure (seed, case, configuration, errors) and a summary; exit status 1
// on any failure. A crash (signal) prints the case being run and exits with status 2.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

#include <attnkit/attnkit.hpp>
#include <attnkit/ref/reference.hpp>

#ifndef ATTNKIT_TEST_ARCH
#define ATTNKIT_TEST_ARCH attnkit::default_arch
#endif
#ifndef ATTNKIT_TEST_ARCH_NAME
#define ATTNKIT_TEST_ARCH_NAME "default"
#endif

namespace {

using namespace attnkit;
using Arch = ATTNKIT_TEST_ARCH;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kSentinel = -7777.25f;

// ---- crash reporting -------------------------------------------------------------------------
char g_current[4096] = "(no case running)";
void on_signal(int sig) {
  const char* head = "\nCRASH (signal) while running: ";
  [[maybe_unused]] auto r1 = write(2, head, std::strlen(head));
  [[maybe_unused]] auto r2 = write(2, g_current, std::strlen(g_current));
  char tail[64];
  const int n = std::snprintf(tail, sizeof tail, "\nsignal %d\n", sig);
  [[maybe_unused]] auto r3 = write(2, tail, static_cast<std::size_t>(n));
  _exit(2);
}
void set_current(const std::string& s) {
  std::snprintf(g_current, sizeof g_current, "%s", s.c_str());
}

// ---- random ----------------------------------------------------------------------------------
struct rng {
  std::mt19937_64 g;
  explicit rng(std::uint64_t s) : g(s) {}
  index_t uni(index_t lo, index_t hi) { return std::uniform_int_distribution<index_t>(lo, hi)(g); }  // inclusive
  double real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(g); }
  bool coin(double p) { return std::bernoulli_distribution(p)(g); }
  template <class T, std::size_t N>
  T pick(const T (&a)[N]) { return a[uni(0, N - 1)]; }
};

// ---- an executor that picks serial / openmp / parallel_for_executor at run time -----------------
// One executor type for every instantiation (instead of one instantiation per executor type); each
// mode forwards to the library's own executor, so their code paths are what runs.
struct thread_pool_fn {  // the "user pool" behind parallel_for_executor: fresh std::threads per call
  int workers;
  template <class Body>
  void operator()(index_t n, Body&& body) const {
    std::atomic<index_t> next{0};
    std::exception_ptr err;
    std::atomic<bool> failed{false};
    auto work = [&](int w) {
      for (index_t t; (t = next.fetch_add(1)) < n;) {
        try {
          body(t, w);
        } catch (...) {
          if (!failed.exchange(true)) err = std::current_exception();
        }
      }
    };
    std::vector<std::thread> ts;
    for (int w = 1; w < workers; ++w) ts.emplace_back(work, w);
    work(0);
    for (auto& t : ts) t.join();
    if (err) std::rethrow_exception(err);
  }
};
struct fuzz_exec {
  static constexpr policy_kind kind = policy_kind::executor;
  int mode = 0;  // 0 serial{}, 1 openmp{threads}, 2 parallel_for_executor{threads, pool}
  int threads = 1;
  int concurrency() const noexcept { return mode == 0 ? 1 : threads; }
  template <class F>
  void parallel_for(index_t n, F&& fn) const {
    if (mode == 0) serial{}.parallel_for(n, fn);
    else if (mode == 1) openmp{threads}.parallel_for(n, fn);
    else parallel_for_executor{threads, thread_pool_fn{threads}}.parallel_for(n, fn);
  }
  std::string str() const {
    return mode == 0 ? "serial" : (mode == 1 ? "openmp{" : "parallel_for_executor{") + std::to_string(threads) + "}";
  }
};

// ---- user functors ---------------------------------------------------------------------------
struct fuzz_mask_fn {  // a hash-like predicate; mode 2 keeps nothing (every row fully masked)
  int a = 1, b = 1, m = 3, mode = 0;
  bool operator()(index_t batch, index_t h, index_t i, index_t j) const {
    if (mode == 2) return false;
    if (mode == 1) return (j % m) != (i % m);
    return ((i * a + j * b + h + batch) % m) != 0;
  }
};
struct fuzz_score_fn {  // affine in s plus a position/head term; keeps NaN a NaN
  float mul = 1.f, off = 0.f;
  template <class T>
  T operator()(T s, index_t batch, index_t h, index_t i, index_t j) const {
    return s * T(mul) + T(off) * T((i + 2 * j + h + batch) % 5);
  }
};

enum class dtype { f32, bf16, fp16 };
const char* name(dtype t) { return t == dtype::f32 ? "float" : t == dtype::bf16 ? "bf16" : "fp16"; }
enum class layout { bshd, bhsd, cache };
const char* name(layout l) { return l == layout::bshd ? "bshd" : l == layout::bhsd ? "bhsd" : "cache"; }

struct poison_site {
  index_t b, s, h, c;  // tensor coordinates (K, V: key s of KV head h; Q: query s of head h)
  int which;           // 0 K, 1 V, 2 Q
  float value;
};

// ---- one case's configuration ------------------------------------------------------------------
struct config {
  std::uint64_t seed = 0;
  long index = 0;
  int combo = 0;
  dtype type = dtype::f32;
  bool flash = true;
  index_t B = 1, Sq = 1, Sk = 1, Hq = 1, Hkv = 1, Dk = 16, Dv = 16;
  layout lq = layout::bshd, lk = layout::bshd, lv = layout::bshd, lo = layout::bshd;
  float mag = 1.f;
  // mask parameters
  index_t wl = -1, wr = -1, W = 0;  // W > 0: sliding_window::from_total(W)
  index_t nsink = 0;
  std::vector<std::int32_t> ids;
  index_t ids_stride = 0;
  fuzz_mask_fn mf;
  // score parameters
  float cap = 1.f;
  std::vector<float> slopes;
  fuzz_score_fn sf;
  // normalizer parameters
  std::vector<float> sinks;
  float sig_bias = 0.f;
  // options
  float scale_v = 1.f;
  bool scale_default = true;
  index_t qoff = 0;
  bool want_lse = false, want_km = false;
  fuzz_exec ex, ex2;
  std::vector<poison_site> poison;
  // batched legs (flash, no query_offset option): drawn from their own generator (leg_seed), so
  // the strided case and its stream are those of a run without them
  bool leg_paged = false, leg_varlen = false;
  index_t page = 0;         // page size of the pool (both legs)
  int page_layout = 0;      // pages {N, page, Hkv, D}: 0 token-major, 1 head-major within a page
  int vl_kv = 0;            // varlen leg's keys: 0 varlen_kv, 1 the paged pool
  int vl_q_layout = 0;      // packed q / out: 0 token-major [1, total, H, D], 1 head-major
  index_t vl_k_pad = 0;     // varlen_kv rows: garbage elements between consecutive key rows
  std::uint64_t leg_seed = 0;
  // quantized K / V (drawn from their own generator): kQPairs index or -1, by-channel block
  int quant = -1;
  index_t qblock = 1;
  std::uint64_t quant_seed = 0;

  index_t q_offset() const { return qoff; }
  std::string str() const;
};

// ---- builders: policies from the runtime configuration -------------------------------------------
template <class T>
struct tag {};
template <class A, class B>
struct and_ {};
template <class A, class B>
struct or_ {};

inline no_mask build(tag<no_mask>, const config&) { return {}; }
inline causal build(tag<causal>, const config&) { return {}; }
inline sliding_window build(tag<sliding_window>, const config& c) {
  return c.W > 0 ? sliding_window::from_total(c.W) : sliding_window{c.wl, c.wr};
}
inline sink_tokens build(tag<sink_tokens>, const config& c) { return sink_tokens{c.nsink}; }
inline document build(tag<document>, const config& c) {
  return document{std::span<const std::int32_t>(c.ids), c.ids_stride};
}
inline mask_fn<fuzz_mask_fn> build(tag<mask_fn<fuzz_mask_fn>>, const config& c) { return {c.mf}; }
template <class A, class B>
auto build(tag<and_<A, B>>, const config& c) { return build(tag<A>{}, c) & build(tag<B>{}, c); }
template <class A, class B>
auto build(tag<or_<A, B>>, const config& c) { return build(tag<A>{}, c) | build(tag<B>{}, c); }

inline dot_product build(tag<dot_product>, const config&) { return {}; }
inline softcap build(tag<softcap>, const config& c) { return softcap{c.cap}; }
inline alibi build(tag<alibi>, const config& c) { return alibi{std::span<const float>(c.slopes)}; }
inline score_fn<fuzz_score_fn> build(tag<score_fn<fuzz_score_fn>>, const config& c) { return {c.sf}; }

inline softmax build(tag<softmax>, const config&) { return {}; }
inline softmax_with_sink build(tag<softmax_with_sink>, const config& c) {
  return softmax_with_sink{std::span<const float>(c.sinks)};
}
inline sigmoid build(tag<sigmoid>, const config& c) { return sigmoid{c.sig_bias}; }

// ---- owned tensors -----------------------------------------------------------------------------
template <class T>
struct tensor {
  std::vector<T> buf;
  tensor_view<T> view;
  tensor_view<const T> cview() const { return view; }
};
// Cache layout: [B, H, capacity, D] with capacity S + 3; padding holds NaN (a kernel that reads it
// poisons its result).
template <class T>
tensor<T> make_tensor(index_t B, index_t S, index_t H, index_t D, layout l, rng& g, float mag) {
  tensor<T> t;
  const index_t cap = l == layout::cache ? S + 3 : S;
  t.buf.assign(static_cast<std::size_t>(std::max<index_t>(B * cap * H * D, 1)), from_float<T>(kNaN));
  switch (l) {
    case layout::bshd: t.view = bshd(t.buf.data(), B, S, H, D); break;
    case layout::bhsd: t.view = bhsd(t.buf.data(), B, H, S, D); break;
    case layout::cache: t.view = tensor_view<T>{t.buf.data(), {B, S, H, D}, {H * cap * D, D, cap * D, 1}}; break;
  }
  std::normal_distribution<float> n(0.f, mag);
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s)
      for (index_t h = 0; h < H; ++h)
        for (index_t d = 0; d < D; ++d) t.view(b, s, h, d) = from_float<T>(n(g.g));
  return t;
}

/// Output buffers pre-filled with a sentinel, with guard elements after each and (strided layouts)
/// padding inside O, so any write outside the outputs shows.
constexpr index_t kGuard = 37;
struct outputs {
  std::vector<float> o, lse, km;
  tensor_view<float> view;
  index_t n_lse = 0, n_km = 0;
  outputs(const config& c) {
    const index_t cap = c.lo == layout::cache ? c.Sq + 2 : c.Sq;
    o.assign(static_cast<std::size_t>(c.B * cap * c.Hq * c.Dv + kGuard), kSentinel);
    switch (c.lo) {
      case layout::bshd: view = bshd(o.data(), c.B, c.Sq, c.Hq, c.Dv); break;
      case layout::bhsd: view = bhsd(o.data(), c.B, c.Hq, c.Sq, c.Dv); break;
      case layout::cache:
        view = tensor_view<float>{o.data(), {c.B, c.Sq, c.Hq, c.Dv}, {c.Hq * cap * c.Dv, c.Dv, cap * c.Dv, 1}};
        break;
    }
    n_lse = c.B * c.Hq * c.Sq;
    n_km = c.B * c.Hq * c.Sk;
    lse.assign(static_cast<std::size_t>(n_lse + kGuard), kSentinel);
    km.assign(static_cast<std::size_t>(n_km + kGuard), kSentinel);
  }
  /// A varlen leg's output: O [B, Sq, Hq, Dv] laid out so that the packed [1, B * Sq, Hq, Dv]
  /// view (packed()) addresses the same elements: token-major (bshd) or head-major (the packed
  /// rows of one head contiguous).
  outputs(const config& c, int packed_layout) : outputs(c) {
    const index_t total = c.B * c.Sq;
    std::fill(o.begin(), o.end(), kSentinel);
    view = packed_layout == 0 ? bshd(o.data(), c.B, c.Sq, c.Hq, c.Dv)
                              : tensor_view<float>{o.data(), {c.B, c.Sq, c.Hq, c.Dv}, {c.Sq * c.Dv, c.Dv, total * c.Dv, 1}};
  }
  tensor_view<float> packed() const {
    const index_t total = view.extents[0] * view.extents[1];
    return {view.data, {1, total, view.extents[2], view.extents[3]},
            {total * view.extents[2] * view.extents[3], view.strides[1], view.strides[2], 1}};
  }
  /// LSE written as [Hq, B * Sq] (varlen queries) -> [B, Hq, Sq], in place (guards untouched).
  void lse_from_packed(index_t B, index_t Hq, index_t Sq) {
    std::vector<float> t(lse.begin(), lse.begin() + n_lse);
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < Hq; ++h)
        for (index_t i = 0; i < Sq; ++i) lse[(b * Hq + h) * Sq + i] = t[h * B * Sq + b * Sq + i];
  }
  float* lse_ptr(bool on) { return on ? lse.data() : nullptr; }
  float* km_ptr(bool on) { return on ? km.data() : nullptr; }
  /// O as contiguous [B, Sq, Hq, Dv].
  std::vector<float> o_dense() const {
    std::vector<float> r;
    r.reserve(static_cast<std::size_t>(view.extents[0] * view.extents[1] * view.extents[2] * view.extents[3]));
    for (index_t b = 0; b < view.extents[0]; ++b)
      for (index_t s = 0; s < view.extents[1]; ++s)
        for (index_t h = 0; h < view.extents[2]; ++h)
          for (index_t d = 0; d < view.extents[3]; ++d) r.push_back(view(b, s, h, d));
    return r;
  }
  std::vector<float> lse_used() const { return {lse.begin(), lse.begin() + n_lse}; }
  std::vector<float> km_used() const { return {km.begin(), km.begin() + n_km}; }
  /// Elements written outside the outputs (sentinel changed), as a description; empty if none.
  std::string stray_writes(bool lse_on, bool km_on) const {
    std::vector<char> inside(o.size(), 0);
    for (index_t b = 0; b < view.extents[0]; ++b)
      for (index_t s = 0; s < view.extents[1]; ++s)
        for (index_t h = 0; h < view.extents[2]; ++h)
          for (index_t d = 0; d < view.extents[3]; ++d) inside[&view(b, s, h, d) - o.data()] = 1;
    std::size_t bad = 0;
    for (std::size_t i = 0; i < o.size(); ++i)
      if (!inside[i] && !(o[i] == kSentinel)) ++bad;
    std::string r;
    if (bad) r += "out: " + std::to_string(bad) + " elements written outside the view; ";
    auto scan = [&](const std::vector<float>& v, index_t n, bool on, const char* what) {
      std::size_t k = 0;
      for (std::size_t i = on ? static_cast<std::size_t>(n) : 0; i < v.size(); ++i)
        if (!(v[i] == kSentinel)) ++k;
      if (k) r += std::string(what) + ": " + std::to_string(k) + " elements written outside (or unrequested); ";
    };
    scan(lse, n_lse, lse_on, "lse");
    scan(km, n_km, km_on, "key_mass");
    return r;
  }
};

// ---- the criterion -------------------------------------------------------------------------------
template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    if (x == y) continue;  // also equal infinities
    const double d = std::abs(x - y);
    e = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(e, d);
  }
  return e;
}
template <class A>
double max_abs(const A& a) {
  double m = 0;
  for (auto x : a)
    if (std::isfinite(double(x))) m = std::max(m, std::abs(double(x)));
  return m;
}
std::string fmt(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", x);
  return b;
}
/// Empty when `got` passes the criterion, else a description.
std::string accuracy(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<float>& naive,
                     const char* what) {
  if (got.size() != ref.size())
    return std::string(what) + ": size " + std::to_string(got.size()) + " vs ref " + std::to_string(ref.size()) + "; ";
  std::size_t nan = 0;
  for (float x : got) nan += std::isnan(x);
  if (nan) return std::string(what) + ": " + std::to_string(nan) + " NaN in output; ";
  const double e = max_abs_diff(got, ref), en = max_abs_diff(naive, ref);
  const double floor = 4.0 * std::numeric_limits<float>::epsilon() * std::max(1e-30, max_abs(ref));
  if (e <= 2.0 * en + floor) return {};
  return std::string(what) + ": error " + fmt(e) + " vs naive fp32 " + fmt(en) + " (floor " + fmt(floor) + "); ";
}
bool bitwise_equal(const float* a, const float* b, std::size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0;  // (empty buffers may have null data)
}

// ---- quantized K / V (core/quant.hpp) ------------------------------------------------------------
// A quantized case (its own generator decides: about 17% of cases, Q float) quantizes the drawn K
// and / or V with the public append_kv helper into the case's layouts (cache padding: garbage
// values, NaN scales), and checks the call against the fp64 reference and the naive fp32 run on
// the DEQUANTIZED values (tests/kernel/test_quant.cpp's criterion). Each policy row runs one
// (K, V) pair (row index % 7, bounding the instantiations); qint4 needs D % 32 == 0 (otherwise the
// case stays unquantized). Poisoning plants the NaN / +-Inf into the scale that governs the
// drawn element (qint8: the row, qint4: its group of 32, qint8_channel: the channel of its block)
// and expects what the dequantized values imply.
struct qpair_info {
  const char *k, *v;
  bool k4, v4, kc, vc;  // qint4 / qint8_channel on each side
};
constexpr qpair_info kQPairs[] = {
    {"qint8", "qint8", false, false, false, false},        {"qint4", "qint4", true, true, false, false},
    {"qint8_channel", "qint8", false, false, true, false}, {"qint8", "float", false, false, false, false},
    {"float", "qint4", false, true, false, false},         {"qint8_channel", "qint4", false, true, true, false},
    {"qint8", "qint8_channel", false, false, false, true},
};
constexpr int kNumQPairs = sizeof(kQPairs) / sizeof(kQPairs[0]);
template <int P>
struct qpair;
template <> struct qpair<0> { using K = qint8; using V = qint8; };
template <> struct qpair<1> { using K = qint4; using V = qint4; };
template <> struct qpair<2> { using K = qint8_channel; using V = qint8; };
template <> struct qpair<3> { using K = qint8; using V = float; };
template <> struct qpair<4> { using K = float; using V = qint4; };
template <> struct qpair<5> { using K = qint8_channel; using V = qint4; };
template <> struct qpair<6> { using K = qint8; using V = qint8_channel; };

std::string config::str() const {
  std::ostringstream os;
  os << "seed=" << seed << " case=" << index << " arch=" << ATTNKIT_TEST_ARCH_NAME << " combo=" << combo << " "
     << (flash ? "flash" : "dense") << " " << name(type) << " B=" << B << " Sq=" << Sq << " Sk=" << Sk << " Hq=" << Hq
     << " Hkv=" << Hkv << " Dk=" << Dk << " Dv=" << Dv << " layouts(q,k,v,o)=" << name(lq) << "," << name(lk) << ","
     << name(lv) << "," << name(lo) << " mag=" << mag;
  os << " window={" << wl << "," << wr << "} W=" << W << " sinks=" << nsink << " ids_stride=" << ids_stride;
  if (!ids.empty()) {
    os << " ids=[";
    for (std::size_t i = 0; i < ids.size() && i < 24; ++i) os << (i ? "," : "") << ids[i];
    os << (ids.size() > 24 ? ",...]" : "]");
  }
  os << " mask_fn={" << mf.a << "," << mf.b << "," << mf.m << ",mode " << mf.mode << "} cap=" << cap
     << " score_fn={" << sf.mul << "," << sf.off << "}";
  if (!slopes.empty()) os << " slope0=" << slopes[0];
  if (!sinks.empty()) os << " sink0=" << sinks[0];
  os << " sig_bias=" << sig_bias << " scale=" << (scale_default ? "default" : std::to_string(scale_v))
     << " q_offset=" << qoff << " lse=" << want_lse << " key_mass=" << want_km << " exec=" << ex.str()
     << " exec2=" << ex2.str();
  if (leg_paged || leg_varlen)
    os << " batched{" << (leg_paged ? "paged " : "") << (leg_varlen ? (vl_kv ? "varlen+paged " : "varlen+varlen_kv ") : "")
       << "page=" << page << " page_layout=" << page_layout << " q_layout=" << vl_q_layout << " k_pad=" << vl_k_pad
       << "}";
  if (quant >= 0) os << " quant{k=" << kQPairs[quant].k << " v=" << kQPairs[quant].v << " block=" << qblock << "}";
  for (auto& p : poison)
    os << " poison{" << (p.which == 0 ? "K" : p.which == 1 ? "V" : "Q") << "[" << p.b << "," << p.s << "," << p.h
       << "," << p.c << "]=" << p.value << "}";
  return os.str();
}

// ---- results shared by every combination ----------------------------------------------------------
struct case_result {
  std::string errors;  // empty: passed
  bool ran = false;
};

/// Checks that do not depend on the instantiation: accuracy, fully masked rows, stray writes.
template <class R>
void check_against_ref(const config& c, const R& ref, const ref::result<float>& naive, outputs& out,
                       const std::vector<std::uint8_t>& keep, bool has_lse, const std::vector<float>& sinks,
                       std::string& err) {
  const auto o = out.o_dense();
  err += accuracy(o, ref.o, naive.o, "O");
  if (has_lse && c.want_lse) err += accuracy(out.lse_used(), ref.lse, naive.lse, "LSE");
  if (c.want_km) err += accuracy(out.km_used(), ref.key_mass, naive.key_mass, "key_mass");
  err += out.stray_writes(has_lse && c.want_lse, c.want_km);
  // Fully masked rows: O exactly 0 and LSE exactly -inf (or the sink logit).
  std::size_t bad_o = 0, bad_lse = 0;
  for (index_t b = 0; b < c.B; ++b)
    for (index_t h = 0; h < c.Hq; ++h)
      for (index_t i = 0; i < c.Sq; ++i) {
        const std::uint8_t* kr = keep.data() + ((b * c.Hq + h) * c.Sq + i) * c.Sk;
        if (std::any_of(kr, kr + c.Sk, [](std::uint8_t x) { return x != 0; })) continue;
        for (index_t d = 0; d < c.Dv; ++d)
          if (!(out.view(b, i, h, d) == 0.f)) ++bad_o;
        if (has_lse && c.want_lse) {
          const float want = sinks.empty() ? -kInf : sinks[h];
          if (!(out.lse[(b * c.Hq + h) * c.Sq + i] == want)) ++bad_lse;
        }
      }
  if (bad_o) err += "fully masked rows: " + std::to_string(bad_o) + " O elements not exactly 0; ";
  if (bad_lse) err += "fully masked rows: " + std::to_string(bad_lse) + " LSE values not -inf / sink logit; ";
}

void compare_runs(const config& c, const outputs& a, const outputs& b, bool has_lse, std::string& err) {
  const auto oa = a.o_dense(), ob = b.o_dense();
  if (!bitwise_equal(oa.data(), ob.data(), oa.size()))
    err += "O differs bitwise between " + c.ex.str() + " and " + c.ex2.str() + "; ";
  if (has_lse && c.want_lse && !bitwise_equal(a.lse.data(), b.lse.data(), a.lse.size()))
    err += "LSE differs bitwise between executors; ";
  if (c.want_km && !bitwise_equal(a.km.data(), b.km.data(), a.km.size()))
    err += "key_mass differs bitwise between executors; ";
}

/// Poisoned run vs clean run (same executor): rows that keep no poisoned entry are bitwise
/// unchanged; NaN propagates to rows that keep it.
void check_poison(const config& c, const outputs& clean, const outputs& pois, const std::vector<std::uint8_t>& keep,
                  const std::vector<double>& probs, bool has_lse, std::string& err) {
  const index_t group = c.Hq / c.Hkv;
  // An infinite K entry at the key makes its score +-inf or NaN: a -inf score is weight exactly 0,
  // and then a NaN in that key's V must not reach the row (README: garbage of zero weight never
  // does), so the V-NaN expectation is waived there (+inf / NaN scores make the whole row NaN).
  auto k_inf_at = [&](index_t b, index_t s, index_t hk) {
    return std::any_of(c.poison.begin(), c.poison.end(), [&](const poison_site& q) {
      return q.which == 0 && q.b == b && q.s == s && q.h == hk && std::isinf(q.value);
    });
  };
  std::size_t changed = 0, not_nan = 0;
  std::string first;
  for (index_t b = 0; b < c.B; ++b)
    for (index_t h = 0; h < c.Hq; ++h)
      for (index_t i = 0; i < c.Sq; ++i) {
        const std::size_t row = static_cast<std::size_t>((b * c.Hq + h) * c.Sq + i);
        const std::uint8_t* kr = keep.data() + row * c.Sk;
        const bool any_kept = std::any_of(kr, kr + c.Sk, [](std::uint8_t x) { return x != 0; });
        bool touched = false, whole_nan = false;
        std::vector<index_t> nan_cols;
        for (const auto& p : c.poison) {
          if (p.b != b) continue;
          if (p.which == 2) {
            if (p.s == i && p.h == h) {
              touched = true;
              if (any_kept) whole_nan = true;  // a fully masked row stays 0 whatever q holds
            }
          } else if (p.h == h / group && kr[p.s]) {
            touched = true;
            if (std::isnan(p.value)) {
              if (p.which == 0) whole_nan = true;
              else if (probs[row * c.Sk + p.s] > 1e-20 && !k_inf_at(b, p.s, p.h))
                nan_cols.push_back(p.c);  // weight clearly > 0
            }
          }
        }
        if (!touched) {
          for (index_t d = 0; d < c.Dv; ++d) {
            const float x = clean.view(b, i, h, d), y = pois.view(b, i, h, d);
            if (std::memcmp(&x, &y, sizeof x) != 0) {
              if (!changed++)
                first = "[b=" + std::to_string(b) + " h=" + std::to_string(h) + " i=" + std::to_string(i) +
                        " d=" + std::to_string(d) + ": " + fmt(x) + " -> " + fmt(y) + "]";
              break;
            }
          }
          if (has_lse && c.want_lse && std::memcmp(&clean.lse[row], &pois.lse[row], sizeof(float)) != 0) {
            if (!changed++) first = "[LSE row " + std::to_string(row) + "]";
          }
        } else {
          bool ok = true;
          if (whole_nan)
            for (index_t d = 0; d < c.Dv; ++d) ok = ok && std::isnan(pois.view(b, i, h, d));
          for (index_t d : nan_cols) ok = ok && std::isnan(pois.view(b, i, h, d));
          if (!ok) ++not_nan;
        }
      }
  if (changed)
    err += "poison: " + std::to_string(changed) + " rows that keep no poisoned entry changed, first " + first + "; ";
  if (not_nan) err += "poison: " + std::to_string(not_nan) + " rows that keep a NaN entry are not NaN; ";
}

// ---- batched layouts: the case's B sequences as a paged pool or packed (varlen) rows ---------------
/// Garbage for memory a batched call must never read: NaN, +Inf or -Inf.
template <class T>
T garbage(rng& g) {
  const int r = static_cast<int>(g.uni(0, 2));
  return from_float<T>(r == 0 ? kNaN : r == 1 ? kInf : -kInf);
}

/// A page pool holding the case's K / V (every sequence Sk tokens) in shuffled pages; spare pages,
/// rows past a length and the padding of head-major pages hold garbage; block-table entries past a
/// sequence's pages hold -1 or an out-of-range id (never read). Deterministic in `seed`, so a pool
/// built from poisoned K / V differs from the clean one only at the poisoned entries.
template <class T>
struct page_pool {
  index_t page = 1, max_pages = 0, pages = 0;
  std::vector<T> k, v;
  tensor_view<const T> kp, vp;
  std::vector<std::int32_t> table, lengths;
  paged_kv<const T> view() const { return {kp, vp, table, max_pages, lengths}; }
};
template <class T>
page_pool<T> make_pool(const config& c, const tensor<T>& k, const tensor<T>& v, std::uint64_t seed) {
  rng g(seed);
  page_pool<T> p;
  const index_t ps = c.page, per = (c.Sk + ps - 1) / ps;
  p.page = ps;
  p.max_pages = per + g.uni(0, 2);
  const index_t used = c.B * per;
  p.pages = used + g.uni(1, 3);  // spare pages, never referenced
  auto pages_view = [&](std::vector<T>& buf, index_t D) {
    buf.resize(static_cast<std::size_t>(p.pages * ps * c.Hkv * D));
    for (auto& x : buf) x = garbage<T>(g);
    const tensor_view<const T> tv =
        c.page_layout == 0
            ? tensor_view<const T>{buf.data(), {p.pages, ps, c.Hkv, D}, {ps * c.Hkv * D, c.Hkv * D, D, 1}}
            : tensor_view<const T>{buf.data(), {p.pages, ps, c.Hkv, D}, {c.Hkv * ps * D, D, ps * D, 1}};
    return tv;
  };
  p.kp = pages_view(p.k, c.Dk);
  p.vp = pages_view(p.v, c.Dv);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(p.pages));
  for (index_t i = 0; i < p.pages; ++i) ids[i] = static_cast<std::int32_t>(i);
  std::shuffle(ids.begin(), ids.end(), g.g);
  p.table.assign(static_cast<std::size_t>(c.B * p.max_pages), -1);
  for (auto& e : p.table)
    if (g.coin(0.3)) e = static_cast<std::int32_t>(g.coin(0.5) ? p.pages + g.uni(0, 1000) : -g.uni(2, 1000));
  index_t next = 0;
  for (index_t b = 0; b < c.B; ++b) {
    p.lengths.push_back(static_cast<std::int32_t>(c.Sk));
    for (index_t t = 0; t < per; ++t) p.table[b * p.max_pages + t] = ids[next++];
    for (index_t t = 0; t < c.Sk; ++t) {
      const index_t pg = p.table[b * p.max_pages + t / ps];
      for (index_t h = 0; h < c.Hkv; ++h) {
        T* kr = const_cast<T*>(p.kp.row(pg, t % ps, h));
        T* vr = const_cast<T*>(p.vp.row(pg, t % ps, h));
        for (index_t d = 0; d < c.Dk; ++d) kr[d] = k.view(b, t, h, d);
        for (index_t d = 0; d < c.Dv; ++d) vr[d] = v.view(b, t, h, d);
      }
    }
  }
  return p;
}

/// The case's sequences packed along seq: [1, B * S, H, D] (sequence b owns rows b * S ..), rows
/// `row_pad` elements of garbage apart (token-major) or head-major (layout 1).
template <class T>
struct packed {
  std::vector<T> buf;
  tensor_view<const T> view;
  std::vector<std::int32_t> starts;
};
template <class T>
packed<T> pack(const tensor<T>& t, int lay, index_t row_pad, rng& g) {
  const index_t B = t.view.extents[0], S = t.view.extents[1], H = t.view.extents[2], D = t.view.extents[3];
  const index_t total = B * S, rs = H * D + row_pad;
  packed<T> p;
  p.buf.resize(static_cast<std::size_t>(std::max<index_t>(total * rs, 1)));
  for (auto& x : p.buf) x = garbage<T>(g);
  p.view = lay == 0 ? tensor_view<const T>{p.buf.data(), {1, total, H, D}, {total * rs, rs, D, 1}}
                    : tensor_view<const T>{p.buf.data(), {1, total, H, D}, {total * H * D, D, total * D, 1}};
  for (index_t b = 0; b <= B; ++b) p.starts.push_back(static_cast<std::int32_t>(b * S));
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s)
      for (index_t h = 0; h < H; ++h) {
        T* r = const_cast<T*>(p.view.row(0, b * S + s, h));
        for (index_t d = 0; d < D; ++d) r[d] = t.view(b, s, h, d);
      }
  return p;
}

/// Appends each "; "-terminated message of `msgs` to `err` with `prefix` (the accuracy-only
/// classification still sees " vs naive fp32 " in accuracy messages).
void add_prefixed(std::string& err, const std::string& prefix, const std::string& msgs) {
  for (std::size_t at = 0; at < msgs.size();) {
    std::size_t end = msgs.find("; ", at);
    end = end == std::string::npos ? msgs.size() : end + 2;
    err += prefix + msgs.substr(at, end - at);
    at = end;
  }
}

/// Bitwise equality of a batched leg with the strided call (O and, if requested, LSE).
void compare_bitwise(const config& c, const outputs& strided, const outputs& leg, bool lse_on, std::string& err) {
  const auto a = strided.o_dense(), b = leg.o_dense();
  if (!bitwise_equal(a.data(), b.data(), a.size())) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
    err += "O differs bitwise from the strided call (" + std::to_string(n) + " elements); ";
  }
  if (lse_on && !bitwise_equal(strided.lse.data(), leg.lse.data(), static_cast<std::size_t>(strided.n_lse)))
    err += "LSE differs bitwise from the strided call; ";
  (void)c;
}

template <class E>
void random_bytes(std::vector<E>& v, rng& g) {
  for (auto& x : v) x.bits = static_cast<decltype(x.bits)>(g.uni(0, 255));
}
/// A quantized tensor [B, S, H, D] (values and scales owned) in one of the layouts; cache
/// padding holds garbage values and NaN scales.
template <class E>
struct qtensor {
  std::vector<E> vals;
  std::vector<float> sc;
  quantized<E> view;
  quantized<const E> cview() const { return view; }
};
template <class E>
qtensor<E> make_qtensor(index_t B, index_t S, index_t H, index_t D, layout l, index_t block, rng& gg) {
  using Tr = quant_traits<E>;
  qtensor<E> t;
  const index_t Dp = D / Tr::per_byte, nd = Tr::group == 0 ? 1 : D / Tr::group;
  const index_t Ss = Tr::by_channel ? (S + block - 1) / block : S;
  const index_t cap = l == layout::cache ? S + 3 : S, caps = l == layout::cache ? Ss + 2 : Ss;
  t.vals.resize(static_cast<std::size_t>(std::max<index_t>(B * cap * H * Dp, 1)));
  random_bytes(t.vals, gg);
  t.sc.assign(static_cast<std::size_t>(std::max<index_t>(B * caps * H * nd, 1)), kNaN);
  switch (l) {
    case layout::bshd: t.view = {bshd(t.vals.data(), B, S, H, Dp), bshd(t.sc.data(), B, Ss, H, nd), block}; break;
    case layout::bhsd: t.view = {bhsd(t.vals.data(), B, H, S, Dp), bhsd(t.sc.data(), B, H, Ss, nd), block}; break;
    case layout::cache:
      t.view = {tensor_view<E>{t.vals.data(), {B, S, H, Dp}, {H * cap * Dp, Dp, cap * Dp, 1}},
                tensor_view<float>{t.sc.data(), {B, Ss, H, nd}, {H * caps * nd, nd, caps * nd, 1}}, block};
      break;
  }
  return t;
}
template <class E>
qtensor<E> qclone(const qtensor<E>& t) {
  qtensor<E> r = t;
  r.view.values.data = r.vals.data() + (t.view.values.data - t.vals.data());
  r.view.scales.data = r.sc.data() + (t.view.scales.data - t.sc.data());
  return r;
}
template <class T>
tensor<T> tclone(const tensor<T>& t) {
  tensor<T> r;
  r.buf = t.buf;
  r.view = t.view;
  r.view.data = r.buf.data() + (t.view.data - t.buf.data());
  return r;
}
template <class E>
tensor<float> dequantize(const quantized<const E>& q) {
  tensor<float> t;
  const index_t B = q.batch(), S = q.seq(), H = q.heads(), D = q.dim();
  t.buf.assign(static_cast<std::size_t>(std::max<index_t>(B * S * H * D, 1)), 0.f);
  t.view = bshd(t.buf.data(), B, S, H, D);
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s)
      for (index_t h = 0; h < H; ++h)
        for (index_t c = 0; c < D; ++c) t.view(b, s, h, c) = q(b, s, h, c);
  return t;
}

/// K or V of a quantized case: E float (plain, the drawn tensor itself) or a quantized type.
template <class E>
struct qside {
  static constexpr bool quant = quantized_type<E>;
  using QE = std::conditional_t<quant, E, qint8>;
  tensor<float> src;  // plain: the operand; quantized: the drawn values (bshd) it is quantized from
  qtensor<QE> qt;     // quantized only
  tensor<float> deq;  // quantized only: the dequantized values (what the references see)
  auto view() const {
    if constexpr (quant) return qt.cview();
    else return src.cview();
  }
  tensor_view<const float> ref_view() const { return quant ? deq.cview() : src.cview(); }
  void refresh() {
    if constexpr (quant) deq = dequantize<E>(qt.cview());
  }
  qside clone() const {
    qside r;
    r.src = tclone(src);
    if constexpr (quant) r.qt = qclone(qt), r.deq = tclone(deq);
    return r;
  }
};
/// Draws the values as make_tensor does (same generator use), then quantizes them into layout l.
template <class E>
qside<E> make_side(index_t B, index_t S, index_t H, index_t D, layout l, rng& g, float mag, index_t block, rng& gg) {
  qside<E> s;
  if constexpr (!qside<E>::quant) {
    s.src = make_tensor<float>(B, S, H, D, l, g, mag);
  } else {
    s.src = make_tensor<float>(B, S, H, D, layout::bshd, g, mag);
    s.qt = make_qtensor<E>(B, S, H, D, l, block, gg);
    if (B * S * H * D > 0) {
      tensor<float> spare;  // append_kv writes K and V: V's rows go to a plain scratch cache
      spare.buf.assign(static_cast<std::size_t>(B * S * H * D), 0.f);
      spare.view = bshd(spare.buf.data(), B, S, H, D);
      append_kv(s.qt.view, spare.view, 0, s.src.cview(), s.src.cview());
    }
    s.refresh();
  }
  return s;
}
/// Plants p: a plain side's element, or the scale that governs the element of a quantized side.
template <class E>
void plant(qside<E>& s, const poison_site& p) {
  if constexpr (qside<E>::quant) {
    using Tr = quant_traits<E>;
    s.qt.view.scale_row(p.b, p.s, p.h)[Tr::group == 0 ? 0 : p.c / Tr::group] = p.value;
  } else {
    s.src.view(p.b, p.s, p.h, p.c) = p.value;
  }
}
/// The element sites a planted p poisons (check_poison's model): a quantized side's scale
/// reaches its row (qint8), group (qint4) or the channel of its block (qint8_channel), with the
/// value the scale holds after every site is planted (a K row: one site, its c is not used).
template <class E>
void expand_site(const qside<E>& s, const poison_site& p, index_t S, index_t D, std::vector<poison_site>& out) {
  if constexpr (!qside<E>::quant) {
    out.push_back(p);
  } else {
    using Tr = quant_traits<E>;
    const float val = s.qt.view.scale_row(p.b, p.s, p.h)[Tr::group == 0 ? 0 : p.c / Tr::group];
    index_t s0 = p.s, s1 = p.s + 1, c0 = 0, c1 = D;
    if constexpr (Tr::by_channel) s0 = p.s / s.qt.view.block * s.qt.view.block, s1 = std::min(S, s0 + s.qt.view.block), c0 = p.c, c1 = p.c + 1;
    else if constexpr (Tr::group > 0) c0 = p.c / Tr::group * Tr::group, c1 = c0 + Tr::group;
    if (p.which == 0) c1 = c0 + 1;
    for (index_t t = s0; t < s1; ++t)
      for (index_t c = c0; c < c1; ++c) out.push_back(poison_site{p.b, t, p.h, c, p.which, val});
  }
}

/// One side of a quantized page pool: pages {N, page, Hkv, D} of values (and of scales: rows
/// page / block by channel), token- or head-major within a page, garbage everywhere first.
template <class E>
struct side_pages {
  std::vector<std::conditional_t<quantized_type<E>, E, float>> vals;
  std::vector<float> sc;
  kv_view_t<const E> view;
};
template <class T>
tensor_view<const T> page_view(const std::vector<T>& buf, int lay, index_t pages, index_t ps, index_t H, index_t D) {
  return lay == 0 ? tensor_view<const T>{buf.data(), {pages, ps, H, D}, {ps * H * D, H * D, D, 1}}
                  : tensor_view<const T>{buf.data(), {pages, ps, H, D}, {H * ps * D, D, ps * D, 1}};
}
template <class E>
void alloc_pages(side_pages<E>& sp, const config& c, index_t pages, index_t ps, index_t D, index_t block, rng& g) {
  if constexpr (quantized_type<E>) {
    using Tr = quant_traits<E>;
    const index_t Dp = D / Tr::per_byte, nd = Tr::group == 0 ? 1 : D / Tr::group, pss = Tr::by_channel ? ps / block : ps;
    sp.vals.resize(static_cast<std::size_t>(std::max<index_t>(pages * ps * c.Hkv * Dp, 1)));
    random_bytes(sp.vals, g);
    sp.sc.resize(static_cast<std::size_t>(std::max<index_t>(pages * pss * c.Hkv * nd, 1)));
    for (auto& x : sp.sc) x = garbage<float>(g);
    sp.view = quantized<const E>{page_view(sp.vals, c.page_layout, pages, ps, c.Hkv, Dp),
                                 page_view(sp.sc, c.page_layout, pages, pss, c.Hkv, nd), block};
  } else {
    sp.vals.resize(static_cast<std::size_t>(pages * ps * c.Hkv * D));
    for (auto& x : sp.vals) x = garbage<float>(g);
    sp.view = page_view(sp.vals, c.page_layout, pages, ps, c.Hkv, D);
  }
}
/// Row (b, t, h) of a side into row `row` of page pg.
template <class E>
void put_page_row(side_pages<E>& sp, const qside<E>& s, index_t b, index_t t, index_t pg, index_t row, index_t h, index_t D) {
  if constexpr (quantized_type<E>) {
    using Tr = quant_traits<E>;
    const index_t Dp = D / Tr::per_byte, nd = Tr::group == 0 ? 1 : D / Tr::group;
    std::copy_n(s.qt.view.values.row(b, t, h), Dp, const_cast<E*>(sp.view.values.row(pg, row, h)));
    if (!Tr::by_channel || t % sp.view.block == 0)
      std::copy_n(s.qt.view.scale_row(b, t, h), Tr::by_channel ? D : nd, const_cast<float*>(sp.view.scale_row(pg, row, h)));
  } else {
    float* r = const_cast<float*>(sp.view.row(pg, row, h));
    for (index_t d = 0; d < D; ++d) r[d] = s.src.view(b, t, h, d);
  }
}
template <class EK, class EV>
struct qpool {
  index_t max_pages = 0;
  side_pages<EK> k;
  side_pages<EV> v;
  std::vector<std::int32_t> table, lengths;
  paged_kv<const EK, const EV> view() const { return {k.view, v.view, table, max_pages, lengths}; }
};
/// make_pool's pool (same structure: shuffled pages, spare pages, garbage, unused table entries
/// -1 or out of range) for quantized sides; a by-channel side's block divides the page size.
template <class EK, class EV>
qpool<EK, EV> make_qpool(const config& c, const qside<EK>& k, const qside<EV>& v, std::uint64_t seed) {
  rng g(seed);
  qpool<EK, EV> p;
  const index_t ps = c.page, per = (c.Sk + ps - 1) / ps;
  p.max_pages = per + g.uni(0, 2);
  const index_t pages = c.B * per + g.uni(1, 3);
  alloc_pages(p.k, c, pages, ps, c.Dk, c.qblock, g);
  alloc_pages(p.v, c, pages, ps, c.Dv, c.qblock, g);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(pages));
  for (index_t i = 0; i < pages; ++i) ids[i] = static_cast<std::int32_t>(i);
  std::shuffle(ids.begin(), ids.end(), g.g);
  p.table.assign(static_cast<std::size_t>(c.B * p.max_pages), -1);
  for (auto& e : p.table)
    if (g.coin(0.3)) e = static_cast<std::int32_t>(g.coin(0.5) ? pages + g.uni(0, 1000) : -g.uni(2, 1000));
  index_t next = 0;
  for (index_t b = 0; b < c.B; ++b) {
    p.lengths.push_back(static_cast<std::int32_t>(c.Sk));
    for (index_t t = 0; t < per; ++t) p.table[b * p.max_pages + t] = ids[next++];
    for (index_t t = 0; t < c.Sk; ++t) {
      const index_t pg = p.table[b * p.max_pages + t / ps];
      for (index_t h = 0; h < c.Hkv; ++h) {
        put_page_row(p.k, k, b, t, pg, t % ps, h, c.Dk);
        put_page_row(p.v, v, b, t, pg, t % ps, h, c.Dv);
      }
    }
  }
  return p;
}
/// A side's sequences packed along seq ([1, B * S, H, D], token-major, rows `row_pad` garbage
/// elements apart; scales likewise; by channel: block divides S, so the blocks are the same).
template <class E>
struct packed_side {
  std::vector<std::conditional_t<quantized_type<E>, E, float>> vals;
  std::vector<float> sc;
  kv_view_t<const E> view;
  std::vector<std::int32_t> starts;
};
template <class E>
packed_side<E> pack_side(const qside<E>& s, index_t row_pad, rng& g) {
  packed_side<E> p;
  if constexpr (quantized_type<E>) {
    using Tr = quant_traits<E>;
    const auto& q = s.qt.view;
    const index_t B = q.batch(), S = q.seq(), H = q.heads(), D = q.dim(), total = B * S, blk = q.block;
    const index_t Dp = D / Tr::per_byte, nd = Tr::group == 0 ? 1 : D / Tr::group, rs = H * Dp + row_pad;
    const index_t srows = Tr::by_channel ? B * ((S + blk - 1) / blk) : total, srs = H * nd + row_pad % 3;
    p.vals.resize(static_cast<std::size_t>(std::max<index_t>(total * rs, 1)));
    random_bytes(p.vals, g);
    p.sc.resize(static_cast<std::size_t>(std::max<index_t>(srows * srs, 1)));
    for (auto& x : p.sc) x = garbage<float>(g);
    p.view = quantized<const E>{tensor_view<const E>{p.vals.data(), {1, total, H, Dp}, {total * rs, rs, Dp, 1}},
                                tensor_view<const float>{p.sc.data(), {1, srows, H, nd}, {srows * srs, srs, nd, 1}}, blk};
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < S; ++t)
        for (index_t h = 0; h < H; ++h) {
          std::copy_n(q.values.row(b, t, h), Dp, const_cast<E*>(p.view.values.row(0, b * S + t, h)));
          if (!Tr::by_channel || t % blk == 0)
            std::copy_n(q.scale_row(b, t, h), Tr::by_channel ? D : nd, const_cast<float*>(p.view.scale_row(0, b * S + t, h)));
        }
    for (index_t b = 0; b <= B; ++b) p.starts.push_back(static_cast<std::int32_t>(b * S));
  } else {
    auto pk = pack(s.src, 0, row_pad, g);
    p.vals = std::move(pk.buf);
    p.view = pk.view;
    p.view.data = p.vals.data();
    p.starts = std::move(pk.starts);
  }
  return p;
}

/// The batched legs' K / V makers for either kind of side: a plain tensor or a qside.
template <class T>
page_pool<T> pool_of(const config& c, const tensor<T>& k, const tensor<T>& v, std::uint64_t seed) {
  return make_pool(c, k, v, seed);
}
template <class EK, class EV>
qpool<EK, EV> pool_of(const config& c, const qside<EK>& k, const qside<EV>& v, std::uint64_t seed) {
  return make_qpool(c, k, v, seed);
}
template <class T>
packed<T> pack_kv(const tensor<T>& t, index_t row_pad, rng& g) { return pack(t, 0, row_pad, g); }
template <class E>
packed_side<E> pack_kv(const qside<E>& s, index_t row_pad, rng& g) { return pack_side(s, row_pad, g); }
template <class S>
struct side_elem;
template <class T>
struct side_elem<tensor<T>> { using type = T; };
template <class E>
struct side_elem<qside<E>> { using type = E; };

std::vector<std::uint8_t> keep_of(const config& c, const auto& mask) {
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(c.B * c.Hq * c.Sq * c.Sk));
  for (index_t b = 0; b < c.B; ++b)
    for (index_t h = 0; h < c.Hq; ++h) {
      const head_ctx ctx{b, h, c.q_offset()};
      for (index_t i = 0; i < c.Sq; ++i)
        for (index_t j = 0; j < c.Sk; ++j) keep[((b * c.Hq + h) * c.Sq + i) * c.Sk + j] = mask.keep(ctx, i, j);
    }
  return keep;
}

// ---- one policy combination -----------------------------------------------------------------------
enum opt_bits { kScale = 1, kQoff = 2 };

// Masks whose key spans all start at key 0 (or have none): a paged call's tiles are then those of
// the strided call when pages hold whole 64-key tiles, so its result is bitwise the same. A
// sliding window's span and a document's run start mid-page: there the paged walk cuts a tile at
// the page boundary that the strided walk does not, so the sums are grouped differently
// (criterion only).
template <class M>
inline constexpr bool spans_at_zero = !std::is_same_v<M, sliding_window> && !std::is_same_v<M, document>;
template <class A, class B>
inline constexpr bool spans_at_zero<and_<A, B>> = spans_at_zero<A> && spans_at_zero<B>;
template <class A, class B>
inline constexpr bool spans_at_zero<or_<A, B>> = spans_at_zero<A> && spans_at_zero<B>;

// AllTypes: bf16 / fp16 inputs too (a subset of rows, to bound the number of instantiations and
// the TU's compile time); other rows always run float inputs.
template <class M, class S, class N, int Opts, bool AllTypes, int QP>
struct combo {
  static auto policies(const config& c) {
    auto base = std::make_tuple(build(tag<S>{}, c), build(tag<M>{}, c), build(tag<N>{}, c));
    auto with_scale = [&] {
      if constexpr (Opts & kScale) return std::tuple_cat(base, std::make_tuple(scale{c.scale_v}));
      else return base;
    }();
    if constexpr (Opts & kQoff) return std::tuple_cat(with_scale, std::make_tuple(query_offset{c.qoff}));
    else return with_scale;
  }

  template <class QV, class KV, class VV>
  static void kernel_v(const config& c, const QV& q, const KV& k, const VV& v, tensor_view<float> o,
                       const fuzz_exec& ex, float* lse, float* km) {
    std::apply(
        [&](const auto&... p) {
          if (c.flash) flash_attention<Arch>(q, k, v, o, p..., ex, lse_out{lse}, key_mass_out{km});
          else dense_attention<Arch>(q, k, v, o, p..., ex, lse_out{lse}, key_mass_out{km});
        },
        policies(c));
  }
  template <class T>
  static void kernel(const config& c, const tensor<T>& q, const tensor<T>& k, const tensor<T>& v, outputs& out,
                     const fuzz_exec& ex, bool lse, bool km) {
    kernel_v(c, q.cview(), k.cview(), v.cview(), out.view, ex, out.lse_ptr(lse), out.km_ptr(km));
  }

  template <class T>
  static void run_t(const config& c, rng& g, case_result& res) {
    using Norm = N;
    constexpr bool has_lse = Norm::has_lse;
    auto q = make_tensor<T>(c.B, c.Sq, c.Hq, c.Dk, c.lq, g, c.mag);
    auto k = make_tensor<T>(c.B, c.Sk, c.Hkv, c.Dk, c.lk, g, c.mag);
    auto v = make_tensor<T>(c.B, c.Sk, c.Hkv, c.Dv, c.lv, g, 1.f);
    const auto pol = policies(c);
    // The probabilities only where check_poison needs them (poisoned cases).
    const auto ref = std::apply(
        [&](const auto&... p) {
          return c.poison.empty() ? ref::attention<double>(q.cview(), k.cview(), v.cview(), p...)
                                  : ref::attention<double>(q.cview(), k.cview(), v.cview(), p..., probs_out{});
        },
        pol);
    const auto naive = std::apply(
        [&](const auto&... p) { return ref::attention<float>(q.cview(), k.cview(), v.cview(), p...); }, pol);
    // keep[b, h, i, j]
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(c.B * c.Hq * c.Sq * c.Sk));
    const auto& mask = std::get<1>(pol);
    for (index_t b = 0; b < c.B; ++b)
      for (index_t h = 0; h < c.Hq; ++h) {
        const head_ctx ctx{b, h, c.q_offset()};
        for (index_t i = 0; i < c.Sq; ++i)
          for (index_t j = 0; j < c.Sk; ++j) keep[((b * c.Hq + h) * c.Sq + i) * c.Sk + j] = mask.keep(ctx, i, j);
      }
    const bool want_lse = has_lse && c.want_lse;
    outputs out(c);
    kernel(c, q, k, v, out, c.ex, want_lse, c.want_km);
    res.ran = true;
    std::vector<float> sinks;
    if constexpr (std::is_same_v<Norm, softmax_with_sink>) sinks = c.sinks;
    check_against_ref(c, ref, naive, out, keep, has_lse, sinks, res.errors);
    // Another executor / thread count: bitwise identical.
    outputs out2(c);
    kernel(c, q, k, v, out2, c.ex2, want_lse, c.want_km);
    compare_runs(c, out, out2, has_lse, res.errors);
    // Poisoned inputs: same call on copies with NaN / Inf planted.
    auto qp = tclone(q), kp = tclone(k), vp = tclone(v);  // poisoned copies (this check and the paged leg)
    for (const auto& p : c.poison) {
      auto& t = p.which == 0 ? kp : p.which == 1 ? vp : qp;
      t.view(p.b, p.s, p.h, p.c) = from_float<T>(p.value);
    }
    if (!c.poison.empty()) {
      outputs clean(c), pois(c);
      kernel(c, q, k, v, clean, c.ex, want_lse, false);
      kernel(c, qp, kp, vp, pois, c.ex, want_lse, false);
      check_poison(c, clean, pois, keep, ref.probs, has_lse, res.errors);
    }
    if constexpr (!(Opts & kQoff))
      if (c.flash && (c.leg_paged || c.leg_varlen))
        batched_legs(c, c, q, k, v, qp, kp, vp, ref, naive, keep, sinks, out, res);
  }

  // A batched call with the strided call's arguments (minus key_mass_out): the same instantiation
  // of the mainloop as the strided call (operands have one type for every layout).
  template <class Qa, class KVa>
  static void batched_kernel(const config& c, const Qa& q, const KVa& kv, tensor_view<float> o, float* lse) {
    std::apply([&](const auto&... p) { flash_attention<Arch>(q, kv, o, p..., c.ex, lse_out{lse}, key_mass_out{nullptr}); },
               policies(c));
  }

  // The case's sequences as a paged pool (strided q) and / or packed varlen q with varlen_kv or the
  // pool: the same criterion vs the same reference, fully masked rows, stray writes, poisoning
  // (paged), and bitwise equality with the strided call where the tiles are the same.
  // K and V are tensors (plain cases) or qsides (quantized); qp, kp, vp are the poisoned copies and
  // cpois the case with the poison as element sites of the values the references see.
  template <class TQ, class KS, class VS, class R>
  static void batched_legs(const config& c0, const config& cpois, const tensor<TQ>& q, const KS& k, const VS& v,
                           const tensor<TQ>& qp, const KS& kp, const VS& vp, const R& ref,
                           const ref::result<float>& naive, const std::vector<std::uint8_t>& keep,
                           const std::vector<float>& sinks, const outputs& strided, case_result& res) {
    constexpr bool has_lse = N::has_lse;
    config c = c0;
    c.want_km = false;  // rejected for batched calls
    const bool want_lse = has_lse && c.want_lse;
    // The strided call with key_mass_out runs unsplit: bitwise only against one without it.
    const bool same_tiles_paged = !c0.want_km && spans_at_zero<M> && c.page % tiling{}.block_kv == 0;
    rng g(c.leg_seed);
    if (c.leg_paged) {
      std::string e;
      const std::uint64_t pool_seed = g.g();
      const auto pool = pool_of(c, k, v, pool_seed);
      outputs po(c);
      batched_kernel(c, q.cview(), pool.view(), po.view, po.lse_ptr(want_lse));
      check_against_ref(c, ref, naive, po, keep, has_lse, sinks, e);
      if (same_tiles_paged) compare_bitwise(c, strided, po, want_lse, e);
      if (!c.poison.empty()) {
        const auto ppool = pool_of(c, kp, vp, pool_seed);
        outputs pp(c);
        batched_kernel(c, qp.cview(), ppool.view(), pp.view, pp.lse_ptr(want_lse));
        config cx = cpois;
        cx.want_km = false;
        check_poison(cx, po, pp, keep, ref.probs, has_lse, e);
      }
      add_prefixed(res.errors, "paged: ", e);
    }
    if (c.leg_varlen) {
      std::string e;
      const auto qk = pack(q, c.vl_q_layout, c.vl_k_pad, g);
      const varlen<const TQ> vq{qk.view, qk.starts};
      outputs vo(c, c.vl_q_layout);
      if (c.vl_kv == 0) {
        const auto kk = pack_kv(k, c.vl_k_pad, g);
        const auto vv = pack_kv(v, c.vl_k_pad, g);
        using EK = typename side_elem<KS>::type;
        using EV = typename side_elem<VS>::type;
        batched_kernel(c, vq, varlen_kv<const EK, const EV>{kk.view, vv.view, kk.starts}, vo.packed(),
                       vo.lse_ptr(want_lse));
      } else {
        const auto pool = pool_of(c, k, v, g.g());
        batched_kernel(c, vq, pool.view(), vo.packed(), vo.lse_ptr(want_lse));
      }
      if (want_lse) vo.lse_from_packed(c.B, c.Hq, c.Sq);
      check_against_ref(c, ref, naive, vo, keep, has_lse, sinks, e);
      if (c.vl_kv == 0 ? !c0.want_km : same_tiles_paged) compare_bitwise(c, strided, vo, want_lse, e);
      add_prefixed(res.errors, c.vl_kv == 0 ? "varlen+varlen_kv: " : "varlen+paged: ", e);
    }
  }

  // ---- quantized K / V (c.quant >= 0): see "quantized K / V" above ----
  template <class EK, class EV>
  static void run_q(const config& c, rng& g, case_result& res) {
    constexpr bool has_lse = N::has_lse;
    rng gg(c.quant_seed);  // garbage in cache padding
    auto q = make_tensor<float>(c.B, c.Sq, c.Hq, c.Dk, c.lq, g, c.mag);
    auto k = make_side<EK>(c.B, c.Sk, c.Hkv, c.Dk, c.lk, g, c.mag, c.qblock, gg);
    auto v = make_side<EV>(c.B, c.Sk, c.Hkv, c.Dv, c.lv, g, 1.f, c.qblock, gg);
    const auto pol = policies(c);
    const auto ref = std::apply(
        [&](const auto&... p) {
          return c.poison.empty() ? ref::attention<double>(q.cview(), k.ref_view(), v.ref_view(), p...)
                                  : ref::attention<double>(q.cview(), k.ref_view(), v.ref_view(), p..., probs_out{});
        },
        pol);
    const auto naive = std::apply(
        [&](const auto&... p) { return ref::attention<float>(q.cview(), k.ref_view(), v.ref_view(), p...); }, pol);
    const auto keep = keep_of(c, std::get<1>(pol));
    const bool want_lse = has_lse && c.want_lse;
    outputs out(c);
    kernel_v(c, q.cview(), k.view(), v.view(), out.view, c.ex, out.lse_ptr(want_lse), out.km_ptr(c.want_km));
    res.ran = true;
    std::vector<float> sinks;
    if constexpr (std::is_same_v<N, softmax_with_sink>) sinks = c.sinks;
    check_against_ref(c, ref, naive, out, keep, has_lse, sinks, res.errors);
    outputs out2(c);
    kernel_v(c, q.cview(), k.view(), v.view(), out2.view, c.ex2, out2.lse_ptr(want_lse), out2.km_ptr(c.want_km));
    compare_runs(c, out, out2, has_lse, res.errors);
    config cp = c;  // the poison as element sites of the dequantized values
    auto qp = tclone(q);
    auto kp = k.clone();
    auto vp = v.clone();
    if (!c.poison.empty()) {
      for (const auto& p : c.poison) {
        if (p.which == 2) qp.view(p.b, p.s, p.h, p.c) = p.value;
        else if (p.which == 0) plant(kp, p);
        else plant(vp, p);
      }
      kp.refresh(), vp.refresh();
      cp.poison.clear();
      for (const auto& p : c.poison) {
        if (p.which == 2) cp.poison.push_back(p);
        else if (p.which == 0) expand_site(kp, p, c.Sk, c.Dk, cp.poison);
        else expand_site(vp, p, c.Sk, c.Dv, cp.poison);
      }
      outputs clean(c), pois(c);
      kernel_v(c, q.cview(), k.view(), v.view(), clean.view, c.ex, clean.lse_ptr(want_lse), nullptr);
      kernel_v(c, qp.cview(), kp.view(), vp.view(), pois.view, c.ex, pois.lse_ptr(want_lse), nullptr);
      check_poison(cp, clean, pois, keep, ref.probs, has_lse, res.errors);
    }
    if constexpr (!(Opts & kQoff))
      if (c.flash && (c.leg_paged || c.leg_varlen))
        batched_legs(c, cp, q, k, v, qp, kp, vp, ref, naive, keep, sinks, out, res);
  }

  static void run(const config& c, rng& g, case_result& res) {
    if (c.quant >= 0) return run_q<typename qpair<QP>::K, typename qpair<QP>::V>(c, g, res);
    if constexpr (AllTypes) {
      switch (c.type) {
        case dtype::f32: run_t<float>(c, g, res); break;
        case dtype::bf16: run_t<bf16>(c, g, res); break;
        case dtype::fp16: run_t<fp16>(c, g, res); break;
      }
    } else {
      run_t<float>(c, g, res);
    }
  }
};

// ---- the table of policy combinations ---------------------------------------------------------
using sw = sliding_window;
using mf = mask_fn<fuzz_mask_fn>;
using sf = score_fn<fuzz_score_fn>;
using sws = softmax_with_sink;

struct combo_row {
  const char* name;
  void (*run)(const config&, rng&, case_result&);
  bool has_lse, has_scale, has_qoff, has_document, is_sink, all_types;
  int qpair;  // kQPairs index of its quantized cases
};
template <class M>
inline constexpr bool has_doc = std::is_same_v<M, document>;
template <class A, class B>
inline constexpr bool has_doc<and_<A, B>> = has_doc<A> || has_doc<B>;
template <class A, class B>
inline constexpr bool has_doc<or_<A, B>> = has_doc<A> || has_doc<B>;
using doc_and_causal = and_<document, causal>;
using sinks_or_window = or_<sink_tokens, sw>;
using causal_and_fn = and_<causal, mf>;
using window_or_doc = or_<sw, document>;
using doc_and_window = and_<document, sw>;
using causal_and_window = and_<causal, sw>;
using fn_or_sinks = or_<mf, sink_tokens>;
using sinks_and_causal = and_<sink_tokens, causal>;
// Q: the row's quantized (K, V) pair, kQPairs[(row index) % kNumQPairs].
#define ROWT(M, S, N, O, T, Q) \
  combo_row { #M " | " #S " | " #N " | opts " #O, &combo<M, S, N, O, T, (Q) % kNumQPairs>::run, N::has_lse, \
              ((O) & kScale) != 0, ((O) & kQoff) != 0, has_doc<M>, std::is_same_v<N, sws>, T, (Q) % kNumQPairs }
#define ROW(M, S, N, O, Q) ROWT(M, S, N, O, false, Q)
#define ROW16(M, S, N, O, Q) ROWT(M, S, N, O, true, Q)  // also bf16 / fp16 inputs

const combo_row kCombos[] = {
    ROW16(no_mask, dot_product, softmax, 0, 0),
    ROW16(causal, dot_product, softmax, 1, 1),
    ROW(causal, dot_product, softmax, 2, 2),
    ROW(sw, dot_product, softmax, 3, 3),
    ROW(sink_tokens, dot_product, softmax, 1, 4),
    ROW(document, dot_product, softmax, 1, 5),
    ROW(mf, dot_product, softmax, 0, 6),
    ROW(causal, softcap, softmax, 1, 7),
    ROW16(sw, alibi, softmax, 3, 8),
    ROW(no_mask, sf, softmax, 1, 9),
    ROW16(causal, dot_product, sws, 1, 10),
    ROW(no_mask, dot_product, sws, 2, 11),
    ROW(sw, softcap, sws, 1, 12),
    ROW16(causal, dot_product, sigmoid, 1, 13),
    ROW(no_mask, alibi, sigmoid, 3, 14),
    ROW16(doc_and_causal, dot_product, softmax, 1, 15),
    ROW(sinks_or_window, dot_product, softmax, 3, 16),
    ROW16(sinks_or_window, dot_product, sws, 1, 17),
    ROW(causal_and_fn, dot_product, softmax, 2, 18),
    ROW(window_or_doc, alibi, softmax, 1, 19),
    ROW(doc_and_window, softcap, sigmoid, 1, 20),
    ROW(causal_and_window, sf, softmax, 3, 21),
    ROW(fn_or_sinks, dot_product, softmax, 1, 22),
    ROW(causal, alibi, sws, 3, 23),
    ROW(document, sf, sws, 1, 24),
    ROW(no_mask, softcap, softmax, 2, 25),
    ROW(sinks_and_causal, dot_product, sigmoid, 2, 26),
    ROW16(mf, softcap, sws, 1, 27),
};
constexpr int kNumCombos = sizeof(kCombos) / sizeof(kCombos[0]);

// ---- drawing a case ------------------------------------------------------------------------------
index_t draw_len(rng& g, index_t max_rand) {
  const int r = static_cast<int>(g.uni(0, 99));
  if (r < 5) return 0;
  if (r < 15) return 1;
  if (r < 35) return g.pick({7, 63, 65});
  return g.uni(1, max_rand);
}
index_t draw_dim(rng& g) {
  const int r = static_cast<int>(g.uni(0, 99));
  if (r < 25) return 64;
  if (r < 45) return 128;
  if (r < 65) return 2 * g.uni(0, 127) + 1;  // odd
  if (r < 80) return g.pick({1, 2, 3, 16, 80, 96, 256});
  return g.uni(1, 256);
}
fuzz_exec draw_exec(rng& g) {
  const int r = static_cast<int>(g.uni(0, 2));
  if (r == 0) return {0, 1};
  return {r, static_cast<int>(g.uni(1, 3))};
}

std::uint64_t leg_seed_of(std::uint64_t seed, long index) {  // the batched legs' generator
  std::uint64_t x = (seed + 0x632BE59BD9B4E019ull) * 0xD6E8FEB86659FD93ull ^ static_cast<std::uint64_t>(index) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return x * 0xBF58476D1CE4E5B9ull + 7;
}

config draw(std::uint64_t seed, long index, rng& g) {
  config c;
  c.seed = seed;
  c.index = index;
  c.combo = static_cast<int>(g.uni(0, kNumCombos - 1));
  const combo_row& row = kCombos[c.combo];
  c.type = row.all_types ? g.pick({dtype::f32, dtype::bf16, dtype::fp16}) : dtype::f32;
  c.flash = g.coin(0.6);
  c.B = g.uni(1, 3);
  if (g.coin(0.25)) {  // decode shapes
    c.Sq = g.uni(1, 16);
    c.Sk = g.coin(0.2) ? draw_len(g, 300) : g.uni(1, 3000);
  } else {
    c.Sq = draw_len(g, 300);
    c.Sk = draw_len(g, 300);
  }
  c.Hkv = g.pick({1, 1, 2, 3});
  c.Hq = c.Hkv * g.pick({1, 2, 4, 8});
  c.Dk = draw_dim(g);
  c.Dv = g.coin(0.5) ? c.Dk : draw_dim(g);
  // Bound the fp64 reference's work (B * Hq * Sq * Sk * (Dk + Dv)).
  while (c.B * c.Hq * c.Sq * c.Sk * (c.Dk + c.Dv) > 12'000'000) {
    if (c.B > 1) --c.B;
    else if (c.Hq > c.Hkv) c.Hq /= 2;
    else if (c.Dk + c.Dv > 96) c.Dk = std::max<index_t>(1, c.Dk / 2), c.Dv = std::max<index_t>(1, c.Dv / 2);
    else if (c.Hkv > 1) c.Hkv = c.Hq = 1;
    else c.Sk = c.Sk / 2;
  }
  const layout ls[] = {layout::bshd, layout::bhsd, layout::cache};
  c.lq = g.pick(ls), c.lk = g.pick(ls), c.lv = g.coin(0.7) ? c.lk : g.pick(ls), c.lo = g.pick(ls);
  c.mag = g.coin(0.15) ? 30.f : 1.f;

  // query offset (document: keep pos(i) < Sk, see the report: document reads ids[pos(i)])
  c.qoff = c.Sk - c.Sq;
  if (row.has_qoff && g.coin(0.7)) {
    c.qoff = g.uni(-c.Sq - 3, c.Sk + 3);
    if (row.has_document) c.qoff = std::min(c.qoff, c.Sk - c.Sq);
  }
  // masks
  auto win = [&]() -> index_t {
    const int r = static_cast<int>(g.uni(0, 9));
    if (r < 2) return -1;
    if (r < 4) return g.uni(0, 2);
    return g.uni(0, std::max<index_t>(1, c.Sk));
  };
  c.wl = win(), c.wr = win();
  if (g.coin(0.25)) c.W = g.uni(1, std::max<index_t>(1, c.Sk + 2));
  c.nsink = g.coin(0.2) ? 0 : g.uni(0, std::min<index_t>(c.Sk + 2, 8));
  c.ids_stride = g.coin(0.5) ? 0 : c.Sk;
  {
    const index_t rows = c.ids_stride == 0 ? 1 : c.B;
    const double p_new = g.pick({0.0, 0.01, 0.05, 0.3});
    for (index_t b = 0; b < rows; ++b) {
      std::int32_t id = static_cast<std::int32_t>(g.uni(-2, 3));
      for (index_t j = 0; j < c.Sk; ++j) {
        if (g.coin(p_new)) id += static_cast<std::int32_t>(g.uni(1, 3));
        c.ids.push_back(id);
      }
    }
  }
  c.mf = {static_cast<int>(g.uni(1, 7)), static_cast<int>(g.uni(1, 7)), static_cast<int>(g.uni(2, 5)),
          g.coin(0.08) ? 2 : static_cast<int>(g.uni(0, 1))};
  // scores
  c.cap = g.pick({0.5f, 1.f, 5.f, 20.f, 50.f});
  if (g.coin(0.5)) c.slopes = alibi::standard_slopes(c.Hq);
  else
    for (index_t h = 0; h < c.Hq; ++h) c.slopes.push_back(static_cast<float>(g.real(0, 1)));
  c.sf = {static_cast<float>(g.real(-1.5, 1.5)), static_cast<float>(g.real(-2, 2))};
  // normalizers
  const float sink_mag = g.coin(0.2) ? 30.f : 4.f;
  for (index_t h = 0; h < c.Hq; ++h) c.sinks.push_back(static_cast<float>(g.real(-sink_mag, sink_mag)));
  c.sig_bias = g.coin(0.3) ? -std::log(float(std::max<index_t>(c.Sk, 1))) : static_cast<float>(g.real(-5, 2));
  // options
  if (row.has_scale) {
    const int r = static_cast<int>(g.uni(0, 9));
    c.scale_default = false;
    if (r < 3) c.scale_v = 1.f / std::sqrt(float(c.Dk));
    else if (r < 8) c.scale_v = static_cast<float>(std::exp(g.real(std::log(0.01), std::log(2.0))));
    else c.scale_v = g.pick({8.f, 50.f, 1000.f, -0.5f, 0.f});
  }
  c.want_lse = row.has_lse && g.coin(0.7);
  c.want_km = g.coin(0.3);
  c.ex = draw_exec(g);
  do c.ex2 = draw_exec(g);
  while (c.ex2.mode == c.ex.mode && c.ex2.threads == c.ex.threads);
  // poison
  if (c.Sk > 0 && c.B > 0 && g.coin(0.3)) {
    const int n = static_cast<int>(g.uni(1, 3));
    for (int t = 0; t < n; ++t) {
      poison_site p{};
      p.which = static_cast<int>(g.uni(0, 1));
      p.b = g.uni(0, c.B - 1), p.s = g.uni(0, c.Sk - 1), p.h = g.uni(0, c.Hkv - 1);
      p.c = g.uni(0, (p.which == 0 ? c.Dk : c.Dv) - 1);
      p.value = g.pick({kNaN, kNaN, kInf, -kInf});
      c.poison.push_back(p);
    }
  } else if (c.Sq > 0 && g.coin(0.1)) {
    poison_site p{};
    p.which = 2;
    p.b = g.uni(0, c.B - 1), p.s = g.uni(0, c.Sq - 1), p.h = g.uni(0, c.Hq - 1), p.c = g.uni(0, c.Dk - 1);
    p.value = kNaN;
    c.poison.push_back(p);
  }
  // Batched legs: their own generator, so the strided case is unchanged by them.
  rng gb(leg_seed_of(seed, index));
  c.leg_seed = gb.g();
  if (c.flash && !row.has_qoff) {
    c.leg_paged = gb.coin(0.5);
    c.leg_varlen = gb.coin(0.4);
    c.page = gb.coin(1.0 / 6) ? gb.uni(1, 200) : gb.pick({1, 3, 16, 64, 128});
    c.page_layout = static_cast<int>(gb.uni(0, 1));
    c.vl_kv = gb.coin(0.35) ? 1 : 0;
    c.vl_q_layout = gb.coin(0.3) ? 1 : 0;
    c.vl_k_pad = gb.coin(0.5) ? 0 : gb.uni(1, 9);
  }
  // Quantized K / V: their own generator too (the other cases are those of a run without them).
  rng gq(leg_seed_of(seed, index) ^ 0x2545F4914F6CDD1Dull);
  c.quant_seed = gq.g();
  const qpair_info& qp = kQPairs[row.qpair];
  const bool fits = (!qp.k4 || c.Dk % 32 == 0) && (!qp.v4 || c.Dv % 32 == 0);
  if (fits && gq.coin(qp.k4 || qp.v4 ? 0.4 : 0.17)) {  // about 17% of all cases
    c.quant = row.qpair;
    c.type = dtype::f32;
    if (qp.kc || qp.vc) {
      // A paged pool's page size must be a multiple of the block; varlen_kv's packed blocks are
      // the strided ones when the block divides Sk.
      index_t need = 0;
      if (c.leg_paged || (c.leg_varlen && c.vl_kv == 1)) need = c.page;
      if (c.leg_varlen && c.vl_kv == 0) need = std::gcd(need, c.Sk);
      if (need > 0) {
        std::vector<index_t> div;
        for (index_t d = 1; d <= std::min<index_t>(need, 256); ++d)
          if (need % d == 0) div.push_back(d);
        c.qblock = div[static_cast<std::size_t>(gq.uni(0, static_cast<index_t>(div.size()) - 1))];
      } else {
        c.qblock = gq.coin(0.5) ? gq.pick({1, 2, 16, 32, 64, 128}) : gq.uni(1, std::clamp<index_t>(c.Sk, 1, 128));
      }
    }
  }
  return c;
}

// ---- malformed calls ---------------------------------------------------------------------------
// Two fixed instantiations carry every breakable parameter: (A) alibi, (sink_tokens |
// sliding_window) & document, softmax_with_sink, scale, lse_out, key_mass_out, workspace; (B)
// softcap, causal, sigmoid, scale, lse_out. A valid call is built, then one thing is broken.
enum class breakage {
  k_batch, v_batch, v_seq, v_heads, k_dim, out_batch, out_seq, out_heads, out_dim, gqa,
  null_q, null_k, null_v, null_out, stride_q, stride_k, stride_v, stride_out,
  out_overlaps_q, out_overlaps_k, out_overlaps_v, out_self_overlap, lse_overlaps_out, km_overlaps_lse,
  alibi_nan, alibi_inf, alibi_count, sink_negative, window_left, window_right, ids_length, ids_decreasing,
  ids_stride, scale_nan, scale_inf, workspace_small, sink_logit_count, sink_logit_nan,
  cap_zero, cap_nan, sigmoid_bias_nan, sigmoid_lse, doc_query_offset,
  count
};
const char* name(breakage b) {
  static const char* n[] = {"k_batch", "v_batch", "v_seq", "v_heads", "k_dim", "out_batch", "out_seq", "out_heads",
                            "out_dim", "gqa", "null_q", "null_k", "null_v", "null_out", "stride_q", "stride_k",
                            "stride_v", "stride_out", "out_overlaps_q", "out_overlaps_k", "out_overlaps_v",
                            "out_self_overlap", "lse_overlaps_out", "km_overlaps_lse", "alibi_nan", "alibi_inf",
                            "alibi_count", "sink_negative", "window_left", "window_right", "ids_length",
                            "ids_decreasing", "ids_stride", "scale_nan", "scale_inf", "workspace_small",
                            "sink_logit_count", "sink_logit_nan", "cap_zero", "cap_nan", "sigmoid_bias_nan",
                            "sigmoid_lse", "doc_query_offset"};
  return n[static_cast<int>(b)];
}

struct malformed_result {
  std::string desc, errors;
};

malformed_result run_malformed(std::uint64_t seed, long index, rng& g) {
  const auto br = static_cast<breakage>(g.uni(0, static_cast<index_t>(breakage::count) - 1));
  const bool flash = g.coin(0.5);
  const char* fn = flash ? "flash_attention" : "dense_attention";
  index_t B = g.uni(1, 2), Sq = g.uni(2, 20), Sk = g.uni(1, 40), Hkv = g.uni(1, 2), Hq = Hkv * g.uni(1, 4),
          Dk = g.uni(1, 40), Dv = g.uni(1, 40);
  // Generous buffers: a broken view (+1 extent, stride 2, more heads) stays inside them, so a call
  // that wrongly does not throw cannot corrupt memory.
  auto room = [&](index_t S, index_t H, index_t D) { return static_cast<std::size_t>((B + 1) * (S + 2) * (H + 8) * (2 * D + 2)); };
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> qb(room(Sq, Hq, Dk)), kb(room(Sk, Hkv, Dk)), vb(room(Sk, Hkv, Dv));
  for (auto* b : {&qb, &kb, &vb})
    for (auto& x : *b) x = nd(g.g);
  std::vector<float> ob(room(Sq, Hq, Dv), kSentinel), lb(static_cast<std::size_t>(2 * (B + 1) * (Hq + 8) * (Sq + 2)), kSentinel),
      mb(static_cast<std::size_t>(2 * (B + 1) * (Hq + 8) * (Sk + 2)), kSentinel);
  tensor_view<const float> q = bshd<const float>(qb.data(), B, Sq, Hq, Dk), k = bshd<const float>(kb.data(), B, Sk, Hkv, Dk),
                           v = bshd<const float>(vb.data(), B, Sk, Hkv, Dv);
  tensor_view<float> o = bshd(ob.data(), B, Sq, Hq, Dv);
  float* lse = lb.data();
  float* km = g.coin(0.5) ? mb.data() : nullptr;
  std::vector<float> slopes = alibi::standard_slopes(Hq), sinks(static_cast<std::size_t>(Hq), 0.5f);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(Sk));
  for (index_t j = 0; j < Sk; ++j) ids[j] = static_cast<std::int32_t>(j / 7);
  index_t ids_stride = 0, nsink = 2, wl = 5, wr = 0;
  float sc = 0.3f, cap = 10.f, bias = -1.f;
  index_t qo = Sk - Sq;
  bool use_b = false;
  std::vector<std::byte> wsb;
  bool small_ws = false;
  std::string expect;  // a substring what() must contain besides the entry point
  auto with_d = [](tensor_view<const float> t, int axis, index_t delta) {
    t.extents[axis] += delta;
    return t;
  };
  switch (br) {
    case breakage::k_batch: k = bshd<const float>(kb.data(), B + 1, Sk, Hkv, Dk); expect = "k:"; break;
    case breakage::v_batch: v = bshd<const float>(vb.data(), B + 1, Sk, Hkv, Dv); expect = "v:"; break;
    case breakage::v_seq: v = bshd<const float>(vb.data(), B, Sk + 1, Hkv, Dv); expect = "v:"; break;
    case breakage::v_heads: v = bshd<const float>(vb.data(), B, Sk, Hkv + 1, Dv); expect = "v:"; break;
    case breakage::k_dim: k = bshd<const float>(kb.data(), B, Sk, Hkv, Dk + 1); expect = "k:"; break;
    case breakage::out_batch: o = bshd(ob.data(), B + 1, Sq, Hq, Dv); expect = "out:"; break;
    case breakage::out_seq: o = bshd(ob.data(), B, Sq + 1, Hq, Dv); expect = "out:"; break;
    case breakage::out_heads: o = bshd(ob.data(), B, Sq, Hq + 1, Dv); expect = "out:"; break;
    case breakage::out_dim: o = bshd(ob.data(), B, Sq, Hq, Dv + 1); expect = "out:"; break;
    case breakage::gqa:
      // Hq % Hkv != 0: KV heads Hq + 1 (> Hq never divides it).
      k = bshd<const float>(kb.data(), B, Sk, Hq + 1, Dk), v = bshd<const float>(vb.data(), B, Sk, Hq + 1, Dv);
      expect = "heads";
      break;
    case breakage::null_q: q.data = nullptr; expect = "q:"; break;
    case breakage::null_k: k.data = nullptr; expect = "k:"; break;
    case breakage::null_v: v.data = nullptr; expect = "v:"; break;
    case breakage::null_out: o.data = nullptr; expect = "out:"; break;
    case breakage::stride_q: q.strides = {Sq * Hq * Dk * 2, Hq * Dk * 2, Dk * 2, 2}; expect = "q:"; break;
    case breakage::stride_k: k.strides = {Sk * Hkv * Dk * 2, Hkv * Dk * 2, Dk * 2, 2}; expect = "k:"; break;
    case breakage::stride_v: v.strides = {Sk * Hkv * Dv * 2, Hkv * Dv * 2, Dv * 2, 2}; expect = "v:"; break;
    case breakage::stride_out: o.strides = {Sq * Hq * Dv * 2, Hq * Dv * 2, Dv * 2, 2}; expect = "out:"; break;
    case breakage::out_overlaps_q: o.data = qb.data() + g.uni(0, std::min<index_t>(3, B * Sq * Hq * Dk - 1)); expect = "out:"; break;
    case breakage::out_overlaps_k: o.data = kb.data() + g.uni(0, std::min<index_t>(3, B * Sk * Hkv * Dk - 1)); expect = "out:"; break;
    case breakage::out_overlaps_v: o.data = vb.data() + g.uni(0, std::min<index_t>(3, B * Sk * Hkv * Dv - 1)); expect = "out:"; break;
    case breakage::out_self_overlap: o.strides[1] = 0; expect = "out:"; break;  // every query row aliases row 0
    case breakage::lse_overlaps_out: lse = ob.data() + g.uni(0, std::min<index_t>(3, B * Sq * Hq * Dv - 1)); expect = "lse_out"; break;
    case breakage::km_overlaps_lse:  // inside lse_out's B * Hq * Sq floats, so the two really overlap
      km = lb.data() + g.uni(0, std::min<index_t>(3, B * Hq * Sq - 1));
      expect = "_out";  // names lse_out / key_mass_out
      break;
    case breakage::alibi_nan: slopes[g.uni(0, Hq - 1)] = kNaN; expect = "slopes"; break;
    case breakage::alibi_inf: slopes[g.uni(0, Hq - 1)] = g.coin(0.5) ? kInf : -kInf; expect = "slopes"; break;
    case breakage::alibi_count: slopes.push_back(0.1f); expect = "slopes"; break;
    case breakage::sink_negative: nsink = -g.uni(1, 5); expect = "sink_tokens"; break;
    case breakage::window_left: wl = -g.uni(2, 5); expect = "left"; break;
    case breakage::window_right: wr = -g.uni(2, 5); expect = "right"; break;
    case breakage::ids_length: ids.resize(static_cast<std::size_t>(Sk + (g.coin(0.5) ? 1 : -1))); expect = "ids"; break;
    case breakage::ids_decreasing:
      if (Sk >= 2) {
        const index_t j = g.uni(1, Sk - 1);
        ids[j] = ids[j - 1] - 1;
        for (index_t t = j + 1; t < Sk; ++t) ids[t] = ids[j];
        expect = "ids";
      } else {
        ids.resize(static_cast<std::size_t>(Sk + 1));  // Sk = 1 cannot decrease: break the length instead
        expect = "ids";
      }
      break;
    case breakage::ids_stride: ids_stride = Sk + 1; expect = "batch_stride"; break;
    case breakage::scale_nan: sc = kNaN; expect = "scale"; break;
    case breakage::scale_inf: sc = g.coin(0.5) ? kInf : -kInf; expect = "scale"; break;
    case breakage::workspace_small: small_ws = true; expect = "workspace"; break;
    case breakage::sink_logit_count: sinks.pop_back(); expect = "logits"; break;
    case breakage::sink_logit_nan: sinks[g.uni(0, Hq - 1)] = g.coin(0.5) ? kNaN : kInf; expect = "logits"; break;
    case breakage::cap_zero: use_b = true, cap = g.coin(0.5) ? 0.f : -1.f; expect = "cap"; break;
    case breakage::cap_nan: use_b = true, cap = kNaN; expect = "cap"; break;
    case breakage::sigmoid_bias_nan: use_b = true, bias = kNaN; expect = "bias"; break;
    case breakage::sigmoid_lse: use_b = true; expect = "lse_out"; break;
    case breakage::doc_query_offset: qo = Sk - Sq + g.uni(1, 5); expect = "query_offset"; break;  // ids[pos] past Sk
    case breakage::count: break;
  }
  (void)with_d;
  if (use_b && br != breakage::sigmoid_lse) lse = nullptr;
  std::ostringstream os;
  os << "seed=" << seed << " case=" << index << " arch=" << ATTNKIT_TEST_ARCH_NAME << " malformed=" << name(br) << " "
     << fn << " B=" << B << " Sq=" << Sq << " Sk=" << Sk << " Hq=" << Hq << " Hkv=" << Hkv << " Dk=" << Dk << " Dv=" << Dv
     << (use_b ? " set=B" : " set=A");
  malformed_result r{os.str(), {}};
  set_current(r.desc);

  const fuzz_exec ex{0, 1};
  const auto mask = (sink_tokens{nsink} | sliding_window{wl, wr}) & document{std::span<const std::int32_t>(ids), ids_stride};
  const alibi al{std::span<const float>(slopes)};
  const softmax_with_sink sn{std::span<const float>(sinks)};
  auto call_a = [&](const workspace& w) {
    if (flash) flash_attention<Arch>(q, k, v, o, al, mask, sn, scale{sc}, query_offset{qo}, lse_out{lse}, key_mass_out{km}, w, ex);
    else dense_attention<Arch>(q, k, v, o, al, mask, sn, scale{sc}, query_offset{qo}, lse_out{lse}, key_mass_out{km}, w, ex);
  };
  auto call_b = [&] {
    if (flash) flash_attention<Arch>(q, k, v, o, softcap{cap}, causal{}, sigmoid{bias}, scale{sc}, lse_out{lse}, ex);
    else dense_attention<Arch>(q, k, v, o, softcap{cap}, causal{}, sigmoid{bias}, scale{sc}, lse_out{lse}, ex);
  };
  // Workspace: exactly enough (from a valid twin of the call) unless the breakage is its size.
  if (!use_b) {
    index_t need = 0;
    try {
      const workspace none{};
      (void)none;
      std::vector<float> tmp(static_cast<std::size_t>(B * Sq * Hq * Dv));
      const auto o_ok = bshd(tmp.data(), B, Sq, Hq, Dv);
      const auto q_ok = bshd<const float>(qb.data(), B, Sq, Hq, Dk), k_ok = bshd<const float>(kb.data(), B, Sk, Hkv, Dk),
                 v_ok = bshd<const float>(vb.data(), B, Sk, Hkv, Dv);
      std::vector<float> slopes_ok = alibi::standard_slopes(Hq), sinks_ok(static_cast<std::size_t>(Hq), 0.5f);
      std::vector<std::int32_t> ids_ok(static_cast<std::size_t>(Sk), 0);
      const auto mask_ok = (sink_tokens{2} | sliding_window{5, 0}) & document{std::span<const std::int32_t>(ids_ok), 0};
      need = flash ? flash_workspace_bytes<Arch>(q_ok, k_ok, v_ok, o_ok, alibi{std::span<const float>(slopes_ok)}, mask_ok,
                                                 softmax_with_sink{std::span<const float>(sinks_ok)}, ex)
                   : dense_workspace_bytes<Arch>(q_ok, k_ok, v_ok, o_ok, alibi{std::span<const float>(slopes_ok)}, mask_ok,
                                                 softmax_with_sink{std::span<const float>(sinks_ok)}, ex);
    } catch (const std::exception& e) {
      r.errors += std::string("workspace_bytes of the valid twin threw: ") + e.what() + "; ";
      return r;
    }
    wsb.resize(static_cast<std::size_t>(small_ws ? g.uni(0, std::max<index_t>(0, need - 1)) : need));
  }
  const auto snap = [&] { return std::make_tuple(qb, kb, vb, ob, lb, mb); };
  const auto before = snap();
  try {
    if (use_b) call_b();
    else call_a(workspace{std::span<std::byte>(wsb)});
    r.errors += std::string("did not throw (expected attnkit::invalid_argument naming ") + fn + " and '" + expect + "'); ";
  } catch (const attnkit::invalid_argument& e) {
    const std::string w = e.what();
    if (w.find(fn) == std::string::npos) r.errors += "message does not name " + std::string(fn) + ": \"" + w + "\"; ";
    if (w.find(expect) == std::string::npos) r.errors += "message does not name '" + expect + "': \"" + w + "\"; ";
  } catch (const std::exception& e) {
    r.errors += std::string("threw something other than attnkit::invalid_argument: ") + e.what() + "; ";
  }
  if (snap() != before) r.errors += "a buffer changed although the call was invalid; ";
  return r;
}

// ---- malformed batched calls ---------------------------------------------------------------------
// A valid batched call (strided q + paged pool, varlen q + paged pool, or varlen q + varlen_kv)
// with one layout argument broken. The calls reuse two instantiations of the policy table's
// (causal | dot_product | softmax) rows: opts 1 (scale) and opts 2 (query_offset).
enum class bbreak {
  table_id_high, table_id_negative, table_size, length_over, length_negative, lengths_count,
  q_starts_first, q_starts_decreasing, q_starts_end, k_starts_first, k_starts_decreasing, k_starts_end,
  query_offset, key_mass, count
};
const char* name(bbreak b) {
  static const char* n[] = {"table_id_high", "table_id_negative", "table_size", "length_over", "length_negative",
                            "lengths_count", "q_starts_first", "q_starts_decreasing", "q_starts_end",
                            "k_starts_first", "k_starts_decreasing", "k_starts_end", "query_offset", "key_mass"};
  return n[static_cast<int>(b)];
}

/// Breaks offsets `s` (B + 1 entries, s[0] = 0, s[B] = total) in one of three ways.
void break_starts(std::vector<std::int32_t>& s, int how, rng& g) {
  const index_t B = static_cast<index_t>(s.size()) - 1;
  if (how == 0) s[0] = static_cast<std::int32_t>(g.uni(1, 3));
  else if (how == 1) {
    const index_t b = g.uni(1, B);  // s[b] < s[b - 1]
    s[b] = s[b - 1] - static_cast<std::int32_t>(g.uni(1, 3));
  } else s[B] += g.coin(0.5) ? static_cast<std::int32_t>(g.uni(1, 3)) : -1;
}

malformed_result run_malformed_batched(std::uint64_t seed, long index, rng& g) {
  const int mode = static_cast<int>(g.uni(0, 2));  // 0 strided q + paged, 1 varlen q + paged, 2 varlen + varlen_kv
  bbreak br;
  do br = static_cast<bbreak>(g.uni(0, static_cast<index_t>(bbreak::count) - 1));
  while ((mode == 2 && br <= bbreak::lengths_count) || (mode == 0 && br >= bbreak::q_starts_first && br <= bbreak::k_starts_end) ||
         (mode == 1 && br >= bbreak::k_starts_first && br <= bbreak::k_starts_end));
  const index_t B = g.uni(1, 3), Hkv = g.uni(1, 2), Hq = Hkv * g.uni(1, 4), Dk = g.uni(1, 40), Dv = g.uni(1, 40),
                ps = g.uni(1, 16), Sq = g.uni(1, 8);
  std::vector<std::int32_t> qs{0}, ks{0}, lengths;
  for (index_t b = 0; b < B; ++b) {
    const index_t sk = g.uni(b == 0 ? 1 : 0, 60);  // sequence 0 holds a page at least
    qs.push_back(qs.back() + static_cast<std::int32_t>(mode == 0 ? Sq : g.uni(b == 0 ? 1 : 0, std::min<index_t>(sk, 8))));
    ks.push_back(ks.back() + static_cast<std::int32_t>(sk));
    lengths.push_back(static_cast<std::int32_t>(sk));
  }
  const index_t tq = mode == 0 ? B * Sq : qs.back(), tk = ks.back();
  index_t max_pages = 0;
  for (auto l : lengths) max_pages = std::max<index_t>(max_pages, (l + ps - 1) / ps);
  max_pages += g.uni(0, 1);
  const index_t pages = B * max_pages + 1;
  std::normal_distribution<float> nd(0.f, 1.f);
  auto filled = [&](index_t n) {
    std::vector<float> x(static_cast<std::size_t>(std::max<index_t>(n, 1)));
    for (auto& e : x) e = nd(g.g);
    return x;
  };
  const auto qb = filled(tq * Hq * Dk), kb = filled(std::max(tk, pages * ps) * Hkv * Dk),
             vb = filled(std::max(tk, pages * ps) * Hkv * Dv);
  std::vector<std::int32_t> table(static_cast<std::size_t>(B * max_pages + 1), -1);  // + 1: room for table_size
  for (index_t b = 0, next = 0; b < B; ++b)
    for (index_t p = 0; p * ps < lengths[b]; ++p) table[b * max_pages + p] = static_cast<std::int32_t>(next++);
  lengths.push_back(0);  // room for lengths_count (B + 1 entries)
  std::vector<float> ob(static_cast<std::size_t>(std::max<index_t>(tq * Hq * Dv, 1) + kGuard), kSentinel),
      lb(static_cast<std::size_t>(tq * Hq + kGuard), kSentinel), mb(static_cast<std::size_t>(B * Hq * 64 + kGuard), kSentinel);
  std::size_t n_table = static_cast<std::size_t>(B * max_pages), n_lengths = static_cast<std::size_t>(B);
  index_t qo = 0;
  float* km = nullptr;
  std::string expect;
  switch (br) {
    case bbreak::table_id_high: table[g.uni(0, (lengths[0] - 1) / ps)] = static_cast<std::int32_t>(pages + g.uni(0, 5)); expect = "kv.block_table"; break;
    case bbreak::table_id_negative: table[g.uni(0, (lengths[0] - 1) / ps)] = -static_cast<std::int32_t>(g.uni(1, 5)); expect = "kv.block_table"; break;
    case bbreak::table_size: n_table += g.coin(0.5) && n_table > 0 ? -1 : 1; expect = "kv.block_table"; break;
    case bbreak::length_over: lengths[g.uni(0, B - 1)] = static_cast<std::int32_t>(max_pages * ps + g.uni(1, 5)); expect = "kv.lengths"; break;
    case bbreak::length_negative: lengths[g.uni(0, B - 1)] = -static_cast<std::int32_t>(g.uni(1, 5)); expect = "kv.lengths"; break;
    case bbreak::lengths_count: n_lengths += g.coin(0.5) ? -1 : 1; expect = "kv.lengths"; break;
    case bbreak::q_starts_first: case bbreak::q_starts_decreasing: case bbreak::q_starts_end:
      break_starts(qs, static_cast<int>(br) - static_cast<int>(bbreak::q_starts_first), g); expect = "q.starts"; break;
    case bbreak::k_starts_first: case bbreak::k_starts_decreasing: case bbreak::k_starts_end:
      break_starts(ks, static_cast<int>(br) - static_cast<int>(bbreak::k_starts_first), g); expect = "kv.starts"; break;
    case bbreak::query_offset: qo = g.uni(-3, 3) + (mode == 0 ? lengths[0] - Sq : 0); expect = "query_offset"; break;
    case bbreak::key_mass: km = mb.data(); expect = "key_mass_out"; break;
    case bbreak::count: break;
  }
  std::ostringstream os;
  os << "seed=" << seed << " case=" << index << " arch=" << ATTNKIT_TEST_ARCH_NAME << " malformed_batched=" << name(br)
     << " mode=" << (mode == 0 ? "strided+paged" : mode == 1 ? "varlen+paged" : "varlen+varlen_kv") << " B=" << B
     << " Sq=" << Sq << " Hq=" << Hq << " Hkv=" << Hkv << " Dk=" << Dk << " Dv=" << Dv << " page=" << ps;
  malformed_result r{os.str(), {}};
  set_current(r.desc);

  const auto kp = tensor_view<const float>{kb.data(), {pages, ps, Hkv, Dk}, {ps * Hkv * Dk, Hkv * Dk, Dk, 1}};
  const auto vp = tensor_view<const float>{vb.data(), {pages, ps, Hkv, Dv}, {ps * Hkv * Dv, Hkv * Dv, Dv, 1}};
  const paged_kv<const float> pkv{kp, vp, std::span<const std::int32_t>(table.data(), n_table), max_pages,
                                  std::span<const std::int32_t>(lengths.data(), n_lengths)};
  const varlen_kv<const float> vkv{bshd<const float>(kb.data(), 1, tk, Hkv, Dk), bshd<const float>(vb.data(), 1, tk, Hkv, Dv), ks};
  const auto qv = bshd<const float>(qb.data(), B, Sq, Hq, Dk);
  const varlen<const float> vq{bshd<const float>(qb.data(), 1, tq, Hq, Dk), qs};
  const tensor_view<float> o = mode == 0 ? bshd(ob.data(), B, Sq, Hq, Dv) : bshd(ob.data(), 1, tq, Hq, Dv);
  const fuzz_exec ex{0, 1};
  const dot_product dp{};
  const causal cm{};
  const softmax sm{};
  const scale sc{0.3f};
  const query_offset qoff{qo};
  // As combo<causal, dot_product, softmax, 1 / 2>::kernel passes them (one instantiation each).
  auto call = [&](const auto& qa, const auto& kva) {
    if (br == bbreak::query_offset)
      flash_attention<Arch>(qa, kva, o, dp, cm, sm, qoff, ex, lse_out{lb.data()}, key_mass_out{km});
    else flash_attention<Arch>(qa, kva, o, dp, cm, sm, sc, ex, lse_out{lb.data()}, key_mass_out{km});
  };
  const auto snap = [&] { return std::make_tuple(ob, lb, mb, table, lengths, qs, ks); };
  const auto before = snap();
  try {
    if (mode == 0) call(qv, pkv);
    else if (mode == 1) call(vq, pkv);
    else call(vq, vkv);
    r.errors += "did not throw (expected attnkit::invalid_argument naming flash_attention and '" + expect + "'); ";
  } catch (const attnkit::invalid_argument& e) {
    const std::string w = e.what();
    if (w.find("flash_attention") == std::string::npos) r.errors += "message does not name flash_attention: \"" + w + "\"; ";
    if (w.find(expect) == std::string::npos) r.errors += "message does not name '" + expect + "': \"" + w + "\"; ";
  } catch (const std::exception& e) {
    r.errors += std::string("threw something other than attnkit::invalid_argument: ") + e.what() + "; ";
  }
  if (snap() != before) r.errors += "a buffer changed although the call was invalid; ";
  return r;
}

// ---- malformed quantized views -------------------------------------------------------------------
// A valid call with quantized K / V (layouts with room, so a call that wrongly does not throw
// reads inside the buffers) with one thing broken: scales' shape or pointer, qint4 with D % 32 !=
// 0, a by-channel block < 1 or not matching the scales, out overlapping the scales, a paged
// by-channel block that does not divide the page size, paged / varlen_kv scales' shapes. Must
// throw attnkit::invalid_argument naming the entry point and the argument, nothing written. The
// calls reuse the policy table's instantiations: rows 0 (qint8, qint8), 1 (qint4, qint4), 2 and
// 9 (qint8_channel, qint8).
enum class qbreak {
  k_scales_seq, v_scales_seq, k_scales_dim, v_scales_dim, k_scales_null, v_scales_heads, q4_dim_k, q4_dim_v,
  block_zero, block_shape, out_overlaps_scales, paged_block, paged_k_scales, paged_v_scales, varlen_k_scales,
  varlen_v_scales, count
};
const char* name(qbreak b) {
  static const char* n[] = {"k_scales_seq", "v_scales_seq", "k_scales_dim", "v_scales_dim", "k_scales_null",
                            "v_scales_heads", "q4_dim_k", "q4_dim_v", "block_zero", "block_shape",
                            "out_overlaps_scales", "paged_block", "paged_k_scales", "paged_v_scales",
                            "varlen_k_scales", "varlen_v_scales"};
  return n[static_cast<int>(b)];
}
using mq_row0 = combo<no_mask, dot_product, softmax, 0, true, 0>;
using mq_row1 = combo<causal, dot_product, softmax, 1, true, 1>;
using mq_row2 = combo<causal, dot_product, softmax, 2, false, 2>;
using mq_row9 = combo<no_mask, sf, softmax, 1, false, 2>;

/// Bytes of a buffer (the quantized types have no operator==).
template <class T>
std::vector<std::uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<std::uint8_t> r(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(r.data(), v.data(), r.size());
  return r;
}
/// Runs `call` (which must throw), checks the message and that no buffer changed.
template <class Call, class Snap>
void expect_rejected(const char* fn, const std::string& expect, Call&& call, Snap&& snap, std::string& errors) {
  const auto before = snap();
  try {
    call();
    errors += std::string("did not throw (expected attnkit::invalid_argument naming ") + fn + " and '" + expect + "'); ";
  } catch (const attnkit::invalid_argument& e) {
    const std::string w = e.what();
    if (w.find(fn) == std::string::npos) errors += "message does not name " + std::string(fn) + ": \"" + w + "\"; ";
    if (w.find(expect) == std::string::npos) errors += "message does not name '" + expect + "': \"" + w + "\"; ";
  } catch (const std::exception& e) {
    errors += std::string("threw something other than attnkit::invalid_argument: ") + e.what() + "; ";
  }
  if (snap() != before) errors += "a buffer changed although the call was invalid; ";
}

template <class Row, class EK, class EV>
void malformed_q(config& c, qbreak br, rng& g, std::string& errors) {
  const char* fn = c.flash ? "flash_attention" : "dense_attention";
  const index_t Dk = c.Dk, Dv = c.Dv;
  auto q = make_tensor<float>(c.B, c.Sq, c.Hq, Dk, layout::bshd, g, 1.f);
  auto k = make_side<EK>(c.B, c.Sk, c.Hkv, Dk, layout::cache, g, 1.f, c.qblock, g);
  auto v = make_side<EV>(c.B, c.Sk, c.Hkv, Dv, layout::cache, g, 1.f, c.qblock, g);
  std::vector<float> ob(static_cast<std::size_t>(c.B * c.Sq * c.Hq * Dv + kGuard), kSentinel),
      lb(static_cast<std::size_t>(c.B * c.Hq * c.Sq + kGuard), kSentinel);
  tensor_view<float> o = bshd(ob.data(), c.B, c.Sq, c.Hq, Dv);
  auto kv = k.view();
  auto vv = v.view();
  std::string expect;
  std::vector<float> big;
  switch (br) {
    case qbreak::k_scales_seq: kv.scales.extents[1] += kv.scales.extents[1] > 0 && g.coin(0.5) ? -1 : 1; expect = "k.scales"; break;
    case qbreak::v_scales_seq: vv.scales.extents[1] += vv.scales.extents[1] > 0 && g.coin(0.5) ? -1 : 1; expect = "v.scales"; break;
    case qbreak::k_scales_dim: kv.scales.extents[3] += 1; expect = "k.scales"; break;
    case qbreak::v_scales_dim: vv.scales.extents[3] += 1; expect = "v.scales"; break;
    case qbreak::k_scales_null: kv.scales.data = nullptr; expect = "k.scales"; break;
    case qbreak::v_scales_heads:
      vv.scales.extents[2] += vv.scales.extents[2] > 1 ? -1 : 0;
      if (vv.scales.extents[2] == vv.values.extents[2]) vv.scales.extents[1] += 1;  // Hkv = 1: the seq instead
      expect = "v.scales";
      break;
    case qbreak::q4_dim_k:  // D - 16 values: a multiple of 16, not of 32 (checked before q's dim)
      kv.values.extents[3] = (Dk - 16) / 2, kv.scales.extents[3] = std::max<index_t>(1, (Dk - 16) / 32);
      expect = "k.values: expected qint4 rows of a multiple of 32";
      break;
    case qbreak::q4_dim_v:
      vv.values.extents[3] = (Dv - 16) / 2, vv.scales.extents[3] = std::max<index_t>(1, (Dv - 16) / 32);
      expect = "v.values: expected qint4 rows of a multiple of 32";
      break;
    case qbreak::block_zero: kv.block = -g.uni(0, 3); expect = "k.block"; break;
    case qbreak::block_shape: {
      // a block whose scale-row count differs from the scales' (seq rows ceil(Sk / block))
      const index_t rows = kv.scales.extents[1];
      index_t b2 = 0;
      for (index_t t = 1; t <= 2 * c.Sk + 2; ++t)
        if ((c.Sk + t - 1) / t != rows) {
          b2 = t;
          if (g.coin(0.5)) break;
        }
      if (b2 > 0) kv.block = b2;
      else kv.scales.extents[1] += 1;  // Sk = 1: every block has one scale row
      expect = "k.scales";
      break;
    }
    case qbreak::out_overlaps_scales: {
      // out placed over a copy of k's scales (the call reads those)
      big.assign(k.qt.sc.size() + static_cast<std::size_t>(c.B * c.Sq * c.Hq * Dv) + 8, 0.f);
      std::copy(k.qt.sc.begin(), k.qt.sc.end(), big.begin());
      kv.scales.data = big.data() + (kv.scales.data - k.qt.sc.data());
      // (starting at one of the view's first elements: the buffer's tail is padding, not the view)
      const index_t n = kv.scales.extents[0] * kv.scales.extents[1] * kv.scales.extents[2] * kv.scales.extents[3];
      o.data = big.data() + (kv.scales.data - big.data()) + g.uni(0, std::clamp<index_t>(n - 1, 0, 3));
      expect = "scales of k";
      break;
    }
    default: break;
  }
  auto snap = [&] { return std::make_tuple(ob, lb, bytes_of(big), bytes_of(k.qt.vals), bytes_of(k.qt.sc), bytes_of(v.qt.vals), bytes_of(v.qt.sc)); };
  expect_rejected(fn, expect, [&] { Row::kernel_v(c, q.cview(), kv, vv, o, c.ex, lb.data(), nullptr); }, snap, errors);
}

template <class Row, class EK, class EV>
void malformed_q_batched(config& c, qbreak br, rng& g, std::string& errors) {
  // A pool of the drawn sequences (as the batched legs build it) or their packed rows.
  c.page = br == qbreak::paged_block ? g.pick({4, 6, 8, 12, 16}) : g.uni(1, 16);
  c.qblock = 1;  // (divides every page size)
  index_t blk = 0;  // paged_block: one that does not divide the page size
  if (br == qbreak::paged_block) {
    do blk = g.uni(2, c.page + 3);
    while (c.page % blk == 0);
  }
  auto q = make_tensor<float>(c.B, c.Sq, c.Hq, c.Dk, layout::bshd, g, 1.f);
  auto k = make_side<EK>(c.B, c.Sk, c.Hkv, c.Dk, layout::bshd, g, 1.f, c.qblock, g);
  auto v = make_side<EV>(c.B, c.Sk, c.Hkv, c.Dv, layout::bshd, g, 1.f, c.qblock, g);
  std::vector<float> ob(static_cast<std::size_t>(c.B * c.Sq * c.Hq * c.Dv + kGuard), kSentinel),
      lb(static_cast<std::size_t>(c.B * c.Hq * c.Sq + kGuard), kSentinel);
  std::string expect;
  const char* fn = "flash_attention";
  if (br == qbreak::varlen_k_scales || br == qbreak::varlen_v_scales) {
    auto kk = pack_side(k, 0, g);
    auto vv = pack_side(v, 0, g);
    auto qk = pack(q, 0, 0, g);
    auto kvw = kk.view;
    auto vvw = vv.view;
    if (br == qbreak::varlen_k_scales) kvw.scales.extents[1] += kvw.scales.extents[1] > 0 && g.coin(0.5) ? -1 : 1, expect = "kv.k.scales";
    else vvw.scales.extents[3] += 1, expect = "kv.v.scales";
    const tensor_view<float> o = bshd(ob.data(), 1, c.B * c.Sq, c.Hq, c.Dv);
    auto snap = [&] { return std::make_tuple(ob, lb, bytes_of(kk.vals), bytes_of(kk.sc), bytes_of(vv.vals), bytes_of(vv.sc)); };
    expect_rejected(fn, expect, [&] {
      Row::batched_kernel(c, varlen<const float>{qk.view, qk.starts}, varlen_kv<const EK, const EV>{kvw, vvw, kk.starts}, o, lb.data());
    }, snap, errors);
    return;
  }
  qpool<EK, EV> pool;
  c.page_layout = static_cast<int>(g.uni(0, 1));
  pool = make_qpool(c, k, v, g.g());
  if (br == qbreak::paged_block) {
    // validation rejects the block before reading: the scales keep the shape the block implies
    // (ceil(page / block) <= page rows: inside the pool's buffers)
    pool.k.view.block = blk;
    pool.k.view.scales.extents[1] = (c.page + blk - 1) / blk;
    expect = "kv.k_pages.block";
  } else {
    if (br == qbreak::paged_k_scales) pool.k.view.scales.extents[0] -= 1, expect = "kv.k_pages.scales";
    else pool.v.view.scales.extents[g.coin(0.5) ? 1 : 3] += 1, expect = "kv.v_pages.scales";
  }
  const tensor_view<float> o = bshd(ob.data(), c.B, c.Sq, c.Hq, c.Dv);
  auto snap = [&] { return std::make_tuple(ob, lb, bytes_of(pool.k.vals), bytes_of(pool.k.sc), bytes_of(pool.v.vals), bytes_of(pool.v.sc)); };
  expect_rejected(fn, expect, [&] { Row::batched_kernel(c, q.cview(), pool.view(), o, lb.data()); }, snap, errors);
}

malformed_result run_malformed_quant(std::uint64_t seed, long index, rng& g) {
  const auto br = static_cast<qbreak>(g.uni(0, static_cast<index_t>(qbreak::count) - 1));
  config c;
  c.seed = seed, c.index = index;
  c.B = g.uni(1, 2), c.Sq = g.uni(1, 8), c.Sk = g.uni(1, 40), c.Hkv = g.uni(1, 2), c.Hq = c.Hkv * g.uni(1, 4);
  c.Dk = 32 * g.uni(1, 2), c.Dv = 32 * g.uni(1, 2);
  c.flash = br >= qbreak::paged_block || g.coin(0.5);
  c.scale_default = false, c.scale_v = 0.3f, c.qoff = c.Sk - c.Sq;
  c.ex = {0, 1};
  // which pair: scales breaks on any of rows 0 / 1 / 2, the others where they apply
  int row = static_cast<int>(g.uni(0, 2));
  if (br == qbreak::q4_dim_k || br == qbreak::q4_dim_v) row = 1;
  if (br == qbreak::block_zero || br == qbreak::block_shape) row = 2;
  if (br == qbreak::paged_block) row = 9;
  if (br == qbreak::paged_k_scales || br == qbreak::paged_v_scales) row = g.coin(0.5) ? 0 : 9;
  if (br == qbreak::varlen_k_scales || br == qbreak::varlen_v_scales) row = static_cast<int>(g.uni(0, 1));
  c.qblock = row == 2 || row == 9 ? g.pick({1, 3, 8, 16}) : 1;
  std::ostringstream os;
  os << "seed=" << seed << " case=" << index << " arch=" << ATTNKIT_TEST_ARCH_NAME << " malformed_quant=" << name(br)
     << " " << (c.flash ? "flash" : "dense") << " row=" << row << " k=" << kQPairs[kCombos[row].qpair].k
     << " v=" << kQPairs[kCombos[row].qpair].v << " B=" << c.B << " Sq=" << c.Sq << " Sk=" << c.Sk << " Hq=" << c.Hq
     << " Hkv=" << c.Hkv << " Dk=" << c.Dk << " Dv=" << c.Dv << " block=" << c.qblock;
  malformed_result r{os.str(), {}};
  set_current(r.desc);
  if (br >= qbreak::paged_block) {
    if (row == 0) malformed_q_batched<mq_row0, qint8, qint8>(c, br, g, r.errors);
    else if (row == 1) malformed_q_batched<mq_row1, qint4, qint4>(c, br, g, r.errors);
    else malformed_q_batched<mq_row9, qint8_channel, qint8>(c, br, g, r.errors);
  } else {
    if (row == 0) malformed_q<mq_row0, qint8, qint8>(c, br, g, r.errors);
    else if (row == 1) malformed_q<mq_row1, qint4, qint4>(c, br, g, r.errors);
    else malformed_q<mq_row2, qint8_channel, qint8>(c, br, g, r.errors);
  }
  return r;
}

// ---- driver --------------------------------------------------------------------------------------
std::uint64_t case_seed(std::uint64_t seed, long index) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(index) * 0xBF58476D1CE4E5B9ull + 1;
  x ^= x >> 31;
  return x * 0x94D049BB133111EBull;
}

int usage() {
  std::fprintf(stderr, "usage: attnkit_fuzz_%s --seed S --cases N [--time-limit SEC] [--only I] [--accuracy-budget F] [--verbose]\n",
               ATTNKIT_TEST_ARCH_NAME);
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t seed = 1;
  long cases = 100, only = -1;
  double time_limit = 0;
  double accuracy_budget = 0;  // fraction of cases allowed to miss only the 2x-naive accuracy bound
  bool verbose = false;
  for (int a = 1; a < argc; ++a) {
    const std::string s = argv[a];
    auto next = [&]() -> const char* { return a + 1 < argc ? argv[++a] : nullptr; };
    const char* val = nullptr;
    if (s == "--verbose") verbose = true;
    else if ((s == "--seed" || s == "--cases" || s == "--time-limit" || s == "--only" || s == "--accuracy-budget") &&
             (val = next())) {
      if (s == "--accuracy-budget") accuracy_budget = std::strtod(val, nullptr);
      else if (s == "--seed") seed = std::strtoull(val, nullptr, 10);
      else if (s == "--cases") cases = std::strtol(val, nullptr, 10);
      else if (s == "--time-limit") time_limit = std::strtod(val, nullptr);
      else only = std::strtol(val, nullptr, 10);
    } else return usage();
  }
  if (!arch_available<Arch>()) {
    std::printf("attnkit_fuzz_%s: CPU lacks %s; skipped at run time\n", ATTNKIT_TEST_ARCH_NAME, ATTNKIT_TEST_ARCH_NAME);
    return 0;
  }
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Under a sanitizer its own report is better: keep its handlers. --verbose names each case.)
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, on_signal);
#endif

  const auto t0 = std::chrono::steady_clock::now();
  long quant_cases = 0;
  long ran = 0, mismatches = 0, malformed = 0, malformed_fail = 0, accuracy_only = 0;
  std::vector<long> per_combo_fail(kNumCombos, 0);
  const long first = only >= 0 ? only : 0, last = only >= 0 ? only + 1 : cases;
  for (long i = first; i < last; ++i) {
    if (time_limit > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > time_limit)
      break;
    rng g(case_seed(seed, i));
    const config c = draw(seed, i, g);
    const std::string desc = c.str();
    set_current(desc);
    if (verbose) std::printf("case %s | %s\n", desc.c_str(), kCombos[c.combo].name), std::fflush(stdout);
    case_result res;
    try {
      kCombos[c.combo].run(c, g, res);
    } catch (const std::exception& e) {
      res.errors += std::string("valid call threw: ") + e.what() + "; ";
    }
    ++ran;
    quant_cases += c.quant >= 0;
    if (!res.errors.empty()) {
      // A case whose only findings are "error vs naive fp32" is an accuracy miss of the 2x-naive
      // criterion (so far: large logits, see README); everything else is a contract violation.
      bool acc_only = true;
      for (std::size_t at = 0; at < res.errors.size();) {
        const std::size_t end = res.errors.find("; ", at);
        const std::string msg = res.errors.substr(at, end == std::string::npos ? std::string::npos : end - at);
        if (msg.find(" vs naive fp32 ") == std::string::npos) acc_only = false;
        at = end == std::string::npos ? res.errors.size() : end + 2;
      }
      if (acc_only) ++accuracy_only;
      else ++mismatches;
      ++per_combo_fail[c.combo];
      std::printf("FAIL %s | %s | %s\n", desc.c_str(), kCombos[c.combo].name, res.errors.c_str());
      std::fflush(stdout);
    }
    // One malformed call per case (cheap: validation throws before any work).
    const auto m = run_malformed(seed, i, g);
    ++malformed;
    if (!m.errors.empty()) {
      ++malformed_fail;
      std::printf("FAIL %s | %s\n", m.desc.c_str(), m.errors.c_str());
      std::fflush(stdout);
    } else if (verbose) {
      std::printf("ok %s\n", m.desc.c_str());
    }
    // And one malformed batched call (its own generator: the cases above are unchanged by it).
    rng gm(leg_seed_of(seed, i) ^ 0x5851F42D4C957F2Dull);
    const auto mb = run_malformed_batched(seed, i, gm);
    ++malformed;
    if (!mb.errors.empty()) {
      ++malformed_fail;
      std::printf("FAIL %s | %s\n", mb.desc.c_str(), mb.errors.c_str());
      std::fflush(stdout);
    } else if (verbose) {
      std::printf("ok %s\n", mb.desc.c_str());
    }
    // And one malformed call with quantized K / V (its own generator as well).
    rng gq(leg_seed_of(seed, i) ^ 0x7F4A7C159E3779B9ull);
    const auto mq = run_malformed_quant(seed, i, gq);
    ++malformed;
    if (!mq.errors.empty()) {
      ++malformed_fail;
      std::printf("FAIL %s | %s\n", mq.desc.c_str(), mq.errors.c_str());
      std::fflush(stdout);
    } else if (verbose) {
      std::printf("ok %s\n", mq.desc.c_str());
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("attnkit_fuzz_%s seed=%llu: %ld cases (%ld with quantized K/V), %ld contract mismatches, %ld accuracy-only misses (%.2f%%, "
              "budget %.2f%%), 0 crashes (a crash aborts the run with its case), %ld malformed calls checked, %ld "
              "malformed failures, %.1f s\n",
              ATTNKIT_TEST_ARCH_NAME, static_cast<unsigned long long>(seed), ran, quant_cases, mismatches, accuracy_only,
              ran ? 100.0 * double(accuracy_only) / double(ran) : 0.0, 100.0 * accuracy_budget, malformed,
              malformed_fail, secs);
  if (mismatches || accuracy_only)
    for (int k = 0; k < kNumCombos; ++k)
      if (per_combo_fail[k]) std::printf("  combo %d (%s): %ld failing cases\n", k, kCombos[k].name, per_combo_fail[k]);
  const bool accuracy_fail = double(accuracy_only) > accuracy_budget * double(ran);
  return (mismatches || malformed_fail || accuracy_fail) ? 1 : 0;
}
