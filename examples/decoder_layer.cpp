// One GQA decoder layer as a model runs it on a batch of sequences of different lengths:
//   x -> RMSNorm (learned weight) -> Wq, Wk, Wv (Eigen GEMMs) -> RoPE on q and k at their absolute
//   positions -> K/V stored into a paged cache (store_paged_kv) -> flash attention over the
//   paged cache -> Wo -> residual add.
// The cache is a page pool [num_pages, page_size, Hkv, d] (fp32, or bf16 with --bf16) and a block
// table [B, max_pages]; pages come from a free list in shuffled order, one more whenever a
// sequence crosses a page boundary, and unwritten rows hold NaN (they must never be read).
//   prefill: all prompts packed (cu_seqlens-style offsets), one varlen causal call;
//   decode:  `steps` steps of one token per sequence (the layer's output is the next input),
//            q [B, 1, Hq, d] against the cache.
// Every call is checked per sequence against the fp64 reference (attnkit::ref) on the sequence's
// contiguous K/V history, gathered from the pages through the block table (and compared bitwise
// with a history kept independently of the pages): error <= 2x that of a naive fp32
// implementation (ref::attention<float>) plus 1e-6. Exits non-zero on a miss.
// Timing: the attention calls only; decode GB/s = K/V bytes read per step / median step time,
// and (not in --small) the fraction of a read-bandwidth ceiling measured in the same process.
//
//   build/release/examples/decoder_layer [--small] [--bf16] [--head-major] [--full-check] [B [prompt [steps]]]
//     defaults: H = 2048, Hq = 32, Hkv = 8, d = 64, page 16, B = 8, prompt = 2048, steps = 32
//     --small:  H = 256, Hq = 8, Hkv = 2, d = 32, page 8, B = 3, prompt = 40, steps = 8 (ctest)
//     prompts:  sequence b has prompt - b * (prompt / (2B) + 1) tokens (at least 1)
//     --head-major: pages stored [num_pages, Hkv, page_size, d] (the same logical pool, strided)
//     --full-check: check every prefill query (default: all in --small, else the first, a middle
//                   and the last 32 of each sequence; every decode step is always checked fully)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <Eigen/Core>

#include <attnkit/attnkit.hpp>
#include <attnkit/eigen.hpp>  // view_of (Eigen matrices as [1, S, H, D] views), attnkit::ref

namespace ak = attnkit;
using ak::index_t;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using clk = std::chrono::steady_clock;

namespace {

struct config {
  bool small = false, bf16 = false, head_major = false, full_check = false;
  index_t H = 2048, Hq = 32, Hkv = 8, D = 64, page = 16, B = 8, prompt = 2048, steps = 32;
  index_t check_rows = 32;  // per prefill chunk when not checking every query
  double rope_base = 10000, eps = 1e-5;
};

int threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

RowMat randn(index_t rows, index_t cols, float stddev, std::mt19937& g) {
  std::normal_distribution<float> n(0.f, stddev);
  RowMat m(rows, cols);
  for (index_t i = 0; i < m.size(); ++i) m.data()[i] = n(g);
  return m;
}

// The layer's parameters, fixed seed.
struct layer {
  Eigen::RowVectorXf norm_w;  // RMSNorm weight [H]
  RowMat wq, wk, wv, wo;      // [H, Hq d], [H, Hkv d], [H, Hkv d], [Hq d, H]
  std::vector<double> inv_freq;
  const config& c;

  explicit layer(const config& cfg) : c(cfg) {
    std::mt19937 g(20240601);
    std::normal_distribution<float> n;
    norm_w.resize(c.H);
    for (index_t i = 0; i < c.H; ++i) norm_w[i] = 1.f + 0.1f * n(g);
    // q, k of unit-RMS inputs come out ~N(0, 1.5^2) per element: logits of std ~2 (peaked rows).
    wq = randn(c.H, c.Hq * c.D, 1.5f / std::sqrt(float(c.H)), g);
    wk = randn(c.H, c.Hkv * c.D, 1.5f / std::sqrt(float(c.H)), g);
    wv = randn(c.H, c.Hkv * c.D, 1.f / std::sqrt(float(c.H)), g);
    wo = randn(c.Hq * c.D, c.H, 1.f / std::sqrt(float(c.Hq * c.D)), g);
    for (index_t i = 0; i < c.D / 2; ++i) inv_freq.push_back(std::pow(c.rope_base, -2.0 * double(i) / double(c.D)));
  }

