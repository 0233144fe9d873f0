// The fp64 reference against hand-computed cases: it is the oracle for every kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <attnkit/eigen.hpp>

using namespace attnkit;

namespace {

// Q, K with Dk = 1 and all-ones so every logit is `logit`; V rows are 1, 2, 3, ... (Dv = 1).
struct tiny {
  index_t Sq, Sk;
  std::vector<float> q, k, v;
  tiny(index_t sq, index_t sk, float logit = 0.f) : Sq(sq), Sk(sk), q(sq, 1.f), k(sk, logit), v(sk) {
    for (index_t j = 0; j < sk; ++j) v[j] = float(j + 1);
  }
  tensor_view<const float> Q() const { return bshd(q.data(), 1, Sq, 1, 1); }
  tensor_view<const float> K() const { return bshd(k.data(), 1, Sk, 1, 1); }
  tensor_view<const float> V() const { return bshd(v.data(), 1, Sk, 1, 1); }
};

template <class R>
std::vector<std::vector<int>> kept_pattern(const R& r, index_t sq, index_t sk) {
  std::vector<std::vector<int>> m(sq, std::vector<int>(sk));
  for (index_t i = 0; i < sq; ++i)
    for (index_t j = 0; j < sk; ++j) m[i][j] = r.probs[i * sk + j] > 0;
  return m;
}

}  // namespace

// FlashAttention's documented causal examples (bottom-right alignment).
TEST(Reference, CausalBottomRightSq2Sk5) {
  tiny t(2, 5);
  const auto r = ref::attention<double>(t.Q(), t.K(), t.V(), causal{}, probs_out{});
  EXPECT_EQ(kept_pattern(r, 2, 5), (std::vector<std::vector<int>>{{1, 1, 1, 1, 0}, {1, 1, 1, 1, 1}}));
  EXPECT_DOUBLE_EQ(r.o[0], (1 + 2 + 3 + 4) / 4.0);
  EXPECT_DOUBLE_EQ(r.o[1], 3.0);
  EXPECT_NEAR(r.lse[0], std::log(4.0), 1e-15);
}

TEST(Reference, CausalBottomRightSq5Sk2) {
  tiny t(5, 2);
  const auto r = ref::attention<double>(t.Q(), t.K(), t.V(), causal{}, probs_out{});
  EXPECT_EQ(kept_pattern(r, 5, 2), (std::vector<std::vector<int>>{{0, 0}, {0, 0}, {0, 0}, {1, 0}, {1, 1}}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.o[i], 0.0);
    EXPECT_EQ(r.lse[i], -std::numeric_limits<double>::infinity());
  }
  EXPECT_DOUBLE_EQ(r.o[3], 1.0);
  EXPECT_DOUBLE_EQ(r.o[4], 1.5);
}

TEST(Reference, SlidingWindowInclusiveBounds) {
  tiny t(1, 10);  // query at position 9
  auto r = ref::attention<double>(t.Q(), t.K(), t.V(), sliding_window::from_total(3));  // keys 7, 8, 9
  EXPECT_DOUBLE_EQ(r.o[0], (8 + 9 + 10) / 3.0);
  tiny t2(10, 10);
  r = ref::attention<double>(t2.Q(), t2.K(), t2.V(), sliding_window{1, 2});
  EXPECT_DOUBLE_EQ(r.o[0], (1 + 2 + 3) / 3.0);  // row 0: keys 0..2
  EXPECT_DOUBLE_EQ(r.o[5], (5 + 6 + 7 + 8) / 4.0);  // row 5: keys 4..7
  r = ref::attention<double>(t2.Q(), t2.K(), t2.V(), sink_tokens{2} | sliding_window{1, 0});
  EXPECT_DOUBLE_EQ(r.o[6], (1 + 2 + 6 + 7) / 4.0);  // row 6: sinks 0, 1 and keys 5, 6
}

TEST(Reference, ScaleSoftcapAlibi) {
  // Two keys, logits a and b through scale, softcap and ALiBi; O = (e^a * 1 + e^b * 2) / (e^a + e^b).
  std::vector<float> q = {2.f}, k = {1.f, 3.f}, v = {1.f, 2.f};
  auto Q = bshd(const_cast<const float*>(q.data()), 1, 1, 1, 1);
  auto K = bshd(const_cast<const float*>(k.data()), 1, 2, 1, 1);
  auto V = bshd(const_cast<const float*>(v.data()), 1, 2, 1, 1);
  auto expect = [](double a, double b) { return (std::exp(a) + 2 * std::exp(b)) / (std::exp(a) + std::exp(b)); };
  EXPECT_NEAR(ref::attention<double>(Q, K, V).o[0], expect(2.0, 6.0), 1e-14);  // default scale 1/sqrt(1)
  EXPECT_NEAR(ref::attention<double>(Q, K, V, scale{0.5f}).o[0], expect(1.0, 3.0), 1e-14);
  EXPECT_NEAR(ref::attention<double>(Q, K, V, softcap{4.f}).o[0], expect(4 * std::tanh(0.5), 4 * std::tanh(1.5)), 1e-7);
  const float slope[1] = {0.5f};  // query at position 1: distances 1 and 0
  EXPECT_NEAR(ref::attention<double>(Q, K, V, alibi{slope}).o[0], expect(2.0 - 0.5, 6.0), 1e-14);
}

