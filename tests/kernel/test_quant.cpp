// Quantized KV caches (core/quant.hpp): qint8 (per token and head), qint4 (groups of 32) and
// qint8_channel (by channel per block of rows) against the fp64 reference run on the DEQUANTIZED
// K/V, by the 2x-naive criterion (the naive fp32 implementation also runs on the dequantized
// values); decode and prefill shapes, strided and paged, mixed Q / K / V types, several policies;
// NaN scales in masked slots never reach the output; the quantizing append helpers round-trip
// within half a quantization step and reject bad input with named errors, writing nothing. The
// error against the unquantized fp32 inputs is reported (not asserted): QuantError lines.
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>

#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using namespace attnkit::test;
using Arch = ATTNKIT_TEST_ARCH;

template <class E>
constexpr index_t per_byte = quant_traits<E>::per_byte;

// A quantized tensor [B, S, H, D] (values and scales owned) in one of the test layouts; padding
// (cache capacity) holds garbage values and NaN scales, so a kernel reading outside the view
// poisons its result.
template <class E>
struct qtensor {
  std::vector<E> vals;
  std::vector<float> sc;
  quantized<E> view;
  quantized<const E> cview() const { return view; }
};

template <class E>
qtensor<E> make_qtensor(index_t B, index_t S, index_t H, index_t D, layout l, index_t block = 1) {
  using Tr = quant_traits<E>;
  qtensor<E> t;
  const index_t Dp = D / Tr::per_byte, nd = Tr::group == 0 ? 1 : D / Tr::group;
  const index_t Ss = Tr::by_channel ? (S + block - 1) / block : S;
  const index_t cap = l == layout::cache ? S + 5 : S, caps = l == layout::cache ? Ss + 2 : Ss;
  t.vals.assign(static_cast<std::size_t>(std::max<index_t>(B * cap * H * Dp, 1)), E{static_cast<decltype(E{}.bits)>(0x77)});
  t.sc.assign(static_cast<std::size_t>(std::max<index_t>(B * caps * H * nd, 1)), nan_f);
  switch (l) {
    case layout::bshd:
      t.view = {bshd(t.vals.data(), B, S, H, Dp), bshd(t.sc.data(), B, Ss, H, nd), block};
      break;
    case layout::bhsd:
      t.view = {bhsd(t.vals.data(), B, H, S, Dp), bhsd(t.sc.data(), B, H, Ss, nd), block};
      break;
    case layout::cache:
      t.view = {tensor_view<E>{t.vals.data(), {B, S, H, Dp}, {H * cap * Dp, Dp, cap * Dp, 1}},
                tensor_view<float>{t.sc.data(), {B, Ss, H, nd}, {H * caps * nd, nd, caps * nd, 1}}, block};
      break;
  }
  return t;
}

// The dequantized values as an fp32 tensor (what the reference runs on).
template <class E>
tensor<float> dequantized(const quantized<const E>& q) {
  tensor<float> t;
  const index_t B = q.batch(), S = q.seq(), H = q.heads(), D = q.dim();
  t.buf.assign(static_cast<std::size_t>(std::max<index_t>(B * S * H * D, 1)), 0.f);
  t.view = bshd(t.buf.data(), B, S, H, D);
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s)
      for (index_t h = 0; h < H; ++h)
        for (index_t c = 0; c < D; ++c) t.view(b, s, h, c) = q(b, s, h, c);
  return t;
}

// Largest error of each scheme against the unquantized inputs, printed (not asserted) at the end
// of the tests that measure it: QuantError lines.
std::map<std::string, double>& unquantized_error() {
  static std::map<std::string, double> m;
  return m;
}
void report_unquantized_error() {
  for (const auto& [k, e] : unquantized_error())
    std::printf("QuantError %s: max |O - O(unquantized fp32 K/V, fp64)| = %.3g\n", k.c_str(), e);
  unquantized_error().clear();
}

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, float>) return "f32";
  else if constexpr (std::is_same_v<T, bf16>) return "bf16";
  else if constexpr (std::is_same_v<T, fp16>) return "fp16";
  else return quant_traits<T>::name;
}

// K of type TK, V of type TV (float / bf16 / fp16 or quantized), Q of type TQ.
template <class T>
struct kv_operand_of {
  tensor<T> t;
  tensor<float> deq;
  auto view() const { return t.cview(); }
};
template <class T>
  requires quantized_type<T>
struct kv_operand_of<T> {
  qtensor<T> t;
  tensor<float> deq;
  auto view() const { return t.cview(); }
};

