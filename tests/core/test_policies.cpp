// Mask tile classification is sound (never claims empty/full wrongly) and tight where it should be;
// score policies' vector paths agree with their scalar definitions.
#include <gtest/gtest.h>

#include <vector>

#include <attnkit/attnkit.hpp>

using namespace attnkit;

namespace {

// Brute force over every box inside a small grid, for several alignments.
// Key-range masks also give their kept keys as intervals (the engines' partial-tile mask): their
// union must be exactly keep, query by query.
template <class M>
void expect_ranges_match_keep(const M& m, const head_ctx& c, index_t sq, index_t sk) {
  if constexpr (has_key_ranges<M>) {
    for (index_t i = 0; i < sq; ++i) {
      index_t lo[M::n_ranges], hi[M::n_ranges];
      m.ranges(c, i, lo, hi);
      for (index_t j = 0; j < sk; ++j) {
        bool in = false;
        for (int t = 0; t < M::n_ranges; ++t) in |= lo[t] <= j && j <= hi[t];
        ASSERT_EQ(in, m.keep(c, i, j)) << "ranges vs keep at query " << i << " key " << j;
      }
    }
  }
}

template <class M>
void expect_sound(const M& m, index_t sq, index_t sk, index_t offset, bool expect_some_full, index_t batch = 0) {
  const head_ctx c{batch, 0, offset};
  expect_ranges_match_keep(m, c, sq, sk);
  bool saw_full = false, saw_empty = false;
  for (index_t i0 = 0; i0 < sq; ++i0)
    for (index_t i1 = i0 + 1; i1 <= sq; ++i1)
      for (index_t j0 = 0; j0 < sk; ++j0)
        for (index_t j1 = j0 + 1; j1 <= sk; ++j1) {
          index_t kept = 0;
          for (index_t i = i0; i < i1; ++i)
            for (index_t j = j0; j < j1; ++j) kept += m.keep(c, i, j);
          const tile_class t = m.classify(c, i0, i1, j0, j1);
          if (t == tile_class::empty) {
            ASSERT_EQ(kept, 0) << i0 << " " << i1 << " " << j0 << " " << j1;
          }
          if (t == tile_class::full) {
            ASSERT_EQ(kept, (i1 - i0) * (j1 - j0)) << i0 << " " << i1 << " " << j0 << " " << j1;
          }
          saw_full |= t == tile_class::full;
          // Spans must hold every kept key of the query block [i0, i1).
          if (j0 == 0 && j1 == sk) {
            const key_spans sp = spans_of(m, c, i0, i1, sk);
            for (index_t i = i0; i < i1; ++i)
              for (index_t j = 0; j < sk; ++j) {
                if (!m.keep(c, i, j)) continue;
                bool inside = false;
                for (int t = 0; t < sp.n; ++t) inside |= sp.lo[t] <= j && j < sp.hi[t];
                ASSERT_TRUE(inside) << "key " << j << " of query " << i << " outside the spans";
              }
          }
          saw_empty |= t == tile_class::empty;
        }
  if (expect_some_full) {
    EXPECT_TRUE(saw_full);
  }
  (void)saw_empty;
}

}  // namespace

TEST(Masks, ClassificationIsSound) {
  for (index_t off : {-3, 0, 4}) {
    expect_sound(causal{}, 9, 12, off, true);
    expect_sound(sliding_window{2, 1}, 9, 12, off, true);
    expect_sound(sliding_window{-1, 0}, 9, 12, off, true);
    expect_sound(sliding_window{3, -1}, 9, 12, off, true);
    expect_sound(sink_tokens{3}, 9, 12, off, true);
    expect_sound(sink_tokens{2} | sliding_window{2, 0}, 9, 12, off, true);
    expect_sound(causal{} & sliding_window{4, 4}, 9, 12, off, true);
    expect_sound(mask_fn{[](index_t, index_t, index_t i, index_t j) { return (i ^ j) & 1; }}, 6, 7, off, false);
    expect_sound(causal{} & mask_fn{[](index_t, index_t, index_t i, index_t j) { return (i + j) % 3 != 0; }}, 6, 7, off, false);
  }
  std::vector<std::int32_t> ids = {0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3};
  expect_sound(document{ids}, 12, 12, 0, true);
  expect_sound(document{ids} & causal{}, 12, 12, 0, true);
  expect_sound(document{ids}, 5, 12, 7, true);
  expect_sound(document{ids}, 12, 12, -4, true);
}

