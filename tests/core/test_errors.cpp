// Every public entry point rejects bad input with attnkit::invalid_argument naming the argument,
// and writes nothing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <attnkit/attnkit.hpp>

using namespace attnkit;

namespace {

struct fixture {
  index_t B = 1, Sq = 4, Sk = 6, Hq = 4, Hkv = 2, D = 8;
  std::vector<float> q = std::vector<float>(B * Sq * Hq * D, 0.5f), k = std::vector<float>(B * Sk * Hkv * D, 0.25f),
                     v = std::vector<float>(B * Sk * Hkv * D, 1.f), o = std::vector<float>(B * Sq * Hq * D, 7.f),
                     lse = std::vector<float>(B * Hq * Sq, 7.f);
  tensor_view<const float> qv() const { return bshd(q.data(), B, Sq, Hq, D); }
  tensor_view<const float> kv() const { return bshd(k.data(), B, Sk, Hkv, D); }
  tensor_view<const float> vv() const { return bshd(v.data(), B, Sk, Hkv, D); }
  tensor_view<float> ov() { return bshd(o.data(), B, Sq, Hq, D); }
  bool untouched() const {
    for (float x : o)
      if (x != 7.f) return false;
    for (float x : lse)
      if (x != 7.f) return false;
    return true;
  }
};

// Runs f against both kernels; expects attnkit::invalid_argument whose message contains every
// fragment, and an untouched output.
template <class F>
void expect_rejects(F f, std::initializer_list<const char*> fragments) {
  for (int kernel = 0; kernel < 2; ++kernel) {
    fixture x;
    try {
      f(x, kernel);
      ADD_FAILURE() << "no exception; expected one mentioning " << *fragments.begin();
    } catch (const attnkit::invalid_argument& e) {
      const std::string msg = e.what();
      for (const char* frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "message: " << msg;
      EXPECT_NE(msg.find(kernel == 0 ? "dense_attention" : "flash_attention"), std::string::npos) << msg;
    }
    EXPECT_TRUE(x.untouched()) << "output written on error";
  }
}

template <class... P>
void run(int kernel, tensor_view<const float> q, tensor_view<const float> k, tensor_view<const float> v,
         tensor_view<float> o, P&&... p) {
  if (kernel == 0) dense_attention(q, k, v, o, p...);
  else flash_attention(q, k, v, o, p...);
}

}  // namespace

TEST(Errors, ShapeMismatches) {
  expect_rejects([](fixture& x, int kn) { auto k = x.kv(); k.extents[0] = 2; run(kn, x.qv(), k, x.vv(), x.ov()); },
                 {"k:", "batch", "expected"});
  expect_rejects([](fixture& x, int kn) { auto v = x.vv(); v.extents[1] = 5; run(kn, x.qv(), x.kv(), v, x.ov()); },
                 {"v:", "seq", "6", "5"});
  expect_rejects([](fixture& x, int kn) { auto v = x.vv(); v.extents[2] = 1; run(kn, x.qv(), x.kv(), v, x.ov()); },
                 {"v:", "heads"});
  expect_rejects([](fixture& x, int kn) { auto k = x.kv(); k.extents[3] = 4; run(kn, x.qv(), k, x.vv(), x.ov()); },
                 {"k:", "dim", "8", "4"});
  expect_rejects([](fixture& x, int kn) { auto o = x.ov(); o.extents[3] = 4; run(kn, x.qv(), x.kv(), x.vv(), o); },
                 {"out:", "dim"});
  expect_rejects([](fixture& x, int kn) { auto o = x.ov(); o.extents[1] = 3; run(kn, x.qv(), x.kv(), x.vv(), o); },
                 {"out:", "seq"});
}

TEST(Errors, GroupedQueryHeads) {
  expect_rejects([](fixture& x, int kn) {
    auto q = x.qv(); q.extents[2] = 3;  // 3 % 2 != 0
    auto o = x.ov(); o.extents[2] = 3;
    run(kn, q, x.kv(), x.vv(), o);
  }, {"q:", "divisible", "2", "3"});
}

TEST(Errors, ExtentsStridesAndNull) {
  expect_rejects([](fixture& x, int kn) { auto q = x.qv(); q.extents[1] = -1; run(kn, q, x.kv(), x.vv(), x.ov()); },
                 {"q:", "seq", ">= 0", "-1"});
  expect_rejects([](fixture& x, int kn) { auto k = x.kv(); k.extents[2] = 0; run(kn, x.qv(), k, x.vv(), x.ov()); },
                 {"k:", "heads >= 1", "0"});
  expect_rejects([](fixture& x, int kn) { auto q = x.qv(); q.extents[3] = 0; run(kn, q, x.kv(), x.vv(), x.ov()); },
                 {"q:", "dim >= 1"});
  expect_rejects([](fixture& x, int kn) { auto v = x.vv(); v.strides[3] = 2; run(kn, x.qv(), x.kv(), v, x.ov()); },
                 {"v:", "innermost", "stride 1", "2"});
  expect_rejects([](fixture& x, int kn) { auto k = x.kv(); k.data = nullptr; run(kn, x.qv(), k, x.vv(), x.ov()); },
                 {"k:", "non-null", "nullptr"});
}

TEST(Errors, OutputAliasing) {
  expect_rejects([](fixture& x, int kn) {
    auto q = bshd(const_cast<const float*>(x.o.data()), x.B, x.Sq, x.Hq, x.D);
    run(kn, q, x.kv(), x.vv(), x.ov());
  }, {"out:", "disjoint from q"});
  expect_rejects([](fixture& x, int kn) {
    // out overlapping v by one element
    std::vector<float> buf(x.v.size() * 3, 7.f);
    std::copy(x.v.begin(), x.v.end(), buf.begin());
    auto v = bshd(const_cast<const float*>(buf.data()), x.B, x.Sk, x.Hkv, x.D);
    auto o = bshd(buf.data() + x.v.size() - 1, x.B, x.Sq, x.Hq, x.D);
    run(kn, x.qv(), x.kv(), v, o);
  }, {"out:", "disjoint from v"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), lse_out{x.o.data() + 3}); },
                 {"lse_out:", "disjoint from out"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), lse_out{const_cast<float*>(x.k.data())}); },
                 {"lse_out:", "disjoint from q, k and v"});
}

