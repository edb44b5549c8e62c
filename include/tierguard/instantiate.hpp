#pragma once

/// Compiling a cache once per program rather than in every translation unit that uses it.
///
/// Declare the instantiation next to the alias your code uses:
/// @code
/// // my_cache.hpp
/// #include <tierguard/cache.hpp>
/// #include <string>
/// using my_cache = tierguard::cache<std::string, std::string>;
/// extern template class tierguard::cache<std::string, std::string>;
/// @endcode
/// and define it in exactly one source file, which includes this header:
/// @code
/// // my_cache.cpp
/// #include "my_cache.hpp"
/// #include <tierguard/instantiate.hpp>
/// template class tierguard::cache<std::string, std::string>;
/// @endcode
/// The explicit instantiation compiles every member the cache's policies allow (members
/// whose constraints fail are skipped), so a program that uses more of the cache than
/// one TU needs compiles it once. What it saves per user TU depends on optimization:
/// g++ still instantiates inline members at -O1 and above to inline them, so the
/// user TU mainly saves code generation. docs/COMPILE_TIME.md gives the figures and
/// the other remedies (include only the headers you use).
///
/// This header includes every tierguard header whose definitions an instantiation can
/// need: the cache, both tiers and every stock policy a Policies struct may name.

#include <tierguard/tierguard.hpp>