  RowMat rms_norm(const RowMat& x) const {
    RowMat y(x.rows(), x.cols());
    for (index_t r = 0; r < x.rows(); ++r) {
      const float inv = 1.f / std::sqrt(x.row(r).squaredNorm() / float(x.cols()) + float(c.eps));
      y.row(r) = (x.row(r) * inv).cwiseProduct(norm_w);
    }
    return y;
  }

  // Rotary embedding, half-split form (GPT-NeoX / Llama): pairs (i, i + d/2) of every head of row r
  // rotated by pos[r] * base^(-2i/d).
  void rope(RowMat& m, index_t heads, const std::vector<index_t>& pos) const {
    const index_t half = c.D / 2;
    for (index_t r = 0; r < m.rows(); ++r)
      for (index_t i = 0; i < half; ++i) {
        const double a = double(pos[r]) * inv_freq[i];
        const float cs = float(std::cos(a)), sn = float(std::sin(a));
        for (index_t h = 0; h < heads; ++h) {
          float* v = m.row(r).data() + h * c.D;
          const float x0 = v[i], x1 = v[i + half];
          v[i] = x0 * cs - x1 * sn;
          v[i + half] = x0 * sn + x1 * cs;
        }
      }
  }

  // Rows of x (one token each) at absolute positions pos: q [n, Hq d], k, v [n, Hkv d].
  void project(const RowMat& x, const std::vector<index_t>& pos, RowMat& q, RowMat& k, RowMat& v) const {
    const RowMat xn = rms_norm(x);
    q.noalias() = xn * wq;
    k.noalias() = xn * wk;
    v.noalias() = xn * wv;
    rope(q, c.Hq, pos);
    rope(k, c.Hkv, pos);
  }
};

// The paged KV cache: page pool, block table, free list, lengths; plus each sequence's K/V history
// kept contiguously, independently of the pages (what the checks compare the pages with).
template <class T>
struct paged_cache {
  index_t pages = 0, ps = 0, Hkv = 0, D = 0, B = 0, max_pages = 0;
  bool head_major = false;
  std::vector<T> k, v;             // num_pages * ps * Hkv * D each
  std::vector<std::int32_t> table;  // [B, max_pages], -1: not allocated
  std::vector<std::int32_t> len;    // [B]
  std::vector<std::int32_t> free;   // page ids, taken from the back
  std::vector<std::vector<T>> hist_k, hist_v;

  paged_cache(const config& c, const std::vector<index_t>& capacity) : ps(c.page), Hkv(c.Hkv), D(c.D), B(c.B) {
    head_major = c.head_major;
    for (index_t b = 0; b < B; ++b) {
      const index_t p = (capacity[b] + ps - 1) / ps;
      pages += p, max_pages = std::max(max_pages, p);
    }
    pages += B;  // a few spare pages: the pool is not exactly the sum of the needs
    const T nan = ak::from_float<T>(std::numeric_limits<float>::quiet_NaN());
    k.assign(pages * ps * Hkv * D, nan);
    v.assign(pages * ps * Hkv * D, nan);
    table.assign(B * max_pages, -1);
    len.assign(B, 0);
    for (index_t p = 0; p < pages; ++p) free.push_back(std::int32_t(p));
    std::mt19937 g(7);
    std::shuffle(free.begin(), free.end(), g);
    hist_k.resize(B), hist_v.resize(B);
  }

  // Logical {num_pages, page_size, Hkv, D}; physically token-major (vLLM) or head-major (FlashInfer HND).
  template <class U>
  ak::tensor_view<U> pool(U* p) const {
    if (head_major) return {p, {pages, ps, Hkv, D}, {ps * Hkv * D, D, ps * D, 1}};
    return {p, {pages, ps, Hkv, D}, {ps * Hkv * D, Hkv * D, D, 1}};
  }
  ak::paged_kv<const T> view() const {
    return {pool<const T>(k.data()), pool<const T>(v.data()), table, max_pages, len};
  }

