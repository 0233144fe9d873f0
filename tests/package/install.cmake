# cmake -DBUILD_DIR=<attnkit build> -DPREFIX=<dir> -DINCLUDEDIR=<rel> -DCMAKEDIR=<rel>
#       [-DCONFIG=<cfg>] -P install.cmake
# Installs attnkit into an emptied PREFIX (the ctest fixture before attnkit_package_find_package).
foreach(var BUILD_DIR PREFIX INCLUDEDIR CMAKEDIR)
  if(NOT ${var})
    message(FATAL_ERROR "install.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${PREFIX}")
set(config_args "")
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${config_args}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${rc})")
endif()
foreach(f ${INCLUDEDIR}/attnkit/attnkit.hpp ${INCLUDEDIR}/attnkit/eigen.hpp
          ${CMAKEDIR}/attnkitConfig.cmake ${CMAKEDIR}/attnkitConfigVersion.cmake
          ${CMAKEDIR}/attnkitTargets.cmake)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "install.cmake: ${PREFIX}/${f} was not installed")
  endif()
endforeach()
