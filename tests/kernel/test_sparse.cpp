// Block-sparse attention and the structured / per-head masks vs the fp64 reference: layouts from a
// boolean block matrix, CSR lists and the static patterns against the expanded element mask
// (written out independently as a mask_fn); layouts from masks against the mask itself; per-head
// masks against each head's own mask; sink calibration against scaled and renormalized
// reference probabilities; bad layouts rejected with named errors and nothing written.
#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using namespace attnkit::test;
using Arch = ATTNKIT_TEST_ARCH;

// A random boolean block matrix [B'][H'][n_qb][n_kb] of the given density.
struct block_matrix {
  index_t B, H, nq, nk, bq, bk;
  std::vector<std::uint8_t> m;
  bool at(index_t b, index_t h, index_t i, index_t j) const {
    return m[(((B == 1 ? 0 : b) * H + (H == 1 ? 0 : h)) * nq + i / bq) * nk + j / bk];
  }
};
block_matrix random_blocks(index_t B, index_t H, index_t sq, index_t sk, index_t bq, index_t bk, double density,
                           std::uint32_t seed) {
  block_matrix r{B, H, (sq + bq - 1) / bq, (sk + bk - 1) / bk, bq, bk, {}};
  std::mt19937 g(seed);
  std::bernoulli_distribution keep(density);
  r.m.resize(B * H * r.nq * r.nk);
  for (auto& x : r.m) x = keep(g);
  return r;
}

TEST(BlockSparse, FromBlockMatrixAndCsr) {
  ATTNKIT_REQUIRE_ARCH();
  struct cfg {
    shape s;
    index_t B_, H_, bq, bk;
  };
  shape batched = make_shape(200, 300, 4, 2, 32);
  batched.B = 2;
  int n = 0;
  for (const auto& c : {cfg{make_shape(130, 1000, 4, 2, 64), 1, 1, 64, 64}, cfg{make_shape(1, 2000, 8, 2, 64), 1, 8, 1, 64},
                        cfg{make_shape(63, 65, 2, 1, 17), 1, 2, 16, 16}, cfg{batched, 2, 1, 32, 128}, cfg{make_shape(7, 7, 2, 2, 8), 1, 1, 4, 3}}) {
    const double density = n++ % 2 ? 0.1 : 0.5;
    const auto bm = random_blocks(c.B_, c.H_, c.s.Sq, c.s.Sk, c.bq, c.bk, density, 42);
    const auto layout = block_layout_from_block_mask(bm.m.data(), c.B_, c.H_, bm.nq, bm.nk, c.bq, c.bk);
    const auto expanded = mask_fn{[&bm](index_t b, index_t h, index_t i, index_t j) { return bm.at(b, h, i, j); }};
    check_call(c.s, [&](auto q, auto k, auto v, auto o, float* lse) {
      block_sparse_attention<Arch>(q, k, v, o, layout, lse_out{lse});
    }, expanded);
    check_call(c.s, [&](auto q, auto k, auto v, auto o, float* lse) {
      block_sparse_attention<Arch>(q, k, v, o, layout, causal{}, lse_out{lse});
    }, expanded & causal{});
    // The same blocks as CSR lists: the same layout, bitwise the same result.
    std::vector<std::int32_t> row_ptr{0}, cols;
    for (index_t r = 0; r < c.B_ * c.H_ * bm.nq; ++r) {
      for (index_t kb = 0; kb < bm.nk; ++kb)
        if (bm.m[r * bm.nk + kb]) cols.push_back(static_cast<std::int32_t>(kb));
      row_ptr.push_back(static_cast<std::int32_t>(cols.size()));
    }
    const auto csr = block_layout_from_csr(row_ptr, cols, c.B_, c.H_, bm.nq, bm.nk, c.bq, c.bk);
    problem<float> pr(c.s);
    output a(c.s), b(c.s);
    block_sparse_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), a.view, layout);
    block_sparse_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), b.view, csr);
    EXPECT_EQ(0, std::memcmp(a.o.data(), b.o.data(), a.o.size() * sizeof(float))) << "CSR vs block matrix";
  }
}

