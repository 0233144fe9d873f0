// attnkit from Eigen: Q [S, Hq*D], K and V [S, Hkv*D] as row-major Eigen matrices (one token per
// row, heads side by side) are viewed as [1, S, H, D] tensors with attnkit::view_of
// (attnkit/eigen.hpp) and passed to flash_attention, causal, GQA. Three calls:
//   1. fp32 Q/K/V, output into an Eigen matrix (view_of);
//   2. the same inputs, output through an Eigen::Map over a caller-owned buffer (view_of takes
//      Eigen matrices only, not Maps: the Map's data() is viewed with attnkit::bshd);
//   3. bf16 K/V (Eigen matrices of attnkit::bf16, as a bf16 KV cache would be stored).
// Each is compared with a plain Eigen softmax(Q K^T / sqrt(D)) V (causal) in double on the same
// (for bf16: the same rounded) inputs, and passes when its error is at most 2x that of the same
// plain Eigen code in float, plus a floor of 4 float ulps of the output's magnitude. Exits
// non-zero on a miss.
//
//   build/release/examples/eigen_interop [seq_len=512]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include <Eigen/Core>

#include <attnkit/attnkit.hpp>
#include <attnkit/eigen.hpp>  // attnkit::view_of: row-major Eigen matrices as [1, S, H, D] views

namespace ak = attnkit;

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatF = RowMat<float>;

namespace {

// Plain Eigen attention in precision T: per query head h (KV head h / (Hq / Hkv)),
// O_h = softmax(Q_h K_h^T / sqrt(D) + causal mask) V_h, the row max subtracted before exp.
template <class T>
RowMat<T> eigen_attention(const RowMatF& Q, const RowMatF& K, const RowMatF& V, int Hq, int Hkv, int D) {
  const Eigen::Index S = Q.rows(), g = Hq / Hkv;
  const RowMat<T> q = Q.cast<T>(), k = K.cast<T>(), v = V.cast<T>();
  RowMat<T> o(S, Eigen::Index(Hq) * D);
  const T scale = T(1) / std::sqrt(T(D));
  for (int h = 0; h < Hq; ++h) {
    const Eigen::Index hk = h / g;
    RowMat<T> s = (q.middleCols(Eigen::Index(h) * D, D) * k.middleCols(hk * D, D).transpose()) * scale;
    for (Eigen::Index i = 0; i < S; ++i) {
      auto row = s.row(i);
      const auto kept = row.head(i + 1);  // causal: keys j <= i (Sq == Sk)
      const T m = kept.maxCoeff();
      row.head(i + 1) = (kept.array() - m).exp().matrix();
      row.tail(S - i - 1).setZero();
      row /= row.sum();
    }
    o.middleCols(Eigen::Index(h) * D, D) = s * v.middleCols(hk * D, D);
  }
  return o;
}

double max_err(const Eigen::Ref<const RowMat<double>>& a, const Eigen::Ref<const RowMat<double>>& b) {
  const double e = (a - b).cwiseAbs().maxCoeff();
  return std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
}

// The criterion on one call's output (any Eigen float expression of [S, Hq*D]).
template <class Out>
bool check(const char* what, const Out& got, const RowMat<double>& ref, const RowMatF& naive) {
  const double e = max_err(got.template cast<double>(), ref), en = max_err(naive.cast<double>(), ref);
  const double floor = 4.0 * std::numeric_limits<float>::epsilon() * std::max(1e-30, ref.cwiseAbs().maxCoeff());
  const bool ok = e <= 2.0 * en + floor;
  std::printf("%-46s max err vs fp64 %.2e (plain Eigen fp32 %.2e)  %s\n", what, e, en, ok ? "ok" : "MISS");
  return ok;
}

RowMatF randn(Eigen::Index rows, Eigen::Index cols, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n;
  return RowMatF::NullaryExpr(rows, cols, [&]() { return n(g); });
}

}  // namespace

int main(int argc, char** argv) {
  const Eigen::Index S = argc > 1 ? std::atol(argv[1]) : 512;
  const int Hq = 8, Hkv = 2, D = 64;  // GQA: 4 query heads per KV head
  if (S < 1) {
    std::fprintf(stderr, "usage: eigen_interop [seq_len >= 1]\n");
    return 2;
  }
  std::printf("attnkit %s, arch %s: causal flash attention on Eigen matrices, S = %ld, %d query / %d KV heads, "
              "d = %d\n",
              ATTNKIT_VERSION_STRING, ak::default_arch::name(), long(S), Hq, Hkv, D);
  const RowMatF Q = randn(S, Hq * D, 1), K = randn(S, Hkv * D, 2), V = randn(S, Hkv * D, 3);

  const RowMat<double> ref = eigen_attention<double>(Q, K, V, Hq, Hkv, D);
  const RowMatF naive = eigen_attention<float>(Q, K, V, Hq, Hkv, D);
  bool ok = true;

  // 1. Output into an Eigen matrix: view_of on every operand.
  RowMatF O(S, Hq * D);
  ak::flash_attention(ak::view_of(Q, Hq), ak::view_of(K, Hkv), ak::view_of(V, Hkv), ak::view_of(O, Hq), ak::causal{});
  ok &= check("fp32, output in an Eigen matrix", O, ref, naive);

  // 2. Output through an Eigen::Map over a buffer the caller owns (e.g. a framework's tensor).
  std::vector<float> buf(std::size_t(S * Hq * D), std::numeric_limits<float>::quiet_NaN());
  Eigen::Map<RowMatF> Om(buf.data(), S, Hq * D);
  ak::flash_attention(ak::view_of(Q, Hq), ak::view_of(K, Hkv), ak::view_of(V, Hkv), ak::bshd(Om.data(), 1, S, Hq, D),
                      ak::causal{});
  ok &= check("fp32, output through an Eigen::Map", Om, ref, naive);

  // 3. bf16 K and V (compute stays fp32). The references use the same rounded K and V.
  const RowMat<ak::bf16> Kb = K.unaryExpr([](float x) { return ak::bf16(x); });
  const RowMat<ak::bf16> Vb = V.unaryExpr([](float x) { return ak::bf16(x); });
  const RowMatF Kr = Kb.unaryExpr([](ak::bf16 x) { return float(x); });
  const RowMatF Vr = Vb.unaryExpr([](ak::bf16 x) { return float(x); });
  const RowMat<double> ref_b = eigen_attention<double>(Q, Kr, Vr, Hq, Hkv, D);
  const RowMatF naive_b = eigen_attention<float>(Q, Kr, Vr, Hq, Hkv, D);
  ak::flash_attention(ak::view_of(Q, Hq), ak::view_of(Kb, Hkv), ak::view_of(Vb, Hkv), ak::bshd(Om.data(), 1, S, Hq, D),
                      ak::causal{});
  ok &= check("bf16 K/V, output through an Eigen::Map", Om, ref_b, naive_b);
  std::printf("  (bf16 rounding of K/V itself moves the fp64 result by %.2e)\n", max_err(ref_b, ref));

  std::printf("%s\n", ok ? "OK" : "MISMATCH: an error exceeds 2x the plain Eigen fp32 error");
  return ok ? 0 : 1;
}
