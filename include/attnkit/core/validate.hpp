#pragma once
/// @file validate.hpp  O(1) checks shared by every entry point. On failure they throw
/// attnkit::invalid_argument naming the function, the argument, and expected vs actual; they run
/// before any output is written.
#include <cstdint>
#include <cstddef>
#include <limits>
#include <utility>
#include <string>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/core/quant.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit::detail {

/// Byte range [lo, hi) spanned by a view (strides may be negative); empty for zero extents.
struct byte_range {
  std::uintptr_t lo = 0, hi = 0;
  bool empty() const noexcept { return hi <= lo; }
  bool overlaps(const byte_range& o) const noexcept { return !empty() && !o.empty() && lo < o.hi && o.lo < hi; }
};

template <class T>
byte_range range_of(const tensor_view<T>& v) noexcept {
  for (auto e : v.extents)
    if (e <= 0) return {};
  std::intptr_t lo = 0, hi = 0;
  for (int a = 0; a < 4; ++a) {
    const std::intptr_t span = static_cast<std::intptr_t>((v.extents[a] - 1) * v.strides[a]);
    (span < 0 ? lo : hi) += span;
  }
  const auto base = reinterpret_cast<std::intptr_t>(v.data);
  const std::intptr_t sz = sizeof(typename tensor_view<T>::value_type);
  return {static_cast<std::uintptr_t>(base + lo * sz), static_cast<std::uintptr_t>(base + (hi + 1) * sz)};
}
struct range_pair {
  const float* p;
  index_t n;
};
inline byte_range range_of(const float* p, index_t n) noexcept {
  if (!p || n <= 0) return {};
  const auto b = reinterpret_cast<std::uintptr_t>(p);
  return {b, b + static_cast<std::uintptr_t>(n) * sizeof(float)};
}

/// A quantized view's values (its scales: scales_range_of; plain views have none).
template <class E>
byte_range range_of(const quantized<E>& v) noexcept { return range_of(v.values); }
template <class T>
byte_range scales_range_of(const tensor_view<T>&) noexcept { return {}; }
template <class E>
byte_range scales_range_of(const quantized<E>& v) noexcept { return range_of(v.scales); }

/// Largest extent of any axis and largest |query_offset|: positions (i + offset, j, their
/// differences and window bounds) then stay far from the 64-bit limits, so no mask or score
/// policy can overflow, and element counts of the outputs fit in 64 bits.
inline constexpr index_t max_extent = (index_t(1) << 31) - 1;
inline constexpr index_t max_offset = index_t(1) << 32;

/// a * b, failing with `what` when the product leaves [0, 2^62] (a, b >= 0).
inline index_t checked_mul(const char* fn, const char* what, index_t a, index_t b) {
  index_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > (index_t(1) << 62))
    fail(fn, what, ": expected a size below 2^62 elements, got ", a, " x ", b, " (overflows)");
  return r;
}

/// Extents in [0, max_extent], heads and dim >= 1, innermost stride 1, the addressed span
/// representable in bytes, data non-null when not empty.
template <class T>
void check_view(const char* fn, const char* name, const tensor_view<T>& v) {
  static const char* axis[4] = {"batch", "seq", "heads", "dim"};
  for (int a = 0; a < 4; ++a) {
    if (v.extents[a] < 0) fail(fn, name, ": expected ", axis[a], " extent >= 0, got ", v.extents[a]);
    if (v.extents[a] > max_extent)
      fail(fn, name, ": expected ", axis[a], " extent <= ", max_extent, ", got ", v.extents[a]);
  }
  if (v.extents[2] < 1) fail(fn, name, ": expected heads >= 1, got ", v.extents[2]);
  if (v.extents[3] < 1) fail(fn, name, ": expected dim >= 1, got ", v.extents[3]);
  if (v.strides[3] != 1) fail(fn, name, ": expected innermost (dim) stride 1, got ", v.strides[3]);
  // Every offset the kernels form (b * s0 + i * s1 + h * s2 + c) must fit: sum of |extent - 1| *
  // |stride| in bytes below 2^62.
  index_t span = 0;
  for (int a = 0; a < 4; ++a) {
    if (v.extents[a] == 0) return;  // empty view: nothing is addressed
    const index_t s = v.strides[a];
    if (s == std::numeric_limits<index_t>::min() || s > (index_t(1) << 62) || s < -(index_t(1) << 62))
      fail(fn, name, ": expected |", axis[a], " stride| < 2^62, got ", s);
    index_t t;
    if (__builtin_mul_overflow(v.extents[a] - 1, s < 0 ? -s : s, &t) || __builtin_add_overflow(span, t, &span) ||
        span > (index_t(1) << 62) / index_t(sizeof(T)))
      fail(fn, name, ": expected the view to address fewer than 2^62 bytes, got extents {", v.extents[0], ", ",
           v.extents[1], ", ", v.extents[2], ", ", v.extents[3], "} with strides {", v.strides[0], ", ", v.strides[1],
           ", ", v.strides[2], ", 1} (overflows at the ", axis[a], " axis)");
  }
  if (v.data == nullptr)
    fail(fn, name, ": expected non-null data for a view of extents {", v.extents[0], ", ", v.extents[1], ", ",
         v.extents[2], ", ", v.extents[3], "}, got nullptr");
}

