// A type that says it is a mask but lacks classify(): the call must fail with attnkit's message.
#include <attnkit/attnkit.hpp>

struct half_a_mask {
  static constexpr attnkit::policy_kind kind = attnkit::policy_kind::mask;
  static constexpr bool elementwise = true;
  bool keep(const attnkit::head_ctx&, attnkit::index_t, attnkit::index_t) const { return true; }
  void validate(const attnkit::problem_dims&) const {}
};

int main() {
  float q[8] = {}, k[8] = {}, v[8] = {}, o[8] = {};
  attnkit::flash_attention(attnkit::bshd(q, 1, 1, 1, 8), attnkit::bshd(k, 1, 1, 1, 8), attnkit::bshd(v, 1, 1, 1, 8),
                           attnkit::bshd(o, 1, 1, 1, 8), half_a_mask{});
}
