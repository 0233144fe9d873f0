// merge_states: attention over [0, Sk) == merge of attention over [0, s) and [s, Sk).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <attnkit/attnkit.hpp>
#include <attnkit/ref/reference.hpp>

using namespace attnkit;

TEST(Merge, SplitKeysThenMergeEqualsWhole) {
  const index_t Sq = 9, Sk = 50, H = 2, D = 16, split = 20;
  std::mt19937 g(3);
  std::normal_distribution<float> n;
  std::vector<float> q(Sq * H * D), k(Sk * H * D), v(Sk * H * D);
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = n(g);
  auto Q = bshd(const_cast<const float*>(q.data()), 1, Sq, H, D);
  auto Kfull = bshd(const_cast<const float*>(k.data()), 1, Sk, H, D), Vfull = bshd(const_cast<const float*>(v.data()), 1, Sk, H, D);
  auto part_view = [&](const std::vector<float>& t, index_t j0, index_t len) {
    return bshd(const_cast<const float*>(t.data()) + j0 * H * D, 1, len, H, D);
  };
  // Causal over the whole cache, expressed for each part with an explicit query offset.
  std::vector<float> o1(Sq * H * D), o2(Sq * H * D), l1(H * Sq), l2(H * Sq), om(Sq * H * D, 9.f), lm(H * Sq);
  flash_attention(Q, part_view(k, 0, split), part_view(v, 0, split), bshd(o1.data(), 1, Sq, H, D), causal{},
                  query_offset{Sk - Sq}, lse_out{l1.data()});
  flash_attention(Q, part_view(k, split, Sk - split), part_view(v, split, Sk - split), bshd(o2.data(), 1, Sq, H, D),
                  causal{}, query_offset{Sk - Sq - split}, lse_out{l2.data()});
  const attention_state parts[] = {{bshd(const_cast<const float*>(o1.data()), 1, Sq, H, D), l1.data()},
                                   {bshd(const_cast<const float*>(o2.data()), 1, Sq, H, D), l2.data()}};
  merge_states(parts, bshd(om.data(), 1, Sq, H, D), lm.data());
  const auto ref = ref::attention<double>(Q, Kfull, Vfull, causal{});
  const auto naive = ref::attention<float>(Q, Kfull, Vfull, causal{});
  double e = 0, en = 0, el = 0;
  for (std::size_t i = 0; i < om.size(); ++i) e = std::max(e, std::abs(om[i] - ref.o[i])), en = std::max(en, std::abs(naive.o[i] - ref.o[i]));
  for (std::size_t i = 0; i < lm.size(); ++i) el = std::max(el, std::abs(lm[i] - ref.lse[i]));
  // Two roundings more than a single pass: allow the 2x-naive criterion plus the merge's own few ulps.
  EXPECT_LE(e, 2 * en + 8 * std::numeric_limits<float>::epsilon());
  EXPECT_LE(el, 1e-5);
  // Commutative: the other order gives the same within rounding.
  const attention_state swapped[] = {parts[1], parts[0]};
  std::vector<float> os(om.size());
  merge_states(swapped, bshd(os.data(), 1, Sq, H, D));
  for (std::size_t i = 0; i < om.size(); ++i) EXPECT_NEAR(os[i], om[i], 1e-6);
}

TEST(Merge, NegativeInfinityIsTheIdentity) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> oa = {1.f, 2.f}, ob = {NAN, NAN}, out(2);
  float la = 0.5f, lb = -inf, lo = 0;
  const attention_state parts[] = {{bshd(const_cast<const float*>(oa.data()), 1, 1, 1, 2), &la},
                                   {bshd(const_cast<const float*>(ob.data()), 1, 1, 1, 2), &lb}};
  merge_states(parts, bshd(out.data(), 1, 1, 1, 2), &lo);
  EXPECT_EQ(out[0], 1.f);
  EXPECT_EQ(out[1], 2.f);
  EXPECT_EQ(lo, 0.5f);
  la = -inf;
  merge_states(parts, bshd(out.data(), 1, 1, 1, 2), &lo);
  EXPECT_EQ(out[0], 0.f);
  EXPECT_EQ(lo, -inf);
}

TEST(Merge, RejectsBadInput) {
  std::vector<float> oa(4), out(4);
  float l[2] = {0, 0};
  const attention_state parts[] = {{bshd(const_cast<const float*>(oa.data()), 1, 2, 1, 2), l}};
  EXPECT_THROW(merge_states({}, bshd(out.data(), 1, 2, 1, 2)), attnkit::invalid_argument);
  EXPECT_THROW(merge_states(parts, bshd(out.data(), 1, 1, 1, 2)), attnkit::invalid_argument);
  EXPECT_THROW(merge_states(parts, bshd(oa.data(), 1, 2, 1, 2)), attnkit::invalid_argument);  // aliasing
  const attention_state nolse[] = {{bshd(const_cast<const float*>(oa.data()), 1, 2, 1, 2), nullptr}};
  EXPECT_THROW(merge_states(nolse, bshd(out.data(), 1, 2, 1, 2)), attnkit::invalid_argument);
}
