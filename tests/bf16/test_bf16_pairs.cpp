// The prefill engine in bf16 pairs (attnkit::avx512bf16, simd/bf16dot.hpp) against the fp64
// reference. The criterion is the for bf16 compute: error at most 2x that of a naive
// implementation with the same roundings -- bf16 inputs, fp32 scores and softmax, P rounded to
// bf16, P V accumulated in fp32 (naive_bf16 below, from the fp32 reference's probabilities).
// Built only for the avx512bf16 arch; skipped at run time on CPUs without AVX512-BF16. The calls
// ask for the pairs (bf16_products::pairs): by default only AMD CPUs take them.
#include <numeric>

#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using namespace attnkit::test;
using Arch = ATTNKIT_TEST_ARCH;
static_assert(simd::bf16_dot_arch<Arch>, "this test is built for attnkit::avx512bf16");
constexpr bf16_products kPairs{bf16_products::pairs};

// O of the naive bf16 implementation: the fp32 reference's normalized probabilities rounded to
// bf16, times V, summed over keys in order in fp32.
template <class... P>
std::vector<float> naive_bf16(const problem<bf16>& pr, const P&... p) {
  const shape& s = pr.s;
  const auto r = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), p..., probs_out{});
  std::vector<float> o(static_cast<std::size_t>(s.B * s.Sq * s.Hq * s.Dv));
  const index_t g = s.Hq / s.Hkv;
  for (index_t b = 0; b < s.B; ++b)
    for (index_t h = 0; h < s.Hq; ++h)
      for (index_t i = 0; i < s.Sq; ++i)
        for (index_t c = 0; c < s.Dv; ++c) {
          float acc = 0.f;
          for (index_t j = 0; j < s.Sk; ++j) {
            const float pij = to_float(bf16(r.probs[((b * s.Hq + h) * s.Sq + i) * s.Sk + j]));
            if (pij != 0.f) acc += pij * to_float(pr.v.view(b, j, h / g, c));
          }
          o[((b * s.Sq + i) * s.Hq + h) * s.Dv + c] = acc;
        }
  return o;
}

template <class... P>
void check_pairs(const shape& s, const P&... p) {
  SCOPED_TRACE(s.str());
  problem<bf16> pr(s);
  const auto ref = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), p...);
  output out(s);
  using N = decltype(resolve_args(p...).norm);
  if constexpr (N::has_lse) {
    flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, p..., lse_out{out.lse.data()}, kPairs);
    // The scores are exact bf16 products summed in fp32: the LSE's error is an fp32 one.
    const auto naive32 = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), p...);
    expect_accurate(out.lse_used(s), ref.lse, naive32.lse, "LSE");
  } else {
    flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, p..., kPairs);
  }
  expect_accurate(out.o_used(s), ref.o, naive_bf16(pr, p...), "O");
}

shape make(index_t sq, index_t sk, index_t hq, index_t hkv, index_t dk, index_t dv, layout l = layout::cache) {
  shape s = make_shape(sq, sk, hq, hkv, dk, l);
  s.Dv = dv;
  return s;
}