TEST(Reference, SinkAndSigmoid) {
  tiny t(1, 3, 0.5f);  // logits all 0.5 (q = 1, k = 0.5, scale 1)
  const float sink[1] = {2.f};
  auto r = ref::attention<double>(t.Q(), t.K(), t.V(), softmax_with_sink{sink});
  const double den = std::exp(2.0) + 3 * std::exp(0.5);
  EXPECT_NEAR(r.o[0], std::exp(0.5) * (1 + 2 + 3) / den, 1e-14);
  EXPECT_NEAR(r.lse[0], std::log(den), 1e-14);
  r = ref::attention<double>(t.Q(), t.K(), t.V(), sigmoid{-1.f}, causal{});
  EXPECT_NEAR(r.o[0], (1 + 2 + 3) / (1 + std::exp(0.5)), 1e-14);  // sigma(0.5 - 1)
  EXPECT_TRUE(r.lse.empty());
  r = ref::attention<double>(t.Q(), t.K(), t.V(), softmax_with_sink{sink}, sink_tokens{0});
  EXPECT_EQ(r.o[0], 0.0);
  EXPECT_DOUBLE_EQ(r.lse[0], 2.0);  // fully masked with a sink: LSE = s_h
}

TEST(Reference, DocumentMaskAndGqa) {
  // Two query heads share one KV head; documents {0, 0, 1}: the last query sees only itself.
  std::vector<float> q(3 * 2, 1.f), k(3, 0.f), v = {1.f, 2.f, 3.f};
  const std::int32_t ids[3] = {0, 0, 1};
  const auto r = ref::attention<double>(bshd(const_cast<const float*>(q.data()), 1, 3, 2, 1),
                                        bshd(const_cast<const float*>(k.data()), 1, 3, 1, 1),
                                        bshd(const_cast<const float*>(v.data()), 1, 3, 1, 1), document{ids});
  for (index_t h = 0; h < 2; ++h) {
    EXPECT_DOUBLE_EQ(r.out(0, 0, h, 0), 1.5);
    EXPECT_DOUBLE_EQ(r.out(0, 2, h, 0), 3.0);
  }
}

TEST(Reference, EigenViews) {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m(5, 12);
  const auto v = view_of(m, 3);
  EXPECT_EQ(v.seq(), 5);
  EXPECT_EQ(v.heads(), 3);
  EXPECT_EQ(v.dim(), 4);
  EXPECT_EQ(&v(0, 2, 1, 3), &m(2, 7));
  EXPECT_THROW(view_of(m, 5), attnkit::invalid_argument);
  // Maps (also with padded rows) and const matrices: the outer stride is the token stride.
  std::vector<float> buf(5 * 16);
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>> pm(
      buf.data(), 5, 12, Eigen::OuterStride<>(16));
  const auto pv = view_of(pm, 3);
  EXPECT_EQ(pv.strides[1], 16);
  EXPECT_EQ(&pv(0, 4, 2, 1), &pm(4, 9));
  const auto& cm = m;
  static_assert(std::is_same_v<decltype(view_of(cm, 3)), tensor_view<const float>>);
}

// Probabilities exist only on request (probs_out{}: B * Hq * Sq * Sk values would be 1 GiB at
// 2k x 2k x 32 heads), and asking for them changes nothing else, bitwise (fp64 and fp32 forms).
template <class T>
void probs_on_request() {
  const index_t B = 2, Sq = 9, Sk = 13, Hq = 4, Hkv = 2, D = 5;
  std::vector<float> q(B * Sq * Hq * D), k(B * Sk * Hkv * D), v(B * Sk * Hkv * D);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.7f * float(i));
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::cos(1.3f * float(i));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.3f * float(i) + 1.f);
  const auto qv = bshd(const_cast<const float*>(q.data()), B, Sq, Hq, D);
  const auto kv = bshd(const_cast<const float*>(k.data()), B, Sk, Hkv, D);
  const auto vv = bshd(const_cast<const float*>(v.data()), B, Sk, Hkv, D);
  const float sinks[4] = {0.5f, -1.f, 2.f, 0.f};
  const auto plain = ref::attention<T>(qv, kv, vv, causal{}, softmax_with_sink{sinks});
  const auto with = ref::attention<T>(qv, kv, vv, probs_out{}, causal{}, softmax_with_sink{sinks});
  EXPECT_TRUE(plain.probs.empty());
  ASSERT_EQ(with.probs.size(), static_cast<std::size_t>(B * Hq * Sq * Sk));
  EXPECT_EQ(plain.o, with.o);
  EXPECT_EQ(plain.lse, with.lse);
  EXPECT_EQ(plain.key_mass, with.key_mass);
  // The probabilities are the ones the outputs were made from: key mass = column sums, and each
  // row sums to 1 minus the sink's share, exp(s_h - LSE).
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < Hq; ++h) {
      for (index_t j = 0; j < Sk; ++j) {
        T m = 0;
        for (index_t i = 0; i < Sq; ++i) m += with.probs[((b * Hq + h) * Sq + i) * Sk + j];
        EXPECT_NEAR(double(m), double(with.key_mass[(b * Hq + h) * Sk + j]), 1e-5);
      }
      for (index_t i = 0; i < Sq; ++i) {
        T s = 0;
        for (index_t j = 0; j < Sk; ++j) s += with.probs[((b * Hq + h) * Sq + i) * Sk + j];
        const double lse = double(with.lse[(b * Hq + h) * Sq + i]);
        EXPECT_NEAR(double(s) + std::exp(double(sinks[h]) - lse), 1.0, 1e-5);
      }
    }
}
TEST(Reference, ProbabilitiesOnlyOnRequest) {
  probs_on_request<double>();
  probs_on_request<float>();
}
