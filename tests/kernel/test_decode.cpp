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

// Split decode tasks of a bshd cache interleave up to 8 KV heads tile by tile (kv_heads_per_task);
// a bhsd cache keeps one head per task. Each head's arithmetic is its own walk either way, so the
// two layouts and every thread count give bitwise the same output, with every kind of mask.
TEST(Decode, HeadGroupsChangeNothing) {
  ATTNKIT_REQUIRE_ARCH();
  for (index_t sq : {1, 2})
    for (auto [hq, hkv] : {std::pair<index_t, index_t>{32, 8}, {24, 6}, {20, 10}}) {
      shape s = make_shape(sq, 5000, hq, hkv, 48, layout::bshd);
      problem<float> a(s);
      s.lay = layout::bhsd;
      problem<float> b(s);
      for (index_t i = 0; i < s.Sk; ++i)
        for (index_t h = 0; h < hkv; ++h)
          for (index_t c = 0; c < s.Dk; ++c) {
            b.k.view(0, i, h, c) = a.k.view(0, i, h, c);
            b.v.view(0, i, h, c) = a.v.view(0, i, h, c);
          }
      for (index_t i = 0; i < sq; ++i)
        for (index_t h = 0; h < hq; ++h)
          for (index_t c = 0; c < s.Dk; ++c) b.q.view(0, i, h, c) = a.q.view(0, i, h, c);
      const auto heads = mask_fn{[](index_t, index_t h, index_t, index_t j) { return (j + 3 * h) % 7 != 0; }};
      auto run = [&](const problem<float>& p, auto mask, int threads) {
        output o(s);
        flash_attention<Arch>(p.q.cview(), p.k.cview(), p.v.cview(), o.view, mask, openmp{threads});
        return o.o;
      };
      auto check = [&](auto mask, const char* what) {
        SCOPED_TRACE(std::string(what) + " Sq=" + std::to_string(sq) + " Hkv=" + std::to_string(hkv));
        const auto first = run(a, mask, 1);
        for (int t : {2, 3, 8}) EXPECT_EQ(first, run(a, mask, t)) << "bshd, " << t << " threads";
        for (int t : {1, 2}) EXPECT_EQ(first, run(b, mask, t)) << "bhsd, " << t << " threads";
      };
      check(causal{}, "causal");
      check(streaming_mask(4, 700), "streaming");
      check(heads & causal{}, "per-head mask_fn");
      if (!std::is_same_v<Arch, scalar>) {
        std::vector<float> o(s.Sq * hq * s.Dv);
        const auto p = plan_of<Arch>(a.q.cview(), a.k.cview(), a.v.cview(), bshd(o.data(), 1, sq, hq, s.Dv), causal{},
                                     openmp{1});
        EXPECT_EQ(p.kv_heads_per_task, std::min<index_t>(hkv, 8)) << p.reason;
        const auto pb = plan_of<Arch>(b.q.cview(), b.k.cview(), b.v.cview(), bshd(o.data(), 1, sq, hq, s.Dv), causal{},
                                      openmp{1});
        EXPECT_EQ(pb.kv_heads_per_task, 1);
      }
    }
}
