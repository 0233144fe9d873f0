// What serving needs. Batched layouts (core/batch.hpp): a paged KV cache and ragged (varlen)
// queries / keys, each sequence against its own contiguous call and the fp64 reference; garbage in
// unused pages, rows past a length and unused block-table entries never reaches the output; bad
// layouts rejected with named errors and nothing written. Speculative token trees (tree_mask)
// against an explicit mask; the StreamingLLM ring buffer (streaming_ring) against the whole
// history; the append helpers.
#include <numeric>

#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using namespace attnkit::test;
using Arch = ATTNKIT_TEST_ARCH;

// One sequence's own tensors: q [1, sq, Hq, D], k / v [1, sk, Hkv, D].
template <class T>
struct sequence {
  tensor<T> q, k, v;
};
template <class T>
std::vector<sequence<T>> make_sequences(const std::vector<std::pair<index_t, index_t>>& sq_sk, index_t hq, index_t hkv,
                                        index_t d, std::uint32_t seed) {
  std::vector<sequence<T>> s;
  for (auto [sq, sk] : sq_sk) {
    s.push_back({make_tensor<T>(1, sq, hq, d, layout::bshd, seed), make_tensor<T>(1, sk, hkv, d, layout::bshd, seed + 1),
                 make_tensor<T>(1, sk, hkv, d, layout::bshd, seed + 2)});
    seed += 3;
  }
  return s;
}

// A page pool holding the sequences' K / V in shuffled pages; every unused page, every row past a
// length and the spare pages hold NaN, and unused block-table entries are -1.
template <class T>
struct paged_pool {
  index_t page, max_pages, pages;
  std::vector<T> k, v;
  std::vector<std::int32_t> table, lengths;
  index_t hkv, d;
  paged_kv<const T> view() const {
    const tensor_view<const T> kp{k.data(), {pages, page, hkv, d}, {page * hkv * d, hkv * d, d, 1}};
    const tensor_view<const T> vp{v.data(), {pages, page, hkv, d}, {page * hkv * d, hkv * d, d, 1}};
    return {kp, vp, table, max_pages, lengths};
  }
};
template <class T>
paged_pool<T> make_pool(const std::vector<sequence<T>>& seqs, index_t page, index_t hkv, index_t d, std::uint32_t seed) {
  paged_pool<T> p;
  p.page = page, p.hkv = hkv, p.d = d;
  index_t need = 0;
  p.max_pages = 1;
  for (const auto& s : seqs) {
    const index_t n = (s.k.view.seq() + page - 1) / page;
    need += n;
    p.max_pages = std::max(p.max_pages, n + 1);  // a spare entry per row: -1
  }
  p.pages = need + 3;  // spare pages, never referenced
  p.k.assign(p.pages * page * hkv * d, from_float<T>(nan_f));
  p.v.assign(p.pages * page * hkv * d, from_float<T>(nan_f));
  std::vector<std::int32_t> ids(p.pages);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
  p.table.assign(seqs.size() * p.max_pages, -1);
  index_t next = 0;
  for (std::size_t b = 0; b < seqs.size(); ++b) {
    const auto& kv = seqs[b].k.view;
    p.lengths.push_back(static_cast<std::int32_t>(kv.seq()));
    for (index_t t = 0; t < kv.seq(); ++t) {
      if (t % page == 0) p.table[b * p.max_pages + t / page] = ids[next++];
      const index_t pg = p.table[b * p.max_pages + t / page];
      for (index_t h = 0; h < hkv; ++h)
        for (index_t c = 0; c < d; ++c) {
          p.k[((pg * page + t % page) * hkv + h) * d + c] = seqs[b].k.view(0, t, h, c);
          p.v[((pg * page + t % page) * hkv + h) * d + c] = seqs[b].v.view(0, t, h, c);
        }
    }
  }
  return p;
}

