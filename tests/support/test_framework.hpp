#pragma once

// The one place that knows which Catch2 is in use: Debian's 2.13 or the 3.x that
// Conan and vcpkg serve. Tests include this, never Catch2 directly.
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
