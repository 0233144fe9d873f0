// simd/rowmajor.hpp (dot_rows, axpy_rows) and simd/convert.hpp (load_widen, widen_n) for the
// architecture this TU is compiled for (ATTNKIT_TEST_ARCH), against fp64 loops.
//
// Criterion (as test_util.hpp's, per call): max abs error vs fp64 <= 2x the max abs error of a
// naive sequential fp32 loop on the same inputs, plus a floor of 4 float ulps of the magnitude,
// where the magnitude is max(|result|, largest single term) over the output: with cancellation a
// result can be much smaller than its terms, and any reordering of the sum then errs by ulps of
// the terms, not of the result.
//
// Every input and output buffer is a std::vector sized so that its last valid element is its last
// element (ASan builds catch any over-read or over-write past a row's end); row padding (strides
// > row length) holds NaN in inputs (a read poisons the result) and a sentinel in outputs (checked
// untouched).
#include <attnkit/simd/convert.hpp>
#include <attnkit/simd/rowmajor.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using Arch = ATTNKIT_TEST_ARCH;
constexpr float kSentinel = 1234.5f;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kEps = std::numeric_limits<float>::epsilon();

template <class T>
const char* tname() {
  return std::is_same_v<T, float> ? "float" : std::is_same_v<T, bf16> ? "bf16" : "fp16";
}

/// rows x cols matrix with row stride ld >= cols, allocation ending at the last valid element.
/// Values N(0, mag) rounded to T; padding NaN.
template <class T>
std::vector<T> make_rows(index_t rows, index_t cols, index_t ld, std::mt19937& g, float mag = 1.f) {
  std::vector<T> m(static_cast<std::size_t>((rows - 1) * ld + cols), from_float<T>(kNaN));
  std::normal_distribution<float> n(0.f, mag);
  for (index_t i = 0; i < rows; ++i)
    for (index_t c = 0; c < cols; ++c) m[i * ld + c] = from_float<T>(n(g));
  return m;
}

struct err_stats {
  double e = 0, en = 0, mag = 0;
  void add(double got, double naive, double ref, double term_mag) {
    const double d = std::abs(got - ref);
    e = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(e, d);
    en = std::max(en, std::abs(naive - ref));
    mag = std::max({mag, std::abs(ref), term_mag});
  }
  void check(const std::string& what) const {
    EXPECT_LE(e, 2.0 * en + 4.0 * kEps * std::max(mag, 1e-30)) << what << ": kernel error " << e << " vs naive fp32 " << en;
  }
};

template <class TK>
void check_dot(index_t R, index_t nk, index_t d, std::mt19937& g) {
  const std::string what = std::string("dot_rows<") + tname<TK>() + "> R=" + std::to_string(R) +
                           " nk=" + std::to_string(nk) + " d=" + std::to_string(d);
  const index_t ldq = d + 3, ldk = d + 5, lds = R + 3;
  const auto q = make_rows<float>(R, d, ldq, g);
  const auto k = make_rows<TK>(nk, d, ldk, g);
  std::vector<float> st(static_cast<std::size_t>((nk - 1) * lds + R), kSentinel);
  simd::dot_rows<Arch, TK>(R, nk, d, q.data(), ldq, k.data(), ldk, st.data(), lds);
  err_stats es;
  for (index_t j = 0; j < nk; ++j) {
    for (index_t r = 0; r < R; ++r) {
      double ref = 0, tm = 0;
      float naive = 0.f;
      for (index_t c = 0; c < d; ++c) {
        const float a = q[r * ldq + c], b = to_float(k[j * ldk + c]);
        ref += double(a) * double(b);
        tm = std::max(tm, std::abs(double(a) * double(b)));
        naive += a * b;
      }
      es.add(st[j * lds + r], naive, ref, tm);
    }
    for (index_t r = R; r < lds && j + 1 < nk; ++r)
      ASSERT_EQ(st[j * lds + r], kSentinel) << what << ": wrote st column " << r << " of key " << j;
  }
  es.check(what);
}