TEST(BlockSparse, FromMasks) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = make_shape(300, 700, 4, 2, 64);
  const layout_dims dims{1, 1, s.Sq, s.Sk};
  const auto from_causal = block_layout<causal>::from_mask(causal{}, dims, 64, 64);
  check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
    block_sparse_attention<Arch>(q, k, v, o, from_causal, lse_out{lse});
  }, causal{});
  const auto w = sliding_window::from_total(100);
  const auto from_window = block_layout<sliding_window>::from_mask(w, dims, 32, 64);
  EXPECT_LT(from_window.density(), 0.35);
  check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
    block_sparse_attention<Arch>(q, k, v, o, from_window, lse_out{lse});
  }, w);
  // Layout elements equal element-wise evaluation of the mask.
  for (index_t i = 0; i < s.Sq; i += 7)
    for (index_t j = 0; j < s.Sk; ++j) ASSERT_EQ(from_window.keep({0, 0, s.Sk - s.Sq}, i, j), w.keep({0, 0, s.Sk - s.Sq}, i, j));
}

TEST(BlockSparse, StaticPatterns) {
  ATTNKIT_REQUIRE_ARCH();
  const index_t n = 1000, blk = 64;
  const shape s = make_shape(n, n, 4, 1, 32);
  for (const auto& layout : {patterns::strided(n, blk, 2, 4), patterns::power_of_two(n, blk), patterns::radial(n, blk, 2)}) {
    const auto expanded = mask_fn{[&layout](index_t, index_t, index_t i, index_t j) {
      return layout.at(0, 0, i / 64, j / 64) != 0;
    }};
    check_call(s, [&](auto q, auto k, auto v, auto o, float* lse) {
      block_sparse_attention<Arch>(q, k, v, o, layout, causal{}, lse_out{lse});
    }, expanded & causal{});
  }
  // Distances the patterns keep, written out for one query block.
  const auto p2 = patterns::power_of_two(64 * 20, 64);
  for (index_t kb = 0; kb <= 19; ++kb) {
    const index_t d = 19 - kb;
    EXPECT_EQ(p2.at(0, 0, 19, kb) != 0, d == 0 || d == 1 || d == 2 || d == 4 || d == 8 || d == 16) << kb;
  }
}

TEST(LocalMasks, ChunkedAndNeighborhood) {
  ATTNKIT_REQUIRE_ARCH();
  check_call(make_shape(300, 300, 4, 2, 64), [](auto q, auto k, auto v, auto o, float* lse) {
    flash_attention<Arch>(q, k, v, o, chunked_local{128}, lse_out{lse});
  }, chunked_local{128});
  check_call(make_shape(1, 1000, 8, 2, 64), [](auto q, auto k, auto v, auto o, float* lse) {
    flash_attention<Arch>(q, k, v, o, chunked_local{256}, lse_out{lse});
  }, chunked_local{256});
  for (const auto& nb : {neighborhood_2d{20, 24, 7, 1}, neighborhood_2d{16, 16, 3, 2}}) {
    const index_t n = nb.h * nb.w;
    check_call(make_shape(n, n, 2, 1, 32), [&](auto q, auto k, auto v, auto o, float* lse) {
      flash_attention<Arch>(q, k, v, o, nb, lse_out{lse});
    }, nb);
    // Every query keeps exactly kernel^2 keys.
    for (index_t i = 0; i < n; i += 13) {
      index_t kept = 0;
      for (index_t j = 0; j < n; ++j) kept += nb.keep({0, 0, 0}, i, j);
      EXPECT_EQ(kept, nb.kernel * nb.kernel) << i;
    }
  }
}

TEST(PerHead, RetrievalAndStreamingHeads) {
  ATTNKIT_REQUIRE_ARCH();
  const std::vector<std::uint8_t> which{0, 1, 1, 0, 1, 1, 1, 1};  // 0: full causal, 1: sinks + window
  const auto m = per_head(which, causal{}, streaming_mask(4, 64));
  for (const shape& s : {make_shape(1, 1500, 8, 2, 64), make_shape(200, 200, 8, 4, 32)}) {
    problem<float> pr(s);
    output out(s);
    flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, m, lse_out{out.lse.data()});
    // Head by head against the head's own mask.
    const auto rc = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), causal{});
    const auto rs = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), streaming_mask(4, 64));
    const auto nc = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), causal{});
    const auto ns = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), streaming_mask(4, 64));
    for (index_t h = 0; h < s.Hq; ++h) {
      std::vector<float> got;
      std::vector<double> ref;
      std::vector<float> naive;
      for (index_t i = 0; i < s.Sq; ++i)
        for (index_t c = 0; c < s.Dv; ++c) {
          got.push_back(out.o[(i * s.Hq + h) * s.Dv + c]);
          ref.push_back((which[h] ? rs : rc).out(0, i, h, c));
          naive.push_back((which[h] ? ns : nc).out(0, i, h, c));
        }
      expect_accurate(got, ref, naive, "head " + std::to_string(h));
    }
  }
}

