# Finds hiredis for tierguard::redis and defines the target hiredis::hiredis, if absent:
# from hiredis's own package config (hiredis >= 1.0, Conan, vcpkg), else from pkg-config
# or a plain search (Debian's 0.14 ships neither a config nor a target). Quiet: without
# hiredis, tierguard::redis is simply not offered. Installed beside tierguard-config.cmake.
if(NOT TARGET hiredis::hiredis)
  find_package(hiredis CONFIG QUIET)
endif()
if(NOT TARGET hiredis::hiredis)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(tierguard_pc_hiredis QUIET hiredis)
  endif()
  find_path(TIERGUARD_HIREDIS_INCLUDE_DIR hiredis/hiredis.h HINTS ${tierguard_pc_hiredis_INCLUDEDIR})
  find_library(TIERGUARD_HIREDIS_LIBRARY hiredis HINTS ${tierguard_pc_hiredis_LIBDIR})
  mark_as_advanced(TIERGUARD_HIREDIS_INCLUDE_DIR TIERGUARD_HIREDIS_LIBRARY)
  if(TIERGUARD_HIREDIS_INCLUDE_DIR AND TIERGUARD_HIREDIS_LIBRARY)
    add_library(hiredis::hiredis UNKNOWN IMPORTED)
    set_target_properties(hiredis::hiredis PROPERTIES
      IMPORTED_LOCATION "${TIERGUARD_HIREDIS_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${TIERGUARD_HIREDIS_INCLUDE_DIR}")
  endif()
endif()