  // Slot of token t of sequence b, allocating its page from the free list on first use.
  std::int64_t slot(index_t b, index_t t) {
    const index_t p = t / ps;
    if (p >= max_pages) throw std::runtime_error("decoder_layer: block table row full");
    std::int32_t& id = table[b * max_pages + p];
    if (id < 0) {
      if (free.empty()) throw std::runtime_error("decoder_layer: page pool exhausted");
      id = free.back();
      free.pop_back();
    }
    return std::int64_t(id) * ps + t % ps;
  }

  // Store the new tokens' K/V (rows of kn / vn [n, Hkv D], row r is token tok[r] of sequence seq[r])
  // and append them to the independent histories. Lengths are updated by the caller.
  void store(const RowMat& kn, const RowMat& vn, const std::vector<index_t>& seq, const std::vector<index_t>& tok) {
    std::vector<std::int64_t> slots(seq.size());
    for (std::size_t r = 0; r < seq.size(); ++r) slots[r] = slot(seq[r], tok[r]);
    ak::store_paged_kv(pool<T>(k.data()), pool<T>(v.data()), slots, ak::view_of(kn, Hkv), ak::view_of(vn, Hkv));
    for (std::size_t r = 0; r < seq.size(); ++r)
      for (index_t e = 0; e < Hkv * D; ++e) {
        hist_k[seq[r]].push_back(ak::from_float<T>(kn(index_t(r), e)));
        hist_v[seq[r]].push_back(ak::from_float<T>(vn(index_t(r), e)));
      }
  }

