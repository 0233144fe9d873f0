// The decode engine (few rows per KV head) vs the fp64 reference: Sq in {1, 2, 4, 16}, long
// caches, GQA ratios, fp32 / bf16 / fp16 KV, every policy; plan_of names the engine.
#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using namespace attnkit::test;
using Arch = ATTNKIT_TEST_ARCH;

template <class T, class... P>
void check_flash(const shape& s, const P&... p) {
  SCOPED_TRACE(s.str());
  problem<T> pr(s);
  const auto ref = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), p...);
  const auto naive = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), p...);
  output out(s);
  using N = decltype(resolve_args(p...).norm);
  if constexpr (N::has_lse) {
    flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, p..., lse_out{out.lse.data()});
    expect_accurate(out.lse_used(s), ref.lse, naive.lse, "LSE");
  } else {
    flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, p...);
  }
  expect_accurate(out.o_used(s), ref.o, naive.o, "O");
}

TEST(Decode, PlanNamesTheEngine) {
  ATTNKIT_REQUIRE_ARCH();
  std::vector<float> q(32 * 128), k(1000 * 8 * 128), o(32 * 128);
  const auto qv = bshd(static_cast<const float*>(q.data()), 1, 1, 32, 128);
  const auto kv = bshd(static_cast<const float*>(k.data()), 1, 1000, 8, 128);
  const auto p = plan_of<Arch>(qv, kv, kv, bshd(o.data(), 1, 1, 32, 128), causal{});
  EXPECT_EQ(p.kind, engine::decode) << p.reason;
  EXPECT_EQ(p.rows, 4);
  EXPECT_NE(std::string(p.reason).find("decode"), std::string::npos);
  std::vector<float> q2(64 * 32 * 128), o2(64 * 32 * 128);
  const auto p2 = plan_of<Arch>(bshd(static_cast<const float*>(q2.data()), 1, 64, 32, 128), kv, kv,
                                bshd(o2.data(), 1, 64, 32, 128), causal{});
  EXPECT_EQ(p2.kind, engine::prefill) << p2.reason;
}

TEST(Decode, ShapesAndTypes) {
  ATTNKIT_REQUIRE_ARCH();
  for (index_t sq : {1, 2, 4, 16})
    for (index_t sk : {0, 1, 7, 1000})
      for (auto [hq, hkv] : {std::pair<index_t, index_t>{2, 2}, {8, 2}, {8, 1}}) {
        const shape s = make_shape(sq, sk, hq, hkv, sq == 2 ? 80 : 64);
        check_flash<float>(s, causal{});
        check_flash<float>(s);
        check_flash<bf16>(s, causal{});
        check_flash<fp16>(s, causal{});
      }
  for (index_t d : {1, 3, 17, 48, 128, 256}) check_flash<float>(make_shape(1, 300, 4, 1, d), causal{});
  shape mixed = make_shape(1, 500, 8, 2, 64);
  mixed.Dv = 40;
  check_flash<float>(mixed, causal{});
  check_flash<bf16>(mixed, causal{});
}

TEST(Decode, LongCache) {
  ATTNKIT_REQUIRE_ARCH();
  check_flash<float>(make_shape(1, 70000, 4, 1, 64), causal{});
  check_flash<bf16>(make_shape(1, 70000, 8, 1, 32, layout::bshd), causal{});
}

TEST(Decode, EveryPolicy) {
  ATTNKIT_REQUIRE_ARCH();
  const float sinks[8] = {0.5f, -1.f, 2.f, 0.f, 3.f, -2.f, 1.f, 4.f};
  const std::vector<float> slopes = alibi::standard_slopes(8);
  std::vector<std::int32_t> ids(1500);
  for (index_t j = 0; j < 1500; ++j) ids[j] = static_cast<std::int32_t>(j / 400);
  for (index_t sq : {1, 4}) {
    const shape s = make_shape(sq, 1500, 8, 2, 64);
    check_flash<float>(s, softmax_with_sink{sinks}, causal{});
    check_flash<float>(s, sliding_window::from_total(256) & causal{});
    check_flash<float>(s, (sink_tokens{4} | sliding_window::from_total(256)) & causal{});
    check_flash<float>(s, alibi{slopes}, causal{});
    check_flash<float>(s, softcap{20.f}, causal{});
    check_flash<float>(s, document{ids} & causal{});
    check_flash<float>(s, mask_fn{[](index_t, index_t h, index_t, index_t j) { return (j + h) % 3 != 0; }});
    check_flash<float>(s, sigmoid{-3.f}, causal{});
    check_flash<float>(s, score_fn{[](auto x, index_t, index_t, index_t, index_t j) { return x + decltype(x)(j % 5) * 0.1f; }});
  }
}

TEST(Decode, KeyMassAndBitwiseAcrossThreads) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = make_shape(1, 3000, 8, 2, 64);
  problem<float> pr(s);
  const auto ref = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), causal{});
  const auto naive = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), causal{});
  output out(s);
  std::vector<float> mass(s.Hq * s.Sk);
  flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, causal{}, key_mass_out{mass.data()});
  expect_accurate(out.o_used(s), ref.o, naive.o, "O");
  expect_accurate(mass, ref.key_mass, naive.key_mass, "key mass");
  std::vector<float> first;
  for (int t : {1, 2, 3}) {
    output o2(s);
    flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), o2.view, causal{}, openmp{t});
    if (first.empty()) first = o2.o;
    else EXPECT_EQ(first, o2.o) << t << " threads";
  }
}

}  // namespace
