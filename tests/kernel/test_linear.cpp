// lightning_attention and linear_attention vs the fp64 token-by-token recurrence
// (attnkit::ref::linear_attention<double>), for the architecture this TU is compiled for
// (ATTNKIT_TEST_ARCH), with the project's criterion: max abs error at most 2x that of the naive
// fp32 recurrence (ref::linear_attention<float>, measured here on the same inputs) plus a floor of
// 4 float ulps of the output's magnitude (test_util.hpp's expect_accurate).
#include <attnkit/kernel/linear.hpp>
#include <attnkit/ref/linear.hpp>

#include <algorithm>
#include <cfloat>
#include <random>
#include <cstring>

#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using namespace attnkit::test;
using Arch = ATTNKIT_TEST_ARCH;

/// Everything one checked call needs besides the shape.
struct lin_opts {
  bool causal = true;
  std::vector<float> decays{};  // empty: no decay argument (lambda = 1)
  bool normalize = false;
  float scale = 1.f;
  index_t chunk = 64;
  index_t step_max = 4;
};

std::vector<float> cycle_decays(index_t H, std::initializer_list<float> vals) {
  std::vector<float> out;
  for (index_t h = 0; h < H; ++h) out.push_back(vals.begin()[h % vals.size()]);
  return out;
}

ref::linear_options ref_opts(const lin_opts& o) {
  ref::linear_options r;
  r.causal = o.causal;
  r.decays = o.decays;
  r.scale = o.scale;
  r.normalize = o.normalize;
  return r;
}

/// Run the kernel (lightning_attention for identity + causal + decay, else linear_attention).
template <class T, class Phi, class... Extra>
void run_kernel(const problem<T>& p, tensor_view<float> out, const Phi& phi, const lin_opts& o, Extra&&... extra) {
  const linear_tiling til{o.chunk, o.step_max};
  auto go = [&](auto&&... more) {
    if constexpr (std::is_same_v<Phi, identity_features>) {
      if (o.causal && !o.decays.empty()) {
        lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), out, o.decays, til, scale{o.scale}, more...,
                                  extra...);
        return;
      }
    }
    if (o.causal && !o.decays.empty())
      linear_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), out, phi, causal{}, decay{o.decays}, til,
                             scale{o.scale}, more..., extra...);
    else if (o.causal)
      linear_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), out, phi, causal{}, til, scale{o.scale}, more...,
                             extra...);
    else
      linear_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), out, phi, til, scale{o.scale}, more..., extra...);
  };
  if (o.normalize) go(linear_normalize{});
  else go();
}

/// One call against the fp64 recurrence, with the naive fp32 recurrence setting the bar.
template <class T = float, class Phi = identity_features>
void check(const shape& s, const lin_opts& o, const Phi& phi = {}, const std::string& what = "") {
  SCOPED_TRACE(what + " " + s.str() + " causal=" + std::to_string(o.causal) + " norm=" +
               std::to_string(o.normalize) + " chunk=" + std::to_string(o.chunk));
  problem<T> p(s);
  output out(s);
  run_kernel(p, out.view, phi, o);
  const auto r64 = ref::linear_attention<double>(p.q.cview(), p.k.cview(), p.v.cview(), phi, ref_opts(o));
  const auto r32 = ref::linear_attention<float>(p.q.cview(), p.k.cview(), p.v.cview(), phi, ref_opts(o));
  expect_accurate(out.o_used(s), r64.o, r32.o, "O");
}

shape mk(index_t B, index_t S, index_t Hq, index_t Hkv, index_t Dk, index_t Dv, layout l = layout::bshd) {
  shape s;
  s.B = B, s.Sq = S, s.Sk = S, s.Hq = Hq, s.Hkv = Hkv, s.Dk = Dk, s.Dv = Dv, s.lay = l;
  return s;
}

// ---- accuracy sweeps ------------------------------------------------------------------------------

