#pragma once
/// @file context.hpp  What a policy sees: the problem's dimensions (for validation), the
/// (batch, query head) it is evaluated for, and the tile classification the mask reports.
#include <cstdint>

#include "attnkit/config.hpp"

namespace attnkit {

/// Extents of one attention call, handed to each policy's validate().
struct problem_dims {
  index_t batch, sq, sk, hq, hkv, dk, dv;
  index_t q_offset;  ///< position of query 0 on the key axis (default Sk - Sq: bottom-right)
};

/// Per (batch, query head) context. Query index i sits at key-axis position i + q_offset.
struct head_ctx {
  index_t batch;
  index_t q_head;
  index_t q_offset;
  constexpr index_t pos(index_t i) const noexcept { return i + q_offset; }
};

/// How a mask covers a box of (query, key) pairs.
enum class tile_class : std::uint8_t {
  empty,    ///< no pair kept: the tile is skipped and K/V are not even loaded
  full,     ///< every pair kept: no per-element evaluation
  partial,  ///< evaluate keep(i, j) per element
};

/// What kind of policy a type declares itself to be (each policy has `static constexpr kind`).
enum class policy_kind : std::uint8_t { score, mask, normalizer, executor, option };

}  // namespace attnkit
