# Compiles SOURCE and expects failure with EXPECT in the compiler's output (fmt's compile-error
# tests do the same): attnkit's static_asserts must give one readable message, not pages of
# template errors without it.
execute_process(
  COMMAND ${CXX} -std=c++20 -fsyntax-only -I${INCLUDE} -I${XSIMD_INCLUDE} ${SOURCE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not")
endif()
string(FIND "${out}${err}" "${EXPECT}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "${SOURCE} failed without the expected message '${EXPECT}':\n${err}")
endif()
message(STATUS "${SOURCE}: rejected with '${EXPECT}'")