// document on the key_range form: keep, classify, spans and ranges (directly and through & / |)
// against the rule written from the ids, ids[pos(i)] == ids[j] (nothing for pos(i) < 0), for
// documents of length 1, a single document, ids with gaps and negative ids, every query offset
// that keeps the query positions inside the ids, and a second batch's row.
TEST(Masks, DocumentOnKeyRanges) {
  static_assert(has_key_ranges<document>);
  static_assert(decltype(document{} & causal{})::n_ranges == 1);
  static_assert(decltype(causal{} & document{})::n_ranges == 1);
  static_assert(decltype((sink_tokens{} | sliding_window{}) & document{})::n_ranges == 2);
  static_assert(decltype(sink_tokens{} | document{})::n_ranges == 2);
  static_assert(decltype((sink_tokens{} | sliding_window{}) & causal{} & document{})::n_ranges == 2);
  const std::vector<std::vector<std::int32_t>> patterns = {
      {0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3},  // mixed
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10},    // every document of length 1
      {7, 7, 7, 7, 7, 7, 7, 7, 7, 7},        // one document
      {0, 1, 1, 1, 1, 1, 1, 1, 1, 2},        // length-1 documents at both ends
      {-5, -5, 0, 9, 9, 9, 40, 41, 41},      // gaps and negative ids
      {3},                                   // one key
      {0, 0, 1},
  };
  for (const auto& ids : patterns) {
    const index_t sk = static_cast<index_t>(ids.size());
    SCOPED_TRACE("ids of " + std::to_string(sk));
    // Two batches' rows: batch 1 gets the same pattern shifted by one document.
    std::vector<std::int32_t> rows(ids);
    rows.insert(rows.end(), ids.begin(), ids.end());
    for (index_t j = 0; j < sk; ++j) rows[sk + j] = j == 0 ? ids[0] - 1 : ids[j];
    for (index_t sq : {index_t(1), index_t(2), sk / 2 + 1, sk})
      for (index_t off : {index_t(-3), index_t(-1), index_t(0), index_t(1), sk - sq}) {
        if (off + sq > sk) continue;  // positions past the ids are rejected by validate
        for (index_t b : {0, 1}) {
          const document doc(std::span<const std::int32_t>(rows), sk);
          const head_ctx c{b, 0, off};
          const std::int32_t* r = rows.data() + b * sk;
          for (index_t i = 0; i < sq; ++i) {
            const index_t p = c.pos(i);
            for (index_t j = 0; j < sk; ++j)
              ASSERT_EQ(doc.keep(c, i, j), p >= 0 && r[p] == r[j]) << "batch " << b << " query " << i << " key " << j;
            if (p >= 0) {  // first / last: the ends of p's run, non-decreasing in p
              EXPECT_TRUE(doc.first(c, p) <= p && p <= doc.last(c, p));
              if (p > 0) {
                EXPECT_TRUE(doc.first(c, p - 1) <= doc.first(c, p) && doc.last(c, p - 1) <= doc.last(c, p));
              }
            }
          }
          // "full" needs a query at a position >= 0.
          const bool some_full = off + sq > 0;
          expect_sound(doc, sq, sk, off, some_full, b);
          expect_sound(doc & causal{}, sq, sk, off, some_full, b);
          if (b == 1) continue;  // the combinations on batch 0's row
          expect_sound(causal{} & doc, sq, sk, off, some_full, b);
          expect_sound(doc & sliding_window{1, 1}, sq, sk, off, some_full, b);
          expect_sound((sink_tokens{2} | sliding_window{2, 0}) & doc, sq, sk, off, some_full, b);
          expect_sound(sink_tokens{1} | doc, sq, sk, off, true, b);
          expect_sound(doc | chunked_local{3}, sq, sk, off, some_full, b);
        }
      }
  }
}