TEST(Bf16Pairs, PlanNamesThePairs) {
  ATTNKIT_REQUIRE_ARCH();
  std::vector<bf16> q(64 * 8 * 64), k(100 * 2 * 64);
  std::vector<float> o(64 * 8 * 64);
  const auto kv = bshd(static_cast<const bf16*>(k.data()), 1, 100, 2, 64);
  const auto qb = bshd(static_cast<const bf16*>(q.data()), 1, 64, 8, 64);
  const auto ov = bshd(o.data(), 1, 64, 8, 64);
  const auto has = [](const attention_plan& p, const char* what) { return std::string(p.reason).find(what) != std::string::npos; };
  const auto p = plan_of<Arch>(qb, kv, kv, ov, causal{}, kPairs);
  EXPECT_EQ(p.kind, engine::prefill);
  EXPECT_TRUE(has(p, "bf16 pairs (requested)")) << p.reason;
  const auto pw = plan_of<Arch>(qb, kv, kv, ov, causal{}, bf16_products{bf16_products::widened});
  EXPECT_TRUE(has(pw, "bf16 widened to fp32 (requested)")) << pw.reason;
  // automatic: the pairs exactly where the CPU issues vdpbf16ps at the FMA rate (AMD).
  const auto pa = plan_of<Arch>(qb, kv, kv, ov, causal{});
  EXPECT_EQ(has(pa, "bf16 pairs"), simd::bf16_pairs_fast()) << pa.reason;
  EXPECT_EQ(has(pa, "bf16 widened"), !simd::bf16_pairs_fast()) << pa.reason;
  // fp32 Q cannot take the pairs: asking for them is an error naming the option, nothing written.
  std::vector<float> qf(64 * 8 * 64);
  const auto qv = bshd(static_cast<const float*>(qf.data()), 1, 64, 8, 64);
  const auto pf = plan_of<Arch>(qv, kv, kv, ov);
  EXPECT_FALSE(has(pf, "bf16 pairs")) << pf.reason;
  std::fill(o.begin(), o.end(), 7.f);
  expect_error([&] { flash_attention<Arch>(qv, kv, kv, ov, kPairs); }, "flash_attention: bf16_products: pairs need bf16 q");
  EXPECT_TRUE(std::all_of(o.begin(), o.end(), [](float x) { return x == 7.f; }));
  // A decode step keeps the decode engine (it widens in registers whatever is asked).
  const auto pd = plan_of<Arch>(bshd(static_cast<const bf16*>(q.data()), 1, 1, 8, 64), kv, kv,
                                bshd(o.data(), 1, 1, 8, 64), kPairs);
  EXPECT_EQ(pd.kind, engine::decode) << pd.reason;
}

// Every tail: odd head dims (a half pair at the end of every K row and of Q^T), odd tile lengths
// (a half pair of keys in P and V), lengths 0 / 1 / 7 / 63 / 65 / 1000, GQA, Dk != Dv, layouts.
TEST(Bf16Pairs, ShapesAndTails) {
  ATTNKIT_REQUIRE_ARCH();
  for (index_t sk : {0, 1, 7, 63, 65, 1000})
    for (index_t sq : {7, 65})
      for (auto [hq, hkv] : {std::pair<index_t, index_t>{4, 1}, {3, 3}}) {
        check_pairs(make(sq, sk, hq, hkv, 64, 64), causal{});
        check_pairs(make(sq, sk, hq, hkv, 33, 17, layout::bshd));
      }
  for (index_t d : {1, 2, 7, 16, 31, 65, 128, 256}) {
    check_pairs(make(63, 200, 4, 2, d, d, layout::bhsd), causal{});
    check_pairs(make(40, 129, 2, 1, d, d == 1 ? 3 : d - 1));
  }
  shape batched = make(20, 90, 4, 2, 48, 48);
  batched.B = 3;
  check_pairs(batched, causal{});
  shape large = make(32, 300, 4, 1, 64, 64);
  large.mag = 3.f;  // logits of std ~ 9 * 8 / 8 = 9
  check_pairs(large, causal{});
}

TEST(Bf16Pairs, EveryPolicy) {
  ATTNKIT_REQUIRE_ARCH();
  const float sinks[4] = {0.5f, -1.f, 2.f, 0.f};
  const std::vector<float> slopes = alibi::standard_slopes(4);
  std::vector<std::int32_t> ids(700);
  for (index_t j = 0; j < 700; ++j) ids[j] = static_cast<std::int32_t>(j / 300);
  const shape s = make(70, 700, 4, 2, 64, 64);
  check_pairs(s, softmax_with_sink{sinks}, causal{});
  check_pairs(s, sliding_window::from_total(100) & causal{});
  check_pairs(s, streaming_mask(4, 100));
  check_pairs(s, alibi{slopes}, causal{});
  check_pairs(s, softcap{20.f}, causal{});
  check_pairs(s, document{ids} & causal{});
  check_pairs(s, mask_fn{[](index_t, index_t h, index_t, index_t j) { return (j + h) % 3 != 0; }});
  check_pairs(s, sigmoid{-3.f}, causal{});
  check_pairs(s, score_fn{[](auto x, index_t, index_t, index_t, index_t j) { return x + decltype(x)(j % 5) * 0.1f; }});
}