// Per sequence: the batched result (rows of `o` from `row0`, LSE at lse_at(h, i)) vs the fp64
// reference by the criterion, and vs the sequence's own flash call (bitwise when `bitwise`).
template <class T, class LseAt, class... P>
void check_sequence(const sequence<T>& s, const float* o, const float* lse, LseAt lse_at, bool bitwise,
                    const P&... p) {
  const index_t sq = s.q.view.seq(), sk = s.k.view.seq(), hq = s.q.view.heads(), d = s.q.view.dim();
  SCOPED_TRACE("sq=" + std::to_string(sq) + " sk=" + std::to_string(sk));
  const auto ref = ref::attention<double>(s.q.cview(), s.k.cview(), s.v.cview(), p...);
  const auto naive = ref::attention<float>(s.q.cview(), s.k.cview(), s.v.cview(), p...);
  std::vector<float> got(o, o + sq * hq * d), got_lse(hq * sq);
  for (index_t h = 0; h < hq; ++h)
    for (index_t i = 0; i < sq; ++i) got_lse[h * sq + i] = lse[lse_at(h, i)];
  expect_accurate(got, ref.o, naive.o, "O");
  expect_accurate(got_lse, ref.lse, naive.lse, "LSE");
  std::vector<float> own(std::max<index_t>(sq * hq * d, 1)), own_lse(std::max<index_t>(hq * sq, 1));
  flash_attention<Arch>(s.q.cview(), s.k.cview(), s.v.cview(), bshd(own.data(), 1, sq, hq, d), p...,
                        lse_out{own_lse.data()});
  if (bitwise) {
    EXPECT_EQ(0, std::memcmp(own.data(), got.data(), got.size() * sizeof(float))) << "O differs from the own call";
    EXPECT_EQ(0, std::memcmp(own_lse.data(), got_lse.data(), got_lse.size() * sizeof(float)))
        << "LSE differs from the own call";
  }
}

const std::vector<std::pair<index_t, index_t>> uniform_lengths(index_t sq, std::initializer_list<index_t> sks) {
  std::vector<std::pair<index_t, index_t>> r;
  for (index_t sk : sks) r.push_back({sq, sk});
  return r;
}

// Strided queries [B, Sq, Hq, D] against a paged cache (decode and uniform chunks).
template <class T, class... P>
void check_paged(index_t sq, std::initializer_list<index_t> sks, index_t page, index_t hq, index_t hkv, index_t d,
                 const P&... p) {
  SCOPED_TRACE("paged page=" + std::to_string(page) + " Sq=" + std::to_string(sq) + " Hq/Hkv=" + std::to_string(hq) +
               "/" + std::to_string(hkv) + " D=" + std::to_string(d));
  const auto seqs = make_sequences<T>(uniform_lengths(sq, sks), hq, hkv, d, 11);
  const index_t B = static_cast<index_t>(seqs.size());
  const auto pool = make_pool(seqs, page, hkv, d, 5);
  std::vector<T> q(std::max<index_t>(B * sq * hq * d, 1));
  for (index_t b = 0; b < B; ++b)
    std::copy(seqs[b].q.buf.begin(), seqs[b].q.buf.begin() + sq * hq * d, q.begin() + b * sq * hq * d);
  std::vector<float> o(std::max<index_t>(B * sq * hq * d, 1), 1234.5f), lse(std::max<index_t>(B * hq * sq, 1), 1234.5f);
  flash_attention<Arch>(bshd(static_cast<const T*>(q.data()), B, sq, hq, d), pool.view(), bshd(o.data(), B, sq, hq, d),
                        p..., lse_out{lse.data()});
  // Tiles of the paged call are those of the contiguous one when pages hold whole tiles.
  const bool bitwise = page % tiling{}.block_kv == 0;
  for (index_t b = 0; b < B; ++b)
    check_sequence(seqs[b], o.data() + b * sq * hq * d, lse.data(),
                   [&](index_t h, index_t i) { return (b * hq + h) * sq + i; }, bitwise, p...);
}

