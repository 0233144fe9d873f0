#pragma once
/// @file config.hpp  Compile-time configuration shared by every header.
#include <cstdint>

// Full unrolling of fixed-trip register-tile loops: without it GCC keeps the accumulator array
// on the stack (a load and a store around every FMA).
#if defined(__clang__)
#define ATTNKIT_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define ATTNKIT_UNROLL _Pragma("GCC unroll 32")
#else
#define ATTNKIT_UNROLL
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ATTNKIT_INLINE inline __attribute__((always_inline))
#define ATTNKIT_RESTRICT __restrict__
#else
#define ATTNKIT_INLINE inline
#define ATTNKIT_RESTRICT
#endif

namespace attnkit {
/// Index type for extents, strides and positions (signed: strides may be negative).
using index_t = std::int64_t;
}  // namespace attnkit