// Lengths around chunk boundaries (chunk 16 and 64), GQA, Dk != Dv with vector tails, decays
// including 1 and the recurrent path (N <= step_max).
TEST(Lightning, LengthsAndChunkBoundaries) {
  ATTNKIT_REQUIRE_ARCH();
  for (index_t n : {1, 7, 16, 17, 63, 64, 65, 128, 1000})
    for (index_t chunk : {16, 48, 64}) {
      lin_opts o;
      o.decays = cycle_decays(4, {1.f, 0.9f, 0.5f, 0.999f});
      o.chunk = chunk;
      check(mk(1, n, 4, 2, 24, 40), o);
    }
}

TEST(Lightning, HeadsDimsAndLayouts) {
  ATTNKIT_REQUIRE_ARCH();
  const layout lays[] = {layout::bshd, layout::bhsd, layout::cache};
  const index_t dims[][2] = {{1, 1}, {3, 5}, {16, 16}, {64, 32}, {33, 17}, {128, 128}};
  const index_t heads[][2] = {{1, 1}, {6, 2}, {4, 4}, {8, 1}};
  int i = 0;
  for (auto d : dims)
    for (auto h : heads) {
      lin_opts o;
      o.decays = lightning_decays(h[0]);
      o.scale = 1.f / std::sqrt(float(d[0]));
      const index_t n = d[0] >= 64 ? 70 : 150;
      check(mk(i % 3 == 1 ? 2 : 1, n, h[0], h[1], d[0], d[1], lays[i % 3]), o);
      ++i;
    }
}

TEST(Lightning, RetentionAndTinyDecays) {
  ATTNKIT_REQUIRE_ARCH();
  lin_opts o;
  o.decays = retention_decays(4);
  check(mk(1, 300, 4, 2, 16, 24), o, {}, "retention");
  // Tiny decays: lambda^2 underflows float; only the current token survives. No NaN, no inf.
  o.decays = {1e-30f, FLT_MIN, 1e-3f, 1.f};
  check(mk(1, 200, 4, 4, 16, 16), o, {}, "tiny");
}

TEST(Lightning, HalfPrecisionInputs) {
  ATTNKIT_REQUIRE_ARCH();
  lin_opts o;
  o.decays = cycle_decays(4, {0.95f, 1.f});
  check<bf16>(mk(1, 200, 4, 2, 32, 48), o, {}, "bf16");
  check<fp16>(mk(1, 200, 4, 2, 32, 48), o, {}, "fp16");
  o.step_max = 1000;  // the recurrent path with 16-bit inputs
  check<bf16>(mk(1, 50, 4, 2, 32, 48), o, {}, "bf16 step");
}

// Every feature map, causal (with and without decay) and not, normalized and not. Non-causal runs
// Sq != Sk.
TEST(Linear, FeatureMapsCausalNonCausalNormalized) {
  ATTNKIT_REQUIRE_ARCH();
  const auto square = feature_fn{[](auto x) { return x * x; }};
  auto sweep = [&](const auto& phi, const char* name, bool positive) {
    for (bool causal_ : {true, false})
      for (bool norm : {false, true}) {
        // A sign-changing feature map makes phi(q) . z cancel: the normalized output is then
        // ill-conditioned for any implementation, so normalization is checked on positive maps.
        if (norm && !positive) continue;
        lin_opts o;
        o.causal = causal_;
        o.normalize = norm;
        o.chunk = 32;
        shape s = mk(2, 97, 4, 2, 20, 24);
        if (!causal_) s.Sq = 45;
        check(s, o, phi, name);
        if (causal_) {
          o.decays = cycle_decays(4, {0.9f, 1.f, 0.99f});
          check(s, o, phi, name);
        }
      }
  };
  sweep(identity_features{}, "identity", false);
  sweep(elu_plus_one{}, "elu+1", true);
  sweep(relu_features{}, "relu", true);
  sweep(square, "x^2 (user)", true);
}