template <class TV>
void check_axpy(index_t R, index_t nk, index_t dv, std::mt19937& g, bool with_alpha = true) {
  const std::string what = std::string("axpy_rows<") + tname<TV>() + "> R=" + std::to_string(R) +
                           " nk=" + std::to_string(nk) + " dv=" + std::to_string(dv) + (with_alpha ? "" : " alpha=null");
  const index_t ldp = R + 4, ldv = dv + 5, ldo = dv + 2;
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> p(static_cast<std::size_t>(std::max<index_t>((nk - 1) * ldp + R, 1)), kNaN);
  for (index_t j = 0; j < nk; ++j)
    for (index_t r = 0; r < R; ++r) p[j * ldp + r] = u(g);
  const auto v = nk > 0 ? make_rows<TV>(nk, dv, ldv, g) : std::vector<TV>(1);
  std::vector<float> alpha(static_cast<std::size_t>(R));
  for (auto& a : alpha) a = with_alpha ? u(g) : 1.f;
  auto o = make_rows<float>(R, dv, ldo, g);
  for (index_t r = 0; r + 1 < R; ++r)
    for (index_t c = dv; c < ldo; ++c) o[r * ldo + c] = kSentinel;
  const auto o0 = o;
  simd::axpy_rows<Arch, TV>(R, nk, dv, p.data(), ldp, v.data(), ldv, o.data(), ldo, with_alpha ? alpha.data() : nullptr);
  err_stats es;
  for (index_t r = 0; r < R; ++r) {
    for (index_t c = 0; c < dv; ++c) {
      const float o_in = o0[r * ldo + c];
      double acc = 0, tm = std::abs(double(alpha[r]) * o_in);
      float nacc = 0.f;
      for (index_t j = 0; j < nk; ++j) {
        const float a = p[j * ldp + r], b = to_float(v[j * ldv + c]);
        acc += double(a) * double(b);
        tm = std::max(tm, std::abs(double(a) * double(b)));
        nacc += a * b;
      }
      const double ref = double(alpha[r]) * o_in + acc;
      const float naive = alpha[r] * o_in + nacc;
      es.add(o[r * ldo + c], naive, ref, tm);
    }
    for (index_t c = dv; c < ldo && r + 1 < R; ++c)
      ASSERT_EQ(o[r * ldo + c], kSentinel) << what << ": wrote o column " << c << " of row " << r;
  }
  es.check(what);
}

const index_t kDims[] = {1, 3, 15, 16, 17, 31, 64, 80, 128, 256};
const index_t kKeys[] = {1, 7, 63, 64, 65};
std::vector<index_t> rows_list() {
  std::vector<index_t> rs;
  for (index_t r = 1; r <= 20; ++r) rs.push_back(r);
  rs.push_back(33);
  return rs;
}

template <class T>
void dot_sweep() {
  std::mt19937 g(11);
  for (index_t R : rows_list())
    for (index_t d : kDims)
      for (index_t nk : kKeys) check_dot<T>(R, nk, d, g);
}
template <class T>
void axpy_sweep() {
  std::mt19937 g(13);
  for (index_t R : rows_list())
    for (index_t dv : kDims)
      for (index_t nk : kKeys) check_axpy<T>(R, nk, dv, g);
}

TEST(RowMajor, DotRowsFloat) { ATTNKIT_REQUIRE_ARCH(); dot_sweep<float>(); }
TEST(RowMajor, DotRowsBf16) { ATTNKIT_REQUIRE_ARCH(); dot_sweep<bf16>(); }
TEST(RowMajor, DotRowsFp16) { ATTNKIT_REQUIRE_ARCH(); dot_sweep<fp16>(); }
TEST(RowMajor, AxpyRowsFloat) { ATTNKIT_REQUIRE_ARCH(); axpy_sweep<float>(); }
TEST(RowMajor, AxpyRowsBf16) { ATTNKIT_REQUIRE_ARCH(); axpy_sweep<bf16>(); }
TEST(RowMajor, AxpyRowsFp16) { ATTNKIT_REQUIRE_ARCH(); axpy_sweep<fp16>(); }