  // Sequence b's first n tokens gathered from the pages through the block table, [n, Hkv, D].
  std::vector<T> gather(const std::vector<T>& pool_data, index_t b, index_t n) const {
    std::vector<T> out(n * Hkv * D);
    const auto pv = pool<const T>(pool_data.data());
    for (index_t t = 0; t < n; ++t)
      for (index_t h = 0; h < Hkv; ++h)
        std::memcpy(&out[(t * Hkv + h) * D], pv.row(table[b * max_pages + t / ps], t % ps, h), D * sizeof(T));
    return out;
  }
};

struct phase_stats {
  double err = 0, naive = 0;  // max over the phase
  double worst_ratio = 0;     // max of err / (2 naive + floor)
  long queries = 0, calls = 0, misses = 0;  // queries checked, reference calls, calls that missed
};

// Check queries [i0, i0 + n) of the n_q queries sequence b had in the call (query i at key position
// len - n_q + i) against the fp64 reference on the sequence's K/V history. q and o: the call's
// rows of this sequence, [n_q, Hq D].
template <class T>
bool check(const paged_cache<T>& cache, const config& c, index_t b, const float* q, const float* o, index_t n_q,
           index_t i0, index_t n, phase_stats& st) {
  const index_t L = cache.len[b], keys = L - n_q + i0 + n;  // keys the chunk's last query sees
  const auto gk = cache.gather(cache.k, b, L), gv = cache.gather(cache.v, b, L);
  const std::size_t bytes = std::size_t(L * c.Hkv * c.D) * sizeof(T);
  if (cache.hist_k[b].size() * sizeof(T) != bytes || std::memcmp(gk.data(), cache.hist_k[b].data(), bytes) != 0 ||
      std::memcmp(gv.data(), cache.hist_v[b].data(), bytes) != 0) {
    std::printf("MISMATCH: sequence %ld: K/V gathered from the pages differ from its history\n", long(b));
    ++st.calls, ++st.misses;
    return false;
  }
  const ak::tensor_view<const float> qv{q + i0 * c.Hq * c.D, {1, n, c.Hq, c.D}, {n * c.Hq * c.D, c.Hq * c.D, c.D, 1}};
  const ak::tensor_view<const T> kv{gk.data(), {1, keys, c.Hkv, c.D}, {keys * c.Hkv * c.D, c.Hkv * c.D, c.D, 1}};
  const ak::tensor_view<const T> vv{gv.data(), {1, keys, c.Hkv, c.D}, {keys * c.Hkv * c.D, c.Hkv * c.D, c.D, 1}};
  // Bottom-right alignment on the truncated keys puts query i0 + i at position keys - n + i, as in the call.
  const auto ref = ak::ref::attention<double>(qv, kv, vv, ak::causal{});
  const auto naive = ak::ref::attention<float>(qv, kv, vv, ak::causal{});
  const float* os = o + i0 * c.Hq * c.D;
  double e = 0, en = 0;
  auto worse = [](double acc, double d) { return std::isnan(d) ? HUGE_VAL : std::max(acc, d); };  // NaN: a miss
  for (std::size_t i = 0; i < ref.o.size(); ++i) {
    e = worse(e, std::abs(double(os[i]) - ref.o[i]));
    en = worse(en, std::abs(double(naive.o[i]) - ref.o[i]));
  }
  const double bound = 2 * en + 1e-6;
  st.err = std::max(st.err, e), st.naive = std::max(st.naive, en);
  st.worst_ratio = std::max(st.worst_ratio, e / bound);
  st.queries += long(n), ++st.calls;
  if (e <= bound && std::isfinite(bound)) return true;  // a NaN reference (NaN inputs) is a miss too
  ++st.misses;
  std::printf("MISMATCH: sequence %ld, queries [%ld, %ld) of %ld over %ld keys: err %.3e > 2 x naive %.3e + 1e-6\n",
              long(b), long(i0), long(i0 + n), long(n_q), long(L), e, en);
  return false;
}

// L3 size from sysfs (glibc's sysconf(_SC_LEVEL3_CACHE_SIZE) can be wrong in VMs); 0 if unknown.
double l3_bytes() {
  double kib = 0;
  if (std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
    if (std::fscanf(f, "%lfK", &kib) != 1) kib = 0;
    std::fclose(f);
  }
  return kib * 1024;
}

void print_plan(const char* phase, const ak::attention_plan& p) {
  std::printf("%s plan: %s engine, %ld rows x %ld keys per tile, %ld KV splits, %ld tasks (%s)\n", phase,
              p.kind == ak::engine::decode ? "decode" : "prefill", long(p.rows), long(p.block_kv), long(p.kv_splits),
              long(p.tasks), p.reason);
}

// Read-bandwidth ceiling: a vectorized sum over 256 MiB, best of 5 (GB/s).
double read_ceiling_gbs() {
  const std::size_t n = (std::size_t(256) << 20) / sizeof(float);
  std::vector<float> buf(n);
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < n; ++i) buf[i] = float(i & 1023) * 1e-3f;  // first touch by the readers
  double best = HUGE_VAL, sink = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const auto t0 = clk::now();
    float s = 0;
    const float* p = buf.data();
#pragma omp parallel for simd schedule(static) reduction(+ : s)
    for (std::size_t i = 0; i < n; ++i) s += p[i];
    const double t = seconds_since(t0);
    sink += s;
    if (rep > 0) best = std::min(best, t);  // rep 0 warms up
  }
  if (sink == -1) std::printf(" ");  // keep the sums
  return double(n * sizeof(float)) / best * 1e-9;
}

