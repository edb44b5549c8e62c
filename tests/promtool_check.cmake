# Runs a program that writes a Prometheus exposition to stdout, then `promtool check
# metrics` on what it wrote; fails with promtool's findings (parse errors and lint
# problems alike), or if the program fails or writes nothing. Without promtool it prints
# a line starting "SKIPPED:", which tierguard_add_promtool_check's test reports as skipped.
# Run as: cmake -DPROMTOOL=<path> -DOUTPUT=<file> -P promtool_check.cmake -- <program> [arg...]
set(command)
set(seen_dashes FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(seen_dashes)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(seen_dashes TRUE)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "no program given after --")
endif()
list(JOIN command " " shown)

if(NOT PROMTOOL)
  message("SKIPPED: promtool was not found when the build was configured; install Debian's "
          "`prometheus` package (scripts/install-deps does) and reconfigure")
  return()
endif()

execute_process(COMMAND ${command} OUTPUT_FILE "${OUTPUT}" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${shown} failed (${rc}):\n${err}")
endif()
file(SIZE "${OUTPUT}" size)
if(size EQUAL 0)
  message(FATAL_ERROR "${shown} wrote nothing; an empty exposition proves nothing")
endif()

execute_process(COMMAND "${PROMTOOL}" check metrics INPUT_FILE "${OUTPUT}" RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "promtool check metrics rejected ${OUTPUT} (${rc}):\n${out}")
endif()
message(STATUS "promtool check metrics accepted ${OUTPUT} (${size} bytes)${out}")
