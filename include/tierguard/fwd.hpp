#pragma once

#include <tierguard/detail/build_requirements.hpp>

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

struct disk_config;
struct disk_stats;
struct scrub_report;
struct disk_defaults;
template <class Key, class Value, class Policies>
class disk_tier;

struct event;
enum class event_kind : unsigned char;
enum class durability : unsigned char;
struct blob_info;

template <class T>
struct value_traits;
template <class T>
struct codec;

namespace storage {
class posix_directory;
class memory_storage;
enum class op : unsigned char;
enum class fault : unsigned char;
enum class fault_mode : unsigned char;
struct fault_rates;
struct fault_config;
struct fault_counters;
class fault_control;
template <class Inner, class Clock>
class fault_injecting;
}  // namespace storage

namespace serializer {
struct standard;
}  // namespace serializer

namespace listener {
struct none;
template <class Clock>
class stderr_logger;
struct stderr_logger_snapshot;
struct log_counts;
}  // namespace listener

enum class breaker_state : unsigned char;
struct breaker_snapshot;

namespace breaker {
template <class Clock>
class consecutive_failures;
template <class Clock>
class rolling_window;
struct none;
}  // namespace breaker

struct histogram_snapshot;
class latency_histogram;
class prometheus_text;

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