template <class T>
kv_operand_of<T> make_kv(const tensor<float>& src, layout l, index_t block) {
  const auto& s = src.view;
  kv_operand_of<T> r;
  if constexpr (quantized_type<T>) {
    r.t = make_qtensor<T>(s.batch(), s.seq(), s.heads(), s.dim(), l, block);
    // Quantize through the public helper (a second, unused cache takes the same rows as V).
    auto spare = make_qtensor<qint8>(s.batch(), s.seq(), s.heads(), s.dim(), layout::bshd);
    append_kv(r.t.view, spare.view, 0, src.cview(), src.cview());
    r.deq = dequantized<T>(r.t.cview());
  } else {
    r.t = make_tensor<T>(s.batch(), s.seq(), s.heads(), s.dim(), l, 0);
    for (index_t b = 0; b < s.batch(); ++b)
      for (index_t j = 0; j < s.seq(); ++j)
        for (index_t h = 0; h < s.heads(); ++h)
          for (index_t c = 0; c < s.dim(); ++c) r.t.view(b, j, h, c) = from_float<T>(s(b, j, h, c));
    r.deq = make_tensor<float>(s.batch(), s.seq(), s.heads(), s.dim(), layout::bshd, 0);
    for (index_t b = 0; b < s.batch(); ++b)
      for (index_t j = 0; j < s.seq(); ++j)
        for (index_t h = 0; h < s.heads(); ++h)
          for (index_t c = 0; c < s.dim(); ++c) r.deq.view(b, j, h, c) = to_float(r.t.view(b, j, h, c));
  }
  return r;
}

// flash_attention with quantized K and / or V vs the fp64 reference on the dequantized values.
// `poison`: NaN planted in the scales (or values) of key 0, which the policies must mask.
template <class TQ, class TK, class TV, class... P>
void check_quant(const shape& s, index_t block, bool poison, const P&... p) {
  SCOPED_TRACE(s.str() + " q=" + type_name<TQ>() + " k=" + type_name<TK>() + " v=" + type_name<TV>() +
               " block=" + std::to_string(block));
  const problem<float> pr(s, 11);
  auto q = make_tensor<TQ>(s.B, s.Sq, s.Hq, s.Dk, layout::bshd, 0);
  for (index_t b = 0; b < s.B; ++b)
    for (index_t i = 0; i < s.Sq; ++i)
      for (index_t h = 0; h < s.Hq; ++h)
        for (index_t c = 0; c < s.Dk; ++c) q.view(b, i, h, c) = from_float<TQ>(pr.q.view(b, i, h, c));
  auto k = make_kv<TK>(pr.k, s.lay, block);
  auto v = make_kv<TV>(pr.v, s.lay, block);
  if (poison && s.Sk > 0) {  // (by channel: channel 0 of key 0's whole block)
    if constexpr (quantized_type<TK>) {
      k.t.view.scale_row(0, 0, 0)[0] = nan_f;
      k.deq = dequantized<TK>(k.t.cview());
    }
    if constexpr (quantized_type<TV>) {
      v.t.view.scale_row(0, 0, 0)[0] = std::numeric_limits<float>::infinity();
      v.deq = dequantized<TV>(v.t.cview());
    }
  }
  const auto ref = ref::attention<double>(q.cview(), k.deq.cview(), v.deq.cview(), p...);
  const auto naive = ref::attention<float>(q.cview(), k.deq.cview(), v.deq.cview(), p...);
  output out(s);
  using N = decltype(resolve_args(p...).norm);
  if constexpr (N::has_lse) {
    flash_attention<Arch>(q.cview(), k.view(), v.view(), out.view, p..., lse_out{out.lse.data()});
    expect_accurate(out.lse_used(s), ref.lse, naive.lse, "LSE");
  } else {
    flash_attention<Arch>(q.cview(), k.view(), v.view(), out.view, p...);
  }
  expect_accurate(out.o_used(s), ref.o, naive.o, "O");
  if (!poison && (quantized_type<TK> || quantized_type<TV>)) {
    const auto unq = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), p...);
    auto& e = unquantized_error()[std::string("k=") + type_name<TK>() + " v=" + type_name<TV>()];
    e = std::max(e, max_abs_diff(out.o_used(s), unq.o));
  }
}

