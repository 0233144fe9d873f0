#pragma once
/// @file tensor_view.hpp  Non-owning 4-D strided views in the logical order (batch, seq, head, dim).
#include <array>
#include <type_traits>

#include "attnkit/config.hpp"
#include "attnkit/core/types.hpp"

namespace attnkit {

/// A non-owning view of a 4-D tensor in the logical order (batch, seq, head, dim).
/// Strides are in elements; the innermost (dim) stride must be 1 (checked by every entry point).
/// `T` may be const-qualified; a view of T converts to a view of const T.
template <class T>
struct tensor_view {
  using element_type = T;
  using value_type = std::remove_cv_t<T>;

  T* data = nullptr;
  std::array<index_t, 4> extents{};  ///< {batch, seq, head, dim}
  std::array<index_t, 4> strides{};  ///< element strides for the same axes; strides[3] must be 1

  constexpr tensor_view() = default;
  constexpr tensor_view(T* d, std::array<index_t, 4> e, std::array<index_t, 4> s) noexcept
      : data(d), extents(e), strides(s) {}
  template <class U>
    requires(!std::is_same_v<U, T> && std::is_same_v<const U, T>)
  constexpr tensor_view(const tensor_view<U>& o) noexcept : data(o.data), extents(o.extents), strides(o.strides) {}

  constexpr index_t batch() const noexcept { return extents[0]; }
  constexpr index_t seq() const noexcept { return extents[1]; }
  constexpr index_t heads() const noexcept { return extents[2]; }
  constexpr index_t dim() const noexcept { return extents[3]; }

  /// Pointer to element (b, s, h, 0): the start of one head vector.
  constexpr T* row(index_t b, index_t s, index_t h) const noexcept {
    return data + b * strides[0] + s * strides[1] + h * strides[2];
  }
  constexpr T& operator()(index_t b, index_t s, index_t h, index_t d) const noexcept { return row(b, s, h)[d]; }
};

/// View of a contiguous [B, S, H, D] buffer (the "batch, seq, head, dim" layout of most models).
template <class T>
constexpr tensor_view<T> bshd(T* p, index_t B, index_t S, index_t H, index_t D) noexcept {
  return {p, {B, S, H, D}, {S * H * D, H * D, D, 1}};
}
/// View of a contiguous [B, H, S, D] buffer (head-major, as PyTorch's SDPA takes it).
template <class T>
constexpr tensor_view<T> bhsd(T* p, index_t B, index_t H, index_t S, index_t D) noexcept {
  return {p, {B, S, H, D}, {H * S * D, D, S * D, 1}};
}

}  // namespace attnkit
