#pragma once
/// @file eigen.hpp  Optional Eigen interop: views over Eigen matrices and the fp64 reference.
#include <Eigen/Core>

#include "attnkit/attnkit.hpp"
#include "attnkit/ref/reference.hpp"

namespace attnkit {

/// View a row-major Eigen matrix of S rows and H * D columns (one token per row, heads side by
/// side) as a [1, S, H, D] tensor: a Matrix, a Map or a Ref / Block with direct access (rows may
/// be padded: the outer stride becomes the token stride). The matrix must outlive the view; a
/// const matrix gives a view of const elements.
template <class M>
  requires requires(M& m) { m.data(); m.outerStride(); m.innerStride(); }
auto view_of(M& m, index_t heads) {
  using Base = std::remove_cv_t<M>;
  using T = std::remove_reference_t<decltype(*m.data())>;
  static_assert(Base::IsRowMajor, "attnkit::view_of: expected a row-major Eigen matrix (one token per row)");
  const index_t S = m.rows(), HD = m.cols();
  if (heads <= 0 || HD % heads != 0)
    detail::fail("view_of", "heads: expected a positive divisor of the matrix's columns (", HD, "), got ", heads);
  if (m.innerStride() != 1) detail::fail("view_of", "m: expected inner stride 1, got ", index_t(m.innerStride()));
  const index_t ld = m.outerStride();
  return tensor_view<T>{m.data(), {1, S, heads, HD / heads}, {S * ld, ld, HD / heads, 1}};
}

}  // namespace attnkit