TEST(Paged, DecodeAndChunks) {
  ATTNKIT_REQUIRE_ARCH();
  for (index_t page : {16, 128, 5})
    for (index_t sq : {1, 4}) {
      check_paged<float>(sq, {1000, 7, 65, 4}, page, 8, 2, 64, causal{});
      check_paged<float>(sq, {300, 63}, page, 4, 4, 17);
    }
  check_paged<bf16>(1, {1000, 1}, 16, 8, 2, 64, causal{});
  check_paged<fp16>(1, {70, 200}, 128, 8, 1, 32, causal{});
  check_paged<float>(16, {1000, 65}, 16, 4, 1, 64, causal{});  // prefill engine on pages
  check_paged<float>(1, {5000, 0, 1100}, 128, 8, 2, 64, causal{});  // split-KV, an empty sequence
}

TEST(Paged, Policies) {
  ATTNKIT_REQUIRE_ARCH();
  const float sinks[8] = {0.5f, -1.f, 2.f, 0.f, 3.f, -2.f, 1.f, 4.f};
  const std::vector<float> slopes = alibi::standard_slopes(8);
  check_paged<float>(1, {700, 90}, 16, 8, 2, 64, streaming_mask(4, 100));
  check_paged<float>(2, {700, 90}, 16, 8, 2, 64, softmax_with_sink{sinks}, causal{});
  check_paged<float>(1, {700, 90}, 128, 8, 2, 64, alibi{slopes}, causal{});
  check_paged<float>(4, {700, 90}, 128, 8, 2, 64, softcap{30.f}, causal{});
}

// The named primitives take the batched operands too: each sequence as its own call (bitwise
// for the window, whose span stays inside one page here; tiles of the sink span [0, 4) and the
// window are cut at page boundaries, so the sink case is checked by the criterion).
TEST(Paged, NamedPrimitives) {
  ATTNKIT_REQUIRE_ARCH();
  const index_t sq = 2, hq = 8, d = 64, n = sq * hq * d;
  const auto seqs = make_sequences<float>(uniform_lengths(sq, {700, 90}), hq, 2, d, 4);
  const auto pool = make_pool(seqs, 128, 2, d, 3);
  std::vector<float> q(2 * n), win(q.size()), snk(q.size());
  for (int b = 0; b < 2; ++b) std::copy_n(seqs[b].q.buf.begin(), n, q.begin() + b * n);
  const auto qv = bshd(static_cast<const float*>(q.data()), 2, sq, hq, d);
  const float logits[8] = {0.5f, -1.f, 2.f, 0.f, 3.f, -2.f, 1.f, 4.f};
  const attention_sinks sinks{4, 64, logits};
  sliding_window_attention<Arch>(qv, pool.view(), bshd(win.data(), 2, sq, hq, d), sliding_window::from_total(50), causal{});
  sink_attention<Arch>(qv, pool.view(), bshd(snk.data(), 2, sq, hq, d), sinks);
  for (int b = 0; b < 2; ++b) {
    const auto& s = seqs[b];
    std::vector<float> own(n);
    sliding_window_attention<Arch>(s.q.cview(), s.k.cview(), s.v.cview(), bshd(own.data(), 1, sq, hq, d),
                                   sliding_window::from_total(50), causal{});
    EXPECT_EQ(0, std::memcmp(own.data(), win.data() + b * n, n * sizeof(float))) << "window, sequence " << b;
    const auto ref = ref::attention<double>(s.q.cview(), s.k.cview(), s.v.cview(), streaming_mask(4, 64),
                                            softmax_with_sink{logits});
    const auto naive = ref::attention<float>(s.q.cview(), s.k.cview(), s.v.cview(), streaming_mask(4, 64),
                                             softmax_with_sink{logits});
    expect_accurate(std::vector<float>(snk.begin() + b * n, snk.begin() + (b + 1) * n), ref.o, naive.o, "sinks O");
  }
}