// Identity features with normalization (issue 10): phi(q) . z changes sign, so some rows divide by
// a denominator near 0 and their error is a large multiple of u for ANY fp32 implementation; the
// 2x-naive criterion is then a coin toss per case (see linear_attention's conditioning note). What
// must hold is that the kernel is no worse than a naive fp32 implementation: over 200 random cases
// (causal, causal with decay, non-causal; chunks of 64 and 16), the kernel exceeds 2x the naive
// recurrence's error in no more cases than another naive fp32 recurrence does (the same
// recurrence with the features in reverse order: the same math, another summation order), with
// 50% + 3 cases of slack. Before the chunked path computed its denominators from z by the
// recurrence (it summed the rounded scores q_i . k_j instead), it exceeded 2x in about 3x as many
// cases as that second naive implementation (19% vs 6% of 400 such cases on avx512).
TEST(Linear, NormalizedIdentityNoWorseThanNaive) {
  ATTNKIT_REQUIRE_ARCH();
  int kernel_over = 0, other_naive_over = 0, cases = 0;
  double kernel_sum = 0, naive_sum = 0;
  for (std::uint32_t seed = 0; seed < 200; ++seed) {
    std::mt19937 g(1000 + seed);
    const index_t S = 1 + g() % 300, Hkv = 1 + g() % 2, Hq = Hkv * (1 + g() % 2), Dk = 1 + g() % 64, Dv = 1 + g() % 48;
    const int form = int(g() % 3);  // 0 causal, 1 causal with decay, 2 non-causal
    lin_opts o;
    o.causal = form != 2;
    if (form == 1)
      for (index_t h = 0; h < Hq; ++h) o.decays.push_back(0.9f + 0.1f * float(g() % 1000) / 1000.f);
    o.normalize = true;
    o.scale = 1.f / std::sqrt(float(Dk));
    o.chunk = seed % 2 ? 16 : 64;
    const shape s = mk(1, S, Hq, Hkv, Dk, Dv);
    problem<float> p(s, 5000 + 3 * seed);
    output out(s);
    run_kernel(p, out.view, identity_features{}, o);
    const auto r64 = ref::linear_attention<double>(p.q.cview(), p.k.cview(), p.v.cview(), identity_features{}, ref_opts(o));
    const auto r32 = ref::linear_attention<float>(p.q.cview(), p.k.cview(), p.v.cview(), identity_features{}, ref_opts(o));
    problem<float> rev = p;  // features reversed: phi(q) . phi(k) and q . z unchanged in exact arithmetic
    rev.q.view.data = rev.q.buf.data(), rev.k.view.data = rev.k.buf.data(), rev.v.view.data = rev.v.buf.data();
    for (index_t t = 0; t < S; ++t) {
      for (index_t h = 0; h < Hq; ++h) std::reverse(&rev.q.view(0, t, h, 0), &rev.q.view(0, t, h, 0) + Dk);
      for (index_t h = 0; h < Hkv; ++h) std::reverse(&rev.k.view(0, t, h, 0), &rev.k.view(0, t, h, 0) + Dk);
    }
    const auto r32b = ref::linear_attention<float>(rev.q.cview(), rev.k.cview(), rev.v.cview(), identity_features{}, ref_opts(o));
    const auto got = out.o_used(s);
    for (float x : got) ASSERT_TRUE(std::isfinite(x)) << "seed " << seed;
    const double e = max_abs_diff(got, r64.o), en = max_abs_diff(r32.o, r64.o), eb = max_abs_diff(r32b.o, r64.o);
    const double floor = 4.0 * std::numeric_limits<float>::epsilon() * std::max(1e-30, max_abs(r64.o));
    kernel_over += e > 2 * en + floor;
    other_naive_over += eb > 2 * en + floor;
    kernel_sum += e / (max_abs(r64.o) + 1e-30), naive_sum += en / (max_abs(r64.o) + 1e-30);
    ++cases;
  }
  std::printf("[normalized identity] %d cases: kernel over 2x naive in %d, another naive fp32 order in %d; "
              "relative errors summed: kernel / naive %.2f\n",
              cases, kernel_over, other_naive_over, kernel_sum / naive_sum);
  EXPECT_LE(kernel_over, other_naive_over * 3 / 2 + 3);
  EXPECT_LE(kernel_sum, 1.5 * naive_sum);
}

