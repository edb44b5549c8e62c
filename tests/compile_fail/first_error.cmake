# cmake -DBUILD_DIR=... -DTARGET=... -DCONFIG=... -DEXPECTED=<regex> [-DERRORS=<n>] -P first_error.cmake
# Builds TARGET, which must fail. Passes only if the compiler's first error line matches
# EXPECTED and, with ERRORS, the compiler reported exactly that many errors: the
# diagnostic a user reads first is the one the test names, with no cascade after it.
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}" --config "${CONFIG}"
                OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc)
if(rc EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled; it must not")
endif()
string(REGEX MATCH "[^\n]*error: [^\n]*" first "${out}")
string(REGEX MATCHALL "error: " errors "${out}")
list(LENGTH errors count)
message(STATUS "first error (of ${count}): ${first}")
if(NOT first MATCHES "${EXPECTED}")
  message(FATAL_ERROR "the first error does not match `${EXPECTED}`; the compiler said:\n${out}")
endif()
if(DEFINED ERRORS AND NOT count EQUAL ERRORS)
  message(FATAL_ERROR "${count} errors, expected ${ERRORS}; the compiler said:\n${out}")
endif()