// The decode kernels' products on quantized rows (dot_rows / axpy_rows with kv_rows: the
// dequantizing register loads of every arch, the scalar backend's included) against the same
// sums over the dequantized values, from a row that is not the first of its by-channel block;
// Skip0 skips a NaN scale under a zero weight.
template <class E>
void check_row_kernels(index_t D, index_t block) {
  SCOPED_TRACE(std::string(type_name<E>()) + " D=" + std::to_string(D));
  const index_t L = 70, j0 = 5, nk = 50, R = 5;
  auto src = make_tensor<float>(1, L, 1, D, layout::bshd, 31);
  auto qt = make_qtensor<E>(1, L, 1, D, layout::bshd, block);
  auto spare = make_qtensor<qint8>(1, L, 1, D, layout::bshd);
  append_kv(qt.view, spare.view, 0, src.cview(), src.cview());
  const auto v = qt.cview();
  const index_t blk = quant_traits<E>::by_channel ? block : 1;
  const simd::kv_rows<E> rows{v.values.row(0, j0, 0), v.values.strides[1],
                              simd::scale_rows{v.scale_row(0, j0, 0), v.scales.strides[1], blk, j0 % blk}};
  auto q = make_tensor<float>(1, R, 1, D, layout::bshd, 32);
  std::vector<float> st(nk * R, 0.f);
  simd::dot_rows<Arch>(R, nk, D, q.buf.data(), D, rows, st.data(), R);
  for (index_t j = 0; j < nk; ++j)
    for (index_t r = 0; r < R; ++r) {
      double e = 0, m = 0;
      for (index_t c = 0; c < D; ++c) {
        e += double(q.view(0, r, 0, c)) * v(0, j0 + j, 0, c);
        m += std::abs(double(q.view(0, r, 0, c)) * v(0, j0 + j, 0, c));
      }
      ASSERT_NEAR(st[j * R + r], e, 1e-5 * m + 1e-30) << "dot j=" << j << " r=" << r;
    }
  std::vector<float> o(R * D, 0.5f), alpha(R, 0.25f);
  simd::axpy_rows<Arch>(R, nk, D, st.data(), R, rows, o.data(), D, alpha.data());
  for (index_t r = 0; r < R; ++r)
    for (index_t c = 0; c < D; ++c) {
      double e = 0.125, m = 0.125;
      for (index_t j = 0; j < nk; ++j) {
        e += double(st[j * R + r]) * v(0, j0 + j, 0, c);
        m += std::abs(double(st[j * R + r]) * v(0, j0 + j, 0, c));
      }
      ASSERT_NEAR(o[r * D + c], e, 1e-5 * m) << "axpy r=" << r << " c=" << c;
    }
  if constexpr (!quant_traits<E>::by_channel) {  // a NaN scale under zero weights: skipped
    qt.view.scale_row(0, j0 + 3, 0)[0] = nan_f;
    for (index_t r = 0; r < R; ++r) st[3 * R + r] = 0.f;
    std::vector<float> o2(R * D, 0.f);
    simd::axpy_rows<Arch, true>(R, nk, D, st.data(), R, rows, o2.data(), D, nullptr);
    for (float x : o2) ASSERT_TRUE(std::isfinite(x));
  }
}

TEST(Quant, RowKernelsDequantizeInRegisters) {
  ATTNKIT_REQUIRE_ARCH();
  for (index_t d : {1, 31, 33, 64, 128}) {
    check_row_kernels<qint8>(d, 1);
    check_row_kernels<qint8_channel>(d, 16);
  }
  for (index_t d : {32, 64, 96, 256}) check_row_kernels<qint4>(d, 1);
}

const std::vector<std::pair<index_t, index_t>> gqa = {{2, 2}, {8, 2}, {8, 1}};  // g = 1, 4, 8

TEST(Quant, DecodeShapes) {
  ATTNKIT_REQUIRE_ARCH();
  for (index_t sq : {1, 4})
    for (index_t sk : {0, 1, 7, 63, 65, 1000})
      for (auto [hq, hkv] : gqa) {
        const shape s = make_shape(sq, sk, hq, hkv, 64);
        check_quant<float, qint8, qint8>(s, 1, false, causal{});
        check_quant<float, qint4, qint4>(s, 1, false, causal{});
        check_quant<float, qint8_channel, qint8>(s, 16, false, causal{});
      }
  for (index_t d : {1, 31, 33, 64, 128, 256}) {
    const shape s = make_shape(1, 300, 8, 2, d, d % 2 ? layout::bshd : layout::bhsd);
    check_quant<float, qint8, qint8>(s, 1, false, causal{});
    check_quant<float, qint8_channel, qint8>(s, 32, false, causal{});
    if (d % 32 == 0) check_quant<float, qint4, qint4>(s, 1, false, causal{});
  }
  report_unquantized_error();
}