TEST(Errors, PolicyArguments) {
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), sliding_window{-2, 0}); },
                 {"sliding_window", "left", ">= -1", "-2"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), sliding_window{3, -5}); },
                 {"sliding_window", "right", "-5"});
  expect_rejects([](fixture& x, int kn) {
    const float s[3] = {0, 0, 0};
    run(kn, x.qv(), x.kv(), x.vv(), x.ov(), softmax_with_sink{s});
  }, {"softmax_with_sink", "logits", "(4)", "got 3"});
  expect_rejects([](fixture& x, int kn) {
    const float s[2] = {0, 0};
    run(kn, x.qv(), x.kv(), x.vv(), x.ov(), alibi{s});
  }, {"alibi", "slopes", "(4)", "got 2"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), softcap{0.f}); }, {"softcap", "cap"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), sink_tokens{-1}); }, {"sink_tokens", "n"});
  expect_rejects([](fixture& x, int kn) {
    const std::int32_t ids[6] = {0, 0, 1, 1, 0, 2};
    run(kn, x.qv(), x.kv(), x.vv(), x.ov(), document{ids});
  }, {"document", "non-decreasing"});
  expect_rejects([](fixture& x, int kn) {
    const std::int32_t ids[5] = {0, 0, 1, 1, 2};
    run(kn, x.qv(), x.kv(), x.vv(), x.ov(), document{ids});
  }, {"document", "ids", "6", "got 5"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), scale{std::nanf("")}); }, {"scale"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), sigmoid{}, lse_out{x.lse.data()}); },
                 {"lse_out", "sigmoid"});
  EXPECT_THROW(sliding_window::from_total(0), attnkit::invalid_argument);
}

TEST(Errors, ProbabilitiesOnlyFromDense) {
  fixture x;
  std::vector<float> p(x.B * x.Hq * x.Sq * x.Sk);
  EXPECT_THROW(flash_attention(x.qv(), x.kv(), x.vv(), x.ov(), probs_out{p.data()}), attnkit::invalid_argument);
  EXPECT_TRUE(x.untouched());
  EXPECT_NO_THROW(dense_attention(x.qv(), x.kv(), x.vv(), x.ov(), probs_out{p.data()}));
}

TEST(Errors, WorkspaceTooSmall) {
  fixture x;
  std::vector<std::byte> ws(64);
  try {
    flash_attention(x.qv(), x.kv(), x.vv(), x.ov(), workspace{ws}, serial{});
    ADD_FAILURE() << "expected an exception";
  } catch (const attnkit::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("workspace: expected at least"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(x.untouched());
}
