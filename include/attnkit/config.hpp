#pragma once
/// @file config.hpp  Compile-time configuration shared by every header.
#include <cstdint>

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
