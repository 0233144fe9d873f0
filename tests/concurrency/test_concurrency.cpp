// Usage: attnkit_concurrency_<arch> [threads=8] [iterations] [with-openmp]
//
// Concurrency test (run under ThreadSanitizer by the `tsan` preset, and as a plain test in `ci`):
// many std::threads call flash_attention, dense_attention, lightning_attention and merge_states
// at once on shared read-only inputs, each with its own outputs, and every result must be
// bitwise identical to a single-threaded run. Exercises the kernels' thread-local scratch (worker
// scratch and the split-KV partials of decode shapes), the policies' shared read-only state and
// the executors' own synchronization.
//
// Executors: serial{} from every thread, and a parallel_for_executor on a small std::thread pool
// (its synchronization is ours, so TSan sees all of it). openmp{2} from several threads at once
// runs too, except under ThreadSanitizer: libgomp (GCC's OpenMP runtime) is not built with TSan
// instrumentation, so its barriers and task hand-off are invisible to TSan, which then reports
// races between a parallel region's workers and the thread that started it (false positives;
// checked on this toolchain: g++ 12 + libgomp 12). Suppressing them would also hide real races in
// our code, so under TSan the openmp jobs are left out, and the plain (ci) build runs them.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <attnkit/attnkit.hpp>

#ifndef ATTNKIT_TEST_ARCH
#define ATTNKIT_TEST_ARCH attnkit::default_arch
#endif
#ifndef ATTNKIT_TEST_ARCH_NAME
#define ATTNKIT_TEST_ARCH_NAME "default"
#endif

#if defined(__SANITIZE_THREAD__)
#define ATTNKIT_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ATTNKIT_UNDER_TSAN 1
#endif
#endif
#ifndef ATTNKIT_UNDER_TSAN
#define ATTNKIT_UNDER_TSAN 0
#endif

