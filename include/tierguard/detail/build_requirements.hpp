#pragma once

// Every tierguard header includes this first (directly or through the headers it
// includes): a build tierguard does not support stops here, with one line naming the
// cause, instead of a thousand lines of errors from the code that follows. #error alone
// lets GCC and clang compile on; the include after it cannot be found, which is fatal.
#if (defined(_MSVC_LANG) ? _MSVC_LANG : __cplusplus) < 202002L
#error "tierguard requires C++20: compile with -std=c++20 or later"
#include <tierguard: compilation stopped at the error above>
#elif !defined(__cpp_exceptions)
#error "tierguard requires C++ exceptions: compile without -fno-exceptions (see README.md)"
#include <tierguard: compilation stopped at the error above>
#endif