TEST(Linear, CausalIdentityIsLightning) {
  ATTNKIT_REQUIRE_ARCH();
  problem<float> p(mk(1, 150, 4, 2, 16, 16));
  output a(p.s), b(p.s);
  const auto dec = lightning_decays(4);
  lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), a.view, dec);
  linear_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), b.view, identity_features{}, causal{}, decay{dec});
  EXPECT_EQ(0, std::memcmp(a.o.data(), b.o.data(), a.o.size() * sizeof(float)));
}

// A zero denominator (relu of all-negative queries) gives 0 + 0 / eps = 0, never NaN.
TEST(Linear, ZeroDenominatorIsFinite) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = mk(1, 70, 2, 1, 8, 8);
  problem<float> p(s);
  for (index_t t = 0; t < s.Sq; ++t)
    for (index_t h = 0; h < s.Hq; ++h)
      for (index_t c = 0; c < s.Dk; ++c) p.q.view(0, t, h, c) = -1.f - float(c);
  for (index_t step_max : {0, 1000}) {
    output out(s);
    linear_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), out.view, relu_features{}, causal{},
                           linear_normalize{}, linear_tiling{16, step_max});
    for (float x : out.o_used(s)) ASSERT_EQ(x, 0.f);
  }
}

// ---- state in / state out -----------------------------------------------------------------------

struct state_bufs {
  std::vector<float> S, z;
  state_bufs(const shape& s, float fill) : S(s.B * s.Hq * s.Dk * s.Dv, fill), z(s.B * s.Hq * s.Dk, fill) {}
};

/// Slice tokens [t0, t1) of an owned problem as views.
template <class T>
tensor_view<const T> slice(const tensor<T>& t, index_t t0, index_t t1) {
  tensor_view<const T> v = t.cview();
  v.data += t0 * v.strides[1];
  v.extents[1] = t1 - t0;
  return v;
}

// The whole sequence in one call == prefill in uneven pieces (state out -> in, separate and
// in-place buffers) then token by token (Sq = 1, the recurrent step; serial executor, as a
// decode loop of tiny calls would run it). Outputs and final state
// agree to rounding, and every piece is accurate against the fp64 recurrence.
TEST(Lightning, PrefillInPiecesThenDecode) {
  ATTNKIT_REQUIRE_ARCH();
  for (bool norm : {false, true}) {
    SCOPED_TRACE(norm ? "normalized (elu+1)" : "plain");
    const shape s = mk(2, 190, 4, 2, 24, 40);
    problem<float> p(s);
    const auto dec = cycle_decays(4, {0.97f, 1.f, 0.8f});
    const elu_plus_one phi;
    auto call = [&](index_t t0, index_t t1, float* o, linear_state st) {
      tensor_view<float> ov = bshd(o, s.B, s.Sq, s.Hq, s.Dv);
      ov.data += t0 * ov.strides[1];
      ov.extents[1] = t1 - t0;
      if (norm)
        linear_attention<Arch>(slice(p.q, t0, t1), slice(p.k, t0, t1), slice(p.v, t0, t1), ov, phi, causal{},
                               decay{dec}, linear_normalize{}, st, serial{});
      else
        lightning_attention<Arch>(slice(p.q, t0, t1), slice(p.k, t0, t1), slice(p.v, t0, t1), ov, dec, st, serial{});
    };
    // One call with the final state returned.
    output whole(s);
    state_bufs fin(s, 0.f);
    call(0, s.Sq, whole.o.data(), {nullptr, fin.S.data(), nullptr, norm ? fin.z.data() : nullptr});
    // Pieces: [0,37) fresh -> A; [37,101) A -> B (separate); [101,150) B in place; then single steps.
    output pieces(s);
    state_bufs A(s, NAN), B(s, NAN);
    float* za = norm ? A.z.data() : nullptr;
    float* zb = norm ? B.z.data() : nullptr;
    call(0, 37, pieces.o.data(), {nullptr, A.S.data(), nullptr, za});
    call(37, 101, pieces.o.data(), {A.S.data(), B.S.data(), za, zb});
    call(101, 150, pieces.o.data(), {B.S.data(), B.S.data(), zb, zb});
    for (index_t t = 150; t < s.Sq; ++t) call(t, t + 1, pieces.o.data(), {B.S.data(), B.S.data(), zb, zb});

    ref::linear_options ro;
    ro.decays = dec;
    ro.normalize = norm;
    // The plain case is lightning (identity features); the normalized one uses elu+1.
    auto reference = [&](auto tag) {
      using T = decltype(tag);
      return norm ? ref::linear_attention<T>(p.q.cview(), p.k.cview(), p.v.cview(), phi, ro)
                  : ref::linear_attention<T>(p.q.cview(), p.k.cview(), p.v.cview(), identity_features{}, ro);
    };
    const auto r64 = reference(double{});
    const auto r32 = reference(float{});
    expect_accurate(whole.o_used(s), r64.o, r32.o, "whole");
    expect_accurate(pieces.o_used(s), r64.o, r32.o, "pieces + steps");
    expect_accurate(fin.S, r64.state, r32.state, "final state (whole)");
    expect_accurate(B.S, r64.state, r32.state, "final state (pieces + steps)");
    if (norm) {
      expect_accurate(fin.z, r64.z, r32.z, "final z (whole)");
      expect_accurate(B.z, r64.z, r32.z, "final z (pieces + steps)");
    }
    const double tol = 1e-5 * std::max(1.0, max_abs(whole.o));
    EXPECT_LE(max_abs_diff(whole.o, pieces.o), tol) << "chunked vs pieces + recurrent steps";
  }
}

