// dense_attention and flash_attention with each score, mask and normalizer policy (alone and
// combined) vs the fp64 reference, for the architecture this TU is compiled for
// (ATTNKIT_TEST_ARCH). Split from test_attention.cpp: the two compile in parallel.
#include "kernel/attention_check.hpp"

namespace {

// Each policy alone and in combinations, on a prefill-like and a decode-like shape.
template <class... P>
void policy_case(const P&... p) {
  shape a;
  a.B = 2, a.Sq = 65, a.Sk = 130, a.Hq = 4, a.Hkv = 2, a.Dk = 80, a.Dv = 48;
  check_both(a, p...);
  shape d;
  d.Sq = 1, d.Sk = 1000, d.Hq = 4, d.Hkv = 1, d.Dk = d.Dv = 64, d.lay = layout::cache;
  check_both(d, p...);
}


TEST(Attention, ScorePolicies) {
  ATTNKIT_REQUIRE_ARCH();
  const auto slopes = alibi::standard_slopes(8);
  policy_case(softcap{5.f});
  policy_case(softcap{0.5f}, causal{});
  policy_case(alibi{std::span<const float>(slopes.data(), 4)});  // a: Hq=4
  {
    shape d;
    d.Sq = 3, d.Sk = 300, d.Hq = 8, d.Hkv = 2, d.Dk = d.Dv = 64;
    check_both(d, alibi{slopes}, causal{});
  }
  auto bias = [](auto s, index_t b, index_t h, index_t i, index_t j) { return s + 0.01 * double((i + 3 * h + b) % 5) - 0.002 * double(j % 7); };
  policy_case(score_fn{bias});
  policy_case(score_fn{bias}, sliding_window{16, 3}, scale{0.2f});
}

TEST(Attention, MaskPolicies) {
  ATTNKIT_REQUIRE_ARCH();
  policy_case(causal{});
  policy_case(sliding_window{31, 0});
  policy_case(sliding_window{7, 9});
  policy_case(sliding_window{-1, 4});
  policy_case(sliding_window::from_total(100));
  policy_case(sink_tokens{4} | sliding_window{20, 0});
  policy_case(sink_tokens{0});  // keeps nothing: every row fully masked
  auto checker = [](index_t b, index_t h, index_t i, index_t j) { return ((i + j + h + b) % 3) != 0; };
  policy_case(mask_fn{checker});
  policy_case(causal{} & mask_fn{checker});
  policy_case(mask_fn{checker} | sink_tokens{2});
  policy_case(causal{}, query_offset{10});
  {
    // Packed documents, causal within each (ids per key position, non-decreasing).
    shape s;
    s.B = 2, s.Sq = 130, s.Sk = 130, s.Hq = 4, s.Hkv = 2, s.Dk = s.Dv = 32;
    std::vector<std::int32_t> ids(s.Sk);
    for (index_t j = 0; j < s.Sk; ++j) ids[j] = j < 40 ? 0 : j < 41 ? 1 : j < 100 ? 2 : 3;
    check_both(s, document{ids} & causal{});
    check_both(s, document{ids});
    std::vector<std::int32_t> per_batch(2 * s.Sk);
    for (index_t j = 0; j < 2 * s.Sk; ++j) per_batch[j] = (j % s.Sk) / (j < s.Sk ? 13 : 70);
    check_both(s, document{per_batch, s.Sk} & causal{});
    // As interval lists with other key-range masks (two intervals per query for the | inside).
    check_both(s, (sink_tokens{4} | sliding_window{20, 0}) & document{ids});
    check_both(s, sink_tokens{2} | document{per_batch, s.Sk});
    s.Sq = 50;  // queries in the middle of the keys
    check_both(s, document{ids} & causal{}, query_offset{45});
    std::vector<std::int32_t> singles(s.Sk);  // every document of length 1: each query keeps itself
    for (index_t j = 0; j < s.Sk; ++j) singles[j] = std::int32_t(j);
    check_both(s, document{singles});
  }
}

TEST(Attention, NormalizerPolicies) {
  ATTNKIT_REQUIRE_ARCH();
  policy_case(softmax_with_sink{std::span<const float>(kSinks8, 4)});
  policy_case(sigmoid{-2.f});
  policy_case(sigmoid{0.f}, causal{});
  {
    shape d;
    d.Sq = 1, d.Sk = 1000, d.Hq = 8, d.Hkv = 2, d.Dk = d.Dv = 64;
    check_both(d, softmax_with_sink{kSinks8}, sliding_window::from_total(128));
    d.Sq = 65;  // GQA with a learned sink, window, softcap: gpt-oss-like
    check_both(d, softmax_with_sink{kSinks8}, sliding_window::from_total(128), softcap{30.f});
  }
}
}  // namespace