// varlen queries against varlen keys or a paged cache: a ragged batch in one call.
template <class T, class... P>
void check_varlen(const std::vector<std::pair<index_t, index_t>>& lens, index_t page, index_t hq, index_t hkv,
                  index_t d, const P&... p) {
  SCOPED_TRACE("varlen page=" + std::to_string(page) + " Hq/Hkv=" + std::to_string(hq) + "/" + std::to_string(hkv) +
               " D=" + std::to_string(d));
  const auto seqs = make_sequences<T>(lens, hq, hkv, d, 21);
  const index_t B = static_cast<index_t>(seqs.size());
  std::vector<std::int32_t> qs{0}, ks{0};
  for (auto [sq, sk] : lens) qs.push_back(qs.back() + sq), ks.push_back(ks.back() + sk);
  const index_t tq = qs.back(), tk = ks.back();
  std::vector<T> q(std::max<index_t>(tq * hq * d, 1)), k(std::max<index_t>(tk * hkv * d, 1)), v(k.size());
  for (index_t b = 0; b < B; ++b) {
    std::copy_n(seqs[b].q.buf.begin(), (qs[b + 1] - qs[b]) * hq * d, q.begin() + qs[b] * hq * d);
    std::copy_n(seqs[b].k.buf.begin(), (ks[b + 1] - ks[b]) * hkv * d, k.begin() + ks[b] * hkv * d);
    std::copy_n(seqs[b].v.buf.begin(), (ks[b + 1] - ks[b]) * hkv * d, v.begin() + ks[b] * hkv * d);
  }
  const varlen<const T> qv{bshd(static_cast<const T*>(q.data()), 1, tq, hq, d), qs};
  std::vector<float> o(std::max<index_t>(tq * hq * d, 1), 1234.5f), lse(std::max<index_t>(hq * tq, 1), 1234.5f);
  if (page == 0) {
    const varlen_kv<const T> kv{bshd(static_cast<const T*>(k.data()), 1, tk, hkv, d),
                                bshd(static_cast<const T*>(v.data()), 1, tk, hkv, d), ks};
    flash_attention<Arch>(qv, kv, bshd(o.data(), 1, tq, hq, d), p..., lse_out{lse.data()});
  } else {
    const auto pool = make_pool(seqs, page, hkv, d, 9);
    flash_attention<Arch>(qv, pool.view(), bshd(o.data(), 1, tq, hq, d), p..., lse_out{lse.data()});
  }
  for (index_t b = 0; b < B; ++b)
    check_sequence(seqs[b], o.data() + qs[b] * hq * d, lse.data(),
                   [&](index_t h, index_t i) { return h * tq + qs[b] + i; }, false, p...);
}

TEST(Varlen, RaggedBatch) {
  ATTNKIT_REQUIRE_ARCH();
  const std::vector<std::pair<index_t, index_t>> lens{{1, 1000}, {0, 0}, {7, 7}, {63, 65}, {1, 1}, {20, 5}, {0, 9}};
  for (index_t page : {0, 16, 128}) {
    check_varlen<float>(lens, page, 8, 2, 64, causal{});
    check_varlen<float>(lens, page, 4, 4, 33);
  }
  check_varlen<bf16>(lens, 0, 8, 1, 64, causal{});
  check_varlen<float>(lens, 16, 8, 2, 64, sliding_window::from_total(50) & causal{});
  check_varlen<float>({{1, 3000}, {1, 40}, {1, 1200}}, 0, 8, 2, 64, causal{});  // decode batch, split-KV
}

TEST(Paged, BitwiseAcrossThreads) {
  ATTNKIT_REQUIRE_ARCH();
  const auto seqs = make_sequences<float>(uniform_lengths(1, {3000, 100, 1500}), 8, 2, 64, 3);
  const auto pool = make_pool(seqs, 16, 2, 64, 1);
  std::vector<float> q(3 * 8 * 64);
  for (int b = 0; b < 3; ++b) std::copy_n(seqs[b].q.buf.begin(), 8 * 64, q.begin() + b * 8 * 64);
  std::vector<float> first;
  for (int t : {1, 2, 3}) {
    std::vector<float> o(q.size());
    flash_attention<Arch>(bshd(static_cast<const float*>(q.data()), 3, 1, 8, 64), pool.view(),
                          bshd(o.data(), 3, 1, 8, 64), causal{}, openmp{t});
    if (first.empty()) first = o;
    else EXPECT_EQ(0, std::memcmp(first.data(), o.data(), o.size() * sizeof(float))) << t << " threads";
  }
}

