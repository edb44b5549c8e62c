# Builds tests/consumers/consumer.cpp the way a project without CMake would, against the
# installed prefix, runs it, and prints its output (ctest checks "consumer: ok").
#   cmake -DMODE=pkg-config|include-path -DPREFIX=<install prefix> -DCXX=<compiler>
#         -DSOURCE=<consumer.cpp> -DOUTPUT=<executable> -P compile_and_run.cmake
cmake_policy(VERSION 3.23)
if(MODE STREQUAL "pkg-config")
  find_program(PKG_CONFIG NAMES pkg-config pkgconf)
  if(NOT PKG_CONFIG)
    message(FATAL_ERROR "pkg-config not found (Debian: pkgconf)")
  endif()
  # Only tierguard's own install on the path: the test must find tierguard.pc there.
  set(ENV{PKG_CONFIG_PATH} "${PREFIX}/share/pkgconfig")
  execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs tierguard
    OUTPUT_VARIABLE flags ERROR_VARIABLE why RESULT_VARIABLE failed OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(failed)
    message(FATAL_ERROR "pkg-config --cflags --libs tierguard failed: ${why}")
  endif()
  message(STATUS "pkg-config --cflags --libs tierguard: ${flags}")
  separate_arguments(flags UNIX_COMMAND "${flags}")
  if(NOT "-I${PREFIX}/include" IN_LIST flags AND NOT "-I${PREFIX}/share/pkgconfig/../../include" IN_LIST flags)
    message(FATAL_ERROR "tierguard.pc does not point into the prefix ${PREFIX}: ${flags}")
  endif()
  if(NOT "-lz" IN_LIST flags)
    message(FATAL_ERROR "tierguard.pc does not bring in zlib (-lz): ${flags}")
  endif()
  # pkg-config cannot print them: read the license fields from the file.
  file(READ "${PREFIX}/share/pkgconfig/tierguard.pc" pc)
  if(NOT pc MATCHES "\nLicense: MIT\n" OR NOT pc MATCHES "\nLicense\\.file: \\\${prefix}/([^\n]+)\n")
    message(FATAL_ERROR "tierguard.pc lacks 'License: MIT' or 'License.file: \${prefix}/...':\n${pc}")
  endif()
  if(NOT EXISTS "${PREFIX}/${CMAKE_MATCH_1}")
    message(FATAL_ERROR "tierguard.pc's License.file names ${CMAKE_MATCH_1}, which the prefix lacks")
  endif()
elseif(MODE STREQUAL "include-path")
  set(flags "-I${PREFIX}/include" -lz)
else()
  message(FATAL_ERROR "MODE must be pkg-config or include-path, not '${MODE}'")
endif()

execute_process(COMMAND "${CXX}" -std=c++20 "${SOURCE}" ${flags} -o "${OUTPUT}"
  RESULT_VARIABLE failed ERROR_VARIABLE why)
if(failed)
  message(FATAL_ERROR "${CXX} -std=c++20 ${SOURCE} ${flags} failed:\n${why}")
endif()
execute_process(COMMAND "${OUTPUT}" RESULT_VARIABLE failed OUTPUT_VARIABLE out)
message("${out}")
if(failed)
  message(FATAL_ERROR "${OUTPUT} exited with ${failed}")
endif()