TEST(Quant, MixedTypes) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = make_shape(1, 500, 8, 2, 64);
  check_quant<bf16, qint8, qint8>(s, 1, false, causal{});
  check_quant<bf16, qint4, qint8>(s, 1, false, causal{});
  check_quant<float, qint8_channel, qint4>(s, 64, false, causal{});
  check_quant<bf16, bf16, qint8>(s, 1, false, causal{});
  check_quant<float, qint8, fp16>(s, 1, false, causal{});
  check_quant<float, float, qint4>(s, 1, false, causal{});
  check_quant<float, qint8, float>(s, 1, false, causal{});
  shape m = s;
  m.Dv = 32;  // Dk != Dv
  check_quant<float, qint8, qint4>(m, 1, false, causal{});
  report_unquantized_error();
}

TEST(Quant, Policies) {
  ATTNKIT_REQUIRE_ARCH();
  const float sinks[8] = {0.5f, -1.f, 2.f, 0.f, 3.f, -2.f, 1.f, 4.f};
  const std::vector<float> slopes = alibi::standard_slopes(8);
  for (index_t sq : {1, 4, 64}) {  // 64: g x Sq > 16, the prefill engine
    const shape s = make_shape(sq, 700, 8, 2, 64);
    check_quant<float, qint8, qint8>(s, 1, false, sliding_window::from_total(200) & causal{});
    check_quant<float, qint4, qint4>(s, 1, false, softmax_with_sink{sinks}, causal{});
    check_quant<float, qint8_channel, qint8>(s, 16, false, alibi{slopes}, causal{});
    check_quant<bf16, qint8, qint4>(s, 1, false, (sink_tokens{4} | sliding_window::from_total(128)) & causal{});
    check_quant<float, qint8, qint8>(s, 1, false, sigmoid{-2.f}, causal{});
  }
  report_unquantized_error();
}

// The other entry points take quantized views too: dense (probabilities), the named primitives,
// plan_of and the workspace query.
TEST(Quant, DenseAndPrimitives) {
  ATTNKIT_REQUIRE_ARCH();
  const shape s = make_shape(4, 200, 8, 2, 64);
  const problem<float> pr(s, 3);
  auto k = make_kv<qint8>(pr.k, s.lay, 1);
  auto v = make_kv<qint4>(pr.v, s.lay, 1);
  const auto q = pr.q.cview();
  auto expect = [&](auto&& run, const auto&... p) {
    const auto ref = ref::attention<double>(q, k.deq.cview(), v.deq.cview(), p...);
    const auto naive = ref::attention<float>(q, k.deq.cview(), v.deq.cview(), p...);
    output out(s);
    run(out.view);
    expect_accurate(out.o_used(s), ref.o, naive.o, "O");
  };
  std::vector<float> probs(s.Hq * s.Sq * s.Sk);
  expect([&](auto o) { dense_attention<Arch>(q, k.view(), v.view(), o, causal{}, probs_out{probs.data()}); }, causal{});
  const auto w = sliding_window::from_total(50);
  expect([&](auto o) { sliding_window_attention<Arch>(q, k.view(), v.view(), o, w, causal{}); }, w & causal{});
  expect([&](auto o) { sink_attention<Arch>(q, k.view(), v.view(), o, attention_sinks{.tokens = 4, .window = 64}); },
         streaming_mask(4, 64));
  output out(s);
  EXPECT_EQ(plan_of<Arch>(q, k.view(), v.view(), out.view).kind, engine::decode);
  EXPECT_GT(flash_workspace_bytes<Arch>(q, k.view(), v.view(), out.view), 0);
}

TEST(Quant, Prefill) {
  ATTNKIT_REQUIRE_ARCH();
  for (index_t d : {33, 64, 128}) {
    shape s = make_shape(100, 300, 4, 2, d, layout::bshd);
    check_quant<float, qint8, qint8>(s, 1, false, causal{});
    check_quant<bf16, qint8_channel, qint8>(s, 16, false, causal{});
    if (d % 32 == 0) check_quant<float, qint4, qint4>(s, 1, false);
  }
  report_unquantized_error();
}

// Key 0's scales are NaN (K) and Inf (V) (by channel: channel 0 of keys 0..15): every policy
// here masks keys 0..15 for every query, so the result must be finite and match the reference,
// which never reads them either. Masked keys in visited (partial) tiles and in skipped ones.
TEST(Quant, MaskedNonFiniteScalesContributeNothing) {
  ATTNKIT_REQUIRE_ARCH();
  const auto past15 = mask_fn{[](index_t, index_t, index_t, index_t j) { return j >= 16; }};
  for (index_t sq : {1, 4, 24})
    for (index_t sk : {60, 100, 1000}) {
      const shape s = make_shape(sq, sk, 8, 2, 64);
      const auto win = sliding_window::from_total(std::min<index_t>(sk - sq - 15, 40)) & causal{};
      check_quant<float, qint8, qint8>(s, 1, true, win);
      check_quant<float, qint4, qint4>(s, 1, true, win);
      check_quant<float, qint8_channel, qint8>(s, 16, true, win);
      check_quant<float, qint8, qint8>(s, 1, true, past15);
      check_quant<float, qint8_channel, qint4>(s, 16, true, past15);
    }
}