template <class T>
int run(const config& c) {
  const layer L(c);
  std::vector<index_t> plen(c.B), cap(c.B);
  for (index_t b = 0; b < c.B; ++b) {
    plen[b] = std::max<index_t>(1, c.prompt - b * (c.prompt / (2 * c.B) + 1));
    cap[b] = plen[b] + c.steps;
  }
  paged_cache<T> cache(c, cap);
  const char* kv_name = std::is_same_v<T, float> ? "fp32" : "bf16";
  std::printf("attnkit %s, arch %s, %d threads: decoder layer H=%ld, Hq=%ld, Hkv=%ld, d=%ld, B=%ld, %ld decode steps\n",
              ATTNKIT_VERSION_STRING, ak::default_arch::name(), threads(), long(c.H), long(c.Hq), long(c.Hkv),
              long(c.D), long(c.B), long(c.steps));
  std::printf("paged cache: %s, %s pages of %ld tokens, pool of %ld pages (%.1f MiB K+V), block table %ld x %ld\n",
              kv_name, c.head_major ? "head-major [Hkv, page, d]" : "token-major [page, Hkv, d]", long(c.page),
              long(cache.pages), 2.0 * double(cache.k.size() * sizeof(T)) / (1 << 20), long(c.B),
              long(cache.max_pages));
  std::printf("prompt lengths:");
  for (auto p : plen) std::printf(" %ld", long(p));
  std::printf("\n");

  bool ok = true;
  // ---- prefill: every prompt packed into one varlen call ----
  std::vector<std::int32_t> starts{0};
  for (index_t b = 0; b < c.B; ++b) starts.push_back(std::int32_t(starts.back() + plen[b]));
  const index_t total = starts.back();
  std::vector<index_t> seq, tok;
  for (index_t b = 0; b < c.B; ++b)
    for (index_t t = 0; t < plen[b]; ++t) seq.push_back(b), tok.push_back(t);
  std::mt19937 g(42);
  const RowMat x = randn(total, c.H, 1.f, g);  // the prompts' embeddings
  RowMat q, k, v;
  L.project(x, tok, q, k, v);
  cache.store(k, v, seq, tok);
  for (index_t b = 0; b < c.B; ++b) cache.len[b] = std::int32_t(plen[b]);  // lengths include the new tokens
  RowMat o(total, c.Hq * c.D);
  const RowMat& qc = q;
  print_plan("prefill", ak::plan_of(ak::varlen<const float>{ak::view_of(qc, c.Hq), starts}, cache.view(),
                                    ak::view_of(o, c.Hq), ak::causal{}));
  auto t0 = clk::now();
  ak::flash_attention(ak::varlen<const float>{ak::view_of(qc, c.Hq), starts}, cache.view(), ak::view_of(o, c.Hq),
                      ak::causal{});
  const double t_prefill = seconds_since(t0);
  RowMat y = x;
  y.noalias() += o * L.wo;  // residual add

  phase_stats pre;
  for (index_t b = 0; b < c.B; ++b) {
    const index_t n = plen[b], r0 = starts[b], cr = c.check_rows;
    const float* qb = q.row(r0).data();
    const float* ob = o.row(r0).data();
    if (c.full_check || n <= 3 * cr) ok &= check(cache, c, b, qb, ob, n, 0, n, pre);
    else
      for (index_t i0 : {index_t(0), n / 2 - cr / 2, n - cr}) ok &= check(cache, c, b, qb, ob, n, i0, cr, pre);
  }
  double flops = 0;  // causal: query i sees i + 1 keys; QK^T and PV, 2 flops per multiply-add
  for (auto n : plen) flops += 4.0 * double(c.Hq * c.D) * double(n) * double(n + 1) / 2;
  std::printf("prefill: %ld tokens in one varlen call, attention %.2f ms (%.1f GFLOP/s); checked %ld queries: "
              "max err vs fp64 %.2e (naive fp32 %.2e, worst err / bound %.2f)\n",
              long(total), t_prefill * 1e3, flops / t_prefill * 1e-9, pre.queries, pre.err, pre.naive, pre.worst_ratio);

  // ---- decode: one token per sequence per step, the layer's output as the next input ----
  RowMat xd(c.B, c.H), od(c.B, c.Hq * c.D);
  for (index_t b = 0; b < c.B; ++b) xd.row(b) = y.row(starts[b + 1] - 1);
  std::vector<double> t_attn, gbs, t_step;
  std::vector<index_t> dseq(c.B);
  for (index_t b = 0; b < c.B; ++b) dseq[b] = b;
  phase_stats dec;
  double bytes_sum = 0;
  for (index_t s = 0; s < c.steps; ++s) {
    const auto ts = clk::now();
    std::vector<index_t> pos(c.B);
    for (index_t b = 0; b < c.B; ++b) pos[b] = cache.len[b];
    L.project(xd, pos, q, k, v);
    cache.store(k, v, dseq, pos);  // a new page whenever pos crosses a page boundary
    double bytes = 0;
    for (index_t b = 0; b < c.B; ++b) {
      ++cache.len[b];
      bytes += 2.0 * double(cache.len[b]) * double(c.Hkv * c.D) * double(sizeof(T));
    }
    const ak::tensor_view<const float> qv{q.data(), {c.B, 1, c.Hq, c.D}, {c.Hq * c.D, c.Hq * c.D, c.D, 1}};
    const ak::tensor_view<float> ov{od.data(), {c.B, 1, c.Hq, c.D}, {c.Hq * c.D, c.Hq * c.D, c.D, 1}};
    if (s == 0) print_plan("decode", ak::plan_of(qv, cache.view(), ov, ak::causal{}));
    t0 = clk::now();
    ak::flash_attention(qv, cache.view(), ov, ak::causal{});
    const double t = seconds_since(t0);
    RowMat yd = xd;
    yd.noalias() += od * L.wo;
    t_step.push_back(seconds_since(ts));
    t_attn.push_back(t), gbs.push_back(bytes / t * 1e-9), bytes_sum += bytes;
    for (index_t b = 0; b < c.B; ++b) ok &= check(cache, c, b, q.row(b).data(), od.row(b).data(), 1, 0, 1, dec);
    xd = yd;
  }
  if (c.steps > 0) {
    const double gb = median(gbs);
    std::printf("decode: %ld steps x %ld sequences, final lengths", long(c.steps), long(c.B));
    for (auto l : cache.len) std::printf(" %d", l);
    std::printf("\ndecode: attention median %.1f us per step (fastest %.1f us; whole layer step %.1f us), "
                "%.2f MiB K/V read per step, %.2f GB/s (median)\n",
                median(t_attn) * 1e6, *std::min_element(t_attn.begin(), t_attn.end()) * 1e6, median(t_step) * 1e6,
                bytes_sum / double(c.steps) / (1 << 20), gb);
    std::printf("decode: checked %ld queries: max err vs fp64 %.2e (naive fp32 %.2e, worst err / bound %.2f)\n",
                dec.queries, dec.err, dec.naive, dec.worst_ratio);
    if (c.small) std::printf("read-bandwidth ceiling: skipped (--small)\n");
    else {
      const double ceil = read_ceiling_gbs();
      std::printf("read-bandwidth ceiling (sum over 256 MiB, %d threads): %.2f GB/s; decode attention at %.2f of it\n",
                  threads(), ceil, gb / ceil);
      const double l3 = l3_bytes();
      if (l3 > 0 && bytes_sum / double(c.steps) <= l3)
        std::printf("note: the K/V read per step fits in the %.0f MiB L3, so the fraction can exceed 1\n", l3 / (1 << 20));
    }
  }
  const long misses = pre.misses + dec.misses;
  std::printf("%s: %ld of %ld checks (%ld queries) missed the criterion (err <= 2 x naive fp32 + 1e-6)\n",
              ok ? "OK" : "MISMATCH", misses, pre.calls + dec.calls, pre.queries + dec.queries);
  return ok ? 0 : 1;
}

