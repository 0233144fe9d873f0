# Shared by attnkit's CMakeLists.txt and its installed attnkitConfig.cmake.
#
# Debian 12's libxsimd-dev (8.1) exports the imported target `xsimd` with
# INTERFACE_LINK_LIBRARIES "xtl", but xtl is neither installed with it nor needed (xsimd only uses
# xtl under XSIMD_ENABLE_XTL_COMPLEX). With no `xtl` target the name reaches the linker as -lxtl
# and every executable fails to link. Drop that item from an imported xsimd when no xtl target
# exists; a real xtl target (find_package(xtl) before attnkit) is left alone.
include_guard(GLOBAL)

macro(attnkit_fix_xsimd_target)
  if(TARGET xsimd AND NOT TARGET xtl)
    get_target_property(_attnkit_xsimd_imported xsimd IMPORTED)
    get_target_property(_attnkit_xsimd_libs xsimd INTERFACE_LINK_LIBRARIES)
    if(_attnkit_xsimd_imported AND _attnkit_xsimd_libs AND "xtl" IN_LIST _attnkit_xsimd_libs)
      list(REMOVE_ITEM _attnkit_xsimd_libs xtl)
      set_property(TARGET xsimd PROPERTY INTERFACE_LINK_LIBRARIES "${_attnkit_xsimd_libs}")
    endif()
    unset(_attnkit_xsimd_imported)
    unset(_attnkit_xsimd_libs)
  endif()
endmacro()