// A paged quantized cache filled by store_paged_kv (shuffled pages, unused pages and rows hold
// garbage values and NaN scales), each sequence against the fp64 reference on its dequantized K/V.
template <class EK, class EV, class... P>
void check_paged(index_t page, index_t block, index_t hq, const P&... pol) {
  const index_t hkv = 2, D = 64;
  const std::vector<index_t> lens = {1, 70, 300};
  const std::vector<index_t> nq = {1, 1, 4};
  SCOPED_TRACE(std::string("paged k=") + type_name<EK>() + " v=" + type_name<EV>() + " page=" + std::to_string(page));
  index_t pages = 3, max_pages = 1;
  for (index_t l : lens) pages += (l + page - 1) / page, max_pages = std::max(max_pages, (l + page - 1) / page);
  auto kp = make_qtensor<EK>(pages, page, hkv, D, layout::bshd, block);
  auto vp = make_qtensor<EV>(pages, page, hkv, D, layout::bshd, block);
  std::vector<std::int32_t> ids(pages);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(5));
  std::vector<std::int32_t> table(lens.size() * max_pages, -1), lengths;
  std::vector<tensor<float>> ks, vs, qs;
  index_t next = 0, total_q = 0;
  for (std::size_t b = 0; b < lens.size(); ++b) {
    const index_t L = lens[b];
    ks.push_back(make_tensor<float>(1, L, hkv, D, layout::bshd, 100 + b));
    vs.push_back(make_tensor<float>(1, L, hkv, D, layout::bshd, 200 + b));
    std::vector<std::int64_t> slots(L);
    for (index_t t = 0; t < L; ++t) {
      if (t % page == 0) table[b * max_pages + t / page] = ids[next++];
      slots[t] = table[b * max_pages + t / page] * page + t % page;
    }
    store_paged_kv(kp.view, vp.view, slots, ks.back().cview(), vs.back().cview());
    lengths.push_back(static_cast<std::int32_t>(L));
    total_q += nq[b];
  }
  // q [B, Sq, Hq, D] strided: every sequence has the same Sq; use varlen for the ragged queries.
  auto qall = make_tensor<float>(1, total_q, hq, D, layout::bshd, 300);
  std::vector<std::int32_t> qstart = {0};
  for (index_t n : nq) qstart.push_back(qstart.back() + static_cast<std::int32_t>(n));
  std::vector<float> o(total_q * hq * D, 1234.f);
  const paged_kv<const EK, const EV> kv{kp.cview(), vp.cview(), table, max_pages, lengths};
  flash_attention<Arch>(varlen<const float>{qall.cview(), qstart}, kv, bshd(o.data(), 1, total_q, hq, D), pol...);
  for (std::size_t b = 0; b < lens.size(); ++b) {
    SCOPED_TRACE("sequence " + std::to_string(b));
    // This sequence's dequantized K/V, read back through the page table.
    tensor<float> kd = make_tensor<float>(1, lens[b], hkv, D, layout::bshd, 0), vd = kd;
    vd.view.data = vd.buf.data();
    for (index_t t = 0; t < lens[b]; ++t)
      for (index_t h = 0; h < hkv; ++h)
        for (index_t c = 0; c < D; ++c) {
          const index_t pg = table[b * max_pages + t / page];
          kd.view(0, t, h, c) = kp.cview()(pg, t % page, h, c);
          vd.view(0, t, h, c) = vp.cview()(pg, t % page, h, c);
        }
    const tensor_view<const float> qb{qall.buf.data() + qstart[b] * hq * D, {1, nq[b], hq, D}, {nq[b] * hq * D, hq * D, D, 1}};
    const auto ref = ref::attention<double>(qb, kd.cview(), vd.cview(), pol...);
    const auto naive = ref::attention<float>(qb, kd.cview(), vd.cview(), pol...);
    const std::vector<float> got(o.begin() + qstart[b] * hq * D, o.begin() + qstart[b + 1] * hq * D);
    expect_accurate(got, ref.o, naive.o, "O");
  }
}

