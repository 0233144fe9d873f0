#pragma once
/// @file quant.hpp  Quantized K/V element types and the view that pairs their values with their
/// scales. All three schemes are symmetric (no zero point): x ~= scale * q.
///
///  - `qint8`: int8 per (token, KV head). One fp32 scale per row of D values, s = max|x| / 127,
///    q = round(x / s) in [-127, 127]. The scale folds out of both products: q.k_j = s_j (q . k8_j)
///    and O += (p_j s_j) v8_j, so the kernels' inner loops only widen int8 (no per-element multiply).
///  - `qint4`: int4 in groups of 32 along the head dim, one fp32 scale per group,
///    s = max|x| / 7, q = round(x / s) in [-7, 7]. Stored as llama.cpp's Q4_0 stores its nibbles
///    (without the inline fp16 scale): a group is 16 bytes, byte i holds element i in its low
///    nibble and element i + 16 in its high nibble, each as u = q + 8 (offset binary; u = 0 is
///    -8, which the quantizer never writes). This order decodes with one zero-extending load per
///    group and a mask or a shift per 16 values (no shuffles), and (u - 8) s = fma(u, s, -8 s)
///    exactly. D must be a multiple of 32 (no tail group). fp32 scales (not fp16): 5 bits per
///    value instead of 4.5, no F16C dependency on the scale path, and exactly the scale the
///    quantizer computed.
///  - `qint8_channel`: int8 by channel (KIVI, OpenVINO's key cache): one fp32 scale per channel
///    for each block of `block` consecutive rows of the seq axis, s_c = max_rows |x_c| / 127. Row t
///    of the seq axis (of a strided or packed varlen view, or of a page) uses scale row t / block;
///    in a paged cache the page size must be a multiple of block, so blocks never straddle pages
///    (block = page size: one scale row per page). Meant for K (q . k = (q * s_block) . k8).
///
/// A `quantized<E>` is usable wherever a K or V view is: strided calls, `varlen_kv` and `paged_kv`
/// (whose k_pages / v_pages are then quantized<E> views whose scales are pages too).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "attnkit/core/tensor_view.hpp"

namespace attnkit {

/// int8 value of a per-(token, head) quantized row; see quant.hpp.
struct qint8 {
  std::int8_t bits = 0;
};
/// Two int4 values of a group of 32 (byte i: element i low, element i + 16 high; u = q + 8).
struct qint4 {
  std::uint8_t bits = 0;
};
/// int8 value of a by-channel quantized block of rows.
struct qint8_channel {
  std::int8_t bits = 0;
};
static_assert(sizeof(qint8) == 1 && sizeof(qint4) == 1 && sizeof(qint8_channel) == 1);

/// The quantized element types (K and V only; Q stays float or bf16).
template <class T>
concept quantized_type = std::is_same_v<T, qint8> || std::is_same_v<T, qint4> || std::is_same_v<T, qint8_channel>;

/// What each scheme stores, as the views and kernels need it.
template <class E>
struct quant_traits;
template <>
struct quant_traits<qint8> {
  static constexpr index_t per_byte = 1;   ///< values per stored element
  static constexpr index_t group = 0;      ///< values per scale along D (0: the whole row)
  static constexpr bool by_channel = false;
  static constexpr int qmax = 127;
  static constexpr const char* name = "qint8";
};
template <>
struct quant_traits<qint4> {
  static constexpr index_t per_byte = 2;
  static constexpr index_t group = 32;
  static constexpr bool by_channel = false;
  static constexpr int qmax = 7;
  static constexpr const char* name = "qint4";
};
template <>
struct quant_traits<qint8_channel> {
  static constexpr index_t per_byte = 1;
  static constexpr index_t group = 1;
  static constexpr bool by_channel = true;
  static constexpr int qmax = 127;
  static constexpr const char* name = "qint8_channel";
};

/// Integer value c of a quantized row (stored elements at p).
template <class E>
inline int quant_value(const E* p, index_t c) noexcept {
  if constexpr (std::is_same_v<E, qint4>) {
    const index_t j = c % 32;
    const unsigned b = p[c / 32 * 16 + (j & 15)].bits;
    return static_cast<int>(j < 16 ? (b & 15u) : (b >> 4)) - 8;
  } else {
    return p[c].bits;
  }
}

/// A quantized K or V: values plus scales, each a strided view. `E` may be const-qualified
/// (read-only, as attention calls take it); a view of E converts to a view of const E.
///   qint8:          values {B, S, H, D},     scales {B, S, H, 1}
///   qint4:          values {B, S, H, D / 2}, scales {B, S, H, D / 32}   (values' dim counts bytes)
///   qint8_channel:  values {B, S, H, D},     scales {B, ceil(S / block), H, D}
/// For a paged cache B is the page count and S the page size (scales: pages of their own rows).
template <class E>
struct quantized {
  using element_type = E;
  using value_type = std::remove_cv_t<E>;
  using scale_type = std::conditional_t<std::is_const_v<E>, const float, float>;
  using traits = quant_traits<value_type>;
  static_assert(quantized_type<value_type>, "attnkit::quantized<E>: E must be qint8, qint4 or qint8_channel");