// The extremes of the documented range: R = 64, nk = 1024, d = 512 and d = 511 (tail), plus the
// decode shape (R = 4, d = 128) with long key ranges.
TEST(RowMajor, LargeShapes) {
  ATTNKIT_REQUIRE_ARCH();
  std::mt19937 g(17);
  check_dot<float>(64, 1024, 512, g);
  check_dot<bf16>(64, 1024, 511, g);
  check_dot<fp16>(4, 1024, 128, g);
  check_axpy<float>(64, 1024, 512, g);
  check_axpy<bf16>(64, 1024, 511, g);
  check_axpy<fp16>(4, 1024, 128, g);
  check_dot<float>(64, 100, 500, g);
  check_axpy<float>(64, 100, 500, g);
}

TEST(RowMajor, AxpyNoKeysAndNullAlpha) {
  ATTNKIT_REQUIRE_ARCH();
  std::mt19937 g(19);
  for (index_t R : {1, 3, 4, 7})
    for (index_t dv : {1, 17, 128}) {
      check_axpy<float>(R, 0, dv, g);
      check_axpy<bf16>(R, 0, dv, g);
      check_axpy<float>(R, 65, dv, g, false);
      check_axpy<fp16>(R, 33, dv, g, false);
    }
}

// ---- every small shape ------------------------------------------------------------------------
// R in 1..20 x d (dv) in 1..260, each (R, d) with a key count drawn from 0..70 in turn (every
// count occurs for every R), plus every nk in 0..70 at d = dv = 211 and a few tail widths: all
// column-block, row-block and key-chunk tails of every arch, the scalar backend's included.
// Strides exceed the row length (NaN padding); alpha null and not; axpy with and without Skip0
// (Skip0: some keys have zero weight in every row and NaN values, which must not reach o). A
// plain double loop is the reference, and the criterion is check_dot / check_axpy's.

/// dot_rows for any nk >= 0 (nk = 0 must not touch st at all).
template <class TK>
void check_dot_any(index_t R, index_t nk, index_t d, std::mt19937& g) {
  const std::string what = std::string("dot_rows<") + tname<TK>() + "> R=" + std::to_string(R) +
                           " nk=" + std::to_string(nk) + " d=" + std::to_string(d);
  const index_t ldq = d + 1, ldk = d + 2, lds = R + 1;
  const auto q = make_rows<float>(R, d, ldq, g);
  const auto k = nk > 0 ? make_rows<TK>(nk, d, ldk, g) : std::vector<TK>(1, from_float<TK>(kNaN));
  std::vector<float> st(static_cast<std::size_t>(nk > 0 ? (nk - 1) * lds + R : 1), kSentinel);
  simd::dot_rows<Arch, TK>(R, nk, d, q.data(), ldq, k.data(), ldk, st.data(), lds);
  if (nk == 0) {
    ASSERT_EQ(st[0], kSentinel) << what << ": wrote st";
    return;
  }
  err_stats es;
  for (index_t j = 0; j < nk; ++j) {
    for (index_t r = 0; r < R; ++r) {
      double ref = 0, tm = 0;
      float naive = 0.f;
      for (index_t c = 0; c < d; ++c) {
        const float a = q[r * ldq + c], b = to_float(k[j * ldk + c]);
        ref += double(a) * double(b);
        tm = std::max(tm, std::abs(double(a) * double(b)));
        naive += a * b;
      }
      es.add(st[j * lds + r], naive, ref, tm);
    }
    for (index_t r = R; r < lds && j + 1 < nk; ++r)
      ASSERT_EQ(st[j * lds + r], kSentinel) << what << ": wrote st column " << r << " of key " << j;
  }
  es.check(what);
}