// A bad layout throws naming the argument, and the output keeps its sentinel.
template <class F>
void expect_rejected(F&& call, const std::vector<float>& o, const std::string& needle) {
  expect_error(call, needle);
  for (float x : o) ASSERT_EQ(x, 1234.5f) << "output written by a rejected call (" << needle << ")";
}

TEST(Paged, BadLayoutsRejected) {
  ATTNKIT_REQUIRE_ARCH();
  const auto seqs = make_sequences<float>(uniform_lengths(1, {40, 20}), 4, 2, 16, 3);
  const auto pool = make_pool(seqs, 16, 2, 16, 1);
  std::vector<float> q(2 * 4 * 16, 0.5f), o(2 * 4 * 16, 1234.5f), lse(8);
  const auto qv = bshd(static_cast<const float*>(q.data()), 2, 1, 4, 16);
  const auto ov = bshd(o.data(), 2, 1, 4, 16);
  auto with = [&](auto edit, const std::string& needle) {
    auto p = pool;
    edit(p);
    expect_rejected([&] { flash_attention<Arch>(qv, p.view(), ov, causal{}); }, o, needle);
  };
  with([](auto& p) { p.table[1] = 99; }, "kv.block_table[0][1]: expected a page id in [0, ");
  with([](auto& p) { p.table[0] = -1; }, "kv.block_table[0][0]");
  with([](auto& p) { p.lengths[1] = std::int32_t(p.max_pages * 16 + 1); }, "kv.lengths[1]: expected 0 <= length <=");
  with([](auto& p) { p.lengths[0] = -1; }, "kv.lengths[0]");
  with([](auto& p) { p.lengths.pop_back(); }, "kv.lengths: expected B = 2 entries");
  with([](auto& p) { p.table.pop_back(); }, "kv.block_table: expected B x max_pages");
  expect_rejected([&] { flash_attention<Arch>(qv, pool.view(), ov, query_offset{3}); }, o, "query_offset");
  std::vector<float> mass(2 * 4 * 40);
  expect_rejected([&] { flash_attention<Arch>(qv, pool.view(), ov, key_mass_out{mass.data()}); }, o, "key_mass_out");
  expect_rejected([&] { flash_attention<Arch>(qv, pool.view(), bshd(o.data(), 2, 1, 4, 8)); }, o, "out: expected dim");
  // The output overlapping the page pool.
  auto p2 = pool;
  std::vector<float> kbuf(p2.k.begin(), p2.k.end());
  const tensor_view<const float> kp{p2.k.data(), {p2.pages, 16, 2, 16}, {16 * 32, 32, 16, 1}};
  const paged_kv<const float> alias{kp, kp, p2.table, p2.max_pages, p2.lengths};
  expect_error([&] { flash_attention<Arch>(qv, alias, bshd(p2.k.data(), 2, 1, 4, 16)); },
               "out: expected memory disjoint from kv.k_pages");
  EXPECT_EQ(0, std::memcmp(kbuf.data(), p2.k.data(), kbuf.size() * sizeof(float))) << "pages written";
}

TEST(Varlen, BadOffsetsRejected) {
  ATTNKIT_REQUIRE_ARCH();
  std::vector<float> q(6 * 4 * 16, 0.5f), k(10 * 2 * 16, 0.5f), o(6 * 4 * 16, 1234.5f);
  const auto qrows = bshd(static_cast<const float*>(q.data()), 1, 6, 4, 16);
  const auto krows = bshd(static_cast<const float*>(k.data()), 1, 10, 2, 16);
  const auto ov = bshd(o.data(), 1, 6, 4, 16);
  auto call = [&](std::vector<std::int32_t> qs, std::vector<std::int32_t> ks, const std::string& needle) {
    expect_rejected([&] { flash_attention<Arch>(varlen<const float>{qrows, qs}, varlen_kv<const float>{krows, krows, ks}, ov); },
                    o, needle);
  };
  call({0, 2, 6}, {0, 4}, "kv.starts: expected B + 1 = 3 offsets, got 2");
  call({0, 4, 2, 6}, {0, 1, 2, 10}, "q.starts: expected non-decreasing offsets, got starts[2] = 2 < starts[1] = 4");
  call({0, 2, 5}, {0, 4, 10}, "q.starts: expected starts[B] = 6");
  call({1, 2, 6}, {0, 4, 10}, "q.starts: expected starts[0] = 0");
  call({0, 2, 6}, {0, 4, 9}, "kv.starts: expected starts[B] = 10");
  expect_rejected([&] {
    const std::vector<std::int32_t> qs{0, 1, 2};
    flash_attention<Arch>(varlen<const float>{bshd(static_cast<const float*>(q.data()), 2, 3, 4, 16), qs},
                          varlen_kv<const float>{krows, krows, std::vector<std::int32_t>{0, 4, 10}}, ov);
  }, o, "q.rows: expected batch 1");
}