// The recurrent path over a whole sequence (step_max large) == the chunked path, and lightning_step
// is the Sq = 1 call.
TEST(Lightning, RecurrentPathMatchesChunked) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = mk(1, 300, 3, 1, 17, 33);
  problem<float> p(s);
  const auto dec = cycle_decays(3, {0.99f, 0.7f, 1.f});
  output chunked(s), stepped(s), single(s);
  lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), chunked.view, dec);
  lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), stepped.view, dec, linear_tiling{64, 1 << 30});
  EXPECT_LE(max_abs_diff(chunked.o, stepped.o), 1e-5 * std::max(1.0, max_abs(chunked.o)));
  std::vector<float> S(s.Hq * s.Dk * s.Dv, 0.f);
  for (index_t t = 0; t < s.Sq; ++t) {
    tensor_view<float> ov = single.view;
    ov.data += t * ov.strides[1];
    ov.extents[1] = 1;
    lightning_step<Arch>(slice(p.q, t, t + 1), slice(p.k, t, t + 1), slice(p.v, t, t + 1), ov, dec, S.data(),
                         serial{});
  }
  EXPECT_EQ(0, std::memcmp(stepped.o.data(), single.o.data(), stepped.o.size() * sizeof(float)));
}

// Sq = 0: the state passes through unchanged (copied when out != in).
TEST(Lightning, EmptySequencePassesStateThrough) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = mk(1, 0, 2, 1, 4, 4);
  problem<float> p(s);
  output out(s);
  std::vector<float> in(2 * 16), outS(2 * 16, NAN);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = float(i);
  lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), out.view, std::vector<float>{0.5f, 1.f},
                            linear_state{in.data(), outS.data()});
  EXPECT_EQ(in, outS);
}

// ---- long sequences ---------------------------------------------------------------------------

// N = 65536 with a decay close to 1, exactly 1, and small decays: finite, relative error <= 1e-4
// (max abs error / max |o|) vs the fp64 recurrence, and the 2x-naive criterion.
TEST(Lightning, LongSequence64k) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = mk(1, 65536, 4, 2, 16, 16);
  problem<float> p(s);
  lin_opts o;
  o.decays = {0.999999f, 1.f, 0.9f, 0.05f};
  output out(s);
  run_kernel(p, out.view, identity_features{}, o);
  const auto r64 = ref::linear_attention<double>(p.q.cview(), p.k.cview(), p.v.cview(), identity_features{}, ref_opts(o));
  const auto r32 = ref::linear_attention<float>(p.q.cview(), p.k.cview(), p.v.cview(), identity_features{}, ref_opts(o));
  for (float x : out.o) ASSERT_TRUE(std::isfinite(x));
  // Per head: the relative error against that head's own magnitude.
  for (index_t h = 0; h < s.Hq; ++h) {
    double e = 0, m = 0;
    for (index_t t = 0; t < s.Sq; ++t)
      for (index_t c = 0; c < s.Dv; ++c) {
        const double x = out.view(0, t, h, c), y = r64.out(0, t, h, c);
        e = std::max(e, std::abs(x - y));
        m = std::max(m, std::abs(y));
      }
    EXPECT_LE(e / m, 1e-4) << "head " << h << " lambda " << o.decays[h];
  }
  expect_accurate(out.o, r64.o, r32.o, "O, N = 65536");
}

