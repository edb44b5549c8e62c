#pragma once

#include <tierguard/breaker/concept.hpp>
#include <tierguard/breaker/consecutive_failures.hpp>
#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/system.hpp>
#include <tierguard/degradation/concept.hpp>
#include <tierguard/degradation/memory_only.hpp>
#include <tierguard/detail/entropy.hpp>
#include <tierguard/detail/message.hpp>
#include <tierguard/detail/pending_erasures.hpp>
#include <tierguard/detail/task_thread.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/detail/write_fence.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/hash.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/listener/none.hpp>
#include <tierguard/memory_tier.hpp>
#include <tierguard/metrics.hpp>
#include <tierguard/result.hpp>
#include <tierguard/serializer/concept.hpp>
#include <tierguard/serializer/standard.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/weigher/concept.hpp>
#include <tierguard/weigher/dynamic_size.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tierguard {

/// Policies::storage for a cache with no storage tier: the memory tier works alone.
struct no_storage {
    struct config {};
};

/// Policies::storage for a cache over several storage tiers, fastest first, after the
/// memory tier: `tiers<posix_directory, redis>` is memory -> disk -> remote. Each tier has
/// its own breaker, degraded-mode state, pending erasures and metrics label; its settings
/// are cache::config::tiers. A single storage type S means tiers<S>, configured by the
/// config's storage, disk and breaker fields; no_storage means no tier.
template <class... Storages>
struct tiers {};

/// The compile-time configuration of a cache. Inherit it and override what differs:
/// @code
/// struct my_policies : tierguard::cache_defaults {
///     using clock = tierguard::clock::manual;
///     template <class Clock>
///     using breaker = tierguard::breaker::rolling_window<Clock>;
///     using degradation = tierguard::degradation::bypass;
/// };
/// @endcode
/// Each member is checked against its concept when the cache is instantiated.
struct cache_defaults {
    using clock = tierguard::clock::system;               ///< clock_policy; wall time, as the disk stores expiries
    using weigher = tierguard::weigher::dynamic_size;     ///< weigher_policy of the memory tier
    using eviction = tierguard::eviction::s3fifo;         ///< eviction_policy of the memory tier
    using hash = default_hash;                            ///< hash of Key
    using key_equal = std::equal_to<>;                    ///< equality of keys
    using storage = tierguard::storage::posix_directory;  ///< storage_policy, or no_storage
    using serializer = tierguard::serializer::standard;   ///< serializer_policy for Key and Value
    /// breaker_policy guarding the storage tier, given the cache's clock.
    template <class Clock>
    using breaker = tierguard::breaker::consecutive_failures<Clock>;
    using degradation = tierguard::degradation::memory_only;  ///< degradation_policy
    using listener = tierguard::listener::none;               ///< listener_policy
};

/// Where a put left the value.
enum class stored_in : unsigned char {
    nowhere,  ///< neither tier took it (bypass while the storage tier is down)
    memory,   ///< memory only: the storage tier was down or refused it
    storage,  ///< the storage tier only (too large for the memory tier)
    /// Memory and at least one storage tier: with several, stored_in_tier(i) says which
    /// (a tier that missed it is listed in tier_failures).
    memory_and_storage,
};

[[nodiscard]] constexpr std::string_view to_string(stored_in s) noexcept {
    switch (s) {
        case stored_in::nowhere: return "nowhere";
        case stored_in::memory: return "memory";
        case stored_in::storage: return "storage";
        case stored_in::memory_and_storage: return "memory_and_storage";
    }
    return "unknown";
}

/// A storage tier that did not take a put (or an erase), and why.
struct tier_failure {
    std::size_t index = 0;  ///< the storage tier, 0 for the fastest
    failure why;            ///< its failure, or errc::circuit_open when its breaker refused
};

/// What a successful put did.
struct put_outcome {
    /// memory and/or "storage": at least one storage tier took the value.
    stored_in where = stored_in::nowhere;
    /// Why a tier did not take the value (its failure, or errc::circuit_open), if one did
    /// not: the memory tier's failure when the value is in storage only, else the first
    /// storage tier's.
    std::optional<failure> skipped;
    /// Bit i set: storage tier i (0 the fastest) took the value.
    std::uint32_t stored_tiers = 0;
    /// Each storage tier that did not take the value, in tier order; empty (and not
    /// allocated) when every one did.
    std::vector<tier_failure> tier_failures{};

    /// Whether storage tier `index` took the value.
    [[nodiscard]] bool stored_in_tier(std::size_t index) const noexcept {
        return index < 32 && (stored_tiers >> index & 1U) != 0;
    }
};

/// A value found by the cache, and where.
template <class Value>
struct hit {
    Value value;
    tier from = tier::memory;  ///< the tier that answered
    /// Expired, served by get_or_load() because the loader failed within the stale grace; or
    /// a faster tier's copy served while the invalidation link was down and the shared tier
    /// could not answer (it may have been superseded).
    bool stale = false;
};

/// What a loader may return instead of a Value to choose the entry's TTL, as an HTTP
/// response's max-age does: `return loaded<user>{.value = u, .ttl = 5min};` (or inside a
/// result-like return). No ttl: the cache's default TTL. A ttl <= 0: the value is returned
/// but not stored.
template <class Value>
struct loaded {
    Value value;
    std::optional<std::chrono::nanoseconds> ttl{};
};

/// One tier's counters in a cache_metrics snapshot.
struct tier_metrics {
    tier which = tier::memory;
    /// Its metrics label: "memory", or a storage tier's name (see tier_config::name).
    std::string name;
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;     ///< plain misses and expired entries
    std::uint64_t writes = 0;     ///< puts the tier took
    std::uint64_t evictions = 0;  ///< entries evicted, each once (the disk's emergency evictions included)
    std::uint64_t expirations = 0;
    std::uint64_t corrupted = 0;
    std::uint64_t quarantined = 0;
    std::uint64_t version_mismatches = 0;
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
    /// Storage tier: every full disk (ENOSPC, EDQUOT) its storage met, whether or not the
    /// emergency eviction's retry then stored the entry (disk_stats::disk_full_events).
    std::uint64_t disk_full = 0;
    /// Failed calls to the tier by code: errors[static_cast<size_t>(code) - 1]. circuit_open
    /// counts the calls its breaker refused.
    std::array<std::uint64_t, errc_count> errors{};
    breaker_state breaker = breaker_state::closed;
    std::uint64_t breaker_opens = 0;
    /// A storage tier: false while detached (it could not be opened; see cache::open).
    bool attached = true;
    /// Hits of a slower tier copied into this one (memory: as promote_after says).
    std::uint64_t promotions = 0;
    /// A storage tier: promotions into it skipped because its breaker refused them.
    std::uint64_t promotions_skipped = 0;
    /// A storage tier: its copies that a put or erase superseded, awaiting removal.
    std::uint64_t pending_erasures = 0;
    /// A shared tier with distributed invalidation (docs/REMOTE.md): whether it is on, the
    /// link (its subscription heard every endpoint), link losses, flushes of the faster tiers
    /// (at each link up and each flush-all notice), and notices received, applied, ignored
    /// (the cache's own, or undecodable) and published. All 0 / false for other tiers.
    bool invalidation = false;
    bool link_up = false;
    std::uint64_t link_losses = 0;
    std::uint64_t invalidation_flushes = 0;
    std::uint64_t notices_received = 0;
    std::uint64_t notices_applied = 0;
    std::uint64_t notices_ignored_own = 0;
    std::uint64_t notices_ignored_undecodable = 0;
    std::uint64_t notices_published = 0;

    [[nodiscard]] std::uint64_t errors_of(errc code) const noexcept {
        return errors[static_cast<std::size_t>(code) - 1];
    }
};

/// One put's options: `ttl` (the cache's default_ttl when empty) and `tags`, which name the
/// entry for invalidate_tag() and are stored with it in every storage tier.
struct put_options {
    std::optional<std::chrono::nanoseconds> ttl{};
    std::vector<std::string> tags{};
};

/// Where a warm() call stands: the keys done so far, out of `total`.
struct warm_progress {
    std::size_t total = 0;
    std::size_t warmed = 0;   ///< loaded and stored
    std::size_t skipped = 0;  ///< already held by a tier: not loaded
    std::size_t failed = 0;   ///< the loader failed (threw or returned an error), or no tier took the value
    bool stopped = false;     ///< the stop token was triggered before every key was done
    bool closed = false;      ///< the cache was closed before warm() began: nothing was done
};

/// How warm() runs. `threads` workers (1 or more) load keys in parallel; with `executor`
/// set, warm() hands it `threads` tasks instead of starting threads (each task must run
/// exactly once, on any thread) and waits for them. `on_progress` is called after every
/// key, one call at a time. `stop` ends the warming early: keys not yet started are not
/// loaded. `put` gives the TTL and tags of the values stored.
struct warm_options {
    std::size_t threads = 4;
    std::function<void(std::function<void()>)> executor{};
    std::function<void(const warm_progress&)> on_progress{};
    std::stop_token stop{};
    put_options put{};
};

/// A cache's counters at one instant: cache::metrics(), and to_prometheus() renders it.
struct cache_metrics {
    tier_metrics memory;
    std::vector<tier_metrics> storage;         ///< one per storage tier, fastest first; empty without one
    bool degraded = false;                     ///< a storage tier's breaker is not closed (or it is detached)
    std::uint64_t degraded_entered = 0;        ///< times the cache entered degraded mode
    std::chrono::nanoseconds degraded_time{};  ///< spent degraded, the current stretch included
    std::uint64_t promotions = 0;              ///< storage hits copied into memory (memory.promotions)
    std::uint64_t bypassed_gets = 0;           ///< degradation::bypass: gets answered as misses
    std::uint64_t bypassed_puts = 0;           ///< degradation::bypass: puts stored nowhere
    std::uint64_t bypassed_erases = 0;         ///< degradation::bypass: erases that removed nothing
    std::uint64_t pending_erasures = 0;        ///< storage copies waiting to be removed, all tiers
    std::uint64_t loads = 0;                   ///< loader calls by get_or_load() and get_or_load_all()
    std::uint64_t load_failures = 0;           ///< loader calls that failed
    std::uint64_t loads_shared = 0;            ///< get_or_load() calls that waited for another's load
    std::uint64_t stale_served = 0;            ///< get_or_load() answers stale for a failed load, per caller
    std::uint64_t untrusted_served = 0;        ///< copies of faster tiers served (stale) while the link was down
    std::uint64_t refreshes = 0;               ///< reloads by refresh-ahead (config::refresh_after)
    std::uint64_t refresh_failures = 0;        ///< reloads by refresh-ahead that failed; the entry was kept
    histogram_snapshot get_latency;            ///< lookups: memory hits sampled 1 in 64, all others timed
    histogram_snapshot put_latency;            ///< put()

    // Related entries and warming (invalidate_tag, invalidate_prefix, warm, config::warm_on_open).
    std::uint64_t invalidations_by_tag = 0;        ///< invalidate_tag() calls
    std::uint64_t invalidations_by_prefix = 0;     ///< invalidate_prefix() calls
    std::uint64_t invalidated_entries = 0;         ///< keys invalidate_tag()/invalidate_prefix() removed from a tier
    std::uint64_t warmed = 0;                      ///< warm(): keys loaded and stored
    std::uint64_t warm_skipped = 0;                ///< warm(): keys a tier already held
    std::uint64_t warm_failed = 0;                 ///< warm(): keys whose loader failed or whose value no tier took
    std::uint64_t warmed_at_open = 0;              ///< entries config::warm_on_open copied from storage into memory
    std::chrono::nanoseconds warm_at_open_time{};  ///< wall time that copy took (steady clock)
};

/// How a cache is doing, for a health endpoint.
enum class health_status : unsigned char {
    healthy,    ///< every tier serves
    degraded,   ///< serving without a storage tier: one is down, or its probe failed
    unhealthy,  ///< not serving values: a storage tier is down under bypass or fail_fast
};

[[nodiscard]] constexpr std::string_view to_string(health_status h) noexcept {
    switch (h) {
        case health_status::healthy: return "healthy";
        case health_status::degraded: return "degraded";
        case health_status::unhealthy: return "unhealthy";
    }
    return "unknown";
}

/// One tier in a health_report.
struct tier_health {
    tier which = tier::memory;
    std::string name = "memory";  ///< the tier's metrics label
    breaker_state breaker = breaker_state::closed;
    std::optional<failure> last_error;   ///< the last failure other than a miss or a refused call
    bool probed = false;                 ///< an integrity probe ran
    std::optional<failure> probe_error;  ///< what the probe met, if it failed
    /// False while the tier is detached (it could not be opened; see cache::open): no probe
    /// runs, and last_error says why.
    bool attached = true;
};

/// cache::health(): the overall status and each tier's.
struct health_report {
    health_status status = health_status::healthy;
    std::vector<tier_health> tiers;
};

namespace detail {

/// A memory hit, built inside its result: hit is an aggregate, so this takes C++20's
/// parenthesized aggregate init where the compiler has it (g++ 10, clang 16); elsewhere
/// the hit is built and moved in.
template <class Value>
[[nodiscard]] result<hit<Value>> memory_hit(const Value& value, bool stale) {
    if constexpr (std::is_constructible_v<hit<Value>, const Value&, tier, bool>) {
        return result<hit<Value>>(std::in_place, value, tier::memory, stale);
    } else {
        return result<hit<Value>>(hit<Value>{value, tier::memory, stale});
    }
}

/// Whether Policies::breaker is a template of the clock, as the slot must be.
template <class Policies, class Clock>
concept breaker_slot_template = requires {
    typename Policies::template breaker<Clock>;
};

// A slot that fails its check is replaced by a stand-in that passes, so that the cache's
// static_assert is the only error: the tiers built from the slot report nothing more.
template <class Policies, class Clock>
struct breaker_slot {
    using type = breaker::consecutive_failures<Clock>;
};
template <class Policies, class Clock>
    requires breaker_slot_template<Policies, Clock>
struct breaker_slot<Policies, Clock> {
    using type = typename Policies::template breaker<Clock>;
};
template <class Policies, class Clock>
using breaker_of = typename breaker_slot<Policies, Clock>::type;

template <class C>
using checked_clock = std::conditional_t<clock_policy<C>, C, clock::system>;

/// Stands in for a serializer that cannot encode Key or Value (see breaker_slot).
struct unusable_serializer {
    template <class T>
    [[nodiscard]] result<void> encode(const T&, std::vector<std::byte>&) const {
        return fail(errc::serialization_failed, tier::disk, "no serializer for this type");
    }
    template <class T>
    [[nodiscard]] result<T> decode(std::span<const std::byte>, std::type_identity<T>) const {
        return fail(errc::serialization_failed, tier::disk, "no serializer for this type");
    }
};
template <class S, class Key, class Value>
using checked_serializer =
    std::conditional_t<serializer_policy<S, Key> && serializer_policy<S, Value>, S, unusable_serializer>;

/// A storage's settings (S::config), or none for a storage the caller builds itself.
template <class S>
struct storage_config_of {
    struct type {};
};
template <class S>
    requires requires { typename S::config; }
struct storage_config_of<S> {
    using type = typename S::config;
};

/// Policies::storage as the list of storage tiers: S is tiers<S>, no_storage none.
template <class S>
struct storage_list {
    using type = std::tuple<S>;
    static constexpr bool listed = false;
};
template <>
struct storage_list<no_storage> {
    using type = std::tuple<>;
    static constexpr bool listed = false;
};
template <class... S>
struct storage_list<tiers<S...>> {
    using type = std::tuple<S...>;
    static constexpr bool listed = true;
};

/// A config field that does not apply to this cache's Policies::storage (the single-storage
/// fields under tiers<...>, and `tiers` otherwise).
struct not_applicable {};

/// A shared storage that carries invalidation notices (storage::redis): publish() and
/// subscribe() with a notice, a link and an error handler.
template <class S>
concept notifying_storage = shared_storage<S> && requires(S& s, const S& cs, std::span<const std::byte> notice) {
    { s.publish(notice) } -> std::same_as<result<void>>;
    cs.subscribe(typename S::notice_handler(), typename S::link_handler(), typename S::error_handler());
};

/// Element I of a tuple of storages, or no_storage past its end.
template <std::size_t I, class Tuple, bool = (I < std::tuple_size_v<Tuple>)>
struct storage_at {
    using type = no_storage;
};
template <std::size_t I, class Tuple>
struct storage_at<I, Tuple, true> {
    using type = std::tuple_element_t<I, Tuple>;
};

template <class S, bool = notifying_storage<S>>
struct subscription_of {
    using type = not_applicable;
};
template <class S>
struct subscription_of<S, true> {
    using type = typename S::subscription;
};

}  // namespace detail

