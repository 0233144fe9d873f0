#pragma once
// Shared by test_attention.cpp and test_attention_policies.cpp (one test TU split in two so
// that the two halves compile in parallel): run dense / flash on one problem and check O and LSE
// against the fp64 reference with the 2x-naive-fp32 criterion, for ATTNKIT_TEST_ARCH.
#include <atomic>
#include <cstdlib>
#include <new>

#include "common/test_util.hpp"

namespace {

using namespace attnkit;
using namespace attnkit::test;
using Arch = ATTNKIT_TEST_ARCH;

enum class kern { dense, flash };
const char* kname(kern k) { return k == kern::dense ? "dense" : "flash"; }

template <class... P>
void call(kern kd, tensor_view<const float> q, tensor_view<const float> k, tensor_view<const float> v,
          tensor_view<float> o, P&&... p) {
  if (kd == kern::dense) dense_attention<Arch>(q, k, v, o, std::forward<P>(p)...);
  else flash_attention<Arch>(q, k, v, o, std::forward<P>(p)...);
}
template <class T, class... P>
  requires(!std::is_same_v<T, float>)
void call(kern kd, tensor_view<const T> q, tensor_view<const T> k, tensor_view<const T> v, tensor_view<float> o,
          P&&... p) {
  if (kd == kern::dense) dense_attention<Arch>(q, k, v, o, std::forward<P>(p)...);
  else flash_attention<Arch>(q, k, v, o, std::forward<P>(p)...);
}

/// Run one kernel on one problem and check O (and LSE when the normalizer has one).
template <class T = float, class... P>
void check(kern kd, const shape& s, const P&... p) {
  SCOPED_TRACE(std::string(kname(kd)) + " " + s.str());
  problem<T> pr(s);
  const auto ref = ref::attention<double>(pr.q.cview(), pr.k.cview(), pr.v.cview(), p...);
  const auto naive = ref::attention<float>(pr.q.cview(), pr.k.cview(), pr.v.cview(), p...);
  output out(s);
  using N = decltype(resolve_args(p...).norm);
  if constexpr (N::has_lse) call(kd, pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, p..., lse_out{out.lse.data()});
  else call(kd, pr.q.cview(), pr.k.cview(), pr.v.cview(), out.view, p...);
  expect_accurate(out.o_used(s), ref.o, naive.o, "O");
  if constexpr (N::has_lse) expect_accurate(out.lse_used(s), ref.lse, naive.lse, "LSE");
}
template <class T = float, class... P>
void check_both(const shape& s, const P&... p) {
  check<T>(kern::dense, s, p...);
  check<T>(kern::flash, s, p...);
}

const index_t kLens[] = {1, 7, 63, 65, 1000};
const index_t kDims[] = {1, 3, 16, 64, 80, 128, 256};
const index_t kHeads[][2] = {{1, 1}, {4, 1}, {8, 2}};
const layout kLayouts[] = {layout::bshd, layout::bhsd, layout::cache};

const float kSinks8[8] = {0.5f, -1.f, 2.f, 0.f, 3.f, -2.f, 1.f, 4.f};

}  // namespace
