// (Runtime, not compile time: sigmoid + lse_out is rejected with invalid_argument; see test_errors.)
// This file checks a compile-time rule instead: a view of int is not a Q/K/V element type.
#include <attnkit/attnkit.hpp>

int main() {
  int q[8] = {}, k[8] = {}, v[8] = {};
  float o[8] = {};
  attnkit::flash_attention(attnkit::bshd(q, 1, 1, 1, 8), attnkit::bshd(k, 1, 1, 1, 8), attnkit::bshd(v, 1, 1, 1, 8),
                           attnkit::bshd(o, 1, 1, 1, 8));
}