TEST(SinkCalibration, ScalesAndRenormalizes) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = make_shape(40, 600, 4, 2, 64);
  const float gamma[4] = {0.25f, 1.f, 3.f, 0.5f};
  const sink_calibration cal{4, gamma};
  problem<float> pr(s);
  output out(s);
  flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, cal, causal{});
  // Reference: causal probabilities, p_j *= gamma_h for j < 4, renormalized, times V (fp64).
  const auto r = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), causal{}, probs_out{});
  const auto naive = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), cal, causal{});
  std::vector<double> want(s.Sq * s.Hq * s.Dv);
  for (index_t h = 0; h < s.Hq; ++h)
    for (index_t i = 0; i < s.Sq; ++i) {
      std::vector<double> p(s.Sk);
      double z = 0;
      for (index_t j = 0; j < s.Sk; ++j) {
        p[j] = r.probs[(h * s.Sq + i) * s.Sk + j] * (j < 4 ? gamma[h] : 1.0);
        z += p[j];
      }
      for (index_t c = 0; c < s.Dv; ++c) {
        double acc = 0;
        for (index_t j = 0; j < s.Sk; ++j) acc += p[j] / z * double(pr.v.view(0, j, h / 2, c));
        want[(i * s.Hq + h) * s.Dv + c] = acc;
      }
    }
  expect_accurate(out.o_used(s), want, naive.o, "calibrated O");
}

// document's old element rule, ids[pos(i)] == ids[j], with its old classification (from the ids
// at the box's corners) and document's spans (so the tiling is document's): no key ranges, so
// partial tiles are masked by keep per element. document, masked by its intervals, must give
// bitwise the same results.
struct document_by_element {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  document d;
  bool keep(const head_ctx& c, index_t i, index_t j) const noexcept {
    const index_t p = c.pos(i);
    return p >= 0 && d.row(c)[p] == d.row(c)[j];
  }
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const noexcept {
    const index_t p0 = c.pos(i0), p1 = c.pos(i1 - 1);
    if (p1 < 0) return tile_class::empty;
    if (p0 < 0) return tile_class::partial;
    const std::int32_t* r = d.row(c);
    const std::int32_t qa = r[p0], qb = r[p1], ka = r[j0], kb = r[j1 - 1];
    if (qb < ka || kb < qa) return tile_class::empty;
    if (qa == qb && ka == kb && qa == ka) return tile_class::full;
    return tile_class::partial;
  }
  key_spans spans(const head_ctx& c, index_t i0, index_t i1, index_t sk) const noexcept { return d.spans(c, i0, i1, sk); }
  void validate(const problem_dims& dims) const { d.validate(dims); }
};