/// An output view must address each element once: sorted by |stride|, every axis of extent > 1
/// must step past everything the inner axes span (a seq stride of 0 with Sq > 1, or a head
/// stride below dim, would let rows overwrite each other).
template <class T>
void check_distinct_elements(const char* fn, const char* name, const tensor_view<T>& v) {
  static const char* axis[4] = {"batch", "seq", "heads", "dim"};
  for (auto e : v.extents)
    if (e == 0) return;  // nothing is written
  int ax[4], n = 0;
  for (int a = 0; a < 4; ++a)
    if (v.extents[a] > 1) ax[n++] = a;
  for (int x = 1; x < n; ++x)
    for (int y = x; y > 0; --y) {
      const index_t sa = v.strides[ax[y - 1]], sb = v.strides[ax[y]];
      if ((sa < 0 ? -sa : sa) > (sb < 0 ? -sb : sb) || ((sa < 0 ? -sa : sa) == (sb < 0 ? -sb : sb) && ax[y - 1] < ax[y]))
        std::swap(ax[y - 1], ax[y]);
    }
  index_t inner = 0;  // largest offset the inner axes reach
  for (int t = 0; t < n; ++t) {
    const index_t s = v.strides[ax[t]] < 0 ? -v.strides[ax[t]] : v.strides[ax[t]];
    if (s <= inner)
      fail(fn, name, ": expected every element to have its own memory, got ", axis[ax[t]], " stride ",
           v.strides[ax[t]], " with extents {", v.extents[0], ", ", v.extents[1], ", ", v.extents[2], ", ",
           v.extents[3], "} and strides {", v.strides[0], ", ", v.strides[1], ", ", v.strides[2], ", ", v.strides[3],
           "} (elements would overlap)");
    inner += (v.extents[ax[t]] - 1) * s;
  }
}

/// A quantized view: values and scales are valid views and the scales' shape matches the
/// values' (quant.hpp): {B, S, H, 1} (qint8), {B, S, H, D / 32} (qint4, D = 2 x values' dim, a
/// multiple of 32), {B, ceil(S / block), H, D} (qint8_channel, block >= 1).
template <class E>
void check_view(const char* fn, const char* name, const quantized<E>& v) {
  using Tr = typename quantized<E>::traits;
  check_view(fn, (std::string(name) + ".values").c_str(), v.values);
  check_view(fn, (std::string(name) + ".scales").c_str(), v.scales);
  const index_t D = v.dim();
  if constexpr (Tr::group > 1)
    if (D % Tr::group != 0)
      fail(fn, name, ".values: expected ", Tr::name, " rows of a multiple of ", Tr::group, " values (dim ",
           Tr::group / Tr::per_byte, " x k bytes), got ", v.values.dim(), " bytes = ", D, " values");
  if constexpr (Tr::by_channel)
    if (v.block < 1) fail(fn, name, ".block: expected >= 1 rows per scale row, got ", v.block);
  const index_t S = Tr::by_channel ? (v.seq() + v.block - 1) / v.block : v.seq();
  const index_t nd = Tr::group == 0 ? 1 : D / Tr::group;
  const auto& e = v.scales.extents;
  if (e[0] != v.batch() || e[1] != S || e[2] != v.heads() || e[3] != nd)
    fail(fn, name, ".scales: expected {", v.batch(), ", ", S, ", ", v.heads(), ", ", nd, "} (", Tr::name,
         Tr::by_channel ? ": one scale per channel per block of rows, from the values' shape)"
                        : " scales for values of that shape)",
         ", got {", e[0], ", ", e[1], ", ", e[2], ", ", e[3], "}");
}
template <class E>
void check_distinct_elements(const char* fn, const char* name, const quantized<E>& v) {
  check_distinct_elements(fn, (std::string(name) + ".values").c_str(), v.values);
  check_distinct_elements(fn, (std::string(name) + ".scales").c_str(), v.scales);
}

