#pragma once
/// @file eigen.hpp  Optional Eigen interop: views over Eigen matrices and the fp64 reference.
#include <Eigen/Core>

#include "attnkit/attnkit.hpp"
#include "attnkit/ref/reference.hpp"

namespace attnkit {

/// View a row-major Eigen matrix of S rows and H * D columns (one token per row, heads side by
/// side) as a [1, S, H, D] tensor. The matrix must outlive the view.
template <class Derived>
auto view_of(Eigen::PlainObjectBase<Derived>& m, index_t heads) {
  using T = typename Derived::Scalar;
  static_assert(Derived::IsRowMajor, "attnkit::view_of: expected a row-major Eigen matrix (one token per row)");
  const index_t S = m.rows(), HD = m.cols();
  if (heads <= 0 || HD % heads != 0)
    detail::fail("view_of", "heads: expected a positive divisor of the matrix's columns (", HD, "), got ", heads);
  return tensor_view<T>{m.data(), {1, S, heads, HD / heads}, {S * HD, HD, HD / heads, 1}};
}
template <class Derived>
auto view_of(const Eigen::PlainObjectBase<Derived>& m, index_t heads) {
  using T = const typename Derived::Scalar;
  static_assert(Derived::IsRowMajor, "attnkit::view_of: expected a row-major Eigen matrix (one token per row)");
  const index_t S = m.rows(), HD = m.cols();
  if (heads <= 0 || HD % heads != 0)
    detail::fail("view_of", "heads: expected a positive divisor of the matrix's columns (", HD, "), got ", heads);
  return tensor_view<T>{m.data(), {1, S, heads, HD / heads}, {S * HD, HD, HD / heads, 1}};
}

}  // namespace attnkit
