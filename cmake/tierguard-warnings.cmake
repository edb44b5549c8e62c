# Warnings are errors in tierguard's own targets (tests, benchmarks, examples);
# consumers of the INTERFACE target get none of these flags.
add_library(tierguard_warnings INTERFACE)
target_compile_options(tierguard_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-Wall -Wextra -Wpedantic -Werror>)

# Every public header compiles on its own (CMake builds one TU per header).
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.24)
  set_target_properties(tierguard PROPERTIES VERIFY_INTERFACE_HEADER_SETS ON)
  if(TARGET tierguard_redis)
    set_target_properties(tierguard_redis PROPERTIES VERIFY_INTERFACE_HEADER_SETS ON)
  endif()
endif()