  tensor_view<E> values;
  tensor_view<scale_type> scales;
  index_t block = 1;  ///< qint8_channel: rows of the seq axis per scale row (ignored otherwise)

  constexpr quantized() = default;
  constexpr quantized(tensor_view<E> v, tensor_view<scale_type> s, index_t blk = 1) noexcept
      : values(v), scales(s), block(blk) {}
  template <class U>
    requires(!std::is_same_v<U, E> && std::is_same_v<const U, E>)
  constexpr quantized(const quantized<U>& o) noexcept : values(o.values), scales(o.scales), block(o.block) {}

  constexpr index_t batch() const noexcept { return values.batch(); }
  constexpr index_t seq() const noexcept { return values.seq(); }
  constexpr index_t heads() const noexcept { return values.heads(); }
  /// Logical head dim (values per row).
  constexpr index_t dim() const noexcept { return values.dim() * traits::per_byte; }

  /// Pointer to the scales of row (b, s, h): one float (qint8), D / 32 (qint4) or D (by channel,
  /// the row's block).
  constexpr scale_type* scale_row(index_t b, index_t s, index_t h) const noexcept {
    return scales.row(b, traits::by_channel ? s / block : s, h);
  }
  /// The dequantized value of element (b, s, h, c), as the kernels compute it in fp32.
  float operator()(index_t b, index_t s, index_t h, index_t c) const noexcept {
    const float q = static_cast<float>(quant_value(values.row(b, s, h), c));
    const scale_type* sr = scale_row(b, s, h);
    if constexpr (traits::group == 0) return q * sr[0];
    else return q * sr[c / traits::group];
  }
};

namespace detail {
template <class T>
struct kv_view_of {
  using type = tensor_view<T>;
};
template <class T>
  requires quantized_type<std::remove_cv_t<T>>
struct kv_view_of<T> {
  using type = quantized<T>;
};
/// The element type of a K / V view (tensor_view<T> or quantized<T>): T.
template <class K>
struct kv_elem;
template <class T>
struct kv_elem<tensor_view<T>> {
  using type = T;
};
template <class E>
struct kv_elem<quantized<E>> {
  using type = E;
};
template <class K>
using kv_elem_t = typename kv_elem<std::remove_cvref_t<K>>::type;
/// What strided calls take as K and V: a tensor_view or a quantized view.
template <class K>
concept kv_operand = requires { typename kv_elem<std::remove_cvref_t<K>>::type; };
}  // namespace detail

/// The view type K or V of element type T takes: tensor_view<T>, or quantized<T> for the
/// quantized types (paged_kv and varlen_kv hold these).
template <class T>
using kv_view_t = typename detail::kv_view_of<T>::type;

}  // namespace attnkit