int usage() {
  std::fprintf(stderr,
               "usage: decoder_layer [--small] [--bf16] [--head-major] [--full-check] [B [prompt [steps]]]\n"
               "       B >= 1, prompt >= 1, steps >= 0\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  config c;
  std::vector<long> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--small") c.small = true;
    else if (a == "--bf16") c.bf16 = true;
    else if (a == "--head-major") c.head_major = true;
    else if (a == "--full-check") c.full_check = true;
    else {
      char* end = nullptr;
      const long x = std::strtol(argv[i], &end, 10);
      if (end == argv[i] || *end != '\0' || pos.size() == 3) return usage();
      pos.push_back(x);
    }
  }
  if (c.small) c.H = 256, c.Hq = 8, c.Hkv = 2, c.D = 32, c.page = 8, c.B = 3, c.prompt = 40, c.steps = 8;
  if (pos.size() > 0) c.B = pos[0];
  if (pos.size() > 1) c.prompt = pos[1];
  if (pos.size() > 2) c.steps = pos[2];
  if (c.B < 1 || c.prompt < 1 || c.steps < 0) return usage();
  if (c.small) c.full_check = true;
  try {
    return c.bf16 ? run<ak::bf16>(c) : run<float>(c);
  } catch (const std::exception& e) {  // attnkit::invalid_argument names the argument
    std::fprintf(stderr, "decoder_layer: %s\n", e.what());
    return 2;
  }
}