// ---- threads, workspace -----------------------------------------------------------------------

// Different executors also give different task shapes (serial: 4 heads per task; 16 workers: 1
// head per task), yet the same bits.
TEST(Lightning, BitwiseIdenticalAcrossExecutors) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = mk(2, 200, 6, 3, 24, 20);
  problem<float> p(s);
  const auto dec = lightning_decays(6);
  output a(s), b(s), c(s), d(s);
  lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), a.view, dec, serial{});
  lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), b.view, dec, openmp{1});
  lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), c.view, dec, openmp{2});
  parallel_for_executor ex{16, [](index_t n, auto&& body) {
                              for (index_t t = n - 1; t >= 0; --t) body(t, int(t % 16));  // reverse order
                            }};
  lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), d.view, dec, ex);
  EXPECT_EQ(a.o, b.o);
  EXPECT_EQ(a.o, c.o);
  EXPECT_EQ(a.o, d.o);
}

// A workspace of exactly linear_workspace_size bytes is used instead of thread-local scratch
// (same bits); one byte less is rejected before anything is written.
TEST(Lightning, CallerWorkspace) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = mk(2, 100, 4, 2, 16, 24);
  problem<float> p(s);
  const auto dec = lightning_decays(4);
  for (bool norm : {false, true}) {
    output a(s), b(s), c(s);
    auto run = [&](tensor_view<float> o, auto... extra) {
      if (norm) lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), o, dec, linear_normalize{}, extra...);
      else lightning_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), o, dec, extra...);
    };
    run(a.view, openmp{2});
    const index_t bytes = norm ? linear_workspace_size<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), b.view, 2,
                                                             linear_normalize{})
                               : linear_workspace_size<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), b.view, 2);
    std::vector<std::byte> ws(static_cast<std::size_t>(bytes));
    run(b.view, openmp{2}, workspace{ws});
    EXPECT_EQ(a.o, b.o);
    std::span<std::byte> short_ws(ws.data(), ws.size() - 1);
    EXPECT_THROW(run(c.view, openmp{2}, workspace{short_ws}), attnkit::invalid_argument);
    for (float x : c.o) ASSERT_EQ(x, 1234.5f);
  }
}

// ---- decay helpers ------------------------------------------------------------------------------

TEST(Linear, DecayHelpers) {
  const auto l8 = lightning_decays(8);
  ASSERT_EQ(l8.size(), 8u);
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(l8[h], float(std::exp(-std::pow(2.0, -(h + 1)))));
  const auto l12 = lightning_decays(12);  // not a power of two: ALiBi's interleaved slopes
  ASSERT_EQ(l12.size(), 12u);
  const auto al = alibi::standard_slopes(12);
  for (int h = 0; h < 12; ++h) {
    EXPECT_FLOAT_EQ(l12[h], float(std::exp(-double(al[h]))));
    EXPECT_TRUE(l12[h] > 0.f && l12[h] < 1.f);
  }
  const auto last = lightning_decays(4, 11, 12);  // TransNormerLLM's last layer: slope * 1e-5
  for (int h = 0; h < 4; ++h) EXPECT_GT(last[h], 0.9999f);
  const auto r = retention_decays(4);
  const float want[] = {1.f - 1.f / 32, 1.f - 1.f / 64, 1.f - 1.f / 128, 1.f - 1.f / 256};
  for (int h = 0; h < 4; ++h) EXPECT_EQ(r[h], want[h]);
}

