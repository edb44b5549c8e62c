#pragma once

#include <tierguard/detail/build_requirements.hpp>

namespace tierguard {

/// The library version: the one place it is written (CMake reads it from here; docs/RELEASING.md).
inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;

}  // namespace tierguard