// document through the kernels: alone and combined (as interval lists) with causal, windows and
// sink tokens, vs the fp64 reference of the rule written as a mask_fn from the ids; documents of
// length 1, one document, length-1 documents at the ends, per-batch rows, query offsets.
TEST(DocumentMasks, KeyRangesVsReference) {
  ATTNKIT_REQUIRE_ARCH();
  struct doc_case {
    shape s;
    index_t off;  // query_offset; -1: default (Sk - Sq)
  };
  const auto two = [](shape s) { s.B = 2; return s; };
  const doc_case cases[] = {{make_shape(300, 300, 4, 2, 64), -1}, {make_shape(1, 1000, 8, 2, 64), -1},
                            {two(make_shape(3, 257, 4, 4, 32)), -1}, {make_shape(70, 300, 4, 1, 32), 150},
                            {make_shape(130, 200, 2, 2, 32), -40}, {two(make_shape(65, 130, 4, 2, 48, layout::bshd)), -1}};
  int turn = 0;
  for (const auto& [s, off] : cases)
    for (int pat = 0; pat < 5; ++pat) {
      if (turn++ % kSweepStride != 0) continue;
      std::vector<std::int32_t> ids(s.B * s.Sk);
      for (index_t b = 0; b < s.B; ++b)
        for (index_t j = 0; j < s.Sk; ++j) {
          const std::int32_t x[] = {std::int32_t(j < 40 ? 0 : j < 41 ? 1 : j < 180 ? 2 : 3),  // mixed, one of length 1
                                    std::int32_t(j),                                          // every key its own
                                    0,                                                        // one document
                                    std::int32_t(j == 0 ? 0 : j < s.Sk - 1 ? 1 : 2),          // length 1 at the ends
                                    std::int32_t(j / (13 + 50 * b) * 3 - 7)};                 // per batch
          ids[b * s.Sk + j] = x[pat];
        }
      SCOPED_TRACE("ids pattern " + std::to_string(pat) + " query_offset " + std::to_string(off));
      const document doc{ids, s.Sk};
      const index_t q_off = off >= 0 || off < -1 ? off : s.Sk - s.Sq;
      const auto rule = mask_fn{[&ids, &s, q_off](index_t b, index_t, index_t i, index_t j) {
        const index_t p = i + q_off;
        return p >= 0 && ids[b * s.Sk + p] == ids[b * s.Sk + j];
      }};
      const auto sinks_window = sink_tokens{3} | sliding_window{37, 0};
      auto both = [&](const auto& m, const auto& ref_m) {
        auto run = [&](auto q, auto k, auto v, auto o, float* lse) {
          if (off == -1) flash_attention<Arch>(q, k, v, o, m, lse_out{lse});
          else flash_attention<Arch>(q, k, v, o, m, query_offset{off}, lse_out{lse});
        };
        if (off == -1) check_call(s, run, ref_m);
        else check_call(s, run, ref_m, query_offset{off});
        // Bitwise the per-element evaluation with the same tiling.
        problem<float> pr(s);
        output a(s), e(s);
        const document_by_element by_element{doc};
        auto same_tiling = [&](const auto& em) {
          if (off == -1) flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), e.view, em);
          else flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), e.view, em, query_offset{off});
        };
        if (off == -1) flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), a.view, m);
        else flash_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), a.view, m, query_offset{off});
        using M = std::remove_cvref_t<decltype(m)>;
        if constexpr (std::is_same_v<M, document>) same_tiling(by_element);
        else if constexpr (std::is_same_v<M, mask_and<document, causal>>) same_tiling(by_element & causal{});
        else if constexpr (std::is_same_v<M, mask_and<std::remove_cv_t<decltype(sinks_window)>, document>>)
          same_tiling(sinks_window & by_element);
        else if constexpr (std::is_same_v<M, mask_or<sink_tokens, document>>) same_tiling(sink_tokens{2} | by_element);
        else {
          static_assert(std::is_same_v<M, mask_and<document, sliding_window>>);
          same_tiling(by_element & sliding_window{20, 5});
        }
        EXPECT_EQ(0, std::memcmp(a.o.data(), e.o.data(), a.o.size() * sizeof(float))) << "vs keep per element";
      };
      both(doc, rule);
      both(doc & causal{}, rule & causal{});
      both(sinks_window & doc, sinks_window & rule);
      both(sink_tokens{2} | doc, sink_tokens{2} | rule);
      both(doc & sliding_window{20, 5}, rule & sliding_window{20, 5});
    }
}

TEST(BlockSparse, BadLayoutsRejected) {
  ATTNKIT_REQUIRE_ARCH();
  const std::vector<std::int32_t> row_ptr{0, 1, 3}, cols{0, 1, 5};
  expect_error([&] { block_layout_from_csr(row_ptr, cols, 1, 1, 2, 4, 16, 16); },
               "block_layout::from_csr: block (0, 0, 1): expected KV block ids in [0, 4), got 5");
  expect_error([&] { block_layout_from_csr(row_ptr, cols, 1, 1, 3, 4, 16, 16); },
               "row_ptr: expected B x H x n_qb + 1 = 4 entries, got 3");
  const std::vector<std::int32_t> bad_ptr{0, 2, 1};
  expect_error([&] { block_layout_from_csr(bad_ptr, cols, 1, 1, 2, 4, 16, 16); }, "row_ptr: expected non-decreasing");
  expect_error([&] { block_layout_from_block_mask(nullptr, 1, 1, 2, 2, 16, 16); }, "m: expected non-null");
  // A layout that does not cover the keys, or has the wrong head count: nothing written.
  const shape s = make_shape(32, 100, 4, 2, 16);
  problem<float> pr(s);
  output out(s);
  const std::vector<std::uint8_t> ones(2 * 4, 1);
  const auto small = block_layout_from_block_mask(ones.data(), 1, 1, 2, 4, 16, 16);  // 64 keys
  expect_error([&] { block_sparse_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, small); },
               "flash_attention: block_layout: blocks: expected to cover Sq x Sk = 32 x 100");
  const std::vector<std::uint8_t> three(3 * 2 * 7, 1);
  const auto heads3 = block_layout_from_block_mask(three.data(), 1, 3, 2, 7, 16, 16);
  expect_error([&] { block_sparse_attention<Arch>(pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, heads3); },
               "heads: expected 1 (broadcast) or Hq = 4, got 3");
  for (float x : out.o) ASSERT_EQ(x, 1234.5f);
}

}  // namespace
