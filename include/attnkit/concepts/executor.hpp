#pragma once
/// @file executor.hpp  An executor runs independent tasks, possibly on several threads.
#include <concepts>

#include "attnkit/core/context.hpp"

namespace attnkit {

namespace detail {
struct task_probe {
  void operator()(index_t, int) const {}
};
}  // namespace detail

/// Requirements:
///  - `static constexpr policy_kind kind = policy_kind::executor;`
///  - `int concurrency() const`: the most workers that may run at once (>= 1);
///  - `parallel_for(index_t n, F fn)`: calls fn(task, worker) once for every task in [0, n), with
///    worker in [0, concurrency()) and no two concurrent calls sharing a worker index (kernels
///    key per-thread scratch on it), and returns when all calls have returned.
/// Kernels make the task decomposition independent of concurrency(), so results are bitwise
/// identical for any thread count.
template <class E>
concept executor = requires(const E& e, index_t n) {
  requires E::kind == policy_kind::executor;
  { e.concurrency() } -> std::convertible_to<int>;
  e.parallel_for(n, detail::task_probe{});
};

}  // namespace attnkit