/// axpy_rows for any nk >= 0, alpha null or not, Skip0 or not.
template <class TV, bool Skip0>
void check_axpy_any(index_t R, index_t nk, index_t dv, std::mt19937& g, bool with_alpha) {
  const std::string what = std::string("axpy_rows<") + tname<TV>() + (Skip0 ? ", Skip0" : "") +
                           "> R=" + std::to_string(R) + " nk=" + std::to_string(nk) + " dv=" + std::to_string(dv) +
                           (with_alpha ? "" : " alpha=null");
  const index_t ldp = R + 1, ldv = dv + 3, ldo = dv + 1;
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> p(static_cast<std::size_t>(nk > 0 ? (nk - 1) * ldp + R : 1), kNaN);
  auto v = nk > 0 ? make_rows<TV>(nk, dv, ldv, g) : std::vector<TV>(1, from_float<TV>(kNaN));
  for (index_t j = 0; j < nk; ++j) {
    // Skip0: every third key is masked in every row (weight 0) and holds NaN values.
    const bool masked = Skip0 && j % 3 == 1;
    for (index_t r = 0; r < R; ++r) p[j * ldp + r] = masked ? 0.f : u(g);
    if (masked)
      for (index_t c = 0; c < dv; ++c) v[j * ldv + c] = from_float<TV>(kNaN);
  }
  std::vector<float> alpha(static_cast<std::size_t>(R));
  for (auto& a : alpha) a = with_alpha ? u(g) : 1.f;
  auto o = make_rows<float>(R, dv, ldo, g);
  for (index_t r = 0; r + 1 < R; ++r)
    for (index_t c = dv; c < ldo; ++c) o[r * ldo + c] = kSentinel;
  const auto o0 = o;
  simd::axpy_rows<Arch, TV, Skip0>(R, nk, dv, p.data(), ldp, v.data(), ldv, o.data(), ldo,
                                   with_alpha ? alpha.data() : nullptr);
  err_stats es;
  for (index_t r = 0; r < R; ++r) {
    for (index_t c = 0; c < dv; ++c) {
      const float o_in = o0[r * ldo + c];
      double acc = 0, tm = std::abs(double(alpha[r]) * o_in);
      float nacc = 0.f;
      for (index_t j = 0; j < nk; ++j) {
        const float a = p[j * ldp + r];
        if (a == 0.f) continue;  // (only the masked keys have weight 0)
        const float b = to_float(v[j * ldv + c]);
        acc += double(a) * double(b);
        tm = std::max(tm, std::abs(double(a) * double(b)));
        nacc += a * b;
      }
      const double ref = double(alpha[r]) * o_in + acc;
      const float naive = alpha[r] * o_in + nacc;
      es.add(o[r * ldo + c], naive, ref, tm);
    }
    for (index_t c = dv; c < ldo && r + 1 < R; ++c)
      ASSERT_EQ(o[r * ldo + c], kSentinel) << what << ": wrote o column " << c << " of row " << r;
  }
  es.check(what);
}

template <class T>
void small_shapes_sweep(unsigned seed) {
  std::mt19937 g(seed);
  index_t turn = 0;
  for (index_t R = 1; R <= 20; ++R)
    for (index_t d = 1; d <= 260; ++d, ++turn) {
      const index_t nk = (turn * 37 + R) % 71;  // 37 is prime to 71: every count for every R
      if ((d + R) % test::kSweepStride != 0) continue;
      check_dot_any<T>(R, nk, d, g);
      if (turn % 2) check_axpy_any<T, false>(R, nk, d, g, turn % 4 == 1);
      else check_axpy_any<T, true>(R, nk, d, g, turn % 4 == 0);
      if (::testing::Test::HasFatalFailure()) return;
    }
  for (index_t d : {211, 7, 8, 9}) {
    for (index_t R = 1; R <= 20; R += (d == 211 ? 1 : 6))
      for (index_t nk = 0; nk <= 70; ++nk) {
        if ((nk + R) % test::kSweepStride != 0) continue;
        check_dot_any<T>(R, nk, d, g);
        check_axpy_any<T, false>(R, nk, d, g, nk % 2 == 0);
        check_axpy_any<T, true>(R, nk, d, g, nk % 2 == 1);
        if (::testing::Test::HasFatalFailure()) return;
      }
  }
}