TEST(Quant, Paged) {
  ATTNKIT_REQUIRE_ARCH();
  check_paged<qint8, qint8>(16, 1, 8, causal{});
  check_paged<qint4, qint4>(16, 1, 2, causal{});
  check_paged<qint8_channel, qint8>(16, 16, 8, causal{});
  check_paged<qint8_channel, qint4>(128, 32, 8, sliding_window::from_total(50) & causal{});
  check_paged<qint8, qint8_channel>(32, 8, 4, causal{});
}

// Ragged keys (varlen_kv) in one packed quantized tensor: each sequence against the reference on
// its own dequantized rows (by-channel blocks are over the packed rows and may straddle sequences).
TEST(Quant, Varlen) {
  ATTNKIT_REQUIRE_ARCH();
  const index_t hq = 8, hkv = 2, D = 64;
  const std::vector<std::int32_t> ks = {0, 37, 37, 300}, qs = {0, 1, 2, 6};  // sequence 1 has no keys
  const index_t total = ks.back();
  auto src_k = make_tensor<float>(1, total, hkv, D, layout::bshd, 41), src_v = make_tensor<float>(1, total, hkv, D, layout::bshd, 42);
  auto kq = make_qtensor<qint8_channel>(1, total, hkv, D, layout::bshd, 16);
  auto vq = make_qtensor<qint4>(1, total, hkv, D, layout::bshd);
  append_kv(kq.view, vq.view, 0, src_k.cview(), src_v.cview());
  auto q = make_tensor<float>(1, qs.back(), hq, D, layout::bshd, 43);
  std::vector<float> o(qs.back() * hq * D, 1234.f);
  flash_attention<Arch>(varlen<const float>{q.cview(), qs}, varlen_kv<const qint8_channel, const qint4>{kq.cview(), vq.cview(), ks},
                        bshd(o.data(), 1, qs.back(), hq, D), causal{});
  const auto kd = dequantized<qint8_channel>(kq.cview()), vd = dequantized<qint4>(vq.cview());
  for (std::size_t b = 0; b + 1 < ks.size(); ++b) {
    SCOPED_TRACE("sequence " + std::to_string(b));
    const index_t n = ks[b + 1] - ks[b], m = qs[b + 1] - qs[b];
    const tensor_view<const float> kb{kd.buf.data() + ks[b] * hkv * D, {1, n, hkv, D}, kd.view.strides};
    const tensor_view<const float> vb{vd.buf.data() + ks[b] * hkv * D, {1, n, hkv, D}, vd.view.strides};
    const tensor_view<const float> qb{q.buf.data() + qs[b] * hq * D, {1, m, hq, D}, q.view.strides};
    const auto ref = ref::attention<double>(qb, kb, vb, causal{});
    const auto naive = ref::attention<float>(qb, kb, vb, causal{});
    const std::vector<float> got(o.begin() + qs[b] * hq * D, o.begin() + qs[b + 1] * hq * D);
    expect_accurate(got, ref.o, naive.o, "O");
  }
}

TEST(Quant, StridedMatchesPagedBitwise) {
  ATTNKIT_REQUIRE_ARCH();
  // A strided qint8 cache and the same rows in pages of 64 (tiles = pages): bitwise equal.
  const index_t L = 256, H = 2, D = 64, Hq = 8;
  auto src = make_tensor<float>(1, L, H, D, layout::bshd, 9);
  auto ks = make_qtensor<qint8>(1, L, H, D, layout::bshd), vs = make_qtensor<qint8>(1, L, H, D, layout::bshd);
  append_kv(ks.view, vs.view, 0, src.cview(), src.cview());
  auto kp = make_qtensor<qint8>(4, 64, H, D, layout::bshd), vp = make_qtensor<qint8>(4, 64, H, D, layout::bshd);
  std::vector<std::int64_t> slots(L);
  const std::vector<std::int32_t> table = {2, 0, 3, 1}, lengths = {static_cast<std::int32_t>(L)};
  for (index_t t = 0; t < L; ++t) slots[t] = table[t / 64] * 64 + t % 64;
  store_paged_kv(kp.view, vp.view, slots, src.cview(), src.cview());
  auto q = make_tensor<float>(1, 1, Hq, D, layout::bshd, 10);
  std::vector<float> o1(Hq * D), o2(Hq * D);
  flash_attention<Arch>(q.cview(), ks.cview(), vs.cview(), bshd(o1.data(), 1, 1, Hq, D), causal{});
  flash_attention<Arch>(q.cview(), paged_kv<const qint8>{kp.cview(), vp.cview(), table, 4, lengths},
                        bshd(o2.data(), 1, 1, Hq, D), causal{});
  EXPECT_EQ(o1, o2);
}

