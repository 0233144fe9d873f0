#pragma once
/// @file mask_policy.hpp  A mask decides which (query, key) pairs take part, element by element
/// and, for the mainloop, tile by tile.
#include <concepts>

#include "attnkit/core/context.hpp"

namespace attnkit {

/// Requirements:
///  - `static constexpr policy_kind kind = policy_kind::mask;`
///  - `bool keep(const head_ctx&, index_t i, index_t j) const`: the element rule (i is the query
///    index, j the key index; the query's key-axis position is ctx.pos(i));
///  - `tile_class classify(const head_ctx&, index_t i0, index_t i1, index_t j0, index_t j1) const`
///    for the half-open box [i0, i1) x [j0, j1); it must be sound: `empty` only if no pair is
///    kept, `full` only if every pair is kept (`partial` is always allowed);
///  - `static constexpr bool elementwise;` true when classification cannot see inside the rule
///    (a user functor): classify then never returns `full`, every non-empty tile is evaluated per
///    element (the mask never silently loses its effect in a tile's interior), and kernels do not
///    even instantiate their unmasked path for it;
///  - `void validate(const problem_dims&) const`.
/// Optional: `key_spans spans(const head_ctx&, index_t i0, index_t i1, index_t sk) const`: key
/// intervals within [0, sk) that hold every key kept by any query in [i0, i1) (sound, like
/// classify); without it a mask spans all keys.
template <class M>
concept mask_policy = requires(const M& m, const head_ctx& c, const problem_dims& d, index_t i) {
  requires M::kind == policy_kind::mask;
  { M::elementwise } -> std::convertible_to<bool>;
  { m.keep(c, i, i) } -> std::convertible_to<bool>;
  { m.classify(c, i, i, i, i) } -> std::same_as<tile_class>;
  m.validate(d);
};

/// The key spans of a mask for queries [i0, i1): its own `spans` when it has one, else all keys.
template <mask_policy M>
key_spans spans_of(const M& m, const head_ctx& c, index_t i0, index_t i1, index_t sk) {
  if constexpr (requires { m.spans(c, i0, i1, sk); }) return m.spans(c, i0, i1, sk);
  else return key_spans::all(sk);
}

}  // namespace attnkit
