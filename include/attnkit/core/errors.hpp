#pragma once
/// @file errors.hpp  The one exception type thrown by attnkit's public entry points.
#include <sstream>
#include <stdexcept>
#include <string>

namespace attnkit {

/// Thrown by every public entry point on bad input, before anything is written.
/// The message names the argument and gives the expected and the actual value.
class invalid_argument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {
template <class... Parts>
[[noreturn]] inline void fail(const char* where, const Parts&... parts) {
  std::ostringstream os;
  os << "attnkit::" << where << ": ";
  (os << ... << parts);
  throw invalid_argument(os.str());
}
}  // namespace detail
}  // namespace attnkit
