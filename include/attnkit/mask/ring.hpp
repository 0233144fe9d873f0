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

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/types.hpp"
#include "attnkit/cache/append.hpp"

namespace attnkit {

/// The mask of one call on a streaming_ring: `length` tokens so far, the last `queries` of them
/// are the call's queries; keys are the cache's sinks + slots slots.
struct ring_mask {
  static constexpr policy_kind kind = policy_kind::mask;
  static constexpr bool elementwise = false;
  index_t sinks = 0, window = 1, slots = 1, length = 0, queries = 0;

  index_t query_pos(index_t i) const noexcept { return length - queries + i; }
  /// Position held by slot j, or -1 when the slot holds none yet.
  index_t position(index_t j) const noexcept {
    if (j < sinks) return j < length ? j : -1;
    const index_t last = length - 1;
    if (last < sinks) return -1;
    const index_t u = j - sinks, ul = (last - sinks) % slots;
    const index_t p = last - ((ul - u + slots) % slots);
    return p >= sinks ? p : -1;
  }
  static constexpr bool rule(index_t t, index_t p, index_t sinks, index_t window) noexcept {
    return t >= 0 && t <= p && (t < sinks || t > p - window);
  }
  bool keep(const head_ctx&, index_t i, index_t j) const noexcept { return rule(position(j), query_pos(i), sinks, window); }

  // Slots [j0, j1) hold at most two runs of consecutive positions (the ring wraps once per
  // `slots`); each run against the first and last query decides the box.
  tile_class classify(const head_ctx&, index_t i0, index_t i1, index_t j0, index_t j1) const noexcept {
    const index_t p0 = query_pos(i0), p1 = query_pos(i1 - 1);
    bool all = true, none = true;
    auto run = [&](index_t a, index_t b, bool sink_run) {  // positions a..b, consecutive
      if (b < a) return;
      const bool empty = a > p1 || (!sink_run && (b <= p0 - window || b < sinks));
      const bool full = a >= 0 && (sink_run || a >= sinks) && b <= p0 && (sink_run || a > p1 - window);
      all = all && full;
      none = none && empty;
    };
    if (j0 < sinks) {
      const index_t e = std::min(j1, sinks);
      const index_t valid = std::min(e, length);  // sink slots [j0, valid) hold positions j0..valid-1
      run(j0, valid - 1, true);
      if (valid < e) all = false;
      j0 = e;
    }
    if (j0 < j1) {
      const index_t last = length - 1;
      if (last < sinks) {
        all = false;  // no ring slot holds a token yet: this part keeps nothing
      } else {
        // Raw positions (< sinks: never written) rise by one per slot, except at the slot after
        // the newest token, where they drop by `slots`.
        const index_t ul = (last - sinks) % slots, wrap = sinks + ul + 1;
        auto raw = [&](index_t j) { return last - ((ul - (j - sinks) + slots) % slots); };
        if (j0 < wrap && wrap < j1) {
          run(raw(j0), raw(wrap - 1), false);
          run(raw(wrap), raw(j1 - 1), false);
        } else {
          run(raw(j0), raw(j1 - 1), false);
        }
      }
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
