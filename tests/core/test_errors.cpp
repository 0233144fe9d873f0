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

// Defects found by the differential tester: each class rejected at its root.
TEST(Errors, OutputMustAddressEachElementOnce) {
  expect_rejects([](fixture& x, int kn) { auto o = x.ov(); o.strides[1] = 0; run(kn, x.qv(), x.kv(), x.vv(), o); },
                 {"out:", "own memory", "seq stride 0"});
  expect_rejects([](fixture& x, int kn) { auto o = x.ov(); o.strides[2] = 4; run(kn, x.qv(), x.kv(), x.vv(), o); },
                 {"out:", "own memory", "heads stride 4"});
  fixture x;  // a broadcast (stride 0) input is fine: only outputs must be distinct
  auto q = x.qv();
  q.strides[1] = 0;
  EXPECT_NO_THROW(flash_attention(q, x.kv(), x.vv(), x.ov()));
}

TEST(Errors, SizesThatOverflow) {
  // B = Sq = 2^31 - 1 with stride-0 views: within the extent limit, but out cannot hold them.
  expect_rejects([](fixture& x, int kn) {
    const index_t n = (index_t(1) << 31) - 1;
    tensor_view<const float> q{x.q.data(), {n, n, 4, 8}, {0, 0, 8, 1}};
    tensor_view<const float> k{x.k.data(), {n, 6, 2, 8}, {0, 16, 8, 1}};
    tensor_view<const float> v{x.v.data(), {n, 6, 2, 8}, {0, 16, 8, 1}};
    tensor_view<float> o{x.o.data(), {n, n, 4, 8}, {0, 0, 8, 1}};
    run(kn, q, k, v, o);
  }, {"out:", "own memory"});
  expect_rejects([](fixture& x, int kn) {
    auto k = x.kv(), v = x.vv();
    k.extents[1] = v.extents[1] = index_t(1) << 40;
    k.strides[1] = v.strides[1] = 0;
    run(kn, x.qv(), k, v, x.ov());
  }, {"k:", "seq extent <= 2147483647", "1099511627776"});
  expect_rejects([](fixture& x, int kn) {
    auto k = x.kv(), v = x.vv();
    k.extents[1] = v.extents[1] = index_t(1) << 62;
    run(kn, x.qv(), k, v, x.ov());
  }, {"k:", "seq extent"});
  expect_rejects([](fixture& x, int kn) {
    auto k = x.kv();
    k.strides[0] = index_t(1) << 61;
    k.extents[0] = 1;
    k.strides[1] = index_t(1) << 60;
    run(kn, x.qv(), k, x.vv(), x.ov());
  }, {"k:", "2^62 bytes", "seq axis"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), query_offset{INT64_MAX - 2}); },
                 {"query_offset", "2^32"});
  expect_rejects([](fixture& x, int kn) { run(kn, x.qv(), x.kv(), x.vv(), x.ov(), query_offset{INT64_MIN}); },
                 {"query_offset"});
}

TEST(Errors, PolicyValuesOutsideTheirDomain) {
  expect_rejects([](fixture& x, int kn) {
    const float s[4] = {0.5f, std::nanf(""), 0.25f, 0.125f};
    run(kn, x.qv(), x.kv(), x.vv(), x.ov(), alibi{s});
  }, {"alibi", "slopes", "finite", "head 1"});
  expect_rejects([](fixture& x, int kn) {
    const float s[4] = {0.5f, 0.5f, 0.25f, INFINITY};
    run(kn, x.qv(), x.kv(), x.vv(), x.ov(), alibi{s});
  }, {"alibi", "slopes", "head 3"});
  // document ids cover key positions; a query offset that moves queries past them used to read
  // beyond the ids buffer.
  expect_rejects([](fixture& x, int kn) {
    const std::int32_t ids[6] = {0, 0, 1, 1, 1, 2};
    run(kn, x.qv(), x.kv(), x.vv(), x.ov(), document{ids}, query_offset{5});
  }, {"document", "query_offset", "< Sk (6)", "up to 8"});
}