TEST(Paged, PlanOf) {
  ATTNKIT_REQUIRE_ARCH();
  const auto seqs = make_sequences<float>(uniform_lengths(1, {5000, 10}), 32, 8, 128, 3);
  const auto pool = make_pool(seqs, 16, 8, 128, 1);
  std::vector<float> q(2 * 32 * 128), o(q.size());
  const auto p = plan_of<Arch>(bshd(static_cast<const float*>(q.data()), 2, 1, 32, 128), pool.view(),
                               bshd(o.data(), 2, 1, 32, 128), causal{});
  EXPECT_EQ(p.rows, 4);
  EXPECT_GT(p.kv_splits, 1) << p.reason;
}

// ---- speculative decoding ----------------------------------------------------------------------

// The rule written out independently: walk the parents.
struct explicit_tree {
  std::vector<std::int32_t> parents;
  index_t cached;
  bool operator()(index_t, index_t, index_t i, index_t j) const {
    if (j < cached) return true;
    for (index_t t = i; t >= 0; t = parents[t])
      if (j - cached == t) return true;
    return false;
  }
};

TEST(Tree, DraftsAgainstExplicitMask) {
  ATTNKIT_REQUIRE_ARCH();
  const std::vector<std::int32_t> medusa{-1, 0, 0, 0, 1, 1, 2, 3, 4, 4, 6, -1, 11, 12, 5, 8};  // 16 drafts
  for (index_t n : {1, 4, 16})
    for (index_t cached : {0, 1, 63, 1000}) {
      std::vector<std::int32_t> par(medusa.begin(), medusa.begin() + n);
      for (auto& p : par) p = p < n ? p : -1;
      shape s;
      s.Sq = n, s.Sk = cached + n, s.Hq = 8, s.Hkv = 2, s.Dk = s.Dv = 64, s.lay = layout::cache;
      SCOPED_TRACE("drafts " + std::to_string(n) + " cached " + std::to_string(cached));
      problem<float> pr(s);
      const auto ref = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), mask_fn{explicit_tree{par, cached}});
      const auto naive = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), mask_fn{explicit_tree{par, cached}});
      output out(s);
      flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, tree_mask(par), lse_out{out.lse.data()});
      expect_accurate(out.o_used(s), ref.o, naive.o, "O");
      expect_accurate(out.lse_used(s), ref.lse, naive.lse, "LSE");
    }
}

TEST(Tree, ChainIsCausal) {
  ATTNKIT_REQUIRE_ARCH();
  shape s;
  s.Sq = 8, s.Sk = 500, s.Hq = 8, s.Hkv = 1, s.Dk = s.Dv = 64;
  problem<float> pr(s);
  std::vector<std::int32_t> chain(8);
  for (int i = 0; i < 8; ++i) chain[i] = i - 1;
  output a(s), b(s);
  flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), a.view, tree_mask(chain));
  flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), b.view, causal{});
  EXPECT_EQ(0, std::memcmp(a.o.data(), b.o.data(), a.o.size() * sizeof(float)));
}

