#pragma once
/// @file ring.hpp  A StreamingLLM KV cache kept as a ring buffer: `sinks` pinned slots for the
/// first tokens, then `slots` ring slots that every later token cycles through. Nothing moves
/// when the ring wraps: `streaming_ring` maps each slot back to the position it holds, and its
/// mask applies the streaming rule (mask/streaming.hpp) to positions:
///
///     slot of position p:  p < sinks ? p : sinks + (p - sinks) % slots
///     keep(query at p, key slot j holding position t)  iff  t valid and t <= p and
///                                                          (t < sinks or t > p - window)
///
/// A call of n queries (the tokens just appended) needs slots >= window + n - 1, so that the
/// keys the first of them sees are not yet overwritten by the last. Keys are K/V after RoPE at
/// their true positions (the usual cache), so positions never need rewriting.
///
///     streaming_ring ring{4, 1024, 1024 + 15};      // 4 sinks, 1024-token window, chunks <= 16
///     ring.append(k_cache, v_cache, k_new, v_new);  // writes the step's tokens to their slots
///     flash_attention(q_new, k_cache, v_cache, out, ring.mask(q_new.seq()));
#include <algorithm>
#include <cstring>
#include <utility>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/types.hpp"
#include "attnkit/mask/streaming.hpp"
#include "attnkit/cache/append.hpp"

namespace attnkit {

/// The mask of one call on a streaming_ring: `length` tokens so far, the last `queries` of them
/// are the call's queries; keys are the cache's sinks + slots slots.
struct ring_mask {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  index_t sinks = 0, window = 1, slots = 1, length = 0, queries = 0;

  /// Position held by slot j, or -1 when the slot holds none yet.
  index_t position(index_t j) const noexcept {
    if (j < sinks) return j < length ? j : -1;
    if (length - 1 < sinks) return -1;  // no ring slot written yet
    const index_t p = raw(j);
    return p >= sinks ? p : -1;
  }
  // The rule is streaming_mask's, applied to positions: query i at length - queries + i, key
  // slot j at position(j).
  bool keep(const head_ctx& c, index_t i, index_t j) const {
    const index_t t = position(j);
    return t >= 0 && rule().keep(on_positions(c), i, t);
  }
  // Slots [j0, j1) hold at most three runs of consecutive positions (sink slots, and the ring on
  // either side of the newest token); each run is a key interval for streaming_mask's classify.
  // Slots holding no token yet are empty.
  tile_class classify(const head_ctx& c, index_t i0, index_t i1, index_t j0, index_t j1) const {
    const head_ctx pc = on_positions(c);
    const auto m = rule();
    bool all = true, none = true;
    auto run = [&](index_t a, index_t b) {  // positions a..b, all holding tokens
      const tile_class t = m.classify(pc, i0, i1, a, b + 1);
      all = all && t == tile_class::full;
      none = none && t == tile_class::empty;
    };
    if (j0 < sinks) {
      const index_t e = std::min(j1, sinks), filled = std::min(e, length);
      if (j0 < filled) run(j0, filled - 1);
      if (filled < e) all = false;
      j0 = e;
    }
    if (j0 < j1) {
      const index_t last = length - 1;
      const index_t wrap = last < sinks ? j1 : sinks + (last - sinks) % slots + 1;  // slot after the newest
      for (const auto& [a, b] : {std::pair{j0, std::min(j1, std::max(j0, wrap))}, std::pair{std::max(j0, wrap), j1}}) {
        if (a >= b || last < sinks) continue;
        // Raw positions rise by one per slot within the run; those below `sinks` were never written.
        const index_t pa = raw(a), pb = raw(b - 1);
        if (pb < sinks) {  // nothing written: these slots keep nothing
          all = false;
          continue;
        }
        if (pa < sinks) all = false;
        run(std::max(pa, sinks), pb);
      }
      if (last < sinks) all = false;
    }
    if (none) return tile_class::empty;
    return all ? tile_class::full : tile_class::partial;
  }
  void validate(const problem_dims& d) const {
    if (d.sk != sinks + slots)
      detail::fail("ring_mask", "k: expected the whole ring, sinks + slots = ", sinks + slots, " keys, got ", d.sk);
    if (d.sq != queries) detail::fail("ring_mask", "queries: expected Sq = ", d.sq, ", got ", queries);
    if (queries > length) detail::fail("ring_mask", "queries: expected <= length (", length, "), got ", queries);
    if (slots < window + queries - 1)
      detail::fail("ring_mask", "slots: expected >= window + queries - 1 = ", window + queries - 1,
                   " (the first query's window must not be overwritten yet), got ", slots);
  }

