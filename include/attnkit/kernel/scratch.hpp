#pragma once
/// @file scratch.hpp  Per-worker scratch: the caller's workspace when given, else a thread-local
/// buffer that grows to the largest call seen and is reused (no allocation, no fresh page faults
/// once warm).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attnkit/config.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/core/options.hpp"

namespace attnkit::detail {

inline constexpr index_t scratch_align = 16;  // floats: 64 bytes
constexpr index_t align_up(index_t n, index_t a) noexcept { return (n + a - 1) / a * a; }

template <int Slot = 0>
inline float* thread_scratch(index_t floats) {
  thread_local std::vector<float> buf;
  if (static_cast<index_t>(buf.size()) < floats + scratch_align) buf.resize(static_cast<std::size_t>(floats + scratch_align));
  auto p = reinterpret_cast<std::uintptr_t>(buf.data());
  p = (p + 63) & ~std::uintptr_t(63);
  return reinterpret_cast<float*>(p);
}

/// Scratch of `floats` per worker for `workers` workers: from the workspace if one was given (it
/// must be large enough: no silent fallback to allocation), else thread-local.
/// Also `shared` floats used by the whole call (split-KV partials), owned by the calling thread.
struct scratch_source {
  const workspace* ws;
  index_t floats;
  int workers;
  index_t shared = 0;

  static index_t bytes_needed(index_t floats, int workers, index_t shared) noexcept {
    return (align_up(floats, scratch_align) * workers + align_up(shared, scratch_align) + scratch_align) *
           static_cast<index_t>(sizeof(float));
  }
  void check(const char* fn) const {
    if (ws && static_cast<index_t>(ws->bytes.size()) < bytes_needed(floats, workers, shared))
      fail(fn, "workspace: expected at least ", bytes_needed(floats, workers, shared), " bytes for ", workers,
           " workers, got ", ws->bytes.size());
  }
  float* base() const {
    auto p = reinterpret_cast<std::uintptr_t>(ws->bytes.data());
    return reinterpret_cast<float*>((p + 63) & ~std::uintptr_t(63));
  }
  float* get(int worker) const { return ws ? base() + align_up(floats, scratch_align) * worker : thread_scratch<0>(floats); }
  // Slot 1: distinct from the calling thread's own worker scratch (slot 0), which it may also use.
  float* partials(index_t n) const {
    return ws ? base() + align_up(floats, scratch_align) * workers : thread_scratch<1>(n);
  }
};

}  // namespace attnkit::detail