namespace {

using namespace attnkit;
using Arch = ATTNKIT_TEST_ARCH;

std::vector<float> randn(std::size_t n, std::uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
template <class T>
std::vector<T> narrow(const std::vector<float>& v) {
  std::vector<T> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = from_float<T>(v[i]);
  return r;
}

/// A small std::thread pool behind parallel_for_executor (one per job call; workers = 2).
struct pool_fn {
  int workers = 2;
  template <class Body>
  void operator()(index_t n, Body&& body) const {
    std::atomic<index_t> next{0};
    auto work = [&](int w) {
      for (index_t t; (t = next.fetch_add(1)) < n;) body(t, w);
    };
    std::vector<std::thread> ts;
    for (int w = 1; w < workers; ++w) ts.emplace_back(work, w);
    work(0);
    for (auto& t : ts) t.join();
  }
};

// Shared read-only inputs.
constexpr index_t B = 2, Sq = 70, Sk = 150, Hq = 4, Hkv = 2, D = 64, Dv = 48;
constexpr index_t SkDec = 1100;  // decode: Sq = 1, split-KV path (partials in thread-local scratch)
constexpr index_t Sl = 100;      // lightning: Sq = Sk
struct inputs {
  std::vector<float> q = randn(B * Sq * Hq * D, 1), k = randn(B * Sk * Hkv * D, 2), v = randn(B * Sk * Hkv * Dv, 3);
  std::vector<float> qd = randn(B * 1 * Hq * D, 4), kd = randn(B * SkDec * Hkv * D, 5), vd = randn(B * SkDec * Hkv * Dv, 6);
  std::vector<bf16> qh = narrow<bf16>(q), kh = narrow<bf16>(k), vh = narrow<bf16>(v);
  std::vector<float> ql = randn(B * Sl * Hq * D, 7), kl = randn(B * Sl * Hkv * D, 8), vl = randn(B * Sl * Hkv * Dv, 9);
  std::vector<float> decays = lightning_decays(Hq);
  std::vector<float> slopes = alibi::standard_slopes(Hq);
  std::vector<float> sinks = {0.5f, -1.f, 2.f, 0.f};
  std::vector<std::int32_t> ids = [] {
    std::vector<std::int32_t> r(Sk);
    for (index_t j = 0; j < Sk; ++j) r[j] = static_cast<std::int32_t>(j / 40);
    return r;
  }();
  tensor_view<const float> Q() const { return bshd(q.data(), B, Sq, Hq, D); }
  tensor_view<const float> K() const { return bshd(k.data(), B, Sk, Hkv, D); }
  tensor_view<const float> V() const { return bshd(v.data(), B, Sk, Hkv, Dv); }
};

/// One job: writes every output it produces into `out` (O, then LSE / key mass / state).
struct job {
  std::string name;
  bool uses_openmp;
  std::function<void(const inputs&, std::vector<float>&)> run;
};

std::vector<job> make_jobs() {
  std::vector<job> js;
  const parallel_for_executor pool{2, pool_fn{2}};
  js.push_back({"flash causal serial", false, [](const inputs& in, std::vector<float>& out) {
                  out.assign(B * Sq * Hq * Dv + B * Hq * Sq, 0.f);
                  flash_attention<Arch>(in.Q(), in.K(), in.V(), bshd(out.data(), B, Sq, Hq, Dv), causal{}, serial{},
                                        lse_out{out.data() + B * Sq * Hq * Dv});
                }});
  js.push_back({"flash decode split-KV serial", false, [](const inputs& in, std::vector<float>& out) {
                  out.assign(B * Hq * Dv + B * Hq, 0.f);
                  flash_attention<Arch>(bshd(in.qd.data(), B, 1, Hq, D), bshd(in.kd.data(), B, SkDec, Hkv, D),
                                        bshd(in.vd.data(), B, SkDec, Hkv, Dv), bshd(out.data(), B, 1, Hq, Dv),
                                        softmax_with_sink{in.sinks}, serial{}, lse_out{out.data() + B * Hq * Dv});
                }});
  js.push_back({"flash bf16 alibi window key_mass pool", false, [pool](const inputs& in, std::vector<float>& out) {
                  out.assign(B * Sq * Hq * Dv + B * Hq * Sk, 0.f);
                  flash_attention<Arch>(bshd(in.qh.data(), B, Sq, Hq, D), bshd(in.kh.data(), B, Sk, Hkv, D),
                                        bshd(in.vh.data(), B, Sk, Hkv, Dv), bshd(out.data(), B, Sq, Hq, Dv),
                                        alibi{in.slopes}, sliding_window{30, 0}, pool,
                                        key_mass_out{out.data() + B * Sq * Hq * Dv});
                }});
  js.push_back({"dense document&causal sigmoid serial", false, [](const inputs& in, std::vector<float>& out) {
                  out.assign(B * Sq * Hq * Dv, 0.f);
                  dense_attention<Arch>(in.Q(), in.K(), in.V(), bshd(out.data(), B, Sq, Hq, Dv),
                                        document{in.ids} & causal{}, sigmoid{-2.f}, serial{});
                }});
  js.push_back({"dense softcap probs pool", false, [pool](const inputs& in, std::vector<float>& out) {
                  out.assign(B * Sq * Hq * Dv + B * Hq * Sq * Sk, 0.f);
                  dense_attention<Arch>(in.Q(), in.K(), in.V(), bshd(out.data(), B, Sq, Hq, Dv), softcap{20.f}, pool,
                                        probs_out{out.data() + B * Sq * Hq * Dv});
                }});
  js.push_back({"lightning serial", false, [](const inputs& in, std::vector<float>& out) {
                  out.assign(B * Sl * Hq * Dv + B * Hq * D * Dv, 0.f);
                  lightning_attention<Arch>(bshd(in.ql.data(), B, Sl, Hq, D), bshd(in.kl.data(), B, Sl, Hkv, D),
                                            bshd(in.vl.data(), B, Sl, Hkv, Dv), bshd(out.data(), B, Sl, Hq, Dv),
                                            in.decays, serial{},
                                            linear_state{nullptr, out.data() + B * Sl * Hq * Dv});
                }});
  js.push_back({"flash halves + merge_states serial", false, [](const inputs& in, std::vector<float>& out) {
                  const index_t n = B * Sq * Hq * Dv, nl = B * Hq * Sq, half = Sk / 2;
                  std::vector<float> o1(n), o2(n), l1(nl), l2(nl);
                  const auto k = in.K(), v = in.V();
                  auto kpart = [&](index_t j0, index_t len) {
                    auto t = k;
                    t.data += j0 * k.strides[1], t.extents[1] = len;
                    return t;
                  };
                  auto vpart = [&](index_t j0, index_t len) {
                    auto t = v;
                    t.data += j0 * v.strides[1], t.extents[1] = len;
                    return t;
                  };
                  flash_attention<Arch>(in.Q(), kpart(0, half), vpart(0, half), bshd(o1.data(), B, Sq, Hq, Dv), serial{},
                                        lse_out{l1.data()});
                  flash_attention<Arch>(in.Q(), kpart(half, Sk - half), vpart(half, Sk - half),
                                        bshd(o2.data(), B, Sq, Hq, Dv), serial{}, lse_out{l2.data()});
                  out.assign(n + nl, 0.f);
                  const attention_state parts[] = {{bshd<const float>(o1.data(), B, Sq, Hq, Dv), l1.data()},
                                                   {bshd<const float>(o2.data(), B, Sq, Hq, Dv), l2.data()}};
                  merge_states(parts, bshd(out.data(), B, Sq, Hq, Dv), out.data() + n);
                }});
#if ATTNKIT_HAS_OPENMP
  js.push_back({"flash causal openmp{2}", true, [](const inputs& in, std::vector<float>& out) {
                  out.assign(B * Sq * Hq * Dv, 0.f);
                  flash_attention<Arch>(in.Q(), in.K(), in.V(), bshd(out.data(), B, Sq, Hq, Dv), causal{}, openmp{2});
                }});
  js.push_back({"lightning openmp{2}", true, [](const inputs& in, std::vector<float>& out) {
                  out.assign(B * Sl * Hq * Dv, 0.f);
                  lightning_attention<Arch>(bshd(in.ql.data(), B, Sl, Hq, D), bshd(in.kl.data(), B, Sl, Hkv, D),
                                            bshd(in.vl.data(), B, Sl, Hkv, Dv), bshd(out.data(), B, Sl, Hq, Dv),
                                            in.decays, openmp{2});
                }});
#endif
  return js;
}

}  // namespace

int main(int argc, char** argv) {
  if (!arch_available<Arch>()) {
    std::printf("attnkit_concurrency_%s: CPU lacks %s; skipped at run time\n", ATTNKIT_TEST_ARCH_NAME,
                ATTNKIT_TEST_ARCH_NAME);
    return 0;
  }
  int threads = 8, iters = ATTNKIT_UNDER_TSAN ? 2 : 4;
  if (argc > 1) threads = std::max(1, std::atoi(argv[1]));
  if (argc > 2) iters = std::max(1, std::atoi(argv[2]));
  const bool force_openmp = argc > 3 && std::strcmp(argv[3], "with-openmp") == 0;  // to re-check the TSan note

  const inputs in;
  std::vector<job> jobs;
  for (auto& j : make_jobs())
    if (!(j.uses_openmp && ATTNKIT_UNDER_TSAN && !force_openmp)) jobs.push_back(std::move(j));  // see the file comment

  // Expected results: every job once, alone, on this thread.
  std::vector<std::vector<float>> expected(jobs.size());
  for (std::size_t j = 0; j < jobs.size(); ++j) jobs[j].run(in, expected[j]);

  std::atomic<long> mismatches{0}, errors{0}, calls{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      std::vector<float> out;
      for (int it = 0; it < iters; ++it)
        for (std::size_t n = 0; n < jobs.size(); ++n) {
          const std::size_t j = (n + static_cast<std::size_t>(t) * 3 + static_cast<std::size_t>(it)) % jobs.size();
          try {
            jobs[j].run(in, out);
          } catch (const std::exception& e) {
            std::printf("FAIL thread %d: %s threw: %s\n", t, jobs[j].name.c_str(), e.what());
            ++errors;
            continue;
          }
          ++calls;
          if (out.size() != expected[j].size() ||
              std::memcmp(out.data(), expected[j].data(), out.size() * sizeof(float)) != 0) {
            std::printf("FAIL thread %d iteration %d: %s differs from the single-threaded run\n", t, it,
                        jobs[j].name.c_str());
            ++mismatches;
          }
        }
    });
  go = true;
  for (auto& t : ts) t.join();
  std::printf("attnkit_concurrency_%s: %d threads x %d iterations x %zu jobs%s: %ld calls, %ld mismatches, %ld errors\n",
              ATTNKIT_TEST_ARCH_NAME, threads, iters, jobs.size(),
              ATTNKIT_UNDER_TSAN ? " (TSan: openmp jobs excluded)" : "", calls.load(), mismatches.load(), errors.load());
  return (mismatches || errors) ? 1 : 0;
}