/// One storage tier's run-time settings, an element of cache::config::tiers when
/// Policies::storage is tiers<...>.
template <class Storage, class BreakerConfig>
struct tier_config {
    /// Its metrics label (tier="...") and the name its events carry; empty means "disk",
    /// or "remote" for a shared storage. Two tiers of a cache may not share a name.
    std::string name;
    /// How to open the storage; empty for a storage without a config type (pass one built).
    typename detail::storage_config_of<Storage>::type storage{};
    disk_config disk{};       ///< its default_ttl is replaced by the cache's default_ttl
    BreakerConfig breaker{};  ///< this tier's breaker
    /// Distributed invalidation (docs/REMOTE.md), for the first shared tier whose storage
    /// carries notices (storage::redis); ignored for any other tier. Off: the cache neither
    /// publishes nor subscribes, and trusts its faster tiers as a single process would.
    bool invalidation = true;
};

/// A tiered cache: a memory tier in front of storage tiers (none, one, or tiers<...>),
/// each guarded by its own breaker, under a degradation policy.
///
/// get: memory, then each storage tier in order; a tier that fails or whose breaker is
/// open is passed over for the next. A hit in a storage tier is copied into every faster
/// storage tier whose breaker allows it (its remaining TTL kept), and into memory after
/// `promote_after` storage hits. put: memory, then write-through to every storage tier.
/// Guarantees: no operation throws because a tier failed; a get returns a miss or the
/// value of the last successful put for the key (never a damaged, expired, other key's or
/// superseded value: a write that reaches memory but not a storage tier keeps that tier's
/// copy from being served until it is removed, and a promotion never overwrites a newer
/// write); a storage tier that recovers is used again without a restart. Thread-safe.
template <class Key, class Value, class Policies = cache_defaults>
class cache {
public:
    using key_type = Key;
    using mapped_type = Value;
    using clock_type = detail::checked_clock<typename Policies::clock>;
    /// Policies::storage as given: a storage, tiers<...>, or no_storage.
    using storage_type = typename Policies::storage;
    /// The storage tiers' storage types, fastest first: std::tuple<S...>.
    using storage_types = typename detail::storage_list<storage_type>::type;
    using breaker_type = detail::breaker_of<Policies, clock_type>;
    using degradation_type = typename Policies::degradation;
    using listener_type = typename Policies::listener;
    using hasher = typename Policies::hash;
    using key_equal = typename Policies::key_equal;
    using time_point = typename clock_type::time_point;

    /// How many storage tiers follow the memory tier.
    static constexpr std::size_t tier_count = std::tuple_size_v<storage_types>;
    static constexpr bool has_storage = tier_count > 0;
    /// Policies::storage is tiers<...>: config::tiers holds the tiers' settings.
    static constexpr bool listed_tiers = detail::storage_list<storage_type>::listed;
    /// The storage tier with distributed invalidation: the first shared tier whose storage
    /// carries notices (detail::notifying_storage), or tier_count if none does.
    static constexpr std::size_t invalidated_tier = []<class... S>(std::tuple<S...>*) {
        constexpr std::array<bool, sizeof...(S) + 1> notifying{detail::notifying_storage<S>..., true};
        std::size_t i = 0;
        while (!notifying[i]) ++i;
        return i;
    }(static_cast<storage_types*>(nullptr));
    static constexpr bool has_invalidation = invalidated_tier < tier_count;
    using invalidated_storage = typename detail::storage_at<invalidated_tier, storage_types>::type;

    static_assert(tier_count <= 32, "tierguard::cache: at most 32 storage tiers");
    static_assert(clock_policy<typename Policies::clock>,
                  "tierguard::cache: Policies::clock does not model tierguard::clock_policy (time_point, duration "
                  "and a noexcept const now()); see docs/POLICIES.md");
    static_assert(detail::breaker_slot_template<Policies, clock_type>,
                  "tierguard::cache: Policies::breaker must be a template of the clock: "
                  "`template <class Clock> using breaker = tierguard::breaker::consecutive_failures<Clock>;`; see "
                  "docs/POLICIES.md");
    static_assert(!has_storage || serializer_policy<typename Policies::serializer, Key>,
                  "tierguard::cache: Policies::serializer cannot store Key in the storage tier (specialize "
                  "tierguard::codec<Key>, or use storage = tierguard::no_storage); see docs/POLICIES.md");
    static_assert(!has_storage || serializer_policy<typename Policies::serializer, Value>,
                  "tierguard::cache: Policies::serializer cannot store Value in the storage tier (specialize "
                  "tierguard::codec<Value>, or use storage = tierguard::no_storage); see docs/POLICIES.md");
    static_assert(weigher_policy<typename Policies::weigher, Key, Value>,
                  "tierguard::cache: Policies::weigher does not model tierguard::weigher_policy for Key and Value; "
                  "see docs/POLICIES.md");
    static_assert(breaker_policy<breaker_type>,
                  "tierguard::cache: Policies::breaker<clock> does not model tierguard::breaker_policy; see "
                  "docs/POLICIES.md");
    static_assert(std::constructible_from<breaker_type, const typename breaker_type::config&, clock_type>,
                  "tierguard::cache: Policies::breaker<clock> cannot be built from (config, Policies::clock)");
    static_assert(degradation_policy<degradation_type>,
                  "tierguard::cache: Policies::degradation does not model tierguard::degradation_policy; see "
                  "docs/POLICIES.md");
    static_assert(listener_policy<listener_type>,
                  "tierguard::cache: Policies::listener does not model tierguard::listener_policy; see "
                  "docs/POLICIES.md");
    static_assert(std::copy_constructible<Key> && std::copy_constructible<Value>,
                  "tierguard::cache: Key and Value must be copyable (a value lives in memory and in storage)");

private:
    struct memory_policies {
        using clock = clock_type;
        using weigher = typename Policies::weigher;
        using hash = hasher;
        using key_equal = typename Policies::key_equal;
        using eviction = typename detail::eviction_of<Policies>::type;
    };
    template <class S>
    struct disk_policies {
        using storage = S;
        using serializer = detail::checked_serializer<typename Policies::serializer, Key, Value>;
        using clock = clock_type;
        using listener = listener_type;
        static constexpr std::uint32_t schema_version = detail::schema_version_of<Policies, Value>;
    };
    template <class T>
    struct first_disk {
        using type = void;
    };
    template <class S, class... Rest>
    struct first_disk<std::tuple<S, Rest...>> {
        using type = disk_tier<Key, Value, disk_policies<S>>;
    };
    template <class T>
    struct per_tier;
    template <class... S>
    struct per_tier<std::tuple<S...>> {
        using configs = std::tuple<tierguard::tier_config<S, typename breaker_type::config>...>;
        using optionals = std::tuple<std::optional<S>...>;
    };
    // A storage the cache can open from its settings alone.
    template <class S>
    static constexpr bool openable = requires(const typename detail::storage_config_of<S>::type& c) {
        S::open(c);
    }
    || std::constructible_from<S, const typename detail::storage_config_of<S>::type&>;
    template <class T>
    struct all_openable;
    template <class... S>
    struct all_openable<std::tuple<S...>> {
        static constexpr bool value = (openable<S> && ...);
    };
    // A single-storage config field; not_applicable under tiers<...>.
    template <class T>
    using single_field = std::conditional_t<listed_tiers, detail::not_applicable, T>;

public:
    /// Its entries' TTLs are theirs; it keeps them stale_grace longer, for stale-if-error.
    using memory_type = memory_tier<Key, Value, memory_policies>;
    /// The disk_tier over storage tier I.
    template <std::size_t I>
    using disk_type_at = disk_tier<Key, Value, disk_policies<std::tuple_element_t<I, storage_types>>>;
    /// The first storage tier's disk_tier (void without one).
    using disk_type = typename first_disk<storage_types>::type;
    static constexpr degraded_mode degradation_mode = degradation_type::mode;
    /// The single storage's settings (config::storage); not_applicable under tiers<...>.
    using storage_config = single_field<typename detail::storage_config_of<storage_type>::type>;
    /// One storage tier's settings in config::tiers.
    template <class S>
    using tier_config = tierguard::tier_config<S, typename breaker_type::config>;
    /// config::tiers under tiers<S...>: std::tuple<tier_config<S>...>.
    using tier_configs = typename per_tier<storage_types>::configs;

    /// Run-time settings; open() validates every field and names the first bad one.
    struct config {
        memory_config memory{};  ///< its default_ttl is replaced by default_ttl below
        /// How to open the storage (posix_directory: root, sync, max_blob_size). Empty for a
        /// storage without a config type: pass one built to open(cfg, storage).
        storage_config storage{};
        single_field<disk_config> disk{};                       ///< its default_ttl is replaced by default_ttl
        single_field<typename breaker_type::config> breaker{};  ///< the storage tier's breaker
        /// Policies::storage = tiers<S...>: each storage tier's name, storage, disk and
        /// breaker settings, fastest first (the fields above then do not apply).
        std::conditional_t<listed_tiers, tier_configs, detail::not_applicable> tiers{};
        typename degradation_type::config degradation{};
        /// TTL of entries put without one, in every tier.
        std::chrono::nanoseconds default_ttl = no_expiry;
        /// Storage hits of a key before it is copied into memory, 1 to 255 (seed 000 used 3). Counted
        /// in a fixed table of 4096 counters by key hash, so keys that share a counter may
        /// be promoted early; never late. Copies into faster storage tiers are not delayed.
        std::uint32_t promote_after = 1;
        /// At open, copy up to this many of the first storage tier's most recently used
        /// entries into memory (warming; metrics warmed_at_open and warm_at_open_time). 0 = none.
        std::size_t warm_on_open = 0;
        /// get_or_load(): how long past its TTL an entry may still be returned, marked
        /// stale, when the loader fails (stale-if-error). 0 = never.
        std::chrono::nanoseconds stale_grace{0};
        /// get_or_load(): an entry it loaded (or refreshed) longer ago than this is answered
        /// at once and reloaded on the cache's refresh thread, one reload per key at a time
        /// (refresh-ahead, Caffeine's refreshAfterWrite). A failed reload keeps the entry.
        /// 0 = never; else below default_ttl (open() refuses it otherwise: errc::invalid_argument).
        std::chrono::nanoseconds refresh_after{0};
        /// Keys whose storage copy awaits removal (see the class comment) kept at most per
        /// storage tier; past it the whole tier is cleared when it is back.
        std::size_t max_pending_erasures = 100000;
    };

    /// Checks a configuration without opening anything. Errors name the first bad field;
    /// under tiers<...> also two tiers with one name.
    [[nodiscard]] static result<void> validate(const config& cfg);

    /// Opens a cache: validates `cfg`, opens every storage from its settings and the disk
    /// tier over it. Fails with the first bad setting or a misconfigured storage (see
    /// is_runtime_fault: errc::locked when another process holds the directory, a root
    /// that is a link, not ours or writable by others). A run-time fault of a storage (a
    /// full disk, an I/O error, an unreadable folder) does not fail it: the cache opens
    /// degraded, with that tier's breaker open and the tier detached (attached() is
    /// false), and attaches the tier when a call the breaker lets through (the half-open
    /// probe) opens it; events storage_unavailable and storage_attached.
    [[nodiscard]] static result<cache> open(
        const config& cfg, clock_type clock = clock_type(),
        listener_type listener = listener_type()) requires(all_openable<storage_types>::value) {
        return start(cfg, typename per_tier<storage_types>::optionals{}, clock, listener);
    }

    /// As open(cfg, ...), over a storage the caller built (a fault-injecting wrapper, say).
    /// A cache opened degraded keeps `storage` and opens the tier over it again at its probe.
    [[nodiscard]] static result<cache> open(const config& cfg, storage_type storage, clock_type clock = clock_type(),
                                            listener_type listener = listener_type()) requires(has_storage &&
                                                                                               !listed_tiers) {
        return start(cfg, typename per_tier<storage_types>::optionals{std::move(storage)}, clock, listener);
    }

    /// As open(cfg, ...) under tiers<S...>, over storages the caller built, fastest first.
    [[nodiscard]] static result<cache> open(const config& cfg, storage_types storages, clock_type clock = clock_type(),
                                            listener_type listener = listener_type()) requires listed_tiers {
        return start(cfg, typename per_tier<storage_types>::optionals(std::move(storages)), clock, listener);
    }

    cache(cache&&) noexcept = default;
    cache& operator=(cache&& other) noexcept;
    cache(const cache&) = delete;
    cache& operator=(const cache&) = delete;
    /// Closes the tiers. Storage copies that a put or erase superseded but could not remove
    /// (pending_erasures in metrics) are removed first, so that a restart cannot serve them:
    /// a detached tier is opened once for that, and if a copy still cannot be removed the
    /// storage tier is cleared; if even that fails, an io_error event says how many copies a
    /// restart may serve (docs/RELIABILITY.md). Each storage tier separately.
    ~cache();

    /// Closes the cache without destroying it: does what the destructor does (superseded
    /// copies removed first), then releases every storage tier (disk_tier::close(): the
    /// directory's lock included, so another cache may open the same directory at once)
    /// and empties the memory tier. Afterwards get, get_or_load, put, erase, clear and
    /// scrub fail with errc::closed, contains() is false, the tiers read as detached in
    /// metrics() and health() (no probe runs), and disk() of a tier that was attached is a
    /// closed disk_tier. Idempotent.
    /// Not to be called while another call on the cache runs.
    void close();

    /// The value for `key` and the tier it came from. Errors, all meaning "not cached":
    /// errc::miss and errc::expired (plain misses; a storage tier answers miss for an entry
    /// that had expired or had another schema version, whether or not a scrub removed it
    /// first), errc::circuit_open (a storage tier's breaker is open), or the storage failure
    /// that made it a miss (errc::corrupted, errc::io_error, ...), with the tier in
    /// failure::where(). With several storage tiers, the first failure other than a plain
    /// miss wins. errc::closed after close().
    [[nodiscard]] result<hit<Value>> get(const Key& key);

    /// Stores `value` with the default TTL: memory, then every storage tier. See put_outcome.
    result<put_outcome> put(const Key& key, const Value& value);

    /// As put(key, value), with this entry's own TTL (errc::invalid_argument if ttl <= 0).
    /// Errors: errc::too_large when no tier can hold it, errc::circuit_open under
    /// fail_fast while a storage tier is down, errc::serialization_failed, or the
    /// storage failure when memory did not take it either.
    /// `tags` as in put(key, value, put_options).
    result<put_outcome> put(const Key& key, const Value& value, std::chrono::nanoseconds ttl,
                            std::span<const std::string> tags = {});

    /// Removes `key` from every tier; true if a tier held it. While a storage tier is
    /// down: memory_only removes the other copies now and that tier's copy when it is
    /// back; bypass removes nothing and returns false; fail_fast returns errc::circuit_open.
    result<bool> erase(const Key& key);

    /// Removes every entry from every tier. A storage tier that cannot be cleared now is
    /// never read again until it has been (the first such failure is returned).
    result<void> clear();

    /// True if a tier holds an unexpired entry for `key`. Reads no file (the storage
    /// tiers' indexes answer) and counts nothing; a get may still miss.
    [[nodiscard]] bool contains(const Key& key) const;

    /// Storage tier I's maintenance (see disk_tier::scrub). It is the repair for damage that
    /// opened the breaker (a run of corrupted entries), so it runs while the breaker is open
    /// too, then without telling the breaker its outcome (the breaker still probes the tier
    /// when its open period ends); errc::circuit_open only while the tier is detached.
    template <std::size_t I = 0>
    result<scrub_report> scrub() requires(I < tier_count) {
        if (is_closed()) return closed_failure();
        auto& t = tier_at<I>();
        breaker_type& b = *t.breakers.front();
        if (!b.allow()) {
            if (!tier_attached(t)) return unexpected(refused(t));
            auto report = t.disk->scrub();
            if (!report) note_error(t, report.error());
            return report;
        }
        return allowed(t, b, [&] { return t.disk->scrub(); });
    }

    /// get(), or on a miss: calls loader(key) once, stores and returns its value (from ==
    /// tier::loader). Concurrent misses on one key share one loader call and its result.
    /// The loader returns a Value or a loaded<Value> (its own TTL), or a result-like object
    /// of either (std::expected-like: has_value(), value() or operator*, error()). It fails
    /// by returning an error E (a tierguard::failure, std::error_code or error-code enum, a
    /// string, an exception or exception_ptr, anything with message()) or by throwing:
    /// either becomes errc::loader_failed, where() == tier::loader, carrying what it said
    /// (and its OS error). With config.stale_grace > 0, a value expired less than
    /// stale_grace ago, in memory or in a storage tier (also after a restart), is returned
    /// marked stale when the loader fails. A storage failure on the way is no error: the
    /// loader's value is served. See docs/POLICIES.md, "Loaders".
    template <class F>
        requires std::invocable<F&, const Key&>
    [[nodiscard]] result<hit<Value>> get_or_load(const Key& key, F&& loader) {
        if (is_closed()) return closed_failure();
        std::optional<Value> stale;
        if (auto found = lookup(key, &stale)) {
            if (m->refresh_after > std::chrono::nanoseconds::zero() && !found->stale) refresh_if_due(key, loader);
            return found;
        }
        state& s = *m;
        auto [f, leader] = join_flight(key);
        if (!leader) return await(*f);
        const flight_landing landing(s, key, f);
        if (stored_since_lookup(key)) {  // by a leader that landed after the lookup above
            if (auto found = lookup(key, &stale)) {
                landing.publish(found);
                return found;
            }
        }
        auto outcome = load(key, loader, std::move(stale));
        landing.publish(outcome, outcome && outcome->stale);
        return outcome;
    }