TEST(Tree, PerSequenceTreesOnPages) {
  ATTNKIT_REQUIRE_ARCH();
  // Two sequences, each with its own tree of 4 drafts, on a paged cache (drafts appended).
  const std::vector<std::int32_t> parents{-1, 0, 0, 1, /* b = 1 */ -1, -1, 1, 2};
  const auto seqs = make_sequences<float>(uniform_lengths(4, {300, 37}), 8, 2, 64, 5);
  const auto pool = make_pool(seqs, 16, 2, 64, 2);
  std::vector<float> q(2 * 4 * 8 * 64), o(q.size(), 1234.5f), lse(2 * 8 * 4);
  for (int b = 0; b < 2; ++b) std::copy_n(seqs[b].q.buf.begin(), 4 * 8 * 64, q.begin() + b * 4 * 8 * 64);
  flash_attention<Arch>(bshd(static_cast<const float*>(q.data()), 2, 4, 8, 64), pool.view(), bshd(o.data(), 2, 4, 8, 64),
                        tree_mask(parents, 4), lse_out{lse.data()});
  for (index_t b = 0; b < 2; ++b) {
    const std::vector<std::int32_t> par(parents.begin() + 4 * b, parents.begin() + 4 * b + 4);
    const index_t cached = seqs[b].k.view.seq() - 4;
    check_sequence(seqs[b], o.data() + b * 4 * 8 * 64, lse.data(), [&](index_t h, index_t i) { return (b * 8 + h) * 4 + i; },
                   false, mask_fn{explicit_tree{par, cached}});
  }
  std::vector<float> o2(q.size(), 1234.5f);
  expect_rejected([&] {
    flash_attention<Arch>(bshd(static_cast<const float*>(q.data()), 2, 4, 8, 64), pool.view(), bshd(o2.data(), 2, 4, 8, 64),
                          tree_mask(std::vector<std::int32_t>{-1, 0, 1}));
  }, o2, "tree_mask: n: expected one query per draft token (Sq = 4), got 3");
}

// ---- StreamingLLM ring buffer and append helpers -------------------------------------------------

TEST(Ring, StreamsLikeTheWholeHistory) {
  ATTNKIT_REQUIRE_ARCH();
  const index_t sinks = 4, window = 32, chunk = 3, hq = 4, hkv = 2, d = 32;
  streaming_ring ring{sinks, window, window + chunk - 1};
  const index_t total = 150;
  const auto hist_k = make_tensor<float>(1, total, hkv, d, layout::bshd, 1);
  const auto hist_v = make_tensor<float>(1, total, hkv, d, layout::bshd, 2);
  const auto hist_q = make_tensor<float>(1, total, hq, d, layout::bshd, 3);
  std::vector<bf16> kc(ring.capacity() * hkv * d, from_float<bf16>(nan_f)), vc(kc);  // unwritten slots: NaN
  const auto kcv = bshd(kc.data(), 1, ring.capacity(), hkv, d), vcv = bshd(vc.data(), 1, ring.capacity(), hkv, d);
  auto rows = [](const tensor<float>& t, index_t p, index_t n) {
    const auto& v = t.view;
    return tensor_view<const float>{v.row(0, p, 0), {1, n, v.heads(), v.dim()}, v.strides};
  };
  // The reference sees the history rounded to bf16, as the cache holds it.
  std::vector<bf16> hk(total * hkv * d), hv(hk.size());
  for (std::size_t i = 0; i < hk.size(); ++i) hk[i] = from_float<bf16>(hist_k.buf[i]), hv[i] = from_float<bf16>(hist_v.buf[i]);
  for (index_t p = 0; p < total;) {
    const index_t n = (p / 7) % 2 ? chunk : 1;
    if (p + n > total) break;
    ring.append(kcv, vcv, rows(hist_k, p, n), rows(hist_v, p, n));
    p += n;
    SCOPED_TRACE("length " + std::to_string(p) + " queries " + std::to_string(n));
    const auto q = rows(hist_q, p - n, n);
    std::vector<float> o(n * hq * d, 1234.5f);
    flash_attention<Arch>(q, tensor_view<const bf16>(kcv), tensor_view<const bf16>(vcv), bshd(o.data(), 1, n, hq, d),
                          ring.mask(n));
    const auto k_all = bshd(static_cast<const bf16*>(hk.data()), 1, p, hkv, d);
    const auto v_all = bshd(static_cast<const bf16*>(hv.data()), 1, p, hkv, d);
    const auto ref = ref::attention<double>(q, k_all, v_all, streaming_mask(sinks, window));
    const auto naive = ref::attention<float>(q, k_all, v_all, streaming_mask(sinks, window));
    expect_accurate(o, ref.o, naive.o, "O");
  }
  EXPECT_GT(ring.length, 140);
  std::vector<float> o(4 * hq * d, 1234.5f);
  const auto q4 = rows(hist_q, 0, 4);
  expect_rejected([&] {
    flash_attention<Arch>(q4, tensor_view<const bf16>(kcv), tensor_view<const bf16>(vcv), bshd(o.data(), 1, 4, hq, d),
                          ring.mask(4));
  }, o, "ring_mask: slots: expected >= window + queries - 1 = 35");
}