// Quantize then dequantize: every value within half a step (scale / 2) of the input, plus float
// rounding; an all-zero row gets scale 0 and dequantizes to exactly 0.
TEST(Quant, AppendRoundTrip) {
  const index_t B = 2, S = 40, H = 3, D = 64;
  auto x = make_tensor<float>(B, S, H, D, layout::bshd, 21, 3.f);
  for (index_t c = 0; c < D; ++c) x.view(1, 5, 2, c) = 0.f;
  auto xb = make_tensor<bf16>(B, S, H, D, layout::bshd, 22);
  auto check = [&](auto& qt, const auto& src, index_t block, const char* what) {
    SCOPED_TRACE(what);
    const auto v = qt.cview();
    for (index_t b = 0; b < B; ++b)
      for (index_t s = 0; s < S; ++s)
        for (index_t h = 0; h < H; ++h)
          for (index_t c = 0; c < D; ++c) {
            using E = typename std::remove_cvref_t<decltype(qt.view)>::value_type;
            using Tr = quant_traits<E>;
            float m = 0.f;  // the max |x| the scale was computed from
            if constexpr (Tr::by_channel) {
              for (index_t t = s / block * block; t < std::min(S, s / block * block + block); ++t)
                m = std::max(m, std::abs(to_float(src.view(b, t, h, c))));
            } else {
              const index_t g = Tr::group == 0 ? D : Tr::group;
              for (index_t cc = c / g * g; cc < c / g * g + g; ++cc) m = std::max(m, std::abs(to_float(src.view(b, s, h, cc))));
            }
            const float step = m / Tr::qmax, x0 = to_float(src.view(b, s, h, c));
            ASSERT_LE(std::abs(v(b, s, h, c) - x0), 0.5f * step * (1 + 1e-5f) + 1e-30f)
                << b << " " << s << " " << h << " " << c;
            if (m == 0.f) {
              ASSERT_EQ(v(b, s, h, c), 0.f);
            }
          }
  };
  auto k8 = make_qtensor<qint8>(B, S, H, D, layout::cache);
  auto v4 = make_qtensor<qint4>(B, S, H, D, layout::cache);
  EXPECT_EQ(append_kv(k8.view, v4.view, 0, x.cview(), x.cview()), S);
  check(k8, x, 1, "qint8");
  check(v4, x, 1, "qint4");
  auto kc = make_qtensor<qint8_channel>(B, S, H, D, layout::bhsd, 16);
  auto vb = make_qtensor<qint8>(B, S, H, D, layout::bhsd);
  append_kv(kc.view, vb.view, 0, x.cview(), xb.cview());  // fp32 K, bf16 V
  check(kc, x, 16, "qint8_channel");
  check(vb, xb, 1, "qint8 from bf16");
  // Appending in steps: rows [0, 16) then [16, 40) give the same cache as one call.
  auto kc2 = make_qtensor<qint8_channel>(B, S, H, D, layout::bhsd, 16);
  auto vb2 = make_qtensor<qint8>(B, S, H, D, layout::bhsd);
  const tensor_view<const float> x1{x.buf.data(), {B, 16, H, D}, x.view.strides};
  const tensor_view<const float> x2{x.buf.data() + 16 * H * D, {B, S - 16, H, D}, x.view.strides};
  const tensor_view<const bf16> y1{xb.buf.data(), {B, 16, H, D}, xb.view.strides};
  const tensor_view<const bf16> y2{xb.buf.data() + 16 * H * D, {B, S - 16, H, D}, xb.view.strides};
  EXPECT_EQ(append_kv(kc2.view, vb2.view, 0, x1, y1), 16);
  EXPECT_EQ(append_kv(kc2.view, vb2.view, 16, x2, y2), S);
  for (index_t i = 0; i < static_cast<index_t>(kc.vals.size()); ++i) ASSERT_EQ(kc.vals[i].bits, kc2.vals[i].bits);
  for (index_t i = 0; i < static_cast<index_t>(vb.vals.size()); ++i) ASSERT_EQ(vb.vals[i].bits, vb2.vals[i].bits);
}

template <class E>
std::vector<std::uint8_t> bytes_of(const qtensor<E>& t) {
  std::vector<std::uint8_t> r(t.vals.size() + t.sc.size() * 4);
  std::memcpy(r.data(), t.vals.data(), t.vals.size());
  std::memcpy(r.data() + t.vals.size(), t.sc.data(), t.sc.size() * 4);
  return r;
}

