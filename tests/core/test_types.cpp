// bf16 / fp16 conversions: round to nearest even, specials, exhaustive round trips.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include <attnkit/core/types.hpp>

using attnkit::bf16;
using attnkit::fp16;

TEST(Bf16, RoundTripsEveryValue) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16::to_float(static_cast<std::uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(float(bf16(f))));
      continue;
    }
    EXPECT_EQ(bf16(f).bits, b) << std::hex << b;
  }
}

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(float(bf16(1.f + 0x1p-8f)), 1.f);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd mantissa) and 1 + 2^-6: ties to even (1 + 2^-6).
  EXPECT_EQ(float(bf16(1.f + 3 * 0x1p-8f)), 1.f + 0x1p-6f);
  // Just above halfway rounds up.
  EXPECT_EQ(float(bf16(1.f + 0x1p-8f + 0x1p-20f)), 1.f + 0x1p-7f);
  EXPECT_EQ(float(bf16(-1.f - 0x1p-8f - 0x1p-20f)), -1.f - 0x1p-7f);
  // Overflow to infinity when rounding past the largest finite bf16.
  EXPECT_TRUE(std::isinf(float(bf16(std::numeric_limits<float>::max()))));
  EXPECT_TRUE(std::isinf(float(bf16(std::numeric_limits<float>::infinity()))));
  EXPECT_TRUE(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16(-0.f).bits, 0x8000);
}

TEST(Fp16, RoundTripsEveryValue) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16::to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(float(fp16(f))));
      continue;
    }
    EXPECT_EQ(fp16(f).bits, h) << std::hex << h;
  }
}

TEST(Fp16, MatchesDoubleRoundingOnDenseSample) {
  // Compare to a slow exact rounding for many floats across the whole range.
  auto slow = [](float f) -> float {
    // Candidates: nearest representable halves below and above, pick nearest, ties to even.
    if (std::isnan(f)) return f;
    const double x = f;
    double best = 0;
    std::uint16_t best_bits = 0;
    double best_err = std::numeric_limits<double>::infinity();
    // Search by binary lookup over the monotone positive codes.
    const double ax = std::abs(x);
    std::uint32_t lo = 0, hi = 0x7c00;  // [0, inf]
    while (hi - lo > 1) {
      const std::uint32_t mid = (lo + hi) / 2;
      if (fp16::to_float(static_cast<std::uint16_t>(mid)) <= ax) lo = mid; else hi = mid;
    }
    for (std::uint32_t c : {lo, hi}) {
      const double v = fp16::to_float(static_cast<std::uint16_t>(c));
      double err = std::abs(v - ax);
      if (c == 0x7c00) err = ax >= 65520.0 ? 0 : std::numeric_limits<double>::infinity();
      if (err < best_err || (err == best_err && (c & 1) == 0)) best_err = err, best = v, best_bits = static_cast<std::uint16_t>(c);
    }
    (void)best_bits;
    return static_cast<float>(x < 0 ? -best : best);
  };
  for (std::uint32_t u = 0; u < 0xffffffffu - 9973; u += 9973) {
    const float f = std::bit_cast<float>(u);
    if (std::isnan(f)) continue;
    const float got = float(fp16(f)), want = slow(f);
    ASSERT_EQ(std::bit_cast<std::uint32_t>(got), std::bit_cast<std::uint32_t>(want)) << f;
  }
  EXPECT_EQ(float(fp16(65519.f)), 65504.f);
  EXPECT_TRUE(std::isinf(float(fp16(65520.f))));
  EXPECT_EQ(float(fp16(0x1p-25f)), 0.f);              // exactly half the smallest subnormal: ties to 0
  EXPECT_EQ(float(fp16(0x1p-25f * 1.5f)), 0x1p-24f);  // above half: rounds up
}

// simd::line_feed (prefetch.hpp): the decode kernels' spread look-ahead. It must hand out every
// 64-byte line of its rows, in order, and stop; a wrong walk would only cost speed, so it is
// checked here directly.
#include <attnkit/simd/prefetch.hpp>

#include <set>

TEST(LineFeed, HandsOutEveryLineOfItsRowsInOrderThenStops) {
  using attnkit::simd::line_feed;
  for (const std::uintptr_t base : {std::uintptr_t(4096), std::uintptr_t(4096 + 24)})
    for (const long n : {0L, 1L, 3L, 17L})
      for (const long rb : {4L, 64L, 100L, 512L, 4096L})
        for (const long ld : {rb, rb + 36, 4 * rb + 4096}) {
          std::set<std::uintptr_t> want;
          for (long i = 0; i < n; ++i)
            for (std::uintptr_t l = (base + i * ld) & ~63u; l <= ((base + i * ld + rb - 1) & ~63u); l += 64)
              want.insert(l);
          line_feed f(reinterpret_cast<const void*>(base), 0, n, rb, ld);
          std::set<std::uintptr_t> got;
          std::uintptr_t prev = 0;
          long calls = 0;
          for (; f.rows > 0 && calls < 100000; ++calls) {
            EXPECT_GE(f.a, prev) << "lines out of order";
            prev = f.a;
            got.insert(f.a);
            f.next();
          }
          EXPECT_EQ(got, want) << "base " << base << " n " << n << " rb " << rb << " ld " << ld;
          // Contiguous rows are one run (no line twice); strided rows at most one shared line each.
          EXPECT_LE(calls, static_cast<long>(want.size()) + (ld == rb ? 0 : n)) << "rb " << rb << " ld " << ld;
          f.next();  // past the end: a no-op
          EXPECT_EQ(f.rows, 0);
        }
}