TEST(Append, ContiguousAndPaged) {
  ATTNKIT_REQUIRE_ARCH();
  const auto kn = make_tensor<float>(2, 3, 2, 8, layout::bshd, 1), vn = make_tensor<float>(2, 3, 2, 8, layout::bshd, 2);
  std::vector<bf16> kc(2 * 10 * 2 * 8, from_float<bf16>(0.f)), vc(kc);
  const auto kcv = bshd(kc.data(), 2, 10, 2, 8), vcv = bshd(vc.data(), 2, 10, 2, 8);
  EXPECT_EQ(append_kv(kcv, vcv, 5, kn.cview(), vn.cview()), 8);
  for (index_t b = 0; b < 2; ++b)
    for (index_t t = 0; t < 3; ++t)
      for (index_t c = 0; c < 8; ++c) {
        EXPECT_EQ(to_float(kcv(b, 5 + t, 1, c)), to_float(from_float<bf16>(kn.view(b, t, 1, c))));
        EXPECT_EQ(to_float(vcv(b, 5 + t, 0, c)), to_float(from_float<bf16>(vn.view(b, t, 0, c))));
      }
  const std::vector<bf16> before = kc;
  auto unchanged = [&] { return std::memcmp(before.data(), kc.data(), kc.size() * sizeof(bf16)) == 0; };
  EXPECT_THROW(append_kv(kcv, vcv, 8, kn.cview(), vn.cview()), attnkit::invalid_argument);  // 8 + 3 > 10
  EXPECT_THROW(append_kv(kcv, vcv, -1, kn.cview(), vn.cview()), attnkit::invalid_argument);
  EXPECT_TRUE(unchanged());
  // Pages {4 pages x 4 rows}: tokens of (b, t) to slots; -1 skips.
  std::vector<float> kp(4 * 4 * 2 * 8, -7.f), vp(kp);
  const auto kpv = bshd(kp.data(), 4, 4, 2, 8), vpv = bshd(vp.data(), 4, 4, 2, 8);
  const std::vector<std::int64_t> slots{13, 14, 15, 2, -1, 3};
  store_paged_kv(kpv, vpv, slots, kn.cview(), vn.cview());
  EXPECT_EQ(kpv(3, 1, 0, 4), kn.view(0, 0, 0, 4));   // slot 13 = page 3, row 1
  EXPECT_EQ(vpv(0, 3, 1, 7), vn.view(1, 2, 1, 7));   // slot 3 = page 0, row 3
  EXPECT_EQ(kpv(1, 0, 0, 0), -7.f);                  // untouched
  const std::vector<float> kp_before = kp;
  const std::vector<std::int64_t> bad{13, 14, 15, 2, 16, 3};
  expect_error([&] { store_paged_kv(kpv, vpv, bad, kn.cview(), vn.cview()); },
               "slots[4]: expected -1 or a slot in [0, num_pages x page_size = 16), got 16");
  EXPECT_EQ(kp, kp_before);
  // K and V pages sharing memory (aliased call) are rejected before any write.
  EXPECT_THROW(store_paged_kv(kpv, kpv, slots, kn.cview(), vn.cview()), attnkit::invalid_argument);
  EXPECT_EQ(kp, kp_before);
}

}  // namespace