TEST(RowMajor, AllSmallShapesFloat) { ATTNKIT_REQUIRE_ARCH(); small_shapes_sweep<float>(29); }
TEST(RowMajor, AllSmallShapesBf16) { ATTNKIT_REQUIRE_ARCH(); small_shapes_sweep<bf16>(31); }
TEST(RowMajor, AllSmallShapesFp16) { ATTNKIT_REQUIRE_ARCH(); small_shapes_sweep<fp16>(37); }

// ---- convert.hpp ----------------------------------------------------------------------------

template <class T>
bool same_float(float a, float b) {
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b) || (std::isnan(a) && std::isnan(b));
}

template <class T>
std::vector<T> all_patterns() {
  std::vector<T> v(65536);
  for (std::uint32_t i = 0; i < 65536; ++i) v[i] = T::from_bits(static_cast<std::uint16_t>(i));
  return v;
}

template <class T>
void check_widen_all_patterns() {
  const auto src = all_patterns<T>();
  std::vector<float> dst(src.size(), kSentinel);
  simd::widen_n<Arch>(src.data(), dst.data(), static_cast<index_t>(src.size()));
  for (std::size_t i = 0; i < src.size(); ++i)
    ASSERT_TRUE(same_float<T>(dst[i], to_float(src[i])))
        << tname<T>() << " bits 0x" << std::hex << i << ": " << dst[i] << " vs " << to_float(src[i]);
  // load_widen and load_widen_n on every vector-sized window (n = 0..width).
  constexpr int W = simd::vec<Arch>::width;
  alignas(64) float t[W];
  for (std::size_t i = 0; i + W <= src.size(); i += W) {
    simd::vec<Arch>::store(t, simd::load_widen<Arch>(src.data() + i));
    for (int l = 0; l < W; ++l) ASSERT_TRUE(same_float<T>(t[l], to_float(src[i + l]))) << tname<T>() << " load_widen " << i + l;
  }
}

TEST(RowMajor, WidenAllBf16Patterns) { ATTNKIT_REQUIRE_ARCH(); check_widen_all_patterns<bf16>(); }
TEST(RowMajor, WidenAllFp16Patterns) { ATTNKIT_REQUIRE_ARCH(); check_widen_all_patterns<fp16>(); }

template <class T>
void check_widen_lengths() {
  constexpr int W = simd::vec<Arch>::width;
  std::mt19937 g(23);
  std::normal_distribution<float> nd(0.f, 100.f);
  for (index_t n = 0; n <= 3 * W + 5; ++n) {
    std::vector<T> src(static_cast<std::size_t>(n));  // exactly n: ASan sees any over-read
    for (auto& x : src) x = from_float<T>(nd(g));
    std::vector<float> dst(static_cast<std::size_t>(n));
    simd::widen_n<Arch>(src.data(), dst.data(), n);
    for (index_t i = 0; i < n; ++i) ASSERT_TRUE(same_float<T>(dst[i], to_float(src[i]))) << tname<T>() << " n=" << n;
    if (n <= W) {  // partial load: n valid lanes, zeros after; partial store writes n lanes
      alignas(64) float t[W];
      simd::vec<Arch>::store(t, simd::load_widen_n<Arch>(src.data(), static_cast<int>(n)));
      for (int l = 0; l < W; ++l) ASSERT_EQ(t[l], l < n ? to_float(src[l]) : 0.f) << tname<T>() << " load_widen_n n=" << n;
      std::vector<float> out(static_cast<std::size_t>(n), kSentinel);
      simd::store_n<Arch>(out.data(), simd::vec<Arch>::load(t), static_cast<int>(n));
      for (index_t l = 0; l < n; ++l) ASSERT_EQ(out[l], t[l]);
    }
  }
}

TEST(RowMajor, WidenLengths) {
  ATTNKIT_REQUIRE_ARCH();
  check_widen_lengths<float>();
  check_widen_lengths<bf16>();
  check_widen_lengths<fp16>();
}

}  // namespace