// NaN / Inf in V and K at masked keys (garbage in cache slots): the tile takes the widening path
// for its P V (zero weights skip their value), the rows stay finite and accurate.
TEST(Bf16Pairs, MaskedGarbageIsIsolated) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = make(64, 64, 2, 1, 32, 32, layout::bshd);
  problem<bf16> pr(s);
  for (index_t c = 0; c < s.Dk; ++c) {
    pr.k.view(0, 40, 0, c) = bf16(nan_f);
    pr.v.view(0, 40, 0, c) = bf16(std::numeric_limits<float>::infinity());
  }
  output out(s);
  flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, causal{}, kPairs);
  const auto o = out.o_used(s);
  for (index_t i = 0; i < s.Sq; ++i)
    for (index_t h = 0; h < s.Hq; ++h)
      for (index_t c = 0; c < s.Dv; ++c) {
        const float x = o[((i * s.Hq) + h) * s.Dv + c];
        if (i < 40) EXPECT_TRUE(std::isfinite(x)) << "row " << i << " saw the masked key 40";
        else EXPECT_TRUE(std::isnan(x)) << "row " << i << " keeps key 40 (NaN in K propagates)";
      }
  // The rows before the garbage match the reference on the clean prefix.
  const shape p40 = make(40, 40, 2, 1, 32, 32, layout::bshd);
  problem<bf16> clean(p40);
  for (index_t i = 0; i < 40; ++i)
    for (index_t h = 0; h < 2; ++h)
      for (index_t c = 0; c < 32; ++c) clean.q.view(0, i, h, c) = pr.q.view(0, i, h, c);
  for (index_t j = 0; j < 40; ++j)
    for (index_t c = 0; c < 32; ++c)
      clean.k.view(0, j, 0, c) = pr.k.view(0, j, 0, c), clean.v.view(0, j, 0, c) = pr.v.view(0, j, 0, c);
  const auto ref = ref::attention<double>(clean.q.cview(), clean.k.cview(), clean.v.cview(), causal{});
  const std::vector<float> head(o.begin(), o.begin() + 40 * 2 * 32);
  expect_accurate(head, ref.o, naive_bf16(clean, causal{}), "O before the garbage");
}

// A paged cache: K read in place from the pages (tiles end at page boundaries), against the
// strided call's reference; and bitwise the same for any thread count.
TEST(Bf16Pairs, PagedAndBitwiseAcrossThreads) {
  ATTNKIT_REQUIRE_ARCH();
  const index_t sq = 24, sk = 100, hq = 4, hkv = 2, d = 40, page = 16, npages = (sk + page - 1) / page + 2;
  problem<bf16> pr(make(sq, sk, hq, hkv, d, d, layout::bshd));
  std::vector<bf16> kp(npages * page * hkv * d, bf16(nan_f)), vp(kp.size(), bf16(nan_f));
  std::vector<std::int32_t> table(npages);
  std::iota(table.begin(), table.end(), 0);
  std::reverse(table.begin(), table.end());
  for (index_t t = 0; t < sk; ++t)
    for (index_t h = 0; h < hkv; ++h)
      for (index_t c = 0; c < d; ++c) {
        const index_t at = ((table[t / page] * page + t % page) * hkv + h) * d + c;
        kp[at] = pr.k.view(0, t, h, c), vp[at] = pr.v.view(0, t, h, c);
      }
  const std::vector<std::int32_t> lengths{static_cast<std::int32_t>(sk)};
  const tensor_view<const bf16> kv{kp.data(), {npages, page, hkv, d}, {page * hkv * d, hkv * d, d, 1}};
  const tensor_view<const bf16> vv{vp.data(), {npages, page, hkv, d}, {page * hkv * d, hkv * d, d, 1}};
  const paged_kv<const bf16> cache{kv, vv, table, npages, lengths};
  const auto ref = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), causal{});
  std::vector<float> first;
  for (int t : {1, 2}) {
    output out(pr.s);
    flash_attention<Arch>(pr.q.cview(), cache, out.view, causal{}, openmp{t}, kPairs);
    if (first.empty()) {
      first = out.o;
      expect_accurate(out.o_used(pr.s), ref.o, naive_bf16(pr, causal{}), "paged O");
    } else {
      EXPECT_EQ(first, out.o) << t << " threads";
    }
  }
}

}  // namespace
