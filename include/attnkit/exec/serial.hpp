#pragma once
/// @file serial.hpp  Runs every task on the calling thread, in order.
#include "attnkit/concepts/executor.hpp"

namespace attnkit {

struct serial {
  static constexpr policy_kind kind = policy_kind::executor;
  int concurrency() const noexcept { return 1; }
  template <class F>
  void parallel_for(index_t n, F&& fn) const {
    for (index_t t = 0; t < n; ++t) fn(t, 0);
  }
};

}  // namespace attnkit
