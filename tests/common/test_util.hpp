#pragma once
// Shared test helpers: owned tensors in several layouts, and the accuracy criterion.
//
// Accuracy criterion (FlashAttention's): a kernel's max abs error vs the fp64 reference must be at
// most 2x the max abs error of the naive fp32 implementation (attnkit::ref::attention<float>) on
// the same inputs, measured in the test. The only slack is a floor of 4 float ulps of the output's
// magnitude, for cases where the naive implementation happens to be exact (e.g. Sk = 1, D = 1)
// and any reordering of the same float operations would fail a zero bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <attnkit/attnkit.hpp>
#include <attnkit/ref/reference.hpp>

#ifndef ATTNKIT_TEST_ARCH
#define ATTNKIT_TEST_ARCH attnkit::default_arch
#endif
#ifndef ATTNKIT_TEST_ARCH_NAME
#define ATTNKIT_TEST_ARCH_NAME "default"
#endif

#define ATTNKIT_REQUIRE_ARCH()                                                          \
  do {                                                                                  \
    if (!attnkit::arch_available<ATTNKIT_TEST_ARCH>())                                  \
      GTEST_SKIP() << "CPU lacks " << ATTNKIT_TEST_ARCH_NAME << "; skipped at run time"; \
  } while (0)

namespace attnkit::test {

inline constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

/// Under AddressSanitizer (the asan presets: -O0, 10-30x slower) the exhaustive sweeps visit one
/// case in kSweepStride, a different subset per row of the sweep, so that every tail length is
/// still hit; the optimized CI stage visits every case. (CI time budget.)
#if defined(__SANITIZE_ADDRESS__)
inline constexpr int kSweepStride = 2;
#else
inline constexpr int kSweepStride = 1;
#endif

enum class layout { bshd, bhsd, cache };  // cache: [B, H, capacity, D] with capacity > S
inline const char* name(layout l) { return l == layout::bshd ? "bshd" : l == layout::bhsd ? "bhsd" : "cache"; }

/// An owned tensor and its view. Padding elements (cache capacity) hold NaN so a kernel that
/// reads outside the view poisons its result.
template <class T>
struct tensor {
  std::vector<T> buf;
  tensor_view<T> view;
  tensor_view<const T> cview() const { return view; }
};

template <class T>
tensor<T> make_tensor(index_t B, index_t S, index_t H, index_t D, layout l, std::uint32_t seed, float mag = 1.f) {
  tensor<T> t;
  const index_t cap = l == layout::cache ? S + 5 : S;
  t.buf.assign(static_cast<std::size_t>(std::max<index_t>(B * cap * H * D, 1)),
               from_float<T>(std::numeric_limits<float>::quiet_NaN()));
  switch (l) {
    case layout::bshd: t.view = bshd(t.buf.data(), B, S, H, D); break;
    case layout::bhsd: t.view = bhsd(t.buf.data(), B, H, S, D); break;
    case layout::cache: t.view = tensor_view<T>{t.buf.data(), {B, S, H, D}, {H * cap * D, D, cap * D, 1}}; break;
  }
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.f, mag);
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s)
      for (index_t h = 0; h < H; ++h)
        for (index_t d = 0; d < D; ++d) t.view(b, s, h, d) = from_float<T>(n(g));
  return t;
}

struct shape {
  index_t B = 1, Sq = 1, Sk = 1, Hq = 1, Hkv = 1, Dk = 16, Dv = 16;
  layout lay = layout::bshd;
  float mag = 1.f;  // std-dev of q and k entries (logits scale with mag^2 * sqrt(D))
  std::string str() const {
    return "B=" + std::to_string(B) + " Sq=" + std::to_string(Sq) + " Sk=" + std::to_string(Sk) + " Hq=" +
           std::to_string(Hq) + " Hkv=" + std::to_string(Hkv) + " Dk=" + std::to_string(Dk) + " Dv=" +
           std::to_string(Dv) + " " + name(lay) + " mag=" + std::to_string(mag);
  }
};

/// A single-batch shape with Dk = Dv = d (decode and primitive tests; default a strided cache).
inline shape make_shape(index_t sq, index_t sk, index_t hq, index_t hkv, index_t d, layout l = layout::cache) {
  shape s;
  s.Sq = sq, s.Sk = sk, s.Hq = hq, s.Hkv = hkv, s.Dk = s.Dv = d, s.lay = l;
  return s;
}

template <class T = float>
struct problem {
  shape s;
  tensor<T> q, k, v;
  explicit problem(const shape& sh, std::uint32_t seed = 7)
      : s(sh),
        q(make_tensor<T>(sh.B, sh.Sq, sh.Hq, sh.Dk, sh.lay, seed, sh.mag)),
        k(make_tensor<T>(sh.B, sh.Sk, sh.Hkv, sh.Dk, sh.lay, seed + 1, sh.mag)),
        v(make_tensor<T>(sh.B, sh.Sk, sh.Hkv, sh.Dv, sh.lay, seed + 2)) {}
};

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    if (x == y) continue;  // also equal infinities (LSE of fully masked rows)
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

/// The criterion, with a message that shows both errors.
template <class Got, class Ref, class Naive>
void expect_accurate(const Got& got, const Ref& ref, const Naive& naive, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (auto x : got) ASSERT_FALSE(std::isnan(double(x))) << what << ": NaN in output";
  const double e = max_abs_diff(got, ref), en = max_abs_diff(naive, ref);
  const double floor = 4.0 * std::numeric_limits<float>::epsilon() * std::max(1e-30, max_abs(ref));
  EXPECT_LE(e, 2.0 * en + floor) << what << ": kernel error " << e << " vs naive fp32 error " << en;
}

/// f() must throw attnkit::invalid_argument whose message contains `needle`.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected attnkit::invalid_argument mentioning '" << needle << "'";
  } catch (const attnkit::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

/// Output buffer [B, Sq, Hq, Dv] contiguous, pre-filled with a sentinel so unwritten rows show.
struct output {
  std::vector<float> o, lse;
  tensor_view<float> view;
  explicit output(const shape& s, float fill = 1234.5f)
      : o(static_cast<std::size_t>(std::max<index_t>(s.B * s.Sq * s.Hq * s.Dv, 1)), fill),
        lse(static_cast<std::size_t>(std::max<index_t>(s.B * s.Hq * s.Sq, 1)), fill),
        view(bshd(o.data(), s.B, s.Sq, s.Hq, s.Dv)) {}
  std::vector<float> o_used(const shape& s) const { return {o.begin(), o.begin() + s.B * s.Sq * s.Hq * s.Dv}; }
  std::vector<float> lse_used(const shape& s) const { return {lse.begin(), lse.begin() + s.B * s.Hq * s.Sq}; }
};

/// run(q, k, v, out, lse) against the fp64 reference called with `policies` (the semantics the
/// call is expected to have), O and LSE by the criterion.
template <class T = float, class Run, class... P>
void check_call(const shape& s, Run&& run, const P&... policies) {
  SCOPED_TRACE(s.str());
  problem<T> pr(s);
  const auto ref = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), policies...);
  const auto naive = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), policies...);
  output out(s);
  run(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, out.lse.data());
  expect_accurate(out.o_used(s), ref.o, naive.o, "O");
  expect_accurate(out.lse_used(s), ref.lse, naive.lse, "LSE");
}

}  // namespace attnkit::test
