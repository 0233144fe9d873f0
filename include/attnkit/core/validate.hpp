#pragma once
/// @file validate.hpp  O(1) checks shared by every entry point. On failure they throw
/// attnkit::invalid_argument naming the function, the argument, and expected vs actual; they run
/// before any output is written.
#include <cstdint>
#include <cstddef>
#include <string>

#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
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

/// Extents >= 0, heads and dim >= 1, innermost stride 1, data non-null when not empty.
template <class T>
void check_view(const char* fn, const char* name, const tensor_view<T>& v) {
  static const char* axis[4] = {"batch", "seq", "heads", "dim"};
  for (int a = 0; a < 4; ++a)
    if (v.extents[a] < 0) fail(fn, name, ": expected ", axis[a], " extent >= 0, got ", v.extents[a]);
  if (v.extents[2] < 1) fail(fn, name, ": expected heads >= 1, got ", v.extents[2]);
  if (v.extents[3] < 1) fail(fn, name, ": expected dim >= 1, got ", v.extents[3]);
  if (v.strides[3] != 1) fail(fn, name, ": expected innermost (dim) stride 1, got ", v.strides[3]);
  if (!range_of(v).empty() && v.data == nullptr)
    fail(fn, name, ": expected non-null data for a view with ", v.extents[0] * v.extents[1] * v.extents[2] * v.extents[3],
         " elements, got nullptr");
}

inline void check_extent(const char* fn, const char* name, const char* axis, index_t expected, index_t got,
                         const char* from) {
  if (expected != got) fail(fn, name, ": expected ", axis, " ", expected, " (", from, "), got ", got);
}

/// Shapes of an attention call: Q [B,Sq,Hq,Dk], K [B,Sk,Hkv,Dk], V [B,Sk,Hkv,Dv], O [B,Sq,Hq,Dv].
template <class TQ, class TK, class TV>
problem_dims check_attention(const char* fn, const tensor_view<TQ>& q, const tensor_view<TK>& k,
                             const tensor_view<TV>& v, const tensor_view<float>& o) {
  check_view(fn, "q", q);
  check_view(fn, "k", k);
  check_view(fn, "v", v);
  check_view(fn, "out", o);
  check_extent(fn, "k", "batch", q.batch(), k.batch(), "q's batch");
  check_extent(fn, "v", "batch", q.batch(), v.batch(), "q's batch");
  check_extent(fn, "v", "seq", k.seq(), v.seq(), "k's seq");
  check_extent(fn, "v", "heads", k.heads(), v.heads(), "k's heads");
  check_extent(fn, "k", "dim", q.dim(), k.dim(), "q's dim");
  if (q.heads() % k.heads() != 0)
    fail(fn, "q: expected heads divisible by k's heads (", k.heads(), ") for grouped-query attention, got ", q.heads());
  check_extent(fn, "out", "batch", q.batch(), o.batch(), "q's batch");
  check_extent(fn, "out", "seq", q.seq(), o.seq(), "q's seq");
  check_extent(fn, "out", "heads", q.heads(), o.heads(), "q's heads");
  check_extent(fn, "out", "dim", v.dim(), o.dim(), "v's dim");
  const byte_range ro = range_of(o);
  if (ro.overlaps(range_of(q))) fail(fn, "out: expected memory disjoint from q, got an overlapping view");
  if (ro.overlaps(range_of(k))) fail(fn, "out: expected memory disjoint from k, got an overlapping view");
  if (ro.overlaps(range_of(v))) fail(fn, "out: expected memory disjoint from v, got an overlapping view");
  return {q.batch(), q.seq(), k.seq(), q.heads(), k.heads(), q.dim(), v.dim(), k.seq() - q.seq()};
}

/// An extra float output of n elements (LSE, probabilities, key mass) must not overlap any view.
template <class TQ, class TK, class TV>
void check_output(const char* fn, const char* name, const float* p, index_t n, const tensor_view<TQ>& q,
                  const tensor_view<TK>& k, const tensor_view<TV>& v, const tensor_view<float>& o) {
  const byte_range r = range_of(p, n);
  if (n > 0 && p == nullptr) fail(fn, name, ": expected non-null data for ", n, " floats, got nullptr");
  if (r.overlaps(range_of(q)) || r.overlaps(range_of(k)) || r.overlaps(range_of(v)))
    fail(fn, name, ": expected memory disjoint from q, k and v, got an overlapping buffer");
  if (r.overlaps(range_of(o))) fail(fn, name, ": expected memory disjoint from out, got an overlapping buffer");
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
