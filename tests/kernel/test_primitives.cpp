// The named primitives (sliding_window_attention, sink_attention) and streaming_mask vs the fp64
// reference with the policies they stand for; a caller's mask is ANDed with the primitive's.
#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using namespace attnkit::test;
using Arch = ATTNKIT_TEST_ARCH;

TEST(Primitives, StreamingMaskIsCausal) {
  const auto m = streaming_mask(4, 8);
  const head_ctx c{0, 0, 0};  // Sq == Sk: pos(i) = i
  for (index_t i = 0; i < 40; ++i)
    for (index_t j = 0; j < 40; ++j) EXPECT_EQ(m.keep(c, i, j), j <= i && (j < 4 || j > i - 8)) << i << ", " << j;
  EXPECT_THROW(streaming_mask(-1, 8), attnkit::invalid_argument);
  EXPECT_THROW(streaming_mask(4, 0), attnkit::invalid_argument);
}

TEST(Primitives, SlidingWindow) {
  ATTNKIT_REQUIRE_ARCH();
  for (const shape& s : {make_shape(130, 130, 4, 2, 64), make_shape(1, 2000, 8, 2, 64), make_shape(65, 1000, 2, 1, 48)}) {
    const auto w = sliding_window::from_total(100);
    check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
      sliding_window_attention<Arch>(q, k, v, o, w, causal{}, lse_out{lse});
    }, w & causal{});
    check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
      sliding_window_attention<Arch>(q, k, v, o, sliding_window{30, 20}, lse_out{lse});
    }, sliding_window{30, 20});
  }
}

TEST(Primitives, SinkAttention) {
  ATTNKIT_REQUIRE_ARCH();
  const float logits[8] = {0.5f, -1.f, 2.f, 0.f, 3.f, -2.f, 1.f, 4.f};
  std::vector<std::int32_t> ids(1000);
  for (index_t j = 0; j < 1000; ++j) ids[j] = static_cast<std::int32_t>(j / 300);
  for (const shape& s : {make_shape(130, 130, 4, 2, 64), make_shape(1, 1000, 8, 2, 64), make_shape(4, 1000, 8, 2, 32)}) {
    check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
      sink_attention<Arch>(q, k, v, o, attention_sinks{4, 64}, lse_out{lse});
    }, streaming_mask(4, 64));
    check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
      sink_attention<Arch>(q, k, v, o, attention_sinks{0, -1, std::span<const float>(logits, s.Hq)}, lse_out{lse});
    }, causal{}, softmax_with_sink{std::span<const float>(logits, s.Hq)});
    check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
      sink_attention<Arch>(q, k, v, o, attention_sinks{4, 64, std::span<const float>(logits, s.Hq)}, lse_out{lse});
    }, streaming_mask(4, 64), softmax_with_sink{std::span<const float>(logits, s.Hq)});
    if (s.Sk == 1000)  // a caller's mask is ANDed with the primitive's
      check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
        sink_attention<Arch>(q, k, v, o, attention_sinks{4, 64}, document{ids}, lse_out{lse});
      }, streaming_mask(4, 64) & document{ids});
  }
}

TEST(Primitives, BadSinks) {
  std::vector<float> q(4 * 8), o(4 * 8, 7.f);
  const auto v = bshd(static_cast<const float*>(q.data()), 1, 4, 1, 8);
  EXPECT_THROW(sink_attention(v, v, v, bshd(o.data(), 1, 4, 1, 8), attention_sinks{4, 0}), attnkit::invalid_argument);
  EXPECT_THROW(sink_attention(v, v, v, bshd(o.data(), 1, 4, 1, 8), attention_sinks{-1, 8}), attnkit::invalid_argument);
  const float l[1] = {0.f};
  EXPECT_THROW(sink_attention(v, v, v, bshd(o.data(), 1, 4, 1, 8), attention_sinks{0, -1, l}, sigmoid{}),
               attnkit::invalid_argument);
  for (float x : o) EXPECT_EQ(x, 7.f);
}

}  // namespace