TEST(Quant, BadInputNamedAndNothingWritten) {
  const index_t S = 32, H = 2, D = 64;
  auto x = make_tensor<float>(1, 8, H, D, layout::bshd, 1);
  auto k = make_qtensor<qint8>(1, S, H, D, layout::bshd);
  auto kc = make_qtensor<qint8_channel>(1, S, H, D, layout::bshd, 16);
  auto v = make_qtensor<qint4>(1, S, H, D, layout::bshd);
  const auto k0 = bytes_of(k), kc0 = bytes_of(kc), v0 = bytes_of(v);
  auto unchanged = [&] {
    EXPECT_EQ(bytes_of(k), k0);
    EXPECT_EQ(bytes_of(kc), kc0);
    EXPECT_EQ(bytes_of(v), v0);
  };
  auto bad = x;
  bad.view.data = bad.buf.data();
  bad.view(0, 3, 1, 7) = nan_f;
  expect_error([&] { append_kv(k.view, v.view, 0, x.cview(), bad.cview()); }, "append_kv: v_new: expected finite values for a quantized cache");
  expect_error([&] { append_kv(kc.view, v.view, 8, x.cview(), x.cview()); }, "at: expected a multiple of k_cache.block = 16");
  auto wrong_scales = k;
  wrong_scales.view.scales.extents[3] = 2;
  expect_error([&] { append_kv(wrong_scales.view, v.view, 0, x.cview(), x.cview()); }, "k_cache.scales: expected {1, 32, 2, 1}");
  auto wrong4 = v;
  wrong4.view.scales.extents[1] = 31;
  expect_error([&] { append_kv(k.view, wrong4.view, 0, x.cview(), x.cview()); }, "v_cache.scales: expected {1, 32, 2, 2}");
  // slots writing a by-channel block from its middle
  std::vector<std::int64_t> slots = {3, 4, 5, 6, 7, 8, 9, 10};
  expect_error([&] { store_paged_kv(kc.view, v.view, slots, x.cview(), x.cview()); }, "slots[0]: k_pages is quantized by channel in blocks of 16");
  auto kcb = make_qtensor<qint8_channel>(1, S, H, D, layout::bshd, 5);  // 5 does not divide the page (32)
  const auto kcb0 = bytes_of(kcb);
  std::vector<std::int64_t> slots0 = {0, 1, 2, 3, 4, 5, 6, 7};
  expect_error([&] { store_paged_kv(kcb.view, v.view, slots0, x.cview(), x.cview()); }, "k_pages.block: expected a divisor of the page size 32");
  unchanged();
  EXPECT_EQ(bytes_of(kcb), kcb0);

  // Attention calls: scales' shape, int4 dims, by-channel block vs page size.
  auto q = make_tensor<float>(1, 1, 4, D, layout::bshd, 2);
  std::vector<float> o(4 * D);
  const auto ov = bshd(o.data(), 1, 1, 4, D);
  auto k2 = k.cview();
  k2.scales.extents[1] = 31;
  expect_error([&] { flash_attention<Arch>(q.cview(), k2, v.cview(), ov); }, "flash_attention: k.scales: expected {1, 32, 2, 1}");
  auto v2 = v.cview();
  v2.values.extents[3] = 20;  // 40 values: not a multiple of 32
  v2.scales.extents[3] = 1;
  expect_error([&] { flash_attention<Arch>(q.cview(), k.cview(), v2, ov); }, "v.values: expected qint4 rows of a multiple of 32");
  auto kc2 = kc.cview();
  kc2.block = 0;
  expect_error([&] { flash_attention<Arch>(q.cview(), kc2, v.cview(), ov); }, "k.block: expected >= 1");
  const std::vector<std::int32_t> table = {0}, lengths = {8};
  const auto kpb = kcb.cview();
  expect_error([&] { flash_attention<Arch>(q.cview(), paged_kv<const qint8_channel, const qint4>{kpb, v.cview(), table, 1, lengths}, ov); },
               "kv.k_pages.block: expected a divisor of the page size 32");
  std::vector<float> big(k.sc.size() + 4 * D);  // k's scales, then room for an out that overlaps them
  std::copy(k.sc.begin(), k.sc.end(), big.begin());
  auto k3 = k.cview();
  k3.scales.data = big.data();
  expect_error([&] { flash_attention<Arch>(q.cview(), k3, v.cview(), bshd(big.data() + 10, 1, 1, 4, D)); },
               "out: expected memory disjoint from the scales of k");
  for (float x0 : o) EXPECT_EQ(x0, 0.f);
}

}  // namespace