// ---- bad inputs ---------------------------------------------------------------------------------

TEST(Linear, BadInputsThrowAndWriteNothing) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = mk(1, 20, 4, 2, 8, 8);
  problem<float> p(s);
  output out(s);
  const std::vector<float> dec(4, 0.9f);
  state_bufs st(s, 7.f);
  const auto q = p.q.cview(), k = p.k.cview(), v = p.v.cview();
  auto lightning = [&](auto... a) { lightning_attention<Arch>(q, k, v, out.view, dec, a...); };

  // Shapes.
  expect_error([&] { lightning_attention<Arch>(q, slice(p.k, 0, 19), slice(p.v, 0, 19), out.view, dec); }, "k: expected seq");
  problem<float> p3(mk(1, 20, 3, 2, 8, 8));
  output o3(p3.s);
  expect_error([&] { lightning_attention<Arch>(p3.q.cview(), k, v, o3.view, std::vector<float>(3, 0.9f)); },
               "divisible");
  tensor_view<const float> kbad = k;
  kbad.extents[3] = 7;
  expect_error([&] { lightning_attention<Arch>(q, kbad, v, out.view, dec); }, "k: expected dim");
  tensor_view<const float> qnull = q;
  qnull.data = nullptr;
  expect_error([&] { lightning_attention<Arch>(qnull, k, v, out.view, dec); }, "q: expected non-null");
  // Decay.
  expect_error([&] { lightning_attention<Arch>(q, k, v, out.view, std::vector<float>(3, 0.9f)); }, "decay: expected one value per query head");
  for (float bad : {0.f, -0.5f, 1.0001f, NAN, INFINITY}) {
    std::vector<float> d = dec;
    d[2] = bad;
    expect_error([&] { lightning_attention<Arch>(q, k, v, out.view, d); }, "decay: expected lambda in (0, 1]");
  }
  expect_error([&] { linear_attention<Arch>(q, k, v, out.view, identity_features{}, decay{dec}); }, "decay: only causal");
  // Options.
  expect_error([&] { lightning(scale{INFINITY}); }, "scale");
  expect_error([&] { lightning(linear_normalize{0.f}); }, "linear_normalize: expected eps");
  expect_error([&] { lightning(linear_tiling{0}); }, "linear_tiling: expected chunk");
  // State buffers.
  expect_error([&] { lightning(linear_state{nullptr, out.o.data()}); }, "linear_state.out: expected memory disjoint from out");
  expect_error([&] { lightning(linear_state{out.o.data(), nullptr}); }, "linear_state.in: expected memory disjoint from out");
  expect_error([&] { lightning(linear_state{st.S.data(), st.S.data() + 1}); }, "partial overlap");
  expect_error([&] { lightning(linear_state{nullptr, const_cast<float*>(p.q.buf.data())}); }, "linear_state.out: expected memory disjoint from q");
  expect_error([&] { lightning(linear_state{nullptr, nullptr, nullptr, st.z.data()}); }, "only kept with linear_normalize");
  expect_error([&] { lightning(linear_normalize{}, linear_state{st.S.data(), nullptr}); }, "expected z_in exactly when in");
  expect_error([&] { lightning(linear_normalize{}, linear_state{nullptr, st.S.data()}); }, "expected z_out exactly when out");
  expect_error([&] { lightning(linear_normalize{}, linear_state{nullptr, st.S.data(), nullptr, st.S.data() + 4}); },
               "linear_state.z_out: expected memory disjoint from linear_state.out");
  // Non-causal linear attention with Sq != Sk is fine; causal needs Sq == Sk.
  expect_error([&] { linear_attention<Arch>(slice(p.q, 0, 10), k, v, tensor_view<float>{out.o.data(), {1, 10, 4, 8}, out.view.strides}, identity_features{}, causal{}); },
               "k: expected seq equal to q's seq");

  for (float x : out.o) ASSERT_EQ(x, 1234.5f) << "output written on error";
  for (float x : st.S) ASSERT_EQ(x, 7.f) << "state written on error";
  for (float x : st.z) ASSERT_EQ(x, 7.f) << "z written on error";
}

}  // namespace
