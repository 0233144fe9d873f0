#pragma once
/// @file args.hpp  Sorts an entry point's trailing arguments (policies and options in any order)
/// into one record, with a readable static_assert for anything that is not one of them.
#include <optional>
#include <type_traits>
#include <utility>

#include "attnkit/concepts/executor.hpp"
#include "attnkit/concepts/mask_policy.hpp"
#include "attnkit/concepts/normalizer_policy.hpp"
#include "attnkit/concepts/score_policy.hpp"
#include "attnkit/core/options.hpp"
#include "attnkit/exec/openmp.hpp"
#include "attnkit/exec/serial.hpp"
#include "attnkit/mask/no_mask.hpp"
#include "attnkit/norm/softmax.hpp"
#include "attnkit/score/dot_product.hpp"

namespace attnkit {

#if ATTNKIT_HAS_OPENMP
using default_executor = openmp;
#else
using default_executor = serial;
#endif

namespace detail {

template <class T, policy_kind K>
concept declares = requires { requires std::remove_cvref_t<T>::kind == K; };

template <class T>
concept known_argument = declares<T, policy_kind::score> || declares<T, policy_kind::mask> ||
                         declares<T, policy_kind::normalizer> || declares<T, policy_kind::executor> ||
                         declares<T, policy_kind::option>;

// One readable message per argument instead of pages of template errors.
template <class A>
constexpr bool check_argument() {
  using T = std::remove_cvref_t<A>;
  static_assert(known_argument<T>,
                "attnkit: this argument is not a score, mask or normalizer policy, an executor or an "
                "option (each declares `static constexpr attnkit::policy_kind kind`)");
  if constexpr (declares<T, policy_kind::score>)
    static_assert(score_policy<T>, "attnkit: type declares kind score but does not satisfy attnkit::score_policy "
                                   "(is_identity, apply<float/double>(ctx, s, i, j), validate(dims))");
  if constexpr (declares<T, policy_kind::mask>)
    static_assert(mask_policy<T>, "attnkit: type declares kind mask but does not satisfy attnkit::mask_policy "
                                  "(elementwise, keep(ctx, i, j), classify(ctx, i0, i1, j0, j1), validate(dims))");
  if constexpr (declares<T, policy_kind::normalizer>)
    static_assert(normalizer_policy<T>, "attnkit: type declares kind normalizer but does not satisfy "
                                        "attnkit::normalizer_policy (see concepts/normalizer_policy.hpp)");
  if constexpr (declares<T, policy_kind::executor>)
    static_assert(executor<T>, "attnkit: type declares kind executor but does not satisfy attnkit::executor "
                               "(concurrency(), parallel_for(n, fn(task, worker)))");
  return true;
}

template <policy_kind K, class... Args>
inline constexpr int count_kind = (0 + ... + int(declares<Args, K>));
template <class O, class... Args>
inline constexpr int count_type = (0 + ... + int(std::is_same_v<std::remove_cvref_t<Args>, O>));

// First argument declaring kind K, else Default{}.
template <policy_kind K, class Default, class A, class... Rest>
constexpr auto pick(A&& a, Rest&&... rest) {
  if constexpr (declares<A, K>) return std::remove_cvref_t<A>(std::forward<A>(a));
  else if constexpr (sizeof...(Rest) == 0) return Default{};
  else return pick<K, Default>(std::forward<Rest>(rest)...);
}
template <policy_kind K, class Default>
constexpr auto pick() { return Default{}; }

template <class O, class A, class... Rest>
constexpr std::optional<O> pick_option(const A& a, const Rest&... rest) {
  if constexpr (std::is_same_v<std::remove_cvref_t<A>, O>) return a;
  else if constexpr (sizeof...(Rest) == 0) return std::nullopt;
  else return pick_option<O>(rest...);
}
template <class O>
constexpr std::optional<O> pick_option() { return std::nullopt; }

}  // namespace detail

/// The resolved trailing arguments of one call.
template <class Score, class Mask, class Norm, class Exec>
struct call_args {
  call_args(Score s, Mask m, Norm n, Exec e) : score(std::move(s)), mask(std::move(m)), norm(std::move(n)), exec(std::move(e)) {}
  Score score;
  Mask mask;
  Norm norm;
  Exec exec;
  std::optional<float> scale;
  std::optional<index_t> q_offset;
  float* lse = nullptr;
  float* probs = nullptr;
  float* key_mass = nullptr;
  index_t mass_last = 0;  ///< key_mass_out's last_queries
  float* row_max = nullptr;
  std::optional<workspace> ws;
  std::optional<tiling> tiles;
  bf16_products::mode_t bf16 = bf16_products::automatic;
};

/// Sort args... into a call_args; every kind at most once, every argument recognized.
template <class... Args>
auto resolve_args(Args&&... args) {
  (detail::check_argument<Args>(), ...);
  static_assert(detail::count_kind<policy_kind::score, Args...> <= 1, "attnkit: more than one score policy given");
  static_assert(detail::count_kind<policy_kind::mask, Args...> <= 1,
                "attnkit: more than one mask given; combine masks with & or |");
  static_assert(detail::count_kind<policy_kind::normalizer, Args...> <= 1, "attnkit: more than one normalizer given");
  static_assert(detail::count_kind<policy_kind::executor, Args...> <= 1, "attnkit: more than one executor given");
  static_assert(detail::count_type<scale, Args...> <= 1 && detail::count_type<query_offset, Args...> <= 1 &&
                    detail::count_type<lse_out, Args...> <= 1 && detail::count_type<probs_out, Args...> <= 1 &&
                    detail::count_type<key_mass_out, Args...> <= 1 && detail::count_type<workspace, Args...> <= 1 &&
                    detail::count_type<row_max_out, Args...> <= 1 &&
                    detail::count_type<tiling, Args...> <= 1 && detail::count_type<bf16_products, Args...> <= 1,
                "attnkit: an option is given more than once");
  auto s = detail::pick<policy_kind::score, dot_product>(args...);
  auto m = detail::pick<policy_kind::mask, no_mask>(args...);
  auto n = detail::pick<policy_kind::normalizer, softmax>(args...);
  auto e = detail::pick<policy_kind::executor, default_executor>(args...);
  call_args<decltype(s), decltype(m), decltype(n), decltype(e)> r{std::move(s), std::move(m), std::move(n),
                                                                  std::move(e)};
  if (auto o = detail::pick_option<scale>(args...)) r.scale = o->value;
  if (auto o = detail::pick_option<query_offset>(args...)) r.q_offset = o->value;
  if (auto o = detail::pick_option<lse_out>(args...)) r.lse = o->data;
  if (auto o = detail::pick_option<probs_out>(args...)) r.probs = o->data;
  if (auto o = detail::pick_option<key_mass_out>(args...)) r.key_mass = o->data, r.mass_last = o->last_queries;
  if (auto o = detail::pick_option<row_max_out>(args...)) r.row_max = o->data;
  r.ws = detail::pick_option<workspace>(args...);
  r.tiles = detail::pick_option<tiling>(args...);
  if (auto o = detail::pick_option<bf16_products>(args...)) r.bf16 = o->mode;
  return r;
}

}  // namespace attnkit