TEST(Errors, HugeWindowBoundsDoNotOverflow) {
  // {0, INT64_MAX}: keys at or after the query (no overflow in pos + right).
  fixture x;
  std::vector<float> ref(x.o.size());
  flash_attention(x.qv(), x.kv(), x.vv(), bshd(ref.data(), x.B, x.Sq, x.Hq, x.D), sliding_window{0, -1});
  flash_attention(x.qv(), x.kv(), x.vv(), x.ov(), sliding_window{0, INT64_MAX}, query_offset{-(index_t(1) << 32)});
  flash_attention(x.qv(), x.kv(), x.vv(), x.ov(), sliding_window{0, INT64_MAX});
  EXPECT_EQ(x.o, ref);
  flash_attention(x.qv(), x.kv(), x.vv(), bshd(ref.data(), x.B, x.Sq, x.Hq, x.D), sliding_window{-1, 0});
  flash_attention(x.qv(), x.kv(), x.vv(), x.ov(), sliding_window{INT64_MAX, 0});
  EXPECT_EQ(x.o, ref);
}

TEST(Errors, MergeStatesRejectsNonFiniteLse) {
  const index_t B = 1, S = 2, H = 1, D = 3;
  std::vector<float> o1(B * S * H * D, 1.f), o2(B * S * H * D, 2.f), out(B * S * H * D, 7.f);
  for (float bad : {std::nanf(""), INFINITY}) {
    std::vector<float> l1 = {0.f, 1.f}, l2 = {bad, 0.f};
    const attention_state parts[2] = {{bshd(const_cast<const float*>(o1.data()), B, S, H, D), l1.data()},
                                      {bshd(const_cast<const float*>(o2.data()), B, S, H, D), l2.data()}};
    try {
      merge_states(parts, bshd(out.data(), B, S, H, D));
      ADD_FAILURE() << "expected an exception for LSE " << bad;
    } catch (const attnkit::invalid_argument& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("merge_states"), std::string::npos) << m;
      EXPECT_NE(m.find("parts[1].lse"), std::string::npos) << m;
    }
    for (float y : out) EXPECT_EQ(y, 7.f);
  }
}

TEST(Errors, LightningStepNeedsAState) {
  const index_t B = 1, H = 2, D = 4;
  std::vector<float> q(B * H * D, 0.5f), o(B * H * D, 7.f);
  const auto qv = bshd(const_cast<const float*>(q.data()), B, 1, H, D);
  const float lam[2] = {1.f, 1.f};
  try {
    lightning_step(qv, qv, qv, bshd(o.data(), B, 1, H, D), decay{lam}, nullptr);
    ADD_FAILURE() << "expected an exception";
  } catch (const attnkit::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("lightning_step: state"), std::string::npos) << e.what();
  }
  for (float y : o) EXPECT_EQ(y, 7.f);
  // An output whose rows overlap is rejected by the linear entry points too.
  std::vector<float> S(B * H * D * D, 0.f);
  try {
    lightning_step(qv, qv, qv, tensor_view<float>{o.data(), {B, 1, H, D}, {H * D, H * D, 2, 1}}, decay{lam}, S.data());
    ADD_FAILURE() << "expected an exception";
  } catch (const attnkit::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("out:"), std::string::npos) << e.what();
  }
}

TEST(Errors, EmptyOutputsAreNeverOverlapping) {
  // Sq = 0 with B > 1: bshd gives batch stride 0, which is fine when nothing is written.
  std::vector<float> q(8), k(2 * 4 * 8, 0.5f), v(2 * 4 * 8, 1.f), o(8, 7.f);
  EXPECT_NO_THROW(flash_attention(bshd(static_cast<const float*>(q.data()), 2, 0, 1, 8),
                                  bshd(static_cast<const float*>(k.data()), 2, 4, 1, 8),
                                  bshd(static_cast<const float*>(v.data()), 2, 4, 1, 8), bshd(o.data(), 2, 0, 1, 8),
                                  serial{}));
  for (float x : o) EXPECT_EQ(x, 7.f);
}