TEST(Masks, TreeAndRingClassificationIsSound) {
  // A Medusa-style tree of 7 drafts after 5 cached keys (and offsets that move it).
  const std::vector<std::int32_t> parents{-1, 0, 0, 1, 1, 2, -1};
  const tree_mask tree(parents);
  for (index_t off : {0, 5}) expect_sound(tree, 7, 12, off, true);
  EXPECT_TRUE(tree.keep({0, 0, 5}, 3, 4));   // cache
  EXPECT_TRUE(tree.keep({0, 0, 5}, 3, 6));   // parent 1
  EXPECT_TRUE(tree.keep({0, 0, 5}, 3, 5));   // grandparent 0
  EXPECT_FALSE(tree.keep({0, 0, 5}, 3, 7));  // sibling branch 2
  EXPECT_FALSE(tree.keep({0, 0, 5}, 6, 5));  // a second root sees no other draft
  EXPECT_TRUE(tree.keep({0, 0, 5}, 6, 11));
  // Rings of every fill level and wrap point; chunks of 1 and 3 queries.
  for (index_t len : {0, 2, 3, 5, 9, 10, 11, 14, 23})
    for (index_t n : {1, 3}) {
      if (n > len) continue;
      const ring_mask m{3, 4, 6, len, n};  // 3 sinks, window 4, 6 ring slots: 9 keys
      SCOPED_TRACE("length " + std::to_string(len) + " queries " + std::to_string(n));
      expect_sound(m, n, 9, 0, len >= 4);
    }
}

TEST(Masks, LocalBlockAndPerHeadClassificationIsSound) {
  for (index_t off : {-3, 0, 4}) {
    expect_sound(chunked_local{4}, 9, 12, off, true);
    expect_sound(chunked_local{1}, 9, 12, off, true);
  }
  expect_sound(neighborhood_2d{3, 4, 3, 1}, 12, 12, 0, false);
  expect_sound(neighborhood_2d{4, 4, 2, 2}, 16, 16, 0, false);
  std::vector<std::uint8_t> bm{1, 0, 1, 0, 1, 1, 0, 0, 1};  // 3 x 3 blocks of 3 x 4
  const auto layout = block_layout_from_block_mask(bm.data(), 1, 1, 3, 3, 3, 4);
  expect_sound(layout, 9, 12, 0, true);
  expect_sound(block_layout<causal>::from_mask(causal{}, {1, 1, 9, 12}, 2, 3), 9, 12, 3, true);
  const std::vector<std::uint8_t> which{1};
  expect_sound(per_head(which, causal{}, sliding_window{2, 0}), 9, 12, 3, true);
}

TEST(Masks, TreeAndRingRules) {
  // The ring maps slots to positions: 2 sinks, 4 slots, 9 tokens seen -> slots hold 0 1 | 6 7 8 5.
  const ring_mask m{2, 3, 4, 9, 1};
  const index_t want[6] = {0, 1, 6, 7, 8, 5};
  for (index_t j = 0; j < 6; ++j) EXPECT_EQ(m.position(j), want[j]) << j;
  // Query at position 8 keeps sinks 0, 1 and window 6, 7, 8 (not 5).
  const bool kept[6] = {true, true, true, true, true, false};
  for (index_t j = 0; j < 6; ++j) EXPECT_EQ(m.keep({0, 0, 0}, 0, j), kept[j]) << j;
  const std::vector<std::int32_t> bad{-1, 0, 3};
  EXPECT_THROW(tree_mask{bad}, attnkit::invalid_argument);
  try {
    tree_mask t(bad);
  } catch (const attnkit::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("parents[2]: expected -1 (a root) or an earlier token in [0, 2), got 3"),
              std::string::npos) << e.what();
  }
  const std::vector<std::int32_t> two{-1, 0, -1, -1};
  EXPECT_THROW(tree_mask(two, 3), attnkit::invalid_argument);  // 4 entries are not B x 3
  EXPECT_NO_THROW(tree_mask(two, 2));
}