 private:
  streaming_mask_t rule() const noexcept {
    return {{sink_tokens{sinks}, sliding_window{window - 1, 0}}, causal{}};
  }
  head_ctx on_positions(const head_ctx& c) const noexcept { return {c.batch, c.q_head, length - queries}; }
  // Position of ring slot j >= sinks (length > sinks): the newest token up to length - 1 with
  // that slot; below sinks when the slot was never written.
  index_t raw(index_t j) const noexcept {
    const index_t last = length - 1, ul = (last - sinks) % slots;
    return last - ((ul - (j - sinks) + slots) % slots);
  }
};

/// The ring's geometry and how many tokens it has seen.
struct streaming_ring {
  index_t sinks = 0;   ///< pinned first tokens (>= 0)
  index_t window = 1;  ///< causal window including the query's own position (>= 1)
  index_t slots = 1;   ///< ring slots after the sinks (>= window; window + n - 1 for calls of n queries)
  index_t length = 0;  ///< tokens appended so far

  index_t capacity() const noexcept { return sinks + slots; }
  index_t slot(index_t p) const noexcept { return p < sinks ? p : sinks + (p - sinks) % slots; }

  /// The mask for a call whose queries are the last `queries` tokens appended.
  ring_mask mask(index_t queries) const {
    check("streaming_ring::mask");
    return {sinks, window, slots, length, queries};
  }

  /// Write k_new / v_new ([B, n, H, D], any element type: converted to the cache's) to the slots
  /// of positions length .. length + n - 1 of the caches ([B, capacity, H, D]), then advance
  /// length by n. Validated first; nothing is written on error.
  template <class TC, class TN, class VC, class VN>
  void append(tensor_view<TC> k_cache, tensor_view<VC> v_cache, tensor_view<TN> k_new, tensor_view<VN> v_new) {
    constexpr const char* fn = "streaming_ring::append";
    check(fn);
    detail::check_new_rows(fn, "k_new", k_cache, "k_cache", k_new, k_cache.batch());
    detail::check_new_rows(fn, "v_new", v_cache, "v_cache", v_new, k_cache.batch());
    if (k_cache.seq() != capacity() || v_cache.seq() != capacity())
      detail::fail(fn, "k_cache, v_cache: expected seq = sinks + slots = ", capacity(), ", got ", k_cache.seq(), " and ",
                   v_cache.seq());
    if (k_new.seq() != v_new.seq()) detail::fail(fn, "v_new: expected seq ", k_new.seq(), " (k_new's), got ", v_new.seq());
    if (k_new.seq() > slots)
      detail::fail(fn, "k_new: expected at most slots = ", slots, " tokens per append, got ", k_new.seq());
    for (index_t t = 0; t < k_new.seq(); ++t) {
      const index_t s = slot(length + t);
      for (index_t b = 0; b < k_new.batch(); ++b)
        for (index_t h = 0; h < k_new.heads(); ++h) {
          detail::copy_row(k_cache.row(b, s, h), k_new.row(b, t, h), k_new.dim());
          detail::copy_row(v_cache.row(b, s, h), v_new.row(b, t, h), v_new.dim());
        }
    }
    length += k_new.seq();
  }

 private:
  void check(const char* fn) const {
    if (sinks < 0) detail::fail(fn, "sinks: expected >= 0, got ", sinks);
    if (window < 1) detail::fail(fn, "window: expected >= 1, got ", window);
    if (slots < window) detail::fail(fn, "slots: expected >= window (", window, "), got ", slots);
    if (length < 0) detail::fail(fn, "length: expected >= 0, got ", length);
  }
};

}  // namespace attnkit