    /// get(key) for each of `keys`, answers in the same order.
    [[nodiscard]] std::vector<result<hit<Value>>> get_all(std::span<const Key> keys) {
        std::vector<result<hit<Value>>> out;
        out.reserve(keys.size());
        for (const Key& key : keys) out.push_back(get(key));
        return out;
    }

    /// get_or_load() for each of `keys`, answers in the same order, with one call of
    /// `loader(misses)` (a std::span<const Key>) for the keys no tier held. It returns
    /// what it found as a range of pairs of a key and a Value or loaded<Value> (a std::map,
    /// a std::vector<std::pair<Key, Value>>, ...), or a result-like object of one (see
    /// get_or_load); a key it leaves out is answered errc::miss with where() ==
    /// tier::loader. When it fails, each of its keys is answered as get_or_load answers a
    /// failed load (stale within the grace, else errc::loader_failed). Single flight with
    /// get_or_load(): a key another call is loading already is not passed to `loader`; its
    /// answer is that load's, awaited after this call's own load (so two bulk calls never
    /// wait for each other). Counts one load (and at most one load failure) per call of
    /// `loader`, and one shared load per key awaited.
    template <class F>
        requires std::invocable<F&, std::span<const Key>>
    [[nodiscard]] std::vector<result<hit<Value>>> get_or_load_all(std::span<const Key> keys, F&& loader) {
        if (is_closed()) return std::vector<result<hit<Value>>>(keys.size(), closed_failure());
        state& s = *m;
        const std::size_t n = keys.size();
        std::vector<std::optional<result<hit<Value>>>> answers(n);
        std::vector<std::optional<Value>> stale(n);
        std::vector<std::shared_ptr<flight>> others(n);  // keys another call is loading
        std::deque<flight_landing> landings;             // the keys this call loads, in order
        std::vector<std::size_t> led;                    // their positions in keys
        for (std::size_t i = 0; i < n; ++i) {
            if (auto found = lookup(keys[i], &stale[i])) {
                answers[i].emplace(std::move(found));
                continue;
            }
            auto [f, leader] = join_flight(keys[i]);
            if (leader) {
                landings.emplace_back(s, keys[i], std::move(f));
                led.push_back(i);
            } else {
                others[i] = std::move(f);
            }
        }
        std::vector<Key> misses;
        std::vector<std::size_t> loading;  // positions in led
        for (std::size_t j = 0; j < led.size(); ++j) {
            const Key& key = keys[led[j]];
            if (stored_since_lookup(key)) {  // by a load that landed after the lookup above
                if (auto found = lookup(key, &stale[led[j]])) {
                    landings[j].publish(found);
                    answers[led[j]].emplace(std::move(found));
                    continue;
                }
            }
            misses.push_back(key);
            loading.push_back(j);
        }
        if (!misses.empty()) {
            s.loads.fetch_add(1, std::memory_order_relaxed);
            std::optional<failure> failed;
            auto found = call_loader(loader, std::span<const Key>(misses), failed);
            std::vector<std::optional<loaded<Value>>> values(misses.size());
            if (found) {
                std::unordered_map<Key, std::size_t, hasher, key_equal> position;
                for (std::size_t k = 0; k < misses.size(); ++k) position.try_emplace(misses[k], k);
                for (auto&& [key, value] : *found)
                    if (const auto it = position.find(key); it != position.end())
                        values[it->second].emplace(as_loaded(std::move(value)));
            } else {
                s.load_failures.fetch_add(1, std::memory_order_relaxed);
            }
            for (std::size_t k = 0; k < misses.size(); ++k) {
                const std::size_t i = led[loading[k]];
                result<hit<Value>> outcome = fail(errc::miss, tier::loader, "the bulk loader returned no value for it");
                if (values[k]) {
                    outcome = store_loaded(keys[i], std::move(*values[k]));
                } else if (failed) {
                    outcome = after_failure(keys[i], *failed, std::move(stale[i]));
                }
                landings[loading[k]].publish(outcome, outcome && outcome->stale);
                answers[i].emplace(std::move(outcome));
            }
        }
        std::vector<result<hit<Value>>> out;
        out.reserve(n);
        for (std::size_t i = 0; i < n; ++i) out.push_back(others[i] ? await(*others[i]) : std::move(*answers[i]));
        return out;
    }

    // --- Related entries and warming (docs/RELIABILITY.md: "Invalidation of related
    // entries", "Warming")

    /// put(key, value) with `opts.ttl` (default_ttl when empty) and `opts.tags`. Tags name
    /// the entry for invalidate_tag(); storage tiers keep them in the entry's frame, so a
    /// restart keeps them. Errors as put(); errc::invalid_argument for an empty tag or one
    /// over 65535 bytes, errc::too_large for more than 64 KiB of tags (from a storage tier).
    result<put_outcome> put(const Key& key, const Value& value, const put_options& opts) {
        return put(key, value, opts.ttl.value_or(m->default_ttl), opts.tags);
    }

    /// Removes every entry put with `tag` from every tier, each key as erase() removes it;
    /// returns how many keys a tier held. The keys come from the cache's own tag index (keys
    /// it put with tags; pruned of keys memory no longer holds) and from each non-shared
    /// storage tier's index (built from the frames, so it survives restarts). A shared tier
    /// keeps no index: its copies of keys found elsewhere are removed (and announced), others
    /// stay until their TTL (docs/RELIABILITY.md). A put racing the call: see the docs; in
    /// short, per key, a put that returned before invalidate_tag was called is removed, one
    /// called after invalidate_tag returned survives. Errors: the first storage tier whose
    /// index could not be read (errc::circuit_open, errc::io_error, ...) or the first failed
    /// erase; every key found is removed all the same. Thread-safe.
    result<std::size_t> invalidate_tag(std::string_view tag) {
        if (is_closed()) return closed_failure();
        m->invalidations_by_tag.fetch_add(1, std::memory_order_relaxed);
        return invalidate_keys(m->tags.take(tag), [&](auto& disk) { return disk.keys_tagged(tag); });
    }

    /// As invalidate_tag(), for every key that starts with `prefix` (keys that convert to a
    /// std::string_view): memory's keys are walked; non-shared storage tiers answer from
    /// their key index without reading the storage.
    result<std::size_t> invalidate_prefix(std::string_view prefix) requires
        std::convertible_to<const Key&, std::string_view> && std::constructible_from<Key, std::string_view> {
        if (is_closed()) return closed_failure();
        state& s = *m;
        s.invalidations_by_prefix.fetch_add(1, std::memory_order_relaxed);
        std::vector<Key> keys;
        for (std::size_t i = 0; i < s.memory.shard_count(); ++i)
            for (Key& key : s.memory.eviction_order(i))
                if (std::string_view(key).starts_with(prefix)) keys.push_back(std::move(key));
        return invalidate_keys(std::move(keys), [&](auto& disk) { return disk.keys_with_prefix(prefix); });
    }

    /// Loads `keys` that no tier holds (contains()) with loader(key) and puts them with
    /// `opts.put`: opts.threads calls at a time, on threads of its own or through
    /// opts.executor; the loader must be callable from several threads at once. The loader
    /// returns and fails as for get_or_load(); a failure is counted (warm_failed) and goes
    /// no further: no breaker, no error event, no effect on serving. Returns when every key
    /// is done or opts.stop is triggered; on_progress (which must not throw) follows each
    /// key. After close() it returns at once, `closed` set. Serving continues meanwhile: a
    /// get or put of a key being warmed is as with any concurrent put.
    template <class F>
        requires std::invocable<F&, const Key&> warm_progress warm(std::span<const Key> keys, F&& loader,
                                                                   const warm_options& opts = {}) {
            warm_progress progress{keys.size(), 0, 0, 0, false};
            if (is_closed()) {
                progress.closed = true;
                return progress;
            }
            state& s = *m;
            std::mutex progress_mutex;
            std::atomic<std::size_t> next{0};
            auto work = [&] {
                for (std::size_t i = next.fetch_add(1); i < keys.size(); i = next.fetch_add(1)) {
                    if (opts.stop.stop_requested()) {
                        std::lock_guard lock(progress_mutex);
                        progress.stopped = true;
                        return;
                    }
                    std::size_t warm_progress::*outcome = &warm_progress::skipped;
                    if (!contains(keys[i])) {
                        std::optional<failure> failed;
                        auto found = call_loader(loader, keys[i], failed);
                        outcome = &warm_progress::failed;
                        if (found) {
                            loaded<Value> value = as_loaded(std::move(*found));
                            put_options how = opts.put;
                            if (value.ttl) how.ttl = value.ttl;
                            auto stored = put(keys[i], value.value, how);
                            if (stored && stored->where != stored_in::nowhere) outcome = &warm_progress::warmed;
                        }
                    }
                    (outcome == &warm_progress::warmed    ? s.warmed
                     : outcome == &warm_progress::skipped ? s.warm_skipped
                                                          : s.warm_failed)
                        .fetch_add(1, std::memory_order_relaxed);
                    std::lock_guard lock(progress_mutex);
                    ++(progress.*outcome);
                    if (opts.on_progress) opts.on_progress(progress);
                }
            };
            const std::size_t workers = std::min(std::max<std::size_t>(opts.threads, 1), keys.size());
            if (opts.executor) {
                std::latch done(static_cast<std::ptrdiff_t>(workers));
                for (std::size_t w = 0; w < workers; ++w)
                    opts.executor([&] {
                        work();
                        done.count_down();
                    });
                done.wait();
            } else if (workers != 0) {
                std::vector<std::jthread> pool;
                for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(work);
                work();
            }
            return progress;
        }

    /// The counters of every tier, the breakers, degraded mode and latencies.
    [[nodiscard]] cache_metrics metrics() const;

    /// metrics() in the Prometheus text exposition format (version 0.0.4), every name
    /// prefixed tierguard_, per-tier series labelled tier="<name>"; docs/METRICS.md lists them.
    [[nodiscard]] std::string to_prometheus() const { return render_prometheus(metrics()); }

    /// The cache's status and each tier's breaker and last error. With `probe`, also
    /// writes a canary blob to every attached storage, reads it back, compares and removes
    /// it (seed 003's integrity check): a failure makes the cache degraded and is reported
    /// to the listener. The probe bypasses the breaker and does not feed it. The status is
    /// the worst of the tiers'.
    [[nodiscard]] health_report health(bool probe = false);

    /// The memory tier, for its statistics and for tests. Writing through it bypasses the
    /// cache's write fence: read, do not write, while the cache serves.
    [[nodiscard]] memory_type& memory() noexcept { return m->memory; }
    /// Storage tier I's disk_tier (0, the fastest, by default), for its stats(), name_for()
    /// and storage(); only while it is attached (after close(), a tier that was attached
    /// is a closed disk_tier). Writing through it bypasses the cache's pending erasures.
    template <std::size_t I = 0>
    [[nodiscard]] disk_type_at<I>& disk() noexcept requires(I < tier_count) {
        return *tier_at<I>().disk;
    }
    /// False while a storage tier is detached: open() met a run-time fault of its
    /// storage, and no probe has opened it since. Always true without a storage tier.
    [[nodiscard]] bool attached() const noexcept {
        return !any_tier([&](auto& t, auto) { return !tier_attached(t); });
    }
    /// Whether storage tier I is attached (see attached()).
    template <std::size_t I>
    [[nodiscard]] bool attached() const noexcept requires(I < tier_count) {
        return tier_attached(tier_at<I>());
    }
    /// Storage tier I's breaker (0, the fastest, by default): force_open(), force_closed(),
    /// reset(), snapshot(). A storage with several endpoints (storage::redis) has one
    /// breaker per endpoint, in the order of its endpoints(): `endpoint` picks one
    /// (precondition: below breaker_count<I>()).
    template <std::size_t I = 0>
    [[nodiscard]] breaker_type& breaker(std::size_t endpoint = 0) noexcept requires(I < tier_count) {
        return *tier_at<I>().breakers[endpoint];
    }
    /// How many breakers storage tier I has: 1, or one per endpoint of its storage.
    template <std::size_t I = 0>
    [[nodiscard]] std::size_t breaker_count() const noexcept requires(I < tier_count) {
        return tier_at<I>().breakers.size();
    }
    /// Storage tier I's name, its metrics label.
    template <std::size_t I>
    [[nodiscard]] const std::string& tier_name() const noexcept requires(I < tier_count) {
        return tier_at<I>().name;
    }
    /// True while a storage tier's breaker is not closed or the tier is detached (the
    /// cache runs degraded).
    [[nodiscard]] bool degraded() const noexcept { return m->degraded_tiers.load(std::memory_order_acquire) != 0; }
    [[nodiscard]] const clock_type& clock() const noexcept { return m->clock; }

private:
    // When a loaded key is due for a refresh, when it expires, and whether one runs.
    struct refresh_record {
        time_point due{};
        time_point expiry{};
        bool running = false;
    };
    static constexpr std::size_t refresh_queue = 1024;  // refreshes waiting for the thread, at most

    // One loader call that concurrent get_or_load() misses of a key wait for.
    struct flight {
        std::mutex mutex;
        std::condition_variable done_cv;
        std::optional<result<hit<Value>>> outcome;
        bool stale_if_error = false;  // the outcome is a stale value served because the load failed
    };

    // A storage tier: its disk_tier (or what is needed to open it), breaker, pending
    // erasures, degraded-mode state and counters. A shared tier (a remote storage) is the
    // place where distributed invalidation will hook in: the tiers before it are the ones
    // another process's write must reach.
    template <class S>
    struct tier_state {
        using storage_t = S;
        using disk_t = disk_tier<Key, Value, disk_policies<S>>;
        using storage_cfg_t = typename detail::storage_config_of<S>::type;
        static constexpr bool shared = detail::shared_storage<S>;

        tier_state(const tier_config<S>& tc, std::size_t max_pending, const clock_type& clock)
            : name(name_of<S>(tc)), breaker_cfg(tc.breaker), pending(max_pending) {
            breakers.push_back(std::make_unique<breaker_type>(breaker_cfg, clock));
        }

        std::string name;
        tier kind = shared ? tier::remote : tier::disk;
        std::optional<disk_t> disk;  // set before `attached`
        // Until the tier is attached: what open() could not finish (under attach_mutex).
        struct detached_tier {
            std::optional<S> storage;   // kept, with its lock, if it opened but the tier did not
            storage_cfg_t storage_cfg;  // opens it again when `storage` is empty
            disk_config disk_cfg;
        };
        std::mutex attach_mutex;
        std::optional<detached_tier> detached;
        std::atomic<bool> attached{false};
        // One breaker, or one per endpoint of a storage with several (endpoints(),
        // endpoint_for()): set up by open(), fixed afterwards.
        typename breaker_type::config breaker_cfg;
        std::vector<std::unique_ptr<breaker_type>> breakers;
        std::vector<std::string> endpoint_ids;  // the storage's endpoints, matching `breakers` when split
        detail::pending_erasures<Key, hasher, key_equal> pending;
        std::atomic<bool> retrying_pending{false};                     // a thread is in retry_pending(t)
        std::atomic<breaker_state> last_state{breaker_state::closed};  // changed under state::mode_mutex
        std::atomic<std::uint64_t> index_misses{0};
        std::atomic<std::uint64_t> untiered_disk_full{0};  // full disks the disk tier did not count: opening it, probes
        std::atomic<std::uint64_t> promotions{0};
        std::atomic<std::uint64_t> promotions_skipped{0};
        std::array<std::atomic<std::uint64_t>, errc_count> errors{};
        mutable std::mutex last_error_mutex;
        std::optional<failure> last_error;
    };

    // Distributed invalidation of tier invalidated_tier (see docs/REMOTE.md).
    struct invalidation_state {
        bool enabled = false;  // set by open(), fixed afterwards
        std::array<std::byte, 16> sender{};
        std::atomic<bool> link_up{false};   // false until the subscription's first on_link(true)
        std::atomic<unsigned> flushing{0};  // flushes of the faster tiers running (untrusted meanwhile)
        std::atomic<std::uint64_t> link_losses{0};
        std::atomic<std::uint64_t> flushes{0};
        std::atomic<std::uint64_t> received{0};
        std::atomic<std::uint64_t> applied{0};
        std::atomic<std::uint64_t> ignored_own{0};
        std::atomic<std::uint64_t> ignored_undecodable{0};
        std::atomic<std::uint64_t> published{0};
        std::atomic<std::uint64_t> untrusted_served{0};
    };

    // A notice: format byte, the sender's 16-byte id, the operation, then (key) the key's
    // encoded bytes, as the serializer encodes keys into frames.
    static constexpr std::byte notice_format{1};
    static constexpr std::byte notice_key{1};
    static constexpr std::byte notice_flush{2};
    static constexpr std::size_t notice_header = 18;

    template <class T>
    struct tier_states;
    template <class... S>
    struct tier_states<std::tuple<S...>> {
        using type = std::tuple<std::unique_ptr<tier_state<S>>...>;
    };

