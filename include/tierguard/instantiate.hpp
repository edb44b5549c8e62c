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
/// one TU needs compiles it once. The members a call reaches (open's work, get, put,
/// erase, clear, contains, metrics, health, close, the destructor) are defined out of the
/// class body, not inline, so a TU that declares the extern template compiles none of
/// them at any optimization level, nor the tiers and storages they use; it still parses
/// the headers. Member templates (get_or_load, warm, ...) and the small inline members are
/// compiled where they are used. A TU without the extern declaration still works: it
/// instantiates what it uses, and the linker keeps one copy. docs/COMPILE_TIME.md gives
/// the figures and the other remedies (include only the headers you use).
///
/// This header includes every tierguard header whose definitions an instantiation can
/// need: the cache, both tiers and every stock policy a Policies struct may name.

#include <tierguard/tierguard.hpp>
