#pragma once

#include <tierguard/detail/build_requirements.hpp>

namespace tierguard {

/// The library version, kept equal to the CMake project version (a test checks it).
inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;

}  // namespace tierguard
