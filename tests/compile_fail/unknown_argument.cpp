// An argument that is no policy or option at all.
#include <attnkit/attnkit.hpp>

int main() {
  float q[8] = {}, k[8] = {}, v[8] = {}, o[8] = {};
  attnkit::flash_attention(attnkit::bshd(q, 1, 1, 1, 8), attnkit::bshd(k, 1, 1, 1, 8), attnkit::bshd(v, 1, 1, 1, 8),
                           attnkit::bshd(o, 1, 1, 1, 8), 0.125f);
}
