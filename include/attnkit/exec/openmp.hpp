#pragma once
/// @file openmp.hpp  OpenMP executor: tasks are handed out dynamically (so causal's long and short
/// rows balance) to `threads` threads (0 = all of OpenMP's). Exists only when the consumer compiles
/// with OpenMP; without it, naming attnkit::openmp is a compile error rather than a silent serial run.
#include <exception>

#include "attnkit/concepts/executor.hpp"
#include "attnkit/core/errors.hpp"

#if defined(_OPENMP)
#include <omp.h>
#define ATTNKIT_HAS_OPENMP 1

namespace attnkit {

struct openmp {
  static constexpr policy_kind kind = policy_kind::executor;
  int threads = 0;  ///< 0: omp_get_max_threads()

  int concurrency() const noexcept { return threads > 0 ? threads : omp_get_max_threads(); }
  template <class F>
  void parallel_for(index_t n, F&& fn) const {
    if (n <= 0) return;
    const int nt = concurrency();
    if (nt == 1 || n == 1 || omp_in_parallel()) {  // nested call: stay on this thread
      for (index_t t = 0; t < n; ++t) fn(t, 0);
      return;
    }
    std::exception_ptr err;
#pragma omp parallel num_threads(nt)
    {
      const int w = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
      for (index_t t = 0; t < n; ++t) {
        try {
          fn(t, w);
        } catch (...) {
#pragma omp critical(attnkit_exec_error)
          if (!err) err = std::current_exception();
        }
      }
    }
    if (err) std::rethrow_exception(err);
  }
};

}  // namespace attnkit
#else
#define ATTNKIT_HAS_OPENMP 0
#endif
