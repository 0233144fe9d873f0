# attnkit_target_arch(<target> <scalar|avx2|avx512|avx512bf16>)
#
# Compiles <target> for one SIMD architecture and tells its sources which one:
#   ATTNKIT_TEST_ARCH       the arch tag type (attnkit::scalar, xsimd::fma3<xsimd::avx2>,
#                           xsimd::avx512bw, attnkit::avx512bf16), to pass as the kernels' Arch template argument
#   ATTNKIT_TEST_ARCH_NAME  the arch name as a string literal ("scalar", "avx2", "avx512")
# The -m flags let the compiler emit that ISA anywhere in the target, so such a binary must check
# at run time that the CPU has it (GTEST_SKIP otherwise) before running any kernel.
include_guard(GLOBAL)

function(attnkit_target_arch target arch)
  if(arch STREQUAL "scalar")
    set(flags "")
    set(tag "attnkit::scalar")
  elseif(arch STREQUAL "avx2")
    set(flags -mavx2 -mfma -mf16c)  # F16C: every AVX2 CPU has it (fp16 loads use vcvtph2ps)
    set(tag "xsimd::fma3<xsimd::avx2>")
  elseif(arch STREQUAL "avx512")
    set(flags -mavx512f -mavx512bw -mavx512dq -mavx512cd -mavx512vl -mfma -mavx2)
    set(tag "xsimd::avx512bw")
  elseif(arch STREQUAL "avx512bf16")
    set(flags -mavx512f -mavx512bw -mavx512dq -mavx512cd -mavx512vl -mavx512bf16 -mfma -mavx2)
    set(tag "attnkit::avx512bf16")
  else()
    message(FATAL_ERROR "attnkit_target_arch: unknown arch '${arch}' (expected scalar, avx2, avx512 or avx512bf16)")
  endif()
  if(flags AND NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "attnkit_target_arch: ${arch} flags are only known for GCC and Clang")
  endif()
  target_compile_options(${target} PRIVATE ${flags})
  # CMake escapes both values for the shell/build tool: <, > and the quotes arrive intact.
  target_compile_definitions(${target} PRIVATE
    "ATTNKIT_TEST_ARCH=${tag}"
    "ATTNKIT_TEST_ARCH_NAME=\"${arch}\"")
endfunction()
