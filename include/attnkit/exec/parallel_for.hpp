#pragma once
/// @file parallel_for.hpp  Adapts the caller's own thread pool. `f(n, body)` must call body(task,
/// worker) for every task in [0, n) with worker in [0, workers), no two concurrent calls sharing a
/// worker, and return when all are done. Example with a pool that knows its thread index:
///
///     attnkit::parallel_for_executor ex{pool.size(), [&](attnkit::index_t n, auto&& body) {
///       pool.run(n, [&](std::int64_t t) { body(t, pool.this_thread_index()); });
///     }};
#include <utility>

#include "attnkit/concepts/executor.hpp"

namespace attnkit {

template <class F>
struct parallel_for_executor {
  static constexpr policy_kind kind = policy_kind::executor;
  int workers = 1;
  F f;
  int concurrency() const noexcept { return workers > 0 ? workers : 1; }
  template <class Body>
  void parallel_for(index_t n, Body&& body) const {
    f(n, std::forward<Body>(body));
  }
};
template <class F>
parallel_for_executor(int, F) -> parallel_for_executor<F>;

}  // namespace attnkit