    // The tags of the keys this cache put with tags, for invalidate_tag(): memory keeps no
    // tags, and a shared tier no index. Once it holds more keys than memory (plus 1024),
    // keys memory no longer holds leave it (a non-shared storage tier's index has them).
    struct tag_index {
        std::mutex mutex;
        std::unordered_map<std::string, std::unordered_set<Key, hasher, key_equal>, default_hash, std::equal_to<>> keys;
        std::unordered_map<Key, std::vector<std::string>, hasher, key_equal> tags_of;
        std::atomic<bool> used{false};  // a tag was ever noted: untagged puts then look too

        void note(const Key& key, std::span<const std::string> tags, const memory_type& memory) {
            if (tags.empty() && !used.load(std::memory_order_acquire)) return;
            std::lock_guard lock(mutex);
            forget(key);
            if (tags.empty()) return;
            used.store(true, std::memory_order_release);
            auto& mine = tags_of[key];
            for (const std::string& tag : tags) {
                mine.push_back(tag);
                auto it = keys.find(std::string_view(tag));
                if (it == keys.end()) it = keys.emplace(tag, std::unordered_set<Key, hasher, key_equal>{}).first;
                it->second.insert(key);
            }
            if (tags_of.size() > 2 * memory.size() + 1024) {
                std::vector<Key> gone;
                for (const auto& entry : tags_of)
                    if (!memory.contains(entry.first)) gone.push_back(entry.first);
                for (const Key& k : gone) forget(k);
            }
        }

        // The keys noted with `tag`, which leave the index.
        std::vector<Key> take(std::string_view tag) {
            std::lock_guard lock(mutex);
            const auto it = keys.find(tag);
            if (it == keys.end()) return {};
            std::vector<Key> out(it->second.begin(), it->second.end());
            for (const Key& k : out) forget(k);
            return out;
        }

        void forget(const Key& key) {
            const auto it = tags_of.find(key);
            if (it == tags_of.end()) return;
            for (const std::string& tag : it->second) {
                if (const auto t = keys.find(std::string_view(tag)); t != keys.end()) {
                    t->second.erase(key);
                    if (t->second.empty()) keys.erase(t);
                }
            }
            tags_of.erase(it);
        }
    };

    struct state {
        state(const config& cfg, clock_type c, listener_type l)
            : clock(std::move(c)),
              memory(memory_config_of(cfg), clock),
              tiers(make_tiers(settings_of(cfg), cfg.max_pending_erasures, clock)),
              degradation(cfg.degradation),
              listener(std::move(l)),
              default_ttl(cfg.default_ttl),
              promote_after(cfg.promote_after),
              normal_budget(cfg.memory.byte_budget),
              access(std::make_unique<std::atomic<std::uint8_t>[]>(access_slots)),
              refresh_after(cfg.refresh_after) {}

        clock_type clock;
        memory_type memory;
        typename tier_states<storage_types>::type tiers;
        degradation_type degradation;
        listener_type listener;
        detail::write_fence fence;
        std::chrono::nanoseconds default_ttl;
        std::uint32_t promote_after;
        std::size_t normal_budget;
        std::unique_ptr<std::atomic<std::uint8_t>[]> access;
        std::chrono::nanoseconds refresh_after;

        // Degraded mode (any tier's): changed under mode_mutex, read without it.
        mutable std::mutex mode_mutex;
        std::atomic<std::size_t> degraded_tiers{0};
        time_point degraded_since{};
        std::chrono::nanoseconds degraded_total{0};
        std::uint64_t degraded_entered = 0;

        std::atomic<std::uint64_t> promotions{0};
        std::atomic<std::uint64_t> bypassed_gets{0};
        std::atomic<std::uint64_t> bypassed_puts{0};
        std::atomic<std::uint64_t> bypassed_erases{0};
        std::atomic<std::uint64_t> stale_served{0};
        std::atomic<std::uint64_t> memory_writes{0};
        std::atomic<std::uint64_t> loads{0};
        std::atomic<std::uint64_t> load_failures{0};
        std::atomic<std::uint64_t> loads_shared{0};
        tag_index tags;
        std::atomic<std::uint64_t> invalidations_by_tag{0};
        std::atomic<std::uint64_t> invalidations_by_prefix{0};
        std::atomic<std::uint64_t> invalidated_entries{0};
        std::atomic<std::uint64_t> warmed{0};
        std::atomic<std::uint64_t> warm_skipped{0};
        std::atomic<std::uint64_t> warm_failed{0};
        std::uint64_t warmed_at_open = 0;  // set by open()
        std::chrono::nanoseconds warm_at_open_time{0};
        std::array<std::atomic<std::uint64_t>, errc_count> memory_errors{};
        latency_histogram get_latency;
        latency_histogram put_latency;
        std::mutex flights_mutex;
        std::unordered_map<Key, std::shared_ptr<flight>, hasher, key_equal> flights;
        invalidation_state invalidation;
        std::atomic<bool> closed{false};  // close(): the tiers are released
        // Started when the invalidated tier attaches; stopped first in ~cache (its callbacks
        // use this state). Under the tier's attach_mutex until then.
        std::optional<typename detail::subscription_of<invalidated_storage>::type> subscription;
        // Refresh-ahead (config::refresh_after), under refresh_mutex: when each key get_or_load
        // loaded is due, pruned of expired and uncached keys as it doubles. The thread is
        // stopped before the rest of the state goes (it is the last member, and ~cache stops it).
        std::mutex refresh_mutex;
        std::unordered_map<Key, refresh_record, hasher, key_equal> refresh_due;
        std::size_t refresh_prune_at = 1024;
        std::atomic<std::uint64_t> refreshes{0};
        std::atomic<std::uint64_t> refresh_failures{0};
        detail::task_thread refresher{refresh_queue};
    };

    static constexpr std::size_t access_slots = 4096;

    // A get's ticket from the write fence, taken before its first storage read.
    struct fence_ticket {
        bool taken = false;
        std::uint64_t hash = 0;
        std::optional<std::uint64_t> ticket;
    };

    // Brackets a write in the fence, also when the write throws.
    class write_scope {
    public:
        write_scope(detail::write_fence& fence, std::uint64_t h) noexcept : m_fence(fence), m_hash(h) {
            m_fence.begin(h);
        }
        write_scope(const write_scope&) = delete;
        write_scope& operator=(const write_scope&) = delete;
        ~write_scope() { m_fence.end(m_hash); }

    private:
        detail::write_fence& m_fence;
        std::uint64_t m_hash;
    };

    // Observes the time from its construction to its destruction.
    class latency_scope {
    public:
        explicit latency_scope(latency_histogram& h) noexcept
            : m_histogram(h), m_start(std::chrono::steady_clock::now()) {}
        latency_scope(const latency_scope&) = delete;
        latency_scope& operator=(const latency_scope&) = delete;
        ~latency_scope() { m_histogram.observe(std::chrono::steady_clock::now() - m_start); }

    private:
        latency_histogram& m_histogram;
        std::chrono::steady_clock::time_point m_start;
    };

    explicit cache(std::unique_ptr<state> s) : m(std::move(s)) {}

    // A put no tier took. A storage tier that refused the entry itself (too large, a key
    // over its max_key_size) names the limit the caller crossed, and is answered first;
    // the memory tier's reason follows.
    [[nodiscard]] static failure refused_everywhere(failure memory_why, const std::vector<tier_failure>& tiers) {
        for (const tier_failure& tf : tiers) {
            const errc code = tf.why.code();
            if (code == errc::too_large || code == errc::invalid_argument)
                return failure(code, tf.why.where(),
                               detail::concat({tf.why.context(), "; memory tier: ", memory_why.context()}),
                               tf.why.os_error());
        }
        return memory_why;
    }

    [[nodiscard]] bool is_closed() const noexcept { return m->closed.load(std::memory_order_acquire); }
    [[nodiscard]] static unexpected<failure> closed_failure() {
        return fail(errc::closed, tier::none, "the cache was closed (close()); open a new one");
    }

    // Calls f(std::integral_constant<std::size_t, I>{}) for every storage tier I, in order.
    template <class F>
    static void for_each_index(F&& f) {
        [&]<std::size_t... I>(std::index_sequence<I...>) { (f(std::integral_constant<std::size_t, I>{}), ...); }
        (std::make_index_sequence<tier_count>{});
    }