inline void check_extent(const char* fn, const char* name, const char* axis, index_t expected, index_t got,
                         const char* from) {
  if (expected != got) fail(fn, name, ": expected ", axis, " ", expected, " (", from, "), got ", got);
}

/// What every layout shares once q, k, v and out are known (kname / vname: how the entry point
/// names K and V): heads and dims agree, GQA divides, out has q's rows and v's dim, addresses
/// each element once and no operand's memory.
template <class TQ, class K, class V>
void check_heads_and_out(const char* fn, const tensor_view<TQ>& q, const K& k, const V& v,
                         const tensor_view<float>& o, const char* kname = "k", const char* vname = "v") {
  check_extent(fn, vname, "heads", k.heads(), v.heads(), "k's heads");
  check_extent(fn, kname, "dim", q.dim(), k.dim(), "q's dim");
  if (q.heads() % k.heads() != 0)
    fail(fn, "q: expected heads divisible by k's heads (", k.heads(), ") for grouped-query attention, got ", q.heads());
  check_extent(fn, "out", "batch", q.batch(), o.batch(), "q's batch");
  check_extent(fn, "out", "seq", q.seq(), o.seq(), "q's seq");
  check_extent(fn, "out", "heads", q.heads(), o.heads(), "q's heads");
  check_extent(fn, "out", "dim", v.dim(), o.dim(), "v's dim");
  check_distinct_elements(fn, "out", o);
  const byte_range ro = range_of(o);
  if (ro.overlaps(range_of(q))) fail(fn, "out: expected memory disjoint from q, got an overlapping view");
  if (ro.overlaps(range_of(k))) fail(fn, "out: expected memory disjoint from ", kname, ", got an overlapping view");
  if (ro.overlaps(range_of(v))) fail(fn, "out: expected memory disjoint from ", vname, ", got an overlapping view");
  if (ro.overlaps(scales_range_of(k)) || ro.overlaps(scales_range_of(v)))
    fail(fn, "out: expected memory disjoint from the scales of ", kname, " and ", vname, ", got an overlapping view");
}

/// Shapes of an attention call: Q [B,Sq,Hq,Dk], K [B,Sk,Hkv,Dk], V [B,Sk,Hkv,Dv], O [B,Sq,Hq,Dv].
template <class TQ, class K, class V>
problem_dims check_attention(const char* fn, const tensor_view<TQ>& q, const K& k, const V& v,
                             const tensor_view<float>& o) {
  check_view(fn, "q", q);
  check_view(fn, "k", k);
  check_view(fn, "v", v);
  check_view(fn, "out", o);
  check_extent(fn, "k", "batch", q.batch(), k.batch(), "q's batch");
  check_extent(fn, "v", "batch", q.batch(), v.batch(), "q's batch");
  check_extent(fn, "v", "seq", k.seq(), v.seq(), "k's seq");
  check_heads_and_out(fn, q, k, v, o);
  return {q.batch(), q.seq(), k.seq(), q.heads(), k.heads(), q.dim(), v.dim(), k.seq() - q.seq()};
}

/// An extra float output of n elements (LSE, probabilities, key mass) must not overlap the
/// operands' memory `ops` = {q, k, v, out}.
inline void check_output(const char* fn, const char* name, const float* p, index_t n, const byte_range (&ops)[4]) {
  const byte_range r = range_of(p, n);
  if (n > 0 && p == nullptr) fail(fn, name, ": expected non-null data for ", n, " floats, got nullptr");
  if (r.overlaps(ops[0]) || r.overlaps(ops[1]) || r.overlaps(ops[2]))
    fail(fn, name, ": expected memory disjoint from q, k and v, got an overlapping buffer");
  if (r.overlaps(ops[3])) fail(fn, name, ": expected memory disjoint from out, got an overlapping buffer");
}
template <class TQ, class TK, class TV>
void check_output(const char* fn, const char* name, const float* p, index_t n, const tensor_view<TQ>& q,
                  const tensor_view<TK>& k, const tensor_view<TV>& v, const tensor_view<float>& o) {
  const byte_range ops[4] = {range_of(q), range_of(k), range_of(v), range_of(o)};
  check_output(fn, name, p, n, ops);
}

/// Run each policy's validate(); its error is re-thrown prefixed with the entry point's name.
template <class... P>
void validate_policies(const char* fn, const problem_dims& d, const P&... p) {
  try {
    (p.validate(d), ...);
  } catch (const invalid_argument& e) {
    std::string msg = e.what();
    if (msg.rfind("attnkit::", 0) == 0) msg.erase(0, 9);
    fail(fn, msg);
  }
}

}  // namespace attnkit::detail
