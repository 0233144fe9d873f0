// A long KV cache split across MPI ranks: rank r attends only its contiguous shard of keys
// [r * L / P, (r + 1) * L / P) with flash_attention(..., lse_out{...}), the partial (O, LSE) of
// every rank are gathered on rank 0 and combined with merge_states, and the result is checked
// against flash_attention over the whole cache and against the fp64 reference (error at most 2x
// that of a naive fp32 implementation). Two cases:
//   decode: Sq = 1, no mask: the query sees the whole cache, so every shard is fully visible;
//   chunk:  Sq queries (the last Sq positions of the cache), causal: a shard starting at key s
//           needs query_offset{L - Sq - s} so that query i sits at global position i + L - Sq
//           (the default bottom-right alignment would put it at i + shard_len - Sq instead).
// L need not be a multiple of P, and ranks whose shard is empty (L < P) take part too: their
// rows are fully masked (O = 0, LSE = -inf), which merge_states treats as the identity.
// Rank 0 exits non-zero on a mismatch, and so does every other rank (mpirun then fails).
//
//   mpirun -np 4 build/release/examples/mpi_split_kv [L=4096] [Sq=4]
// Open MPI refuses to run as root (e.g. in a container) without --allow-run-as-root, and more
// ranks than cores (4 on a 2-core machine) without --oversubscribe:
//   mpirun --allow-run-as-root --oversubscribe -np 4 build/release/examples/mpi_split_kv
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <vector>

#include <mpi.h>

#include <attnkit/attnkit.hpp>
#include <attnkit/eigen.hpp>  // attnkit::ref: the fp64 reference (uses Eigen)

namespace ak = attnkit;

namespace {

constexpr ak::index_t Hq = 8, Hkv = 2, D = 64;

std::vector<float> randn(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

template <class A, class B>
double max_err(const A& a, const B& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(double(a[i]) - double(b[i])));
  return e;
}

// Max |a - b| over LSEs, where -inf (fully masked row) must match -inf exactly.
template <class A, class B>
double lse_err(const A& a, const B& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    if (std::isinf(x) || std::isinf(y)) e = std::max(e, x == y ? 0.0 : HUGE_VAL);
    else e = std::max(e, std::abs(x - y));
  }
  return e;
}

// One case: every rank attends its shard, rank 0 merges and checks. Returns true on every rank
// when rank 0's checks pass.
template <class Mask>
bool run_case(const char* name, ak::index_t L, ak::index_t Sq, const Mask& mask, int rank, int P) {
  // Same inputs on every rank (fixed seeds): q [1, Sq, Hq, D], K/V [1, L, Hkv, D].
  const auto q = randn(Sq * Hq * D, 11), k = randn(L * Hkv * D, 12), v = randn(L * Hkv * D, 13);
  const auto Q = ak::bshd(q.data(), 1, Sq, Hq, D);
  const auto K = ak::bshd(k.data(), 1, L, Hkv, D), V = ak::bshd(v.data(), 1, L, Hkv, D);

  // This rank's shard (balanced: sizes differ by at most 1; empty when L < P for some ranks).
  const ak::index_t s = L * rank / P, e = L * (rank + 1) / P;
  const auto Ks = ak::bshd(k.data() + s * Hkv * D, 1, e - s, Hkv, D);
  const auto Vs = ak::bshd(v.data() + s * Hkv * D, 1, e - s, Hkv, D);

  // Partial state packed in one buffer for the gather: O [1, Sq, Hq, D] then LSE [1, Hq, Sq].
  const ak::index_t n_o = Sq * Hq * D, n_lse = Hq * Sq, n = n_o + n_lse;
  std::vector<float> part(n);
  // Global position of query i is i + L - Sq; on the shard (key j local = global j + s) that is
  // i + (L - Sq - s). Without a mask the offset changes nothing but is harmless.
  ak::flash_attention(Q, Ks, Vs, ak::bshd(part.data(), 1, Sq, Hq, D), mask, ak::query_offset{L - Sq - s},
                      ak::lse_out{part.data() + n_o});

  std::vector<float> all(rank == 0 ? n * P : 0);
  MPI_Gather(part.data(), int(n), MPI_FLOAT, all.data(), int(n), MPI_FLOAT, 0, MPI_COMM_WORLD);

  int ok = 1;
  if (rank == 0) {
    std::vector<ak::attention_state> parts;
    for (int r = 0; r < P; ++r)
      parts.push_back({ak::bshd(static_cast<const float*>(all.data() + r * n), 1, Sq, Hq, D), all.data() + r * n + n_o});
    std::vector<float> o(n_o), lse(n_lse);
    ak::merge_states(parts, ak::bshd(o.data(), 1, Sq, Hq, D), lse.data());

    // The whole cache in one process (default alignment: query i at i + L - Sq), fp64, naive fp32.
    std::vector<float> ow(n_o), lsew(n_lse);
    ak::flash_attention(Q, K, V, ak::bshd(ow.data(), 1, Sq, Hq, D), mask, ak::lse_out{lsew.data()});
    const auto ref = ak::ref::attention<double>(Q, K, V, mask);
    const auto naive = ak::ref::attention<float>(Q, K, V, mask);

    const double e_split = max_err(o, ref.o), e_whole = max_err(ow, ref.o), e_naive = max_err(naive.o, ref.o);
    const double d_whole = max_err(o, ow), e_lse = lse_err(lse, ref.lse);
    // The accuracy criterion (quickstart's): at most 2x the naive fp32 error, with a small floor.
    const double bound = 2 * e_naive + 1e-6;
    ok = e_split <= bound && e_whole <= bound && d_whole <= 1e-4 && e_lse <= 1e-4;
    std::printf("%-6s L=%ld Sq=%ld over %d ranks: max err vs fp64 %.2e (whole-cache flash %.2e, naive fp32 %.2e), "
                "vs whole-cache flash %.2e, LSE err %.2e: %s\n",
                name, long(L), long(Sq), P, e_split, e_whole, e_naive, d_whole, e_lse, ok ? "OK" : "MISMATCH");
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return ok != 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, P = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  const ak::index_t L = argc > 1 ? std::atoll(argv[1]) : 4096, Sq = argc > 2 ? std::atoll(argv[2]) : 4;
  if (L < 0 || Sq < 1) {
    if (rank == 0) std::fprintf(stderr, "usage: mpi_split_kv [L=4096 (>= 0)] [Sq=4 (>= 1)]\n");
    MPI_Finalize();
    return 2;
  }
  if (rank == 0)
    std::printf("attnkit %s, arch %s: KV cache of %ld tokens split across %d ranks (Hq=%ld, Hkv=%ld, D=%ld)\n",
                ATTNKIT_VERSION_STRING, ak::default_arch::name(), long(L), P, long(Hq), long(Hkv), long(D));
  bool ok = false;
  try {
    ok = run_case("decode", L, 1, ak::no_mask{}, rank, P);
    ok &= run_case("chunk", L, Sq, ak::causal{}, rank, P);
  } catch (const std::exception& ex) {  // attnkit::invalid_argument, bad_alloc: stop every rank
    std::fprintf(stderr, "mpi_split_kv: rank %d: %s\n", rank, ex.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank == 0 && !ok) std::printf("MISMATCH: the merged result misses the criterion\n");
  MPI_Finalize();
  return ok ? 0 : 1;
}