    // Calls f(tier, index) for every storage tier, fastest first.
    template <class F>
    void for_each_tier(F&& f) const {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (f(*std::get<I>(m->tiers), std::integral_constant<std::size_t, I>{}), ...);
        }
        (std::make_index_sequence<tier_count>{});
    }

    // As for_each_tier, stopping at the first tier for which f returns true; true if one did.
    template <class F>
    bool any_tier(F&& f) const {
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return (false || ... || f(*std::get<I>(m->tiers), std::integral_constant<std::size_t, I>{}));
        }
        (std::make_index_sequence<tier_count>{});
    }

    template <std::size_t I>
    [[nodiscard]] auto& tier_at() const noexcept {
        return *std::get<I>(m->tiers);
    }

    template <class T>
    [[nodiscard]] static bool tier_attached(const T& t) noexcept {
        return t.attached.load(std::memory_order_acquire);
    }

    template <class S>
    [[nodiscard]] static std::string name_of(const tier_config<S>& tc) {
        if (!tc.name.empty()) return tc.name;
        return detail::shared_storage<S> ? "remote" : "disk";
    }

    // Every storage tier's settings: config::tiers, or the single storage's fields.
    [[nodiscard]] static tier_configs settings_of(const config& cfg) {
        if constexpr (listed_tiers) {
            return cfg.tiers;
        } else if constexpr (has_storage) {
            using S = std::tuple_element_t<0, storage_types>;
            return tier_configs{tier_config<S>{std::string(), cfg.storage, cfg.disk, cfg.breaker}};
        } else {
            return {};
        }
    }

    [[nodiscard]] static typename tier_states<storage_types>::type make_tiers(const tier_configs& settings,
                                                                              std::size_t max_pending,
                                                                              const clock_type& clock) {
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return typename tier_states<storage_types>::type(
                std::make_unique<tier_state<std::tuple_element_t<I, storage_types>>>(std::get<I>(settings), max_pending,
                                                                                     clock)...);
        }
        (std::make_index_sequence<tier_count>{});
    }

    template <class C>
    [[nodiscard]] static C with_ttl(C cfg, std::chrono::nanoseconds ttl) {
        cfg.default_ttl = ttl;
        return cfg;
    }

    // A storage tier keeps expired entries for stale-if-error as long as memory does.
    [[nodiscard]] static disk_config disk_config_of(disk_config disk, const config& cfg) {
        disk.stale_grace = cfg.stale_grace;
        return with_ttl(disk, cfg.default_ttl);
    }

    // open()'s work past validation: opens each tier over its given storage (or one opened
    // from its settings); a run-time fault leaves that tier detached and the cache degraded.
    [[nodiscard]] static result<cache> start(const config& cfg, typename per_tier<storage_types>::optionals storages,
                                             const clock_type& clock, const listener_type& listener);

    // A storage with several endpoints gets one breaker per endpoint, so that one server
    // down opens only its breaker. Called by open() only (the breakers are fixed after).
    template <class T>
    void split_breakers(T& t) {
        using S = typename T::storage_t;
        if constexpr (requires(const S& st) {
                          st.endpoints().front().id;
                          st.endpoint_for(std::string_view());
                      }) {
            const S* storage = nullptr;
            if (tier_attached(t)) {
                storage = &t.disk->storage();
            } else if (t.detached && t.detached->storage) {
                storage = &*t.detached->storage;
            }
            if (storage == nullptr) return;
            const auto endpoints = storage->endpoints();
            if (endpoints.size() < 2) return;
            t.breakers.clear();
            for (const auto& ep : endpoints) {
                t.endpoint_ids.push_back(ep.id);
                t.breakers.push_back(std::make_unique<breaker_type>(t.breaker_cfg, m->clock));
            }
        }
    }

    // The breaker guarding `key` in tier t: the tier's, or its endpoint's. A detached tier
    // (its names unknown) and calls without a key use the first.
    template <class T>
    [[nodiscard]] breaker_type& gate(T& t, const Key& key) {
        if (t.breakers.size() == 1) return *t.breakers.front();
        if constexpr (requires { t.disk->storage().endpoint_for(std::string_view()); }) {
            if (tier_attached(t)) {
                if (auto name = t.disk->name_for(key)) {
                    const std::string& id = t.disk->storage().endpoint_for(*name);
                    for (std::size_t i = 0; i < t.endpoint_ids.size(); ++i)
                        if (t.endpoint_ids[i] == id) return *t.breakers[i];
                }
            }
        }
        return *t.breakers.front();
    }

    // Tier t's breaker state: with endpoint breakers, open while all are open, closed
    // while all are closed, else half_open.
    template <class T>
    [[nodiscard]] static breaker_state breaker_state_of(const T& t) noexcept {
        if (t.breakers.size() == 1) return t.breakers.front()->state();
        std::size_t open = 0;
        std::size_t closed = 0;
        for (const auto& b : t.breakers) {
            const breaker_state st = b->state();
            open += st == breaker_state::open ? 1 : 0;
            closed += st == breaker_state::closed ? 1 : 0;
        }
        if (open == t.breakers.size()) return breaker_state::open;
        return closed == t.breakers.size() ? breaker_state::closed : breaker_state::half_open;
    }

    // Opens the storage (if open() could not) and the disk tier over it; on success the tier
    // is attached. Caller holds t.attach_mutex.
    template <class T>
    [[nodiscard]] result<void> attach_detached(T& t) {
        using S = typename T::storage_t;
        auto& d = *t.detached;
        if (!d.storage) {
            if constexpr (openable<S>) {
                auto opened = open_storage<S>(d.storage_cfg);
                if (!opened) return unexpected(std::move(opened).error());
                d.storage.emplace(std::move(*opened));
            } else {
                return fail(errc::io_error, t.kind, "the storage is gone and cannot be opened again");
            }
        }
        auto disk = T::disk_t::try_open(d.storage, d.disk_cfg, m->clock, m->listener);
        if (!disk) return unexpected(std::move(disk).error());
        t.disk.emplace(std::move(*disk));
        t.detached.reset();
        t.attached.store(true, std::memory_order_release);
        start_invalidation(t);
        return {};
    }

    // Distributed invalidation (docs/REMOTE.md, "How the cache uses it").

    // Subscribes to the invalidated tier's notices once it is attached (caller holds its
    // attach_mutex). A subscription that cannot start leaves the link down: the faster
    // tiers stay untrusted, and the failure is the tier's last error.
    template <class T>
    void start_invalidation(T& t) {
        if constexpr (has_invalidation && std::is_same_v<typename T::storage_t, invalidated_storage>) {
            state& s = *m;
            if (static_cast<const void*>(&t) != &tier_at<invalidated_tier>() || !s.invalidation.enabled ||
                s.subscription)
                return;
            state* sp = &s;
            auto sub = t.disk->storage().subscribe([sp](std::span<const std::byte> n) { apply_notice(*sp, n); },
                                                   [sp](bool up) { link_changed(*sp, up); },
                                                   [sp](const failure& f) {
                                                       auto& r = *std::get<invalidated_tier>(sp->tiers);
                                                       std::lock_guard lock(r.last_error_mutex);
                                                       r.last_error = f;
                                                   });
            if (sub) {
                s.subscription.emplace(std::move(*sub));
            } else {
                note_error(t, sub.error());
                emit(t, event_kind::io_error, "invalidation: the subscription could not start", &sub.error());
            }
        }
    }

    void stop_invalidation() noexcept {
        if constexpr (has_invalidation) {
            if (m) m->subscription.reset();
        }
    }

    // Whether the faster tiers may answer: no invalidation, or its link is up.
    [[nodiscard]] bool trusted() const noexcept {
        if constexpr (has_invalidation) {
            const invalidation_state& inv = m->invalidation;
            return !inv.enabled ||
                   (inv.link_up.load(std::memory_order_acquire) && inv.flushing.load(std::memory_order_acquire) == 0);
        } else {
            return true;
        }
    }

    // The notice tier t sends for `key` (flush-all when null) when it is the invalidated
    // tier with invalidation on; nullopt otherwise.
    template <class T>
    result<std::optional<std::vector<std::byte>>> notice_for(T& t, const Key* key) {
        if constexpr (has_invalidation && std::is_same_v<typename T::storage_t, invalidated_storage>) {
            state& s = *m;
            if (static_cast<const void*>(&t) != &tier_at<invalidated_tier>() || !s.invalidation.enabled)
                return std::nullopt;
            std::vector<std::byte> notice;
            notice.reserve(notice_header + 32);
            notice.push_back(notice_format);
            notice.insert(notice.end(), s.invalidation.sender.begin(), s.invalidation.sender.end());
            notice.push_back(key != nullptr ? notice_key : notice_flush);
            if (key != nullptr) {
                std::vector<std::byte> encoded;
                if (auto ok = typename Policies::serializer{}.encode(*key, encoded); !ok)
                    return fail(errc::serialization_failed, t.kind,
                                detail::concat({"invalidation notice: key: ", ok.error().message()}));
                notice.insert(notice.end(), encoded.begin(), encoded.end());
            }
            return std::optional(std::move(notice));
        } else {
            (void)t;
            (void)key;
            return std::nullopt;
        }
    }

    // Publishes a notice for `key` (flush-all when null) on tier t when it is the
    // invalidated tier; success otherwise.
    template <class T>
    result<void> announce(T& t, const Key* key) {
        if constexpr (has_invalidation && std::is_same_v<typename T::storage_t, invalidated_storage>) {
            auto notice = notice_for(t, key);
            if (!notice) return unexpected(std::move(notice).error());
            if (!*notice) return {};
            auto sent = t.disk->storage().publish(**notice);
            if (sent) m->invalidation.published.fetch_add(1, std::memory_order_relaxed);
            return sent;
        } else {
            (void)t;
            (void)key;
            return {};
        }
    }

    // A put or erase of `key` in tier t, call(notice), that tells the other caches when t is
    // the invalidated tier: the notice goes with the write in one round trip where the disk
    // tier carries notices (storage::redis), else publish() follows. A notice that cannot go
    // out fails the call.
    template <class T, class F>
    auto announced(T& t, const Key& key, F&& call) -> std::invoke_result_t<F&, typename T::disk_t::notice_type> {
        using notice_type = typename T::disk_t::notice_type;
        if constexpr (T::disk_t::carries_notices) {
            auto notice = notice_for(t, &key);
            if (!notice) return unexpected(std::move(notice).error());
            if (!*notice) return call(notice_type());
            auto out = call(notice_type(std::span<const std::byte>(**notice)));
            if (out) m->invalidation.published.fetch_add(1, std::memory_order_relaxed);
            return out;
        } else {
            auto out = call(notice_type());
            if (!out) return out;
            if (auto told = announce(t, &key); !told) return unexpected(std::move(told).error());
            return out;
        }
    }

    // Removes key's copy from tier t and, if t is the invalidated tier, tells the others.
    template <class T>
    result<bool> erase_announced(T& t, const Key& key) {
        return announced(t, key, [&](typename T::disk_t::notice_type notice) { return t.disk->erase(key, notice); });
    }

    // Calls f(tier) for every storage tier faster than the invalidated one.
    template <class F>
    static void for_each_faster(state& s, F&& f) {
        [&]<std::size_t... I>(std::index_sequence<I...>) { (f(*std::get<I>(s.tiers)), ...); }
        (std::make_index_sequence < has_invalidation ? invalidated_tier : 0 > {});
    }

    // A notice from the subscription's thread: another cache's put, erase or clear. An
    // exception (out of memory) reaches the subscription, which takes the link down and
    // up again: the faster tiers are then flushed.
    static void apply_notice(state& s, std::span<const std::byte> n) {
        invalidation_state& inv = s.invalidation;
        inv.received.fetch_add(1, std::memory_order_relaxed);
        const bool framed = n.size() >= notice_header && n[0] == notice_format &&
                            (n[17] == notice_key || (n[17] == notice_flush && n.size() == notice_header));
        if (!framed) {
            inv.ignored_undecodable.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (std::equal(inv.sender.begin(), inv.sender.end(), n.begin() + 1)) {
            inv.ignored_own.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (n[17] == notice_flush) {
            flush_faster(s);
        } else {
            auto key = typename Policies::serializer{}.decode(n.subspan(notice_header), std::type_identity<Key>{});
            if (!key) {
                inv.ignored_undecodable.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            // Under the fence: a get that read the old value before this cannot copy it back.
            const std::uint64_t h = detail::mix(static_cast<std::uint64_t>(hasher{}(*key)));
            const write_scope scope(s.fence, h);
            s.memory.erase(*key);
            for_each_faster(s, [&](auto& t) {
                if (!tier_attached(t) || !t.disk->erase(*key)) t.pending.add(*key);
            });
        }
        inv.applied.fetch_add(1, std::memory_order_relaxed);
    }

    // Empties memory and the storage tiers faster than the invalidated one; a tier that
    // cannot be cleared is not read again until it has been. Meanwhile the faster tiers are
    // untrusted (gets ask the invalidated tier first), so the flush blocks no call.
    static void flush_faster(state& s) {
        struct untrusted_scope {
            std::atomic<unsigned>& n;
            explicit untrusted_scope(std::atomic<unsigned>& c) : n(c) { n.fetch_add(1, std::memory_order_acq_rel); }
            untrusted_scope(const untrusted_scope&) = delete;
            untrusted_scope& operator=(const untrusted_scope&) = delete;
            ~untrusted_scope() { n.fetch_sub(1, std::memory_order_acq_rel); }
        } const untrusted(s.invalidation.flushing);
        s.memory.clear();
        for_each_faster(s, [&](auto& t) {
            if (tier_attached(t) && t.disk->clear()) {
                t.pending.clear_overflow();
            } else {
                t.pending.distrust_all();
            }
        });
        s.invalidation.flushes.fetch_add(1, std::memory_order_relaxed);
    }

    // The link went down (notices may be missed from now) or came up: flush first, then
    // trust the faster tiers again.
    static void link_changed(state& s, bool up) {
        if constexpr (has_invalidation) {
            auto& t = *std::get<invalidated_tier>(s.tiers);
            if (up) {
                flush_faster(s);
                s.invalidation.link_up.store(true, std::memory_order_release);
                emit_in(s, t, event_kind::invalidation_link_up,
                        "invalidation: link up; memory and the faster tiers were flushed", nullptr);
            } else {
                s.invalidation.link_up.store(false, std::memory_order_release);
                s.invalidation.link_losses.fetch_add(1, std::memory_order_relaxed);
                emit_in(s, t, event_kind::invalidation_link_lost,
                        "invalidation: link lost; the faster tiers are not trusted until it is back", nullptr);
            }
        }
    }

    // A get while the link is down: the invalidated tier answers (a hit or a plain miss);
    // only if it cannot is a faster tier's copy served, marked stale and counted.
    // A template so that an explicit instantiation of a cache without such a tier does not
    // instantiate it (clang 14 ignores a requires-clause there).
    template <std::size_t R = invalidated_tier>
    result<hit<Value>> untrusted_lookup(const Key& key) {
        state& s = *m;
        auto& r = tier_at<R>();
        fence_ticket fence;
        auto got = from_tier(r, key, fence);
        if (got) {
            if (fence.ticket) promote<R>(key, fence.hash, *fence.ticket, *got);
            return hit<Value>{std::move(got->value), r.kind, false};
        }
        if (got.error().code() == errc::miss || got.error().code() == errc::expired)
            return unexpected(std::move(got).error());
        result<hit<Value>> found = s.memory.get_with_stale(key, detail::memory_hit<Value>);
        if (!found || found->stale) {
            found = unexpected(got.error());
            for_each_faster(s, [&](auto& t) {
                if (found) return;
                fence_ticket unused;
                if (auto copy = from_tier(t, key, unused)) found = hit<Value>{std::move(copy->value), t.kind, false};
            });
        }
        if (!found) return unexpected(std::move(got).error());
        found->stale = true;
        s.invalidation.untrusted_served.fetch_add(1, std::memory_order_relaxed);
        return found;
    }

    // A call the breaker let through while the tier is detached opens it first. A failure
    // is reported to the breaker as the failure of the call (always a counted one: the tier
    // cannot serve) and returned.
    template <class T>
    [[nodiscard]] result<void> attach(T& t, breaker_type& b) {
        std::unique_lock lock(t.attach_mutex);
        if (tier_attached(t)) return {};
        auto ok = attach_detached(t);
        lock.unlock();
        if (ok) {
            emit(t, event_kind::storage_attached, "the storage opened; the tier is in use again", nullptr);
            return ok;
        }
        emit(t, event_kind::storage_unavailable, "probe: the storage could not be opened; the tier stays detached",
             &ok.error());
        b.on_failure(breaker_code(ok.error()));
        note_open_failure(t, ok.error());
        refresh_mode(t);
        return ok;
    }

    [[nodiscard]] static errc breaker_code(const failure& f) noexcept {
        return counts_as_failure(f.code()) ? f.code() : errc::io_error;
    }

    // A storage tier's state for degraded mode: its breaker's, but open while the tier is
    // detached and the breaker closed (breaker::none, or one forced closed).
    template <class T>
    [[nodiscard]] static breaker_state tier_mode(const T& t) noexcept {
        const breaker_state b = breaker_state_of(t);
        return b == breaker_state::closed && !tier_attached(t) ? breaker_state::open : b;
    }

    template <class S>
    [[nodiscard]] static result<S> open_storage(const typename detail::storage_config_of<S>::type& cfg) {
        if constexpr (requires { S::open(cfg); }) {
            return S::open(cfg);
        } else {
            return S(cfg);
        }
    }

    [[nodiscard]] std::uint64_t hash_of(const Key& key) const noexcept {
        return detail::mix(static_cast<std::uint64_t>(hasher{}(key)));
    }

    [[nodiscard]] static memory_config memory_config_of(const config& cfg) {
        memory_config out = with_ttl(cfg.memory, cfg.default_ttl);
        out.stale_grace = cfg.stale_grace;
        return out;
    }

    // No context string: a refused call must not allocate; the code says it all.
    template <class T>
    [[nodiscard]] static failure open_circuit(const T& t) noexcept {
        return failure(errc::circuit_open, t.kind);
    }

    // Reports a storage result to the breaker `b` of tier t (the call was allowed), counts
    // a failure, and returns the result. The storage's own circuit_open (storage::redis: an
    // endpoint backing off after a failed call, no round trip) is a failure of the tier, as
    // io_error: otherwise a stopped server, tried only once per backoff, would keep a breaker
    // that needs several failures closed for as long as the backoff keeps refusing.
    template <class T, class R>
    R report(T& t, breaker_type& b, R outcome) {
        if (outcome) {
            b.on_success();
        } else {
            const errc code = outcome.error().code();
            b.on_failure(code == errc::circuit_open ? errc::io_error : code);
            note_error(t, outcome.error());
        }
        refresh_mode(t);
        return outcome;
    }

    // A call the tier's breaker refused: follows the breaker into degraded mode, counts the
    // refusal, and returns the failure to answer with.
    template <class T>
    [[nodiscard]] failure refused(T& t) {
        if (t.last_state.load(std::memory_order_acquire) == breaker_state::closed) refresh_mode(t);
        note_error(t, open_circuit(t));
        return open_circuit(t);
    }

    // Under bypass and fail_fast a write asks every storage tier's breaker before touching
    // any tier: it is refused (and counted, in `bypassed` under bypass) while a tier's
    // breaker is open, or when no tier admits it. The tiers that admitted it, as bits.
    [[nodiscard]] result<std::uint32_t> admit_write(const Key& key, std::atomic<std::uint64_t>& bypassed) {
        std::optional<failure> refusal;
        any_tier([&](auto& t, auto) {
            if (gate(t, key).state() != breaker_state::open) return false;
            refusal.emplace(refused(t));
            return true;
        });
        std::uint32_t granted = 0;
        if (!refusal) {
            for_each_tier([&](auto& t, auto index) {
                if (gate(t, key).allow()) {
                    granted |= 1U << decltype(index)::value;
                } else if (!refusal) {
                    refusal.emplace(refused(t));
                }
            });
        }
        if (granted != 0) return granted;
        if constexpr (degradation_mode == degraded_mode::bypass) bypassed.fetch_add(1, std::memory_order_relaxed);
        return unexpected(std::move(*refusal));
    }

    // A write's call to tier `index`: through the breaker under memory_only; else admitted
    // by admit_write (bit set) or refused by it.
    template <class T, class F>
    auto admitted_call(T& t, breaker_type& b, std::uint32_t granted, std::size_t index, F&& call)
        -> std::invoke_result_t<F&> {
        if constexpr (degradation_mode == degraded_mode::memory_only) {
            return guarded(t, b, call);
        } else {
            if ((granted >> index & 1U) == 0) return unexpected(open_circuit(t));
            return allowed(t, b, call);
        }
    }

    // A put reached memory (or nothing) but not storage tier t, so t's older copy, if it
    // has one, must never be served again. If the storage tried the write and failed (a
    // full disk, say), the copy is removed now, outside the breaker's books, so that it
    // cannot come back after a restart either; if that fails too, or the breaker refused
    // the write, the key waits as a pending erasure until the tier is back.
    template <class T>
    void supersede_stored(T& t, const Key& key, const failure& why) {
        // Not skipped for a key the index lacks: a failed read can drop an index entry whose
        // file stays, to be indexed again by the next scan.
        if (why.code() != errc::circuit_open && tier_attached(t) && erase_announced(t, key)) {
            t.pending.remove(key);
            return;
        }
        t.pending.add(key);
    }

    // Calls the storage through the tier's breaker: errc::circuit_open if it says no.
    template <class T, class F>
    auto guarded(T& t, breaker_type& b, F&& call) -> std::invoke_result_t<F&> {
        if (!b.allow()) return unexpected(refused(t));
        return allowed(t, b, call);
    }

    // A storage call the breaker allowed: attaches a detached tier first.
    template <class T, class F>
    auto allowed(T& t, breaker_type& b, F&& call) -> std::invoke_result_t<F&> {
        if (!tier_attached(t)) {
            if (auto ok = attach(t, b); !ok) return unexpected(std::move(ok).error());
        }
        return report(t, b, call());
    }

    // A storage that could not be opened: counted as the tier's errors are, and a full
    // disk also where the full-disk alert looks (the disk tier's own count starts at attach).
    template <class T>
    void note_open_failure(T& t, const failure& f) {
        if (f.code() == errc::disk_full) t.untiered_disk_full.fetch_add(1, std::memory_order_relaxed);
        note_error(t, f);
    }

    void note_memory_error(const failure& f) {
        m->memory_errors[static_cast<std::size_t>(f.code()) - 1].fetch_add(1, std::memory_order_relaxed);
    }

    template <class T>
    void note_error(T& t, const failure& f) {
        t.errors[static_cast<std::size_t>(f.code()) - 1].fetch_add(1, std::memory_order_relaxed);
        if (f.code() == errc::miss || f.code() == errc::expired || f.code() == errc::circuit_open) return;
        std::lock_guard lock(t.last_error_mutex);
        t.last_error = f;
    }

    // An event of tier t; with several storage tiers its detail starts with the tier's name.
    template <class T>
    void emit(const T& t, event_kind kind, std::string_view detail, const failure* cause) noexcept {
        emit_in(*m, t, kind, detail, cause);
    }

    template <class T>
    static void emit_in(state& s, const T& t, event_kind kind, std::string_view detail, const failure* cause) noexcept {
        if constexpr (tier_count > 1) {
            try {
                const std::string named = detail::concat({t.name, ": ", detail});
                s.listener.on_event(event{kind, t.kind, named, cause});
                return;
            } catch (...) {  // out of memory: the event goes out without the name
            }
        }
        s.listener.on_event(event{kind, t.kind, detail, cause});
    }

    // Follows tier t's breaker into and out of degraded mode; the cache is degraded while
    // any tier is. Cheap when nothing changed.
    template <class T>
    void refresh_mode(T& t) {
        state& s = *m;
        breaker_state now = tier_mode(t);
        if (now == t.last_state.load(std::memory_order_acquire)) return;
        std::lock_guard lock(s.mode_mutex);
        now = tier_mode(t);
        const breaker_state before = t.last_state.load(std::memory_order_acquire);
        if (now == before) return;
        const std::string change = detail::concat({to_string(before), " -> ", to_string(now)});
        emit(t, event_kind::breaker_state_changed, change, nullptr);
        if (before == breaker_state::closed) {
            if (s.degraded_tiers.load(std::memory_order_relaxed) == 0) {
                s.degraded_since = s.clock.now();
                ++s.degraded_entered;
                if constexpr (degradation_mode == degraded_mode::memory_only)
                    (void)s.memory.set_byte_budget(s.degradation.degraded_budget(s.normal_budget));
            }
            s.degraded_tiers.fetch_add(1, std::memory_order_release);
            emit(t, event_kind::degraded_entered,
                 std::string("storage tier unavailable: ") + std::string(to_string(degradation_mode)), nullptr);
        } else if (now == breaker_state::closed) {
            if (s.degraded_tiers.load(std::memory_order_relaxed) == 1) {
                s.degraded_total += detail::elapsed_sat(s.degraded_since, s.clock.now());
                if constexpr (degradation_mode == degraded_mode::memory_only)
                    (void)s.memory.set_byte_budget(s.normal_budget);
            }
            flush_pending(t);
            s.degraded_tiers.fetch_sub(1, std::memory_order_release);
            emit(t, event_kind::degraded_left, "storage tier back in service", nullptr);
        }
        t.last_state.store(now, std::memory_order_release);
    }

    void refresh_modes() {
        for_each_tier([&](auto& t, auto) { refresh_mode(t); });
    }

    // The destructor's part of the pending-erasure rule: nothing superseded may outlive
    // the process in a storage tier (see ~cache).
    void settle_pending() noexcept {
        if (!m || is_closed()) return;
        for_each_tier([&](auto& t, auto) { settle_pending(t); });
    }

    template <class T>
    void settle_pending(T& t) noexcept {
        auto nothing_pending = [&] { return t.pending.size() == 0 && !t.pending.overflowed(); };
        if (nothing_pending()) return;
        if (!tier_attached(t)) {
            std::lock_guard lock(t.attach_mutex);
            if (!tier_attached(t) && !attach_detached(t)) {
                emit(t, event_kind::io_error,
                     "at close: the storage could not be opened to remove the copies that writes superseded "
                     "while it was detached; a restart may serve them",
                     nullptr);
                return;
            }
        }
        flush_pending(t);
        if (nothing_pending() || t.disk->clear()) return;
        emit(
            t, event_kind::io_error,
            detail::concat({"at close: ", std::to_string(t.pending.size()),
                            " storage copies (or, past max_pending_erasures, any) superseded by later writes could not "
                            "be removed, nor the storage cleared; a restart may serve them"}),
            nullptr);
    }

    // Gives each tier with pending erasures whose breaker is half-open its trials: the
    // erasures, reported to the breaker (after a memory hit, and in health()). Without it, a
    // cache whose gets all hit memory would never try the tier again, and its breaker would
    // stay half-open with the erasures pending. (A closed breaker's pending erasures go with the next read of the key,
    // or when a failure opened it and it closes.) Two atomic loads per tier when nothing is pending.
    void retry_pending() {
        for_each_tier([&](auto& t, auto) {
            if (t.pending.empty() || t.last_state.load(std::memory_order_acquire) == breaker_state::closed ||
                !tier_attached(t) || t.retrying_pending.exchange(true, std::memory_order_acquire))
                return;
            try {
                retry_pending(t);
            } catch (...) {
                t.retrying_pending.store(false, std::memory_order_release);
                throw;
            }
            t.retrying_pending.store(false, std::memory_order_release);
        });
    }

    template <class T>
    void retry_pending(T& t) {
        if (t.breakers.size() == 1 && t.breakers.front()->state() != breaker_state::half_open) return;
        auto [keys, overflowed] = t.pending.snapshot();
        auto permits = [](breaker_type& b) { return b.state() == breaker_state::half_open && b.allow(); };
        if (overflowed) {
            breaker_type& b = *t.breakers.front();
            if (!permits(b)) return;
            auto cleared = [&]() -> result<void> {
                auto done = t.disk->clear();
                if (!done) return done;
                return announce(t, nullptr);
            }();
            if (cleared) t.pending.clear_overflow();
            (void)report(t, b, std::move(cleared));
            keys.clear();
        }
        for (const Key& key : keys) {
            if (t.pending.empty()) break;  // the breaker closed and refresh_mode flushed the rest
            breaker_type& b = gate(t, key);
            if (!permits(b)) continue;
            auto erased = erase_announced(t, key);
            if (erased) t.pending.remove(key);  // before the breaker closes, which would flush it again
            (void)report(t, b, std::move(erased));
        }
        // The trials a half-open breaker still asks for: health(true)'s probe. (With a
        // breaker per endpoint, each closes at its endpoint's next call.)
        if (t.breakers.size() != 1 || !t.pending.empty()) return;
        breaker_type& b = *t.breakers.front();
        for (int i = 0; i < 64 && b.state() == breaker_state::half_open && b.allow(); ++i)
            if (!report(t, b, probe_storage(t))) break;
    }

    // Removes the copies in tier t that writes during its outage superseded.
    template <class T>
    void flush_pending(T& t) {
        if (!tier_attached(t)) return;
        auto [keys, overflowed] = t.pending.snapshot();
        if (overflowed) {
            if (t.disk->clear() && announce(t, nullptr)) t.pending.clear_overflow();
            return;
        }
        for (const Key& key : keys) {
            if (erase_announced(t, key)) t.pending.remove(key);
        }
    }

    // Publishes a leader's outcome to the waiters and retires the flight, also when the
    // load throws (the waiters then get errc::loader_failed).
    class flight_landing {
    public:
        flight_landing(state& s, const Key& key, std::shared_ptr<flight> f)
            : m_state(s), m_key(key), m_flight(std::move(f)) {}
        flight_landing(const flight_landing&) = delete;
        flight_landing& operator=(const flight_landing&) = delete;
        ~flight_landing() {
            if (!m_published) publish(fail(errc::loader_failed, tier::loader, "the loading call threw"));
        }

        void publish(const result<hit<Value>>& outcome, bool stale_if_error = false) const {
            {
                std::lock_guard lock(m_state.flights_mutex);
                m_state.flights.erase(m_key);
            }
            {
                std::lock_guard lock(m_flight->mutex);
                m_flight->outcome.emplace(outcome);
                m_flight->stale_if_error = stale_if_error;
            }
            m_flight->done_cv.notify_all();
            m_published = true;
        }

    private:
        state& m_state;
        const Key& m_key;
        std::shared_ptr<flight> m_flight;
        mutable bool m_published = false;
    };

    // The loader's error as a failure: what it says, and its OS error if it has one.
    template <class E>
    [[nodiscard]] static failure loader_failure(const E& error) {
        auto failed = [](std::string why, std::error_code os = {}) {
            return failure(errc::loader_failed, tier::loader, std::move(why), os);
        };
        if constexpr (std::is_same_v<E, failure>) {
            return failed(detail::concat({to_string(error.code()), ": ",
                                          error.context().empty() ? error.error_code().message() : error.context()}),
                          error.os_error());
        } else if constexpr (std::is_same_v<E, std::error_code>) {
            return failed(detail::concat({error.category().name(), " error ", std::to_string(error.value())}), error);
        } else if constexpr (requires { std::error_code(make_error_code(error)); }) {  // std::errc, an enum of yours
            return loader_failure(std::error_code(make_error_code(error)));
        } else if constexpr (std::is_same_v<E, std::exception_ptr>) {
            try {
                if (error) std::rethrow_exception(error);
            } catch (const std::exception& e) {
                return failed(std::string("exception: ") + e.what());
            } catch (...) {}
            return failed("an exception not derived from std::exception");
        } else if constexpr (std::is_base_of_v<std::exception, E>) {
            return failed(std::string("exception: ") + error.what());
        } else if constexpr (requires { std::string(error.message()); }) {
            return failed(std::string(error.message()));
        } else if constexpr (std::is_convertible_v<const E&, std::string_view>) {
            return failed(std::string(std::string_view(error)));
        } else {
            return failed("returned an error");
        }
    }

    // A loader's value with its TTL, from what it returned (a Value or a loaded<Value>).
    template <class V>
    [[nodiscard]] static loaded<Value> as_loaded(V&& v) {
        if constexpr (std::is_same_v<std::remove_cvref_t<V>, loaded<Value>>) {
            return std::forward<V>(v);
        } else {
            return loaded<Value>{Value(std::forward<V>(v)), std::nullopt};
        }
    }

    // A result-like return's value: operator* where it has one, else value().
    template <class R>
    [[nodiscard]] static decltype(auto) value_of(R&& r) {
        if constexpr (requires { *std::forward<R>(r); }) {
            return *std::forward<R>(r);
        } else {
            return std::forward<R>(r).value();
        }
    }

    // Whether a tier holds a live entry for key now, counting nothing: get_or_load's leader
    // asks it so that its one lookup counts one miss per tier.
    [[nodiscard]] bool stored_since_lookup(const Key& key) const {
        if (m->memory.contains(key)) return true;
        return any_tier([&](auto& t, auto) { return tier_attached(t) && t.disk->contains(key); });
    }

    // Stale-if-error past memory: the first storage tier that keeps key's entry expired
    // within the grace (a restart emptied memory), or live (a concurrent put stored it:
    // not marked stale). Breakers and superseded copies are respected as a get respects them.
    std::optional<hit<Value>> stale_from_storage(const Key& key) {
        std::optional<hit<Value>> kept;
        any_tier([&](auto& t, auto) {
            if (!tier_attached(t) || t.pending.contains(key) || !t.disk->indexed(key)) return false;
            breaker_type& b = gate(t, key);
            if (b.state() == breaker_state::open || !b.allow()) return false;
            auto got = report(t, b, t.disk->find_stale(key));
            if (got) {
                const bool expired = detail::expired(got->expiry, t.disk->clock().now());
                kept.emplace(hit<Value>{std::move(got->value), t.kind, expired});
            }
            return kept.has_value();
        });
        return kept;
    }

    // A result-like return (std::expected-like): has_value(), value() or operator*, error().
    template <class R>
    static constexpr bool result_like = requires(R r) {
        { r.has_value() } -> std::convertible_to<bool>;
        value_of(std::move(r));
        r.error();
    };

    // Calls loader(arg): what it returned (unwrapped from a result-like return), or nothing
    // and `failed` set to the error it returned or the exception it threw.
    template <class F, class A>
    static auto call_loader(F& loader, const A& arg, std::optional<failure>& failed) {
        using R = std::invoke_result_t<F&, const A&>;
        auto guarded = [&](auto call) {
            try {
                call();
            } catch (const std::exception& e) {
                failed.emplace(loader_failure(e));
            } catch (...) {
                failed.emplace(loader_failure(std::current_exception()));
            }
        };
        if constexpr (result_like<R>) {
            std::optional<std::remove_cvref_t<decltype(value_of(std::declval<R>()))>> out;
            guarded([&] {
                R r = loader(arg);
                if (r.has_value()) {
                    out.emplace(value_of(std::move(r)));
                } else {
                    failed.emplace(loader_failure(r.error()));
                }
            });
            return out;
        } else {
            std::optional<std::remove_cvref_t<R>> out;
            guarded([&] { out.emplace(loader(arg)); });
            return out;
        }
    }

    // Joins the load of key under way, or starts one (true: this caller is its leader).
    std::pair<std::shared_ptr<flight>, bool> join_flight(const Key& key) {
        state& s = *m;
        std::lock_guard lock(s.flights_mutex);
        auto [it, inserted] = s.flights.try_emplace(key);
        if (inserted) it->second = std::make_shared<flight>();
        return {it->second, inserted};
    }

    // A caller that joined another's load: waits for its answer.
    result<hit<Value>> await(flight& f) {
        state& s = *m;
        s.loads_shared.fetch_add(1, std::memory_order_relaxed);
        std::unique_lock lock(f.mutex);
        f.done_cv.wait(lock, [&] { return f.outcome.has_value(); });
        if (f.stale_if_error) s.stale_served.fetch_add(1, std::memory_order_relaxed);
        return *f.outcome;
    }

    // Stores a loaded value with its TTL (none: not stored) and answers it.
    result<hit<Value>> store_loaded(const Key& key, loaded<Value> value) {
        const std::chrono::nanoseconds ttl = value.ttl.value_or(m->default_ttl);
        if (ttl > std::chrono::nanoseconds::zero() && put(key, value.value, ttl)) note_loaded(key, ttl);
        return hit<Value>{std::move(value.value), tier::loader, false};
    }

    // Refresh-ahead: records when key, just stored with `ttl`, is due for a reload.
    void note_loaded(const Key& key, std::chrono::nanoseconds ttl) {
        state& s = *m;
        if (s.refresh_after <= std::chrono::nanoseconds::zero()) return;
        const time_point now = s.clock.now();
        std::lock_guard lock(s.refresh_mutex);
        if (s.refresh_due.size() >= s.refresh_prune_at) {
            std::erase_if(s.refresh_due, [&](const auto& kv) {
                return !kv.second.running && (detail::expired(kv.second.expiry, now) || !contains(kv.first));
            });
            s.refresh_prune_at = std::max<std::size_t>(1024, 2 * s.refresh_due.size());
        }
        refresh_record& r = s.refresh_due[key];
        r.due = detail::expiry_after(now, s.refresh_after);
        r.expiry = detail::expiry_after(now, ttl);
    }

    // A get_or_load() hit: if key is due, posts one reload of it to the refresh thread
    // (none while one runs, or while a write of the key is in flight). Only a copyable
    // loader can be handed to the thread; others are never refreshed ahead.
    template <class F>
    void refresh_if_due(const Key& key, F& loader) {
        if constexpr (std::copy_constructible<std::decay_t<F>>) {
            state& s = *m;
            auto set_running = [&](bool from, bool to) {
                std::lock_guard lock(s.refresh_mutex);
                const auto it = s.refresh_due.find(key);
                if (it == s.refresh_due.end() || it->second.running != from) return false;
                if (to && !detail::expired(it->second.due, s.clock.now())) return false;
                it->second.running = to;
                return true;
            };
            if (!set_running(false, true)) return;
            const std::uint64_t h = hash_of(key);
            const auto ticket = s.fence.quiet(h);
            // The task runs cache functions through a cache that borrows the state: this
            // object may be moved while it runs (the thread stops before the state goes).
            const bool posted =
                ticket && s.refresher.post([sp = &s, key, loader = std::decay_t<F>(loader), h, t = *ticket]() mutable {
                    cache borrowed{std::unique_ptr<state>(sp)};
                    try {
                        borrowed.refresh(key, loader, h, t);
                    } catch (...) {  // a failed reload keeps the entry; refresh() counted what it could
                    }
                    (void)borrowed.m.release();
                });
            if (!posted) set_running(true, false);
        } else {
            (void)key;
            (void)loader;
        }
    }

    // The refresh thread's reload of key: stores the new value unless a write of the key
    // began since the hit that asked for it (then the write's value stands).
    template <class F>
    void refresh(const Key& key, F& loader, std::uint64_t h, std::uint64_t ticket) {
        state& s = *m;
        std::optional<failure> failed;
        auto found = call_loader(loader, key, failed);
        if (found && s.fence.quiet_since(h, ticket)) (void)store_loaded(key, as_loaded(std::move(*found)));
        {
            std::lock_guard lock(s.refresh_mutex);
            if (const auto it = s.refresh_due.find(key); it != s.refresh_due.end()) it->second.running = false;
        }
        if (!found) s.refresh_failures.fetch_add(1, std::memory_order_release);
        s.refreshes.fetch_add(1, std::memory_order_release);  // last: a reader of the count sees the reload done
    }

    void stop_refresh() noexcept {
        if (m) m->refresher.stop();
    }

    // A failed load's answer for key: the expired value memory kept (`stale`) or a storage
    // tier kept (marked stale and counted only if expired: a concurrent put may have stored
    // a live one since the lookup); else the failure.
    result<hit<Value>> after_failure(const Key& key, failure why, std::optional<Value> stale) {
        std::optional<hit<Value>> kept;
        if (stale) {
            kept.emplace(hit<Value>{std::move(*stale), tier::memory, true});
        } else {
            kept = stale_from_storage(key);
        }
        if (!kept) return unexpected(std::move(why));
        if (kept->stale) m->stale_served.fetch_add(1, std::memory_order_relaxed);
        return std::move(*kept);
    }

    template <class F>
    result<hit<Value>> load(const Key& key, F& loader, std::optional<Value> stale) {
        state& s = *m;
        s.loads.fetch_add(1, std::memory_order_relaxed);
        std::optional<failure> failed;
        auto found = call_loader(loader, key, failed);
        if (!found) {
            s.load_failures.fetch_add(1, std::memory_order_relaxed);
            return after_failure(key, std::move(*failed), std::move(stale));
        }
        return store_loaded(key, as_loaded(std::move(*found)));
    }

    // invalidate_tag()'s and invalidate_prefix()'s work: `keys` plus those `lookup` finds in
    // each non-shared storage tier's index, each erased once.
    template <class F>
    result<std::size_t> invalidate_keys(std::vector<Key> keys, F&& lookup) {
        std::optional<failure> first;
        for_each_tier([&](auto& t, auto) {
            if constexpr (!std::remove_reference_t<decltype(t)>::shared) {
                auto found = guarded(t, *t.breakers.front(), [&] { return lookup(*t.disk); });
                if (found) {
                    keys.insert(keys.end(), std::make_move_iterator(found->begin()),
                                std::make_move_iterator(found->end()));
                } else if (!first) {
                    first = std::move(found).error();
                }
            }
        });
        std::unordered_set<Key, hasher, key_equal> seen;
        std::size_t removed = 0;
        for (const Key& key : keys) {
            if (!seen.insert(key).second) continue;
            auto gone = erase(key);
            if (gone && *gone) ++removed;
            if (!gone && !first) first = std::move(gone).error();
        }
        m->invalidated_entries.fetch_add(removed, std::memory_order_relaxed);
        if (first) return unexpected(std::move(*first));
        return removed;
    }

    // config::warm_on_open: the first storage tier's `n` most recently used entries into memory.
    void warm_from_storage(std::size_t n) {
        if constexpr (has_storage) {
            state& s = *m;
            auto& t = tier_at<0>();
            if (!tier_attached(t)) return;
            const auto started = std::chrono::steady_clock::now();
            const time_point now = s.clock.now();
            t.disk->visit_hottest(n, [&](Key&& key, disk_entry<Value>&& entry) {
                if (detail::expired(entry.expiry, now)) return;
                const auto ttl = entry.expiry == time_point::max() ? no_expiry : detail::elapsed_sat(now, entry.expiry);
                if (s.memory.put(std::move(key), std::move(entry.value), ttl)) ++s.warmed_at_open;
            });
            s.warm_at_open_time = std::chrono::steady_clock::now() - started;
        } else {
            (void)n;
        }
    }

    // Writes, reads back and removes a canary blob, straight to tier t's storage.
    template <class T>
    [[nodiscard]] result<void> probe_storage(T& t) {
        static constexpr std::string_view name = "tierguard-probe";
        auto& storage = t.disk->storage();
        std::vector<std::byte> canary(64);
        const auto stamp = static_cast<std::uint64_t>(m->clock.now().time_since_epoch().count());
        for (std::size_t i = 0; i < canary.size(); ++i)
            canary[i] = static_cast<std::byte>((stamp >> ((i % 8) * 8)) ^ i);
        if (auto ok = storage.write(name, canary); !ok) {
            if (ok.error().code() == errc::disk_full) t.untiered_disk_full.fetch_add(1, std::memory_order_relaxed);
            return ok;
        }
        auto back = storage.read(name);
        auto removed = storage.remove(name);
        if (!back) return unexpected(std::move(back).error());
        if (*back != canary)
            return fail(errc::corrupted, t.kind, "probe: the canary read back differs from what was written");
        if (!removed) return removed;
        return {};
    }

    [[nodiscard]] static std::string render_prometheus(const cache_metrics& mt) {
        using lbl = prometheus_text::label;
        prometheus_text out;
        auto label_of = [](const tier_metrics& t) {
            return t.name.empty() ? to_string(t.which) : std::string_view(t.name);
        };
        auto per_tier = [&](const tier_metrics& t) {
            const std::string_view tn = label_of(t);
            out.counter("tierguard_hits_total", "Gets answered by the tier.", {lbl{"tier", tn}}, t.hits);
            out.counter("tierguard_misses_total", "Gets the tier had no live entry for.", {lbl{"tier", tn}}, t.misses);
            out.counter("tierguard_writes_total", "Puts the tier took.", {lbl{"tier", tn}}, t.writes);
            out.counter("tierguard_evictions_total", "Entries evicted to keep the budgets.", {lbl{"tier", tn}},
                        t.evictions);
            out.counter("tierguard_expirations_total", "Entries dropped because their TTL passed.", {lbl{"tier", tn}},
                        t.expirations);
            out.counter("tierguard_corrupted_total", "Entries that failed validation.", {lbl{"tier", tn}}, t.corrupted);
            out.counter("tierguard_quarantined_total", "Files moved to quarantine.", {lbl{"tier", tn}}, t.quarantined);
            out.counter("tierguard_version_mismatches_total", "Entries of another schema or format version removed.",
                        {lbl{"tier", tn}}, t.version_mismatches);
            for (std::size_t i = 0; i < errc_count; ++i) {
                const auto code = static_cast<errc>(i + 1);
                // A call on a closed cache fails before any tier is asked (tier::none).
                if (code == errc::miss || code == errc::expired || code == errc::closed) continue;
                out.counter("tierguard_errors_total", "Failed calls to the tier, by error code.",
                            {lbl{"tier", tn}, lbl{"code", to_string(code)}}, t.errors[i]);
            }
            out.gauge("tierguard_entries", "Entries held.", {lbl{"tier", tn}}, static_cast<double>(t.entries));
            out.gauge("tierguard_bytes", "Bytes held, as the tier counts them.", {lbl{"tier", tn}},
                      static_cast<double>(t.bytes));
            out.counter("tierguard_promotions_total", "Hits of a slower tier copied into the tier.", {lbl{"tier", tn}},
                        t.promotions);
        };
        per_tier(mt.memory);
        for (const tier_metrics& t : mt.storage) {
            per_tier(t);
            const std::string_view tn = label_of(t);
            for (const breaker_state st : {breaker_state::closed, breaker_state::open, breaker_state::half_open})
                out.gauge("tierguard_breaker_state", "1 for the state the tier's breaker is in, else 0.",
                          {lbl{"tier", tn}, lbl{"state", to_string(st)}}, t.breaker == st ? 1.0 : 0.0);
            out.counter("tierguard_breaker_opens_total", "Times the tier's breaker opened.", {lbl{"tier", tn}},
                        t.breaker_opens);
            out.gauge("tierguard_storage_attached", "1 while the storage tier is open, 0 while it could not be opened.",
                      {lbl{"tier", tn}}, t.attached ? 1.0 : 0.0);
            out.counter("tierguard_disk_full_total",
                        "Full disks (ENOSPC, EDQUOT) the storage met, whether or not the retry then succeeded.",
                        {lbl{"tier", tn}}, t.disk_full);
            out.counter("tierguard_promotions_skipped_total",
                        "Promotions into the storage tier skipped because its breaker refused them.", {lbl{"tier", tn}},
                        t.promotions_skipped);
            out.gauge("tierguard_pending_erasures", "Storage copies superseded during an outage, awaiting removal.",
                      {lbl{"tier", tn}}, static_cast<double>(t.pending_erasures));
            if (!t.invalidation) continue;
            out.gauge("tierguard_invalidation_link_up",
                      "1 while the shared tier's invalidation link is up (faster tiers trusted), else 0.",
                      {lbl{"tier", tn}}, t.link_up ? 1.0 : 0.0);
            out.counter("tierguard_invalidation_link_losses_total", "Times the invalidation link went down.",
                        {lbl{"tier", tn}}, t.link_losses);
            out.counter("tierguard_invalidation_flushes_total",
                        "Flushes of memory and the faster tiers: at each link up and each flush-all notice.",
                        {lbl{"tier", tn}}, t.invalidation_flushes);
            const std::pair<std::string_view, std::uint64_t> outcomes[] = {
                {"received", t.notices_received},
                {"applied", t.notices_applied},
                {"ignored", t.notices_ignored_own + t.notices_ignored_undecodable},
                {"published", t.notices_published}};
            for (const auto& [outcome, n] : outcomes)
                out.counter("tierguard_invalidations_total", "Invalidation notices, by outcome.",
                            {lbl{"tier", tn}, lbl{"outcome", outcome}}, n);
        }
        out.gauge("tierguard_degraded", "1 while a storage tier is unavailable.", {}, mt.degraded ? 1.0 : 0.0);
        out.counter("tierguard_degraded_entered_total", "Times the cache entered degraded mode.", {},
                    mt.degraded_entered);
        out.gauge("tierguard_degraded_seconds", "Time spent degraded since the cache opened.", {},
                  std::chrono::duration<double>(mt.degraded_time).count());
        out.counter("tierguard_bypassed_total", "Operations the bypass degradation answered without a tier.",
                    {lbl{"op", "get"}}, mt.bypassed_gets);
        out.counter("tierguard_bypassed_total", "", {lbl{"op", "put"}}, mt.bypassed_puts);
        out.counter("tierguard_bypassed_total", "", {lbl{"op", "erase"}}, mt.bypassed_erases);
        out.counter("tierguard_loads_total", "Loader calls by get_or_load.", {}, mt.loads);
        out.counter("tierguard_load_failures_total", "Loader calls that failed.", {}, mt.load_failures);
        out.counter("tierguard_loads_shared_total", "get_or_load calls that shared another call's load.", {},
                    mt.loads_shared);
        out.counter("tierguard_stale_served_total", "get_or_load answers that were stale because the load failed.", {},
                    mt.stale_served);
        out.counter("tierguard_refreshes_total", "Reloads by refresh-ahead.", {}, mt.refreshes);
        out.counter("tierguard_refresh_failures_total", "Reloads by refresh-ahead that failed; the entry was kept.", {},
                    mt.refresh_failures);
        out.counter("tierguard_untrusted_served_total",
                    "Faster tiers' copies served, marked stale, while the invalidation link was down.", {},
                    mt.untrusted_served);
        out.counter("tierguard_related_invalidations_total", "invalidate_tag and invalidate_prefix calls.",
                    {lbl{"by", "tag"}}, mt.invalidations_by_tag);
        out.counter("tierguard_related_invalidations_total", "", {lbl{"by", "prefix"}}, mt.invalidations_by_prefix);
        out.counter("tierguard_invalidated_entries_total", "Keys invalidate_tag and invalidate_prefix removed.", {},
                    mt.invalidated_entries);
        out.counter("tierguard_warm_total", "Keys warm() handled, by outcome.", {lbl{"outcome", "warmed"}}, mt.warmed);
        out.counter("tierguard_warm_total", "", {lbl{"outcome", "skipped"}}, mt.warm_skipped);
        out.counter("tierguard_warm_total", "", {lbl{"outcome", "failed"}}, mt.warm_failed);
        out.gauge("tierguard_warmed_at_open", "Entries copied from storage into memory at open.", {},
                  static_cast<double>(mt.warmed_at_open));
        out.gauge("tierguard_warm_at_open_seconds", "Time the copy into memory at open took.", {},
                  std::chrono::duration<double>(mt.warm_at_open_time).count());
        out.histogram("tierguard_get_latency_seconds",
                      "Latency of gets; memory hits sampled 1 in 64, every other get timed.", {}, mt.get_latency);
        out.histogram("tierguard_put_latency_seconds", "Latency of puts.", {}, mt.put_latency);
        return out.str();
    }

    result<hit<Value>> lookup(const Key& key, std::optional<Value>* stale) {
        state& s = *m;
        if constexpr (has_storage && degradation_mode == degraded_mode::bypass) {
            std::optional<failure> down;
            any_tier([&](auto& t, auto) {
                if (gate(t, key).state() != breaker_state::open) return false;
                down.emplace(refused(t));
                return true;
            });
            if (down) {
                s.bypassed_gets.fetch_add(1, std::memory_order_relaxed);
                return unexpected(std::move(*down));
            }
        }
        if constexpr (has_invalidation) {
            if (!trusted()) [[unlikely]]
                return untrusted_lookup(key);
        }
        result<hit<Value>> found = sample_hit() ? timed_lookup(key, stale) : lookup_from<false>(key, stale);
        // A get that reached no storage tier gives a half-open one its trials here.
        if (found && found->from == tier::memory) [[likely]]
            retry_pending();
        return found;
    }

    // Kept out of line: inlined next to the untimed path, the timed copy cost every
    // memory hit about a tenth of its throughput (bench_cache get_hit_paired).
    [[gnu::cold, gnu::noinline]] result<hit<Value>> timed_lookup(const Key& key, std::optional<Value>* stale) {
        return lookup_from<true>(key, stale);
    }

    // One memory hit in 64 per thread is timed: two clock reads would cost a memory hit
    // a noticeable fraction of its time. The other gets run without any timing code.
    [[nodiscard]] static bool sample_hit() noexcept {
        thread_local std::uint32_t calls = 0;
        return (++calls & 63U) == 0;
    }

    // A get past the bypass check: memory, then the storage tiers.
    template <bool Timed>
    result<hit<Value>> lookup_from(const Key& key, std::optional<Value>* stale) {
        state& s = *m;
        std::chrono::steady_clock::time_point started{};
        if constexpr (Timed) started = std::chrono::steady_clock::now();
        // The hit is built inside the memory tier's lookup and returned as is (one return
        // statement: no move). An entry past its TTL, within the stale grace, comes back stale.
        result<hit<Value>> found = s.memory.get_with_stale(key, detail::memory_hit<Value>);
        if (found && !found->stale) {
            if constexpr (Timed) s.get_latency.observe(std::chrono::steady_clock::now() - started);
        } else {
            // Every lookup a memory hit did not answer is timed: misses are what a cold
            // cache or a failing storage tier makes slow.
            if constexpr (!Timed) started = std::chrono::steady_clock::now();
            if (found || has_storage) {
                if (found && stale != nullptr) *stale = std::move(found->value);
                if constexpr (has_storage) {
                    found = from_storage(key);
                } else {
                    found = fail(errc::expired, tier::memory);
                }
            }
            s.get_latency.observe(std::chrono::steady_clock::now() - started);
        }
        return found;
    }

    // The storage half of a get: each tier in order until one hits. A hit is promoted into
    // the faster tiers. The fence's ticket is taken before the first storage read (not
    // for refused calls and index misses, which stay cheap), so a write that begins during
    // the walk cancels every promotion.
    result<hit<Value>> from_storage(const Key& key) {
        fence_ticket fence;
        std::optional<result<hit<Value>>> answer;  // a hit, or the most telling failure so far
        any_tier([&](auto& t, auto index) {
            auto got = from_tier(t, key, fence);
            if (got) {
                if (fence.ticket) promote<decltype(index)::value>(key, fence.hash, *fence.ticket, *got);
                answer.emplace(hit<Value>{std::move(got->value), t.kind, false});
                return true;
            }
            auto plain = [](errc code) { return code == errc::miss || code == errc::expired; };
            if (!answer || (!plain(got.error().code()) && plain(answer->error().code())))
                answer.emplace(unexpected(std::move(got).error()));
            return false;
        });
        return std::move(*answer);
    }

    // One tier's part of a get. Keys its index lacks are misses that never reach the
    // breaker: they say nothing about the storage. The breaker is asked before any other
    // work, so a refused call stays cheap.
    template <class T>
    result<disk_entry<Value>> from_tier(T& t, const Key& key, fence_ticket& fence) {
        breaker_type& b = gate(t, key);
        if (b.state() == breaker_state::open) return unexpected(refused(t));
        auto index_miss = [&] {
            t.index_misses.fetch_add(1, std::memory_order_relaxed);
            return fail(errc::miss, t.kind);
        };
        const bool was_attached = tier_attached(t);
        if (was_attached && !t.disk->indexed(key)) return index_miss();
        if (!b.allow()) return unexpected(refused(t));
        if (!was_attached) {
            if (auto ok = attach(t, b); !ok) return unexpected(std::move(ok).error());
            if (!t.disk->indexed(key)) {
                (void)report(t, b, result<void>{});  // the attach was the call
                return index_miss();
            }
        }
        if (t.pending.contains(key)) {
            auto erased = report(t, b, erase_announced(t, key));
            if (!erased) return unexpected(std::move(erased).error());
            t.pending.remove(key);
            return fail(errc::miss, t.kind, "the disk copy was superseded by a write the disk tier missed");
        }
        if (!fence.taken) {
            fence.hash = hash_of(key);
            fence.ticket = m->fence.quiet(fence.hash);
            fence.taken = true;
        }
        return report(t, b, t.disk->find(key));
    }

    // Copies a hit of tier From into the faster storage tiers and into memory, with the
    // entry's remaining TTL.
    template <std::size_t From>
    void promote(const Key& key, std::uint64_t h, std::uint64_t ticket, const disk_entry<Value>& entry) {
        state& s = *m;
        auto left = [&]() -> std::optional<std::chrono::nanoseconds> {
            const time_point now = s.clock.now();
            if (detail::expired(entry.expiry, now)) return std::nullopt;
            const std::chrono::nanoseconds rest =
                entry.expiry == time_point::max() ? no_expiry : detail::elapsed_sat(now, entry.expiry);
            if (rest <= std::chrono::nanoseconds::zero()) return std::nullopt;
            return rest;
        };
        if constexpr (From > 0) {
            for_each_tier([&](auto& t, auto index) {
                if constexpr (decltype(index)::value < From) {
                    if (auto ttl = left()) promote_into(t, key, h, ticket, entry.value, *ttl, entry.tags);
                }
            });
        }
        if (s.promote_after > 1) {
            std::atomic<std::uint8_t>& seen = s.access[h % access_slots];
            const unsigned count = seen.load(std::memory_order_relaxed) + 1U;
            if (count < s.promote_after) {
                seen.store(static_cast<std::uint8_t>(std::min(count, 255U)), std::memory_order_relaxed);
                return;
            }
            seen.store(0, std::memory_order_relaxed);
        }
        const auto ttl = left();
        if (!ttl) return;
        s.fence.copy_if_quiet(h, ticket, [&] {
            if (!s.memory.put(key, entry.value, *ttl)) return;
            s.promotions.fetch_add(1, std::memory_order_relaxed);
            // invalidate_tag() must find the memory copy even when the tier's index cannot
            // answer (an entry it could not read again): the cache's own index notes it.
            if (!entry.tags.empty()) s.tags.note(key, entry.tags, s.memory);
        });
    }

    // A copy into a faster storage tier. It is written outside the fence's lock (a storage
    // call may be slow) and then checked: if a put or erase of the key began since the
    // ticket, the copy may have overwritten its newer write, so it is removed again (or
    // made a pending erasure). A tier whose copy awaits removal is left to the flush.
    template <class T>
    void promote_into(T& t, const Key& key, std::uint64_t h, std::uint64_t ticket, const Value& value,
                      std::chrono::nanoseconds ttl, std::span<const std::string> tags) {
        if (t.pending.contains(key)) return;
        breaker_type& b = gate(t, key);
        if (b.state() == breaker_state::open || !b.allow()) {
            t.promotions_skipped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (!allowed(t, b, [&] { return t.disk->put(key, value, ttl, tags); })) return;
        if (m->fence.quiet_since(h, ticket)) {
            t.promotions.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (!t.disk->erase(key)) t.pending.add(key);
    }

    std::unique_ptr<state> m;
};

// The members a call reaches are defined out of the class body: not inline, so a TU that
// declares `extern template class cache<...>` (tierguard/instantiate.hpp) compiles none of them.

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::validate(const config& cfg) -> result<void> {
    auto bad = [](std::string what) { return fail(errc::invalid_argument, tier::none, std::move(what)); };
    if (auto ok = detail::check_ttl(cfg.default_ttl, tier::none, "cache config.default_ttl"); !ok) return ok;
    if (cfg.promote_after == 0 || cfg.promote_after > 255)
        return bad(detail::concat(
            {"cache config.promote_after is ", std::to_string(cfg.promote_after), "; it must be 1 to 255"}));
    if (cfg.stale_grace < std::chrono::nanoseconds::zero())
        return bad("cache config.stale_grace is negative; use 0 for no stale-if-error");
    if (cfg.refresh_after < std::chrono::nanoseconds::zero())
        return bad("cache config.refresh_after is negative; use 0 for no refresh-ahead");
    if (cfg.refresh_after > std::chrono::nanoseconds::zero() && cfg.refresh_after >= cfg.default_ttl)
        return bad(detail::concat({"cache config.refresh_after (", std::to_string(cfg.refresh_after.count()),
                                   " ns) is not below config.default_ttl (", std::to_string(cfg.default_ttl.count()),
                                   " ns); entries would expire before they are refreshed"}));
    if (auto ok = memory_type::validate(memory_config_of(cfg)); !ok) return ok;
    if (auto ok = degradation_type::validate(cfg.degradation); !ok) return ok;
    if constexpr (has_storage) {
        if (cfg.max_pending_erasures == 0) return bad("cache config.max_pending_erasures is 0; it must be at least 1");
        const tier_configs settings = settings_of(cfg);
        std::array<std::string, tier_count> names;
        result<void> verdict;
        for_each_index([&](auto index) {
            constexpr std::size_t i = decltype(index)::value;
            const auto& tc = std::get<i>(settings);
            using S = std::tuple_element_t<i, storage_types>;
            names[i] = name_of<S>(tc);
            if (!verdict) return;
            auto checked = disk_type_at<i>::validate(disk_config_of(tc.disk, cfg));
            if (checked) checked = breaker_type::validate(tc.breaker);
            if (!checked && listed_tiers) {
                const failure& f = checked.error();
                checked = fail(f.code(), f.where(),
                               detail::concat({"cache config.tiers[", std::to_string(i), "] (\"", names[i],
                                               "\"): ", f.message()}));
            }
            for (std::size_t j = 0; checked && j < i; ++j)
                if (names[j] == names[i])
                    checked = bad(detail::concat({"cache config.tiers[", std::to_string(j), "] and tiers[",
                                                  std::to_string(i), "] are both named \"", names[i],
                                                  "\"; give each tier its own name (tier_config::name)"}));
            verdict = std::move(checked);
        });
        return verdict;
    }
    return {};
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::operator=(cache&& other) noexcept -> cache& {
    if (this != &other) {
        stop_refresh();
        stop_invalidation();
        settle_pending();
        m = std::move(other.m);
    }
    return *this;
}

template <class Key, class Value, class Policies>
cache<Key, Value, Policies>::~cache() {
    stop_refresh();
    stop_invalidation();
    settle_pending();
}

template <class Key, class Value, class Policies>
void cache<Key, Value, Policies>::close() {
    if (!m || m->closed.load(std::memory_order_acquire)) return;
    stop_invalidation();
    settle_pending();
    m->closed.store(true, std::memory_order_release);
    for_each_tier([](auto& t, auto) {
        std::lock_guard lock(t.attach_mutex);
        t.detached.reset();  // a storage kept for a probe holds its lock too
        if (t.disk) t.disk->close();
        t.attached.store(false, std::memory_order_release);
    });
    m->memory.clear();
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::get(const Key& key) -> result<hit<Value>> {
    if (is_closed()) return closed_failure();
    return lookup(key, nullptr);
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::put(const Key& key, const Value& value) -> result<put_outcome> {
    return put(key, value, m->default_ttl);
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::put(const Key& key, const Value& value, std::chrono::nanoseconds ttl,
                                      std::span<const std::string> tags) -> result<put_outcome> {
    if (is_closed()) return closed_failure();
    if (auto ok = detail::check_ttl(ttl, tier::none, "TTL"); !ok) return unexpected(std::move(ok).error());
    state& s = *m;
    const latency_scope timing(s.put_latency);
    std::uint32_t granted = 0;
    if constexpr (has_storage && degradation_mode != degraded_mode::memory_only) {
        auto admitted = admit_write(key, s.bypassed_puts);
        if (!admitted) {
            if constexpr (degradation_mode == degraded_mode::fail_fast) return unexpected(std::move(admitted).error());
            return put_outcome{stored_in::nowhere, std::move(admitted).error()};
        }
        granted = *admitted;
    }
    const std::uint64_t h = hash_of(key);
    const write_scope scope(s.fence, h);
    const time_point deadline = detail::expiry_after(s.clock.now(), ttl);
    auto in_memory = s.memory.put(key, value, ttl);
    s.tags.note(key, tags, s.memory);
    if (in_memory) {
        s.memory_writes.fetch_add(1, std::memory_order_relaxed);
    } else {
        note_memory_error(in_memory.error());
    }
    if constexpr (!has_storage) {
        if (!in_memory) return unexpected(std::move(in_memory).error());
        return put_outcome{stored_in::memory, std::nullopt};
    } else {
        if (!in_memory) s.memory.erase(key);  // an older copy must not outlive this put
        put_outcome out;
        for_each_tier([&](auto& t, auto index) {
            // The storage's copy expires when the memory's does, however long the call took
            // to get there (a probe that attaches the tier first, say).
            auto store =
                [&](typename std::remove_reference_t<decltype(t)>::disk_t::notice_type notice) -> result<void> {
                if (deadline == time_point::max()) return t.disk->put(key, value, no_expiry, tags, notice);  // never
                const time_point now = s.clock.now();
                if (!detail::expired(deadline, now))
                    return t.disk->put(key, value, detail::elapsed_sat(now, deadline), tags, notice);
                auto gone = t.disk->erase(key, notice);  // expired on the way: only an older copy is left to remove
                if (!gone) return unexpected(std::move(gone).error());
                return {};
            };
            // A shared tier tells the other caches; a notice that cannot go out fails the write.
            auto write = [&] { return announced(t, key, store); };
            auto stored = admitted_call(t, gate(t, key), granted, decltype(index)::value, write);
            if (stored) {
                t.pending.remove(key);
                out.stored_tiers |= 1U << decltype(index)::value;
            } else {
                supersede_stored(t, key, stored.error());
                out.tier_failures.push_back(tier_failure{decltype(index)::value, std::move(stored).error()});
            }
        });
        if (out.stored_tiers != 0) {
            out.where = in_memory ? stored_in::memory_and_storage : stored_in::storage;
            if (!in_memory) {
                out.skipped = std::move(in_memory).error();
            } else if (!out.tier_failures.empty()) {
                out.skipped = out.tier_failures.front().why;
            }
            return out;
        }
        if (!in_memory) return unexpected(refused_everywhere(std::move(in_memory).error(), out.tier_failures));
        out.where = stored_in::memory;
        out.skipped = out.tier_failures.front().why;
        return out;
    }
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::erase(const Key& key) -> result<bool> {
    if (is_closed()) return closed_failure();
    state& s = *m;
    std::uint32_t granted = 0;
    if constexpr (has_storage && degradation_mode != degraded_mode::memory_only) {
        auto admitted = admit_write(key, s.bypassed_erases);
        if (!admitted) {
            if constexpr (degradation_mode == degraded_mode::fail_fast) return unexpected(std::move(admitted).error());
            return false;
        }
        granted = *admitted;
    }
    const std::uint64_t h = hash_of(key);
    const write_scope scope(s.fence, h);
    bool erased = s.memory.erase(key);
    for_each_tier([&](auto& t, auto index) {
        auto removed =
            admitted_call(t, gate(t, key), granted, decltype(index)::value, [&] { return erase_announced(t, key); });
        if (removed) {
            t.pending.remove(key);
            erased = erased || *removed;
        } else {
            t.pending.add(key);
        }
    });
    return erased;
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::clear() -> result<void> {
    if (is_closed()) return closed_failure();
    state& s = *m;
    s.memory.clear();
    result<void> outcome;
    for_each_tier([&](auto& t, auto) {
        auto cleared = guarded(t, *t.breakers.front(), [&]() -> result<void> {
            auto done = t.disk->clear();
            if (!done) return done;
            return announce(t, nullptr);
        });
        if (cleared) {
            t.pending.clear_overflow();
        } else {
            t.pending.distrust_all();
            if (outcome) outcome = std::move(cleared);
        }
    });
    s.memory.clear();
    return outcome;
}

template <class Key, class Value, class Policies>
bool cache<Key, Value, Policies>::contains(const Key& key) const {
    if (is_closed()) return false;
    if (m->memory.contains(key)) return true;
    return any_tier(
        [&](auto& t, auto) { return !t.pending.contains(key) && tier_attached(t) && t.disk->contains(key); });
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::metrics() const -> cache_metrics {
    const state& s = *m;
    cache_metrics out;
    const memory_stats ms = s.memory.stats();
    out.memory.which = tier::memory;
    out.memory.name = "memory";
    out.memory.hits = ms.hits;
    out.memory.misses = ms.misses;
    out.memory.evictions = ms.evictions;
    out.memory.expirations = ms.expirations;
    out.memory.entries = ms.entries;
    out.memory.bytes = ms.bytes;
    out.memory.writes = s.memory_writes.load(std::memory_order_relaxed);
    out.memory.promotions = s.promotions.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < errc_count; ++i)
        out.memory.errors[i] = s.memory_errors[i].load(std::memory_order_relaxed);
    out.storage.reserve(tier_count);
    for_each_tier([&](auto& t, auto) {
        const bool on = tier_attached(t);
        const disk_stats ds = on ? t.disk->stats() : disk_stats{};
        std::uint64_t opens = 0;
        for (const auto& b : t.breakers) opens += b->snapshot().opens;
        tier_metrics& d = out.storage.emplace_back();
        d.which = t.kind;
        d.name = t.name;
        d.hits = ds.hits;
        d.misses = ds.misses + t.index_misses.load(std::memory_order_relaxed);
        d.writes = ds.writes;
        d.evictions = ds.evictions;
        d.disk_full = ds.disk_full_events + t.untiered_disk_full.load(std::memory_order_relaxed);
        d.expirations = ds.expirations;
        d.corrupted = ds.corrupted;
        d.quarantined = ds.quarantined;
        d.version_mismatches = ds.version_mismatches;
        d.entries = ds.entries;
        d.bytes = ds.bytes;
        for (std::size_t i = 0; i < errc_count; ++i) d.errors[i] = t.errors[i].load(std::memory_order_relaxed);
        d.breaker = breaker_state_of(t);
        d.breaker_opens = opens;
        d.attached = on;
        d.promotions = t.promotions.load(std::memory_order_relaxed);
        d.promotions_skipped = t.promotions_skipped.load(std::memory_order_relaxed);
        d.pending_erasures = t.pending.size();
        out.pending_erasures += d.pending_erasures;
        if constexpr (has_invalidation) {
            if (static_cast<const void*>(&t) == &tier_at<invalidated_tier>() && s.invalidation.enabled) {
                const invalidation_state& inv = s.invalidation;
                d.invalidation = true;
                d.link_up = inv.link_up.load(std::memory_order_acquire);
                d.link_losses = inv.link_losses.load(std::memory_order_relaxed);
                d.invalidation_flushes = inv.flushes.load(std::memory_order_relaxed);
                d.notices_received = inv.received.load(std::memory_order_relaxed);
                d.notices_applied = inv.applied.load(std::memory_order_relaxed);
                d.notices_ignored_own = inv.ignored_own.load(std::memory_order_relaxed);
                d.notices_ignored_undecodable = inv.ignored_undecodable.load(std::memory_order_relaxed);
                d.notices_published = inv.published.load(std::memory_order_relaxed);
            }
        }
    });
    if constexpr (has_storage) {
        std::lock_guard lock(s.mode_mutex);
        out.degraded = s.degraded_tiers.load(std::memory_order_acquire) != 0;
        out.degraded_entered = s.degraded_entered;
        out.degraded_time = s.degraded_total;
        if (out.degraded) out.degraded_time += detail::elapsed_sat(s.degraded_since, s.clock.now());
    }
    out.promotions = out.memory.promotions;
    out.bypassed_gets = s.bypassed_gets.load(std::memory_order_relaxed);
    out.bypassed_puts = s.bypassed_puts.load(std::memory_order_relaxed);
    out.bypassed_erases = s.bypassed_erases.load(std::memory_order_relaxed);
    out.loads = s.loads.load(std::memory_order_relaxed);
    out.load_failures = s.load_failures.load(std::memory_order_relaxed);
    out.loads_shared = s.loads_shared.load(std::memory_order_relaxed);
    out.stale_served = s.stale_served.load(std::memory_order_relaxed);
    out.refreshes = s.refreshes.load(std::memory_order_acquire);  // then the failures it counted
    out.refresh_failures = s.refresh_failures.load(std::memory_order_relaxed);
    out.untrusted_served = s.invalidation.untrusted_served.load(std::memory_order_relaxed);
    out.invalidations_by_tag = s.invalidations_by_tag.load(std::memory_order_relaxed);
    out.invalidations_by_prefix = s.invalidations_by_prefix.load(std::memory_order_relaxed);
    out.invalidated_entries = s.invalidated_entries.load(std::memory_order_relaxed);
    out.warmed = s.warmed.load(std::memory_order_relaxed);
    out.warm_skipped = s.warm_skipped.load(std::memory_order_relaxed);
    out.warm_failed = s.warm_failed.load(std::memory_order_relaxed);
    out.warmed_at_open = s.warmed_at_open;
    out.warm_at_open_time = s.warm_at_open_time;
    out.get_latency = s.get_latency.snapshot();
    out.put_latency = s.put_latency.snapshot();
    return out;
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::start(const config& cfg, typename per_tier<storage_types>::optionals storages,
                                        const clock_type& clock, const listener_type& listener) -> result<cache> {
    if (auto ok = validate(cfg); !ok) return unexpected(std::move(ok).error());
    const tier_configs settings = settings_of(cfg);
    cache c(std::make_unique<state>(cfg, clock, listener));
    if constexpr (has_invalidation) {
        c.m->invalidation.enabled = std::get<invalidated_tier>(settings).invalidation;
        auto sender = detail::random_secret(tier::remote, "no random bytes for the invalidation sender id");
        if (!sender) return unexpected(std::move(sender).error());
        c.m->invalidation.sender = *sender;
    }
    std::optional<failure> misconfigured;
    c.for_each_tier([&](auto& t, auto index) {
        constexpr std::size_t i = decltype(index)::value;
        if (misconfigured) return;
        const auto& tc = std::get<i>(settings);
        t.detached.emplace(typename std::remove_reference_t<decltype(t)>::detached_tier{
            std::move(std::get<i>(storages)), tc.storage, disk_config_of(tc.disk, cfg)});
        result<void> opened;
        {
            std::lock_guard lock(t.attach_mutex);
            opened = c.attach_detached(t);
        }
        c.split_breakers(t);
        if (opened) return;
        failure why = std::move(opened).error();
        if (!is_runtime_fault(why)) {
            misconfigured.emplace(std::move(why));
            return;
        }
        c.emit(t, event_kind::storage_unavailable,
               "the storage could not be opened; the cache runs degraded until a probe opens it", &why);
        c.note_open_failure(t, why);
        // Every breaker opens on a run of counted failures; one that never opens (breaker::none)
        // leaves the detached tier to degraded mode alone (see tier_mode).
        for (auto& b : t.breakers)
            for (int n = 0; n < 100000 && b->state() == breaker_state::closed; ++n)
                if (b->allow()) b->on_failure(breaker_code(why));
        c.refresh_mode(t);
    });
    if (misconfigured) return unexpected(std::move(*misconfigured));
    if (cfg.warm_on_open != 0) c.warm_from_storage(cfg.warm_on_open);
    return c;
}

template <class Key, class Value, class Policies>
auto cache<Key, Value, Policies>::health(bool probe) -> health_report {
    health_report report;
    report.tiers.push_back(tier_health{});
    refresh_modes();
    retry_pending();
    auto worsen = [&](health_status st) {
        if (static_cast<int>(st) > static_cast<int>(report.status)) report.status = st;
    };
    for_each_tier([&](auto& t, auto) {
        const bool on = tier_attached(t);
        tier_health th{t.kind, t.name, breaker_state_of(t), std::nullopt, probe && on, std::nullopt, on};
        {
            std::lock_guard lock(t.last_error_mutex);
            th.last_error = t.last_error;
        }
        if (th.probed) {
            if (auto ok = probe_storage(t); !ok) {
                emit(t, event_kind::probe_failed, ok.error().context(), &ok.error());
                th.probe_error = std::move(ok).error();
            }
        }
        if (th.breaker != breaker_state::closed || !on) {
            worsen(degradation_mode == degraded_mode::memory_only ? health_status::degraded : health_status::unhealthy);
        } else if (th.probe_error) {
            worsen(health_status::degraded);
        }
        report.tiers.push_back(std::move(th));
    });
    return report;
}

}  // namespace tierguard