TEST(Masks, KeySpans) {
  key_spans a;
  a.add(10, 20);
  a.add(0, 4);
  a.add(18, 30);  // merges with [10, 20)
  ASSERT_EQ(a.n, 2);
  EXPECT_EQ(a.lo[0], 0);
  EXPECT_EQ(a.hi[0], 4);
  EXPECT_EQ(a.lo[1], 10);
  EXPECT_EQ(a.hi[1], 30);
  key_spans b;
  b.add(2, 12);
  const key_spans i = a & b;
  ASSERT_EQ(i.n, 2);
  EXPECT_EQ(i.lo[0], 2);
  EXPECT_EQ(i.hi[0], 4);
  EXPECT_EQ(i.lo[1], 10);
  EXPECT_EQ(i.hi[1], 12);
  key_spans many;
  for (index_t t = 0; t < 6; ++t) many.add(10 * t, 10 * t + 2);  // more than 4: hulls, still covering
  EXPECT_LE(many.n, 4);
  for (index_t t = 0; t < 6; ++t) {
    bool in = false;
    for (int k = 0; k < many.n; ++k) in |= many.lo[k] <= 10 * t && 10 * t + 2 <= many.hi[k];
    EXPECT_TRUE(in) << t;
  }
  // StreamingLLM: 4 sinks plus a window far from them are two separate spans.
  const head_ctx c{0, 0, 0};
  const key_spans s = spans_of(sink_tokens{4} | sliding_window::from_total(64), c, 1000, 1048, 2000);
  ASSERT_EQ(s.n, 2);
  EXPECT_EQ(s.hi[0], 4);
  EXPECT_EQ(s.lo[1], 1000 - 63);
  EXPECT_EQ(s.hi[1], 1048);
}

TEST(Masks, CausalSkipsWholeTiles) {
  const head_ctx c{0, 0, 0};
  EXPECT_EQ(causal{}.classify(c, 0, 64, 64, 128), tile_class::empty);
  EXPECT_EQ(causal{}.classify(c, 64, 128, 0, 64), tile_class::full);
  EXPECT_EQ(causal{}.classify(c, 0, 64, 0, 64), tile_class::partial);
  // Window of W = 16 total: a tile far to the left of the queries is empty.
  EXPECT_EQ(sliding_window::from_total(16).classify(c, 100, 110, 0, 50), tile_class::empty);
  EXPECT_EQ(sliding_window::from_total(16).keep(c, 100, 85), true);
  EXPECT_EQ(sliding_window::from_total(16).keep(c, 100, 84), false);
  static_assert(mask_fn<bool (*)(index_t, index_t, index_t, index_t)>::elementwise);
  static_assert(!(causal{} | sink_tokens{1}).elementwise);
}

TEST(Scores, VectorPathMatchesScalar) {
  const std::vector<float> slopes = alibi::standard_slopes(3);
  EXPECT_NEAR(slopes[0], 0.0625f, 1e-7f);  // H=3 -> p=2: 2^-4, 2^-8, then 2^-2
  EXPECT_NEAR(slopes[1], 0.00390625f, 1e-9f);
  EXPECT_NEAR(slopes[2], 0.25f, 1e-7f);
  const alibi al{slopes};
  const softcap sc{3.f};
  const head_ctx c{0, 2, 5};
  const index_t ni = 37, nj = 5, ld = 40;
  std::vector<float> x(ld * nj), y;
  for (std::size_t t = 0; t < x.size(); ++t) x[t] = float(t % 17) - 8.f;
  y = x;
  al.apply_block<default_arch>(c, y.data(), ld, 3, ni, 11, nj);
  for (index_t jj = 0; jj < nj; ++jj)
    for (index_t ii = 0; ii < ni; ++ii)
      EXPECT_FLOAT_EQ(y[jj * ld + ii], al.apply(c, x[jj * ld + ii], 3 + ii, 11 + jj));
  y = x;
  sc.apply_block<default_arch>(c, y.data(), ld, 0, ni, 0, nj);
  for (index_t jj = 0; jj < nj; ++jj)
    for (index_t ii = 0; ii < ni; ++ii) EXPECT_NEAR(y[jj * ld + ii], sc.apply(c, x[jj * ld + ii], ii, jj), 1e-6f);
}

TEST(Exp, VectorExpIsAccurateAndHandlesInfinities) {
  using V = simd::vec<default_arch>;
  alignas(64) float in[V::width], out[V::width];
  double worst = 0;
  for (float a = -87.f; a < 88.f; a += 0.013f) {
    for (int t = 0; t < V::width; ++t) in[t] = a + 1e-3f * t;
    V::store(out, V::exp(V::load(in)));
    for (int t = 0; t < V::width; ++t) worst = std::max(worst, std::abs(out[t] / std::exp(double(in[t])) - 1));
  }
  EXPECT_LT(worst, 3e-7);  // about 2 ulp
  for (int t = 0; t < V::width; ++t) in[t] = t % 2 ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
  V::store(out, V::exp(V::load(in)));
  for (int t = 0; t < V::width; ++t) EXPECT_EQ(out[t], t % 2 ? 0.f : std::numeric_limits<float>::infinity());
}
