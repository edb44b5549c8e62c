#pragma once

namespace tierguard {

enum class errc : int;
enum class tier : unsigned char;
class failure;

template <class E>
class unexpected;
template <class T, class E>
class expected;
template <class T>
using result = expected<T, failure>;

struct memory_config;
struct memory_stats;
struct memory_defaults;
template <class Key, class Value, class Policies>
class memory_tier;

namespace clock {
struct steady;
struct system;
class manual;
}  // namespace clock

namespace weigher {
struct dynamic_size;
struct unit;
}  // namespace weigher

}  // namespace tierguard
