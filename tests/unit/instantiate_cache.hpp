#pragma once

// The tierguard/instantiate.hpp pattern: the cache is declared here and compiled once,
// in instantiate_cache.cpp; instantiate.cpp uses it through the declaration alone.

#include <tierguard/cache.hpp>

#include <string>

namespace tierguard_test {
using instantiated_cache = tierguard::cache<std::string, std::string>;
}  // namespace tierguard_test

extern template class tierguard::cache<std::string, std::string>;
