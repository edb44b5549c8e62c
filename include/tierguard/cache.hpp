#pragma once

#include <tierguard/breaker/concept.hpp>
#include <tierguard/breaker/consecutive_failures.hpp>
#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/system.hpp>
#include <tierguard/degradation/concept.hpp>
#include <tierguard/degradation/memory_only.hpp>
#include <tierguard/detail/pending_erasures.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/detail/write_fence.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/hash.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/listener/none.hpp>
#include <tierguard/memory_tier.hpp>
#include <tierguard/metrics.hpp>
#include <tierguard/result.hpp>
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
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tierguard {

/// Policies::storage for a cache with no storage tier: the memory tier works alone.
struct no_storage {
    struct config {};
};

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
    nowhere,             ///< neither tier took it (bypass while the storage tier is down)
    memory,              ///< memory only: the storage tier was down or refused it
    storage,             ///< the storage tier only (too large for the memory tier)
    memory_and_storage,  ///< both: a write-through
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

/// What a successful put did.
struct put_outcome {
    stored_in where = stored_in::nowhere;
    /// Why a tier did not take the value (its failure, or errc::circuit_open), if one did not.
    std::optional<failure> skipped;
};

/// A value found by the cache, and where.
template <class Value>
struct hit {
    Value value;
    tier from = tier::memory;  ///< the tier that answered
    /// Expired, served by get_or_load() because the loader failed within the stale grace.
    bool stale = false;
};

/// One tier's counters in a cache_metrics snapshot.
struct tier_metrics {
    tier which = tier::memory;
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

    [[nodiscard]] std::uint64_t errors_of(errc code) const noexcept {
        return errors[static_cast<std::size_t>(code) - 1];
    }
};

/// A cache's counters at one instant: cache::metrics(), and to_prometheus() renders it.
struct cache_metrics {
    tier_metrics memory;
    std::optional<tier_metrics> storage;       ///< absent without a storage tier
    bool degraded = false;                     ///< the storage tier's breaker is not closed
    std::uint64_t degraded_entered = 0;        ///< times the cache entered degraded mode
    std::chrono::nanoseconds degraded_time{};  ///< spent degraded, the current stretch included
    std::uint64_t promotions = 0;              ///< storage hits copied into memory
    std::uint64_t bypassed_gets = 0;           ///< degradation::bypass: gets answered as misses
    std::uint64_t bypassed_puts = 0;           ///< degradation::bypass: puts stored nowhere
    std::uint64_t bypassed_erases = 0;         ///< degradation::bypass: erases that removed nothing
    std::uint64_t pending_erasures = 0;        ///< storage copies waiting to be removed
    std::uint64_t loads = 0;                   ///< get_or_load() calls of the loader
    std::uint64_t load_failures = 0;           ///< loader calls that failed
    std::uint64_t loads_shared = 0;            ///< get_or_load() calls that waited for another's load
    std::uint64_t stale_served = 0;            ///< expired values returned because the loader failed
    histogram_snapshot get_latency;            ///< lookups: memory hits sampled 1 in 64, all others timed
    histogram_snapshot put_latency;            ///< put()
};

/// How a cache is doing, for a health endpoint.
enum class health_status : unsigned char {
    healthy,    ///< every tier serves
    degraded,   ///< serving from memory: the storage tier is down, or its probe failed
    unhealthy,  ///< not serving values: the storage tier is down under bypass or fail_fast
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

template <class Policies, class Clock>
using breaker_of = typename Policies::template breaker<Clock>;

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

}  // namespace detail

/// A tiered cache: a memory tier in front of an optional storage tier guarded by a
/// breaker, under a degradation policy.
///
/// get: memory, then (if the breaker allows) the storage tier; a storage hit is copied
/// into memory after `promote_after` storage hits. put: memory, then write-through to
/// the storage tier. Guarantees: no operation throws because a tier failed; a get
/// returns a miss or the value of the last successful put for the key (never a damaged,
/// expired, other key's or superseded value: a write that reaches memory but not the
/// storage tier keeps the storage copy from being served until it is removed); a
/// storage tier that recovers is used again without a restart. Thread-safe.
template <class Key, class Value, class Policies = cache_defaults>
class cache {
public:
    using key_type = Key;
    using mapped_type = Value;
    using clock_type = typename Policies::clock;
    using storage_type = typename Policies::storage;
    using breaker_type = detail::breaker_of<Policies, clock_type>;
    using degradation_type = typename Policies::degradation;
    using listener_type = typename Policies::listener;
    using hasher = typename Policies::hash;
    using key_equal = typename Policies::key_equal;
    using time_point = typename clock_type::time_point;

    static constexpr bool has_storage = !std::is_same_v<storage_type, no_storage>;

    static_assert(clock_policy<clock_type>,
                  "tierguard::cache: Policies::clock does not model tierguard::clock_policy; see docs/POLICIES.md");
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
    };
    struct disk_policies {
        using storage = storage_type;
        using serializer = typename Policies::serializer;
        using clock = clock_type;
        using listener = listener_type;
        static constexpr std::uint32_t schema_version = detail::schema_version_of<Policies, Value>;
    };

public:
    /// Its entries' TTLs are theirs; it keeps them stale_grace longer, for stale-if-error.
    using memory_type = memory_tier<Key, Value, memory_policies>;
    using disk_type = std::conditional_t<has_storage, disk_tier<Key, Value, disk_policies>, void>;
    static constexpr degraded_mode degradation_mode = degradation_type::mode;
    using storage_config = typename detail::storage_config_of<storage_type>::type;

    /// Run-time settings; open() validates every field and names the first bad one.
    struct config {
        memory_config memory{};  ///< its default_ttl is replaced by default_ttl below
        /// How to open the storage (posix_directory: root, sync, max_blob_size). Empty for a
        /// storage without a config type: pass one built to open(cfg, storage).
        storage_config storage{};
        disk_config disk{};                       ///< its default_ttl is replaced by default_ttl below
        typename breaker_type::config breaker{};  ///< the storage tier's breaker
        typename degradation_type::config degradation{};
        /// TTL of entries put without one, in every tier.
        std::chrono::nanoseconds default_ttl = no_expiry;
        /// Storage hits of a key before it is copied into memory, 1 to 255 (seed 000 used 3). Counted
        /// in a fixed table of 4096 counters by key hash, so keys that share a counter may
        /// be promoted early; never late.
        std::uint32_t promote_after = 1;
        /// get_or_load(): how long past its TTL an entry may still be returned, marked
        /// stale, when the loader fails (stale-if-error). 0 = never.
        std::chrono::nanoseconds stale_grace{0};
        /// Keys whose storage copy awaits removal (see the class comment) kept at most;
        /// past it the whole storage tier is cleared when it is back.
        std::size_t max_pending_erasures = 100000;
    };

    /// Checks a configuration without opening anything.
    [[nodiscard]] static result<void> validate(const config& cfg) {
        auto bad = [](std::string what) { return fail(errc::invalid_argument, tier::none, std::move(what)); };
        if (auto ok = detail::check_ttl(cfg.default_ttl, tier::none, "cache config.default_ttl"); !ok) return ok;
        if (cfg.promote_after == 0 || cfg.promote_after > 255)
            return bad("cache config.promote_after is " + std::to_string(cfg.promote_after) + "; it must be 1 to 255");
        if (cfg.stale_grace < std::chrono::nanoseconds::zero())
            return bad("cache config.stale_grace is negative; use 0 for no stale-if-error");
        if (auto ok = memory_type::validate(memory_config_of(cfg)); !ok) return ok;
        if (auto ok = degradation_type::validate(cfg.degradation); !ok) return ok;
        if constexpr (has_storage) {
            if (cfg.max_pending_erasures == 0)
                return bad("cache config.max_pending_erasures is 0; it must be at least 1");
            if (auto ok = disk_type::validate(with_ttl(cfg.disk, cfg.default_ttl)); !ok) return ok;
            if (auto ok = breaker_type::validate(cfg.breaker); !ok) return ok;
        }
        return {};
    }

    /// Opens a cache: validates `cfg`, opens the storage from cfg.storage and the disk
    /// tier over it. Fails with the first bad setting or a misconfigured storage (see
    /// is_runtime_fault: errc::locked when another process holds the directory, a root
    /// that is a link, not ours or writable by others). A run-time fault of the storage
    /// (a full disk, an I/O error, an unreadable folder) does not fail it: the cache opens
    /// degraded, with the storage tier's breaker open and the tier detached (attached()
    /// is false), and attaches the tier when a call the breaker lets through (the
    /// half-open probe) opens it; events storage_unavailable and storage_attached.
    [[nodiscard]] static result<cache> open(const config& cfg, clock_type clock = clock_type(),
                                            listener_type listener = listener_type()) {
        if (auto ok = validate(cfg); !ok) return unexpected(std::move(ok).error());
        if constexpr (has_storage) {
            auto storage = open_storage(cfg.storage);
            if (!storage) return start(cfg, std::nullopt, std::move(storage).error(), clock, listener);
            return start(cfg, std::move(*storage), std::nullopt, clock, listener);
        } else {
            return cache(std::make_unique<state>(cfg, std::move(clock), std::move(listener)));
        }
    }

    /// As open(cfg, ...), over a storage the caller built (a fault-injecting wrapper, say).
    /// A cache opened degraded keeps `storage` and opens the tier over it again at its probe.
    [[nodiscard]] static result<cache> open(const config& cfg, storage_type storage, clock_type clock = clock_type(),
                                            listener_type listener = listener_type()) requires has_storage {
        if (auto ok = validate(cfg); !ok) return unexpected(std::move(ok).error());
        return start(cfg, std::move(storage), std::nullopt, clock, listener);
    }

    cache(cache&&) noexcept = default;
    cache& operator=(cache&& other) noexcept {
        if (this != &other) {
            settle_pending();
            m = std::move(other.m);
        }
        return *this;
    }
    cache(const cache&) = delete;
    cache& operator=(const cache&) = delete;
    /// Closes the tiers. Storage copies that a put or erase superseded but could not remove
    /// (pending_erasures in metrics) are removed first, so that a restart cannot serve them:
    /// a detached tier is opened once for that, and if a copy still cannot be removed the
    /// storage tier is cleared; if even that fails, an io_error event says how many copies a
    /// restart may serve (docs/RELIABILITY.md).
    ~cache() { settle_pending(); }

    /// The value for `key` and the tier it came from. Errors, all meaning "not cached":
    /// errc::miss and errc::expired (plain misses), errc::circuit_open (the storage tier's
    /// breaker is open), or the storage failure that made it a miss (errc::corrupted,
    /// errc::io_error, errc::version_mismatch, ...), with the tier in failure::where().
    [[nodiscard]] result<hit<Value>> get(const Key& key) { return lookup(key, nullptr); }

    /// Stores `value` with the default TTL: memory, then the storage tier. See put_outcome.
    result<put_outcome> put(const Key& key, const Value& value) { return put(key, value, m->default_ttl); }

    /// As put(key, value), with this entry's own TTL (errc::invalid_argument if ttl <= 0).
    /// Errors: errc::too_large when no tier can hold it, errc::circuit_open under
    /// fail_fast while the storage tier is down, errc::serialization_failed, or the
    /// storage failure when memory did not take it either.
    result<put_outcome> put(const Key& key, const Value& value, std::chrono::nanoseconds ttl) {
        if (auto ok = detail::check_ttl(ttl, tier::none, "TTL"); !ok) return unexpected(std::move(ok).error());
        state& s = *m;
        const latency_scope timing(s.put_latency);
        bool granted = false;
        if constexpr (has_storage && degradation_mode != degraded_mode::memory_only) {
            granted = write_allowed(s.bypassed_puts);
            if (!granted) {
                if constexpr (degradation_mode == degraded_mode::fail_fast) return unexpected(open_circuit());
                return put_outcome{stored_in::nowhere, open_circuit()};
            }
        }
        const std::uint64_t h = hash_of(key);
        const write_scope scope(s.fence, h);
        const time_point deadline = detail::expiry_after(s.clock.now(), ttl);
        auto in_memory = s.memory.put(key, value, ttl);
        if (in_memory) {
            s.memory_writes.fetch_add(1, std::memory_order_relaxed);
        } else {
            note_error(tier::memory, in_memory.error());
        }
        if constexpr (!has_storage) {
            if (!in_memory) return unexpected(std::move(in_memory).error());
            return put_outcome{stored_in::memory, std::nullopt};
        } else {
            if (!in_memory) s.memory.erase(key);  // an older copy must not outlive this put
            // The storage's copy expires when the memory's does, however long the call took
            // to get there (a probe that attaches the tier first, say).
            auto write = [&]() -> result<void> {
                if (deadline == time_point::max()) return s.disk->put(key, value, no_expiry);  // never
                const time_point now = s.clock.now();
                if (!detail::expired(deadline, now)) return s.disk->put(key, value, detail::elapsed_sat(now, deadline));
                auto gone = s.disk->erase(key);  // expired on the way: only an older copy is left to remove
                if (!gone) return unexpected(std::move(gone).error());
                return {};
            };
            auto on_disk = granted ? allowed(write) : guarded(write);
            if (on_disk) {
                s.pending.remove(key);
                if (!in_memory) return put_outcome{stored_in::storage, std::move(in_memory).error()};
                return put_outcome{stored_in::memory_and_storage, std::nullopt};
            }
            supersede_stored(key, on_disk.error());
            if (!in_memory) return unexpected(std::move(in_memory).error());
            return put_outcome{stored_in::memory, std::move(on_disk).error()};
        }
    }

    /// Removes `key` from every tier; true if a tier held it. While the storage tier is
    /// down: memory_only removes the memory copy now and the storage copy when the tier
    /// is back; bypass removes nothing and returns false; fail_fast returns
    /// errc::circuit_open.
    result<bool> erase(const Key& key) {
        state& s = *m;
        bool granted = false;
        if constexpr (has_storage && degradation_mode != degraded_mode::memory_only) {
            granted = write_allowed(s.bypassed_erases);
            if (!granted) {
                if constexpr (degradation_mode == degraded_mode::fail_fast) return unexpected(open_circuit());
                return false;
            }
        }
        const std::uint64_t h = hash_of(key);
        const write_scope scope(s.fence, h);
        const bool in_memory = s.memory.erase(key);
        if constexpr (!has_storage) {
            return in_memory;
        } else {
            auto remove = [&] { return s.disk->erase(key); };
            auto on_disk = granted ? allowed(remove) : guarded(remove);
            if (on_disk) {
                s.pending.remove(key);
                return in_memory || *on_disk;
            }
            s.pending.add(key);
            return in_memory;
        }
    }

    /// Removes every entry from every tier. If the storage tier cannot be cleared now,
    /// it is never read again until it has been (the first such failure is returned).
    result<void> clear() {
        state& s = *m;
        s.memory.clear();
        if constexpr (has_storage) {
            auto cleared = guarded([&] { return s.disk->clear(); });
            s.memory.clear();
            if (!cleared) {
                s.pending.distrust_all();
                return cleared;
            }
            s.pending.clear_overflow();
        }
        return {};
    }

    /// True if a tier holds an unexpired entry for `key`. Reads no file (the storage
    /// tier's index answers) and counts nothing; a get may still miss.
    [[nodiscard]] bool contains(const Key& key) const {
        if (m->memory.contains(key)) return true;
        if constexpr (has_storage) {
            return !m->pending.contains(key) && attached() && m->disk->contains(key);
        } else {
            return false;
        }
    }

    /// The storage tier's maintenance (see disk_tier::scrub); errc::circuit_open while
    /// its breaker is open.
    result<scrub_report> scrub() requires has_storage {
        return guarded([&] { return m->disk->scrub(); });
    }

    /// get(), or on a miss: calls loader(key) once, stores and returns its value (from ==
    /// tier::none). Concurrent misses on one key share one loader call and its result.
    /// The loader returns a Value, or a result-like object (has_value(), operator*,
    /// error()); an error or an exception becomes errc::loader_failed carrying its
    /// message (and, for a tierguard::failure, its OS error). With config.stale_grace > 0,
    /// a value expired less than stale_grace ago is returned marked stale when the loader
    /// fails. A storage failure on the way is no error: the loader's value is served.
    template <class F>
        requires std::invocable<F&, const Key&>
    [[nodiscard]] result<hit<Value>> get_or_load(const Key& key, F&& loader) {
        std::optional<Value> stale;
        if (auto found = lookup(key, &stale)) return found;
        state& s = *m;
        std::shared_ptr<flight> f;
        bool leader = false;
        {
            std::lock_guard lock(s.flights_mutex);
            auto [it, inserted] = s.flights.try_emplace(key);
            if (inserted) it->second = std::make_shared<flight>();
            f = it->second;
            leader = inserted;
        }
        if (!leader) {
            s.loads_shared.fetch_add(1, std::memory_order_relaxed);
            std::unique_lock lock(f->mutex);
            f->done_cv.wait(lock, [&] { return f->outcome.has_value(); });
            return *f->outcome;
        }
        const flight_landing landing(s, key, f);
        if (stored_since_lookup(key)) {  // by a leader that landed after the lookup above
            if (auto found = lookup(key, &stale)) {
                landing.publish(found);
                return found;
            }
        }
        auto outcome = load(key, loader, std::move(stale));
        landing.publish(outcome);
        return outcome;
    }

    /// The counters of every tier, the breaker, degraded mode and latencies.
    [[nodiscard]] cache_metrics metrics() const {
        const state& s = *m;
        cache_metrics out;
        const memory_stats ms = s.memory.stats();
        out.memory.which = tier::memory;
        out.memory.hits = ms.hits;
        out.memory.misses = ms.misses;
        out.memory.evictions = ms.evictions;
        out.memory.expirations = ms.expirations;
        out.memory.entries = ms.entries;
        out.memory.bytes = ms.bytes;
        out.memory.writes = s.memory_writes.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < errc_count; ++i)
            out.memory.errors[i] = s.memory_errors[i].load(std::memory_order_relaxed);
        if constexpr (has_storage) {
            const bool on = s.attached.load(std::memory_order_acquire);
            const disk_stats ds = on ? s.disk->stats() : disk_stats{};
            const breaker_snapshot bs = s.breaker.snapshot();
            tier_metrics& d = out.storage.emplace();
            d.which = tier::disk;
            d.hits = ds.hits;
            d.misses = ds.misses + s.index_misses.load(std::memory_order_relaxed);
            d.writes = ds.writes;
            d.evictions = ds.evictions;
            d.disk_full = ds.disk_full_events + s.untiered_disk_full.load(std::memory_order_relaxed);
            d.expirations = ds.expirations;
            d.corrupted = ds.corrupted;
            d.quarantined = ds.quarantined;
            d.version_mismatches = ds.version_mismatches;
            d.entries = ds.entries;
            d.bytes = ds.bytes;
            for (std::size_t i = 0; i < errc_count; ++i) d.errors[i] = s.disk_errors[i].load(std::memory_order_relaxed);
            d.breaker = bs.state;
            d.breaker_opens = bs.opens;
            d.attached = on;
            std::lock_guard lock(s.mode_mutex);
            out.degraded = s.last_state.load(std::memory_order_acquire) != breaker_state::closed;
            out.degraded_entered = s.degraded_entered;
            out.degraded_time = s.degraded_total;
            if (out.degraded) out.degraded_time += detail::elapsed_sat(s.degraded_since, s.clock.now());
            out.pending_erasures = s.pending.size();
        }
        out.promotions = s.promotions.load(std::memory_order_relaxed);
        out.bypassed_gets = s.bypassed_gets.load(std::memory_order_relaxed);
        out.bypassed_puts = s.bypassed_puts.load(std::memory_order_relaxed);
        out.bypassed_erases = s.bypassed_erases.load(std::memory_order_relaxed);
        out.loads = s.loads.load(std::memory_order_relaxed);
        out.load_failures = s.load_failures.load(std::memory_order_relaxed);
        out.loads_shared = s.loads_shared.load(std::memory_order_relaxed);
        out.stale_served = s.stale_served.load(std::memory_order_relaxed);
        out.get_latency = s.get_latency.snapshot();
        out.put_latency = s.put_latency.snapshot();
        return out;
    }

    /// metrics() in the Prometheus text exposition format (version 0.0.4), every name
    /// prefixed tierguard_; docs/METRICS.md lists them.
    [[nodiscard]] std::string to_prometheus() const { return render_prometheus(metrics()); }

    /// The cache's status and each tier's breaker and last error. With `probe`, also
    /// writes a canary blob to the storage, reads it back, compares and removes it
    /// (seed 003's integrity check): a failure makes the cache degraded and is reported
    /// to the listener. The probe bypasses the breaker and does not feed it.
    [[nodiscard]] health_report health(bool probe = false) {
        health_report report;
        report.tiers.push_back(tier_health{tier::memory, breaker_state::closed, std::nullopt, false, std::nullopt});
        if constexpr (has_storage) {
            state& s = *m;
            refresh_mode();
            const bool on = attached();
            tier_health disk{tier::disk, s.breaker.state(), std::nullopt, probe && on, std::nullopt, on};
            {
                std::lock_guard lock(s.last_error_mutex);
                disk.last_error = s.last_error;
            }
            if (disk.probed) {
                if (auto ok = probe_storage(); !ok) {
                    emit(event_kind::probe_failed, ok.error().context(), &ok.error());
                    disk.probe_error = std::move(ok).error();
                }
            }
            if (disk.breaker != breaker_state::closed || !on) {
                report.status =
                    degradation_mode == degraded_mode::memory_only ? health_status::degraded : health_status::unhealthy;
            } else if (disk.probe_error) {
                report.status = health_status::degraded;
            }
            report.tiers.push_back(std::move(disk));
        }
        return report;
    }

    /// The memory tier, for its statistics and for tests.
    [[nodiscard]] memory_type& memory() noexcept { return m->memory; }
    /// The storage tier; only while attached().
    [[nodiscard]] auto& disk() noexcept requires has_storage { return *m->disk; }
    /// False while the storage tier is detached: open() met a run-time fault of the
    /// storage, and no probe has opened it since. Always true without a storage tier.
    [[nodiscard]] bool attached() const noexcept { return m->attached.load(std::memory_order_acquire); }
    /// The storage tier's breaker: force_open(), force_closed(), reset(), snapshot().
    [[nodiscard]] breaker_type& breaker() noexcept { return m->breaker; }
    /// True while the storage tier's breaker is not closed (the cache runs degraded).
    [[nodiscard]] bool degraded() const noexcept {
        return m->last_state.load(std::memory_order_acquire) != breaker_state::closed;
    }
    [[nodiscard]] const clock_type& clock() const noexcept { return m->clock; }

private:
    // One loader call that concurrent get_or_load() misses of a key wait for.
    struct flight {
        std::mutex mutex;
        std::condition_variable done_cv;
        std::optional<result<hit<Value>>> outcome;
    };

    struct state {
        state(const config& cfg, clock_type c, listener_type l)
            : clock(std::move(c)),
              memory(memory_config_of(cfg), clock),
              breaker(cfg.breaker, clock),
              degradation(cfg.degradation),
              listener(std::move(l)),
              pending(cfg.max_pending_erasures),
              default_ttl(cfg.default_ttl),
              promote_after(cfg.promote_after),
              normal_budget(cfg.memory.byte_budget),
              access(std::make_unique<std::atomic<std::uint8_t>[]>(access_slots)) {}

        clock_type clock;
        memory_type memory;
        std::optional<std::conditional_t<has_storage, disk_type, int>> disk;  // set before `attached`
        // Until the storage tier is attached: what open() could not finish (under attach_mutex).
        struct detached_tier {
            std::optional<storage_type> storage;  // kept, with its lock, if it opened but the tier did not
            storage_config storage_cfg;           // opens it again when `storage` is empty
            disk_config disk_cfg;
        };
        std::mutex attach_mutex;
        std::optional<detached_tier> detached;
        std::atomic<bool> attached{!has_storage};
        breaker_type breaker;
        degradation_type degradation;
        listener_type listener;
        detail::pending_erasures<Key, hasher, key_equal> pending;
        detail::write_fence fence;
        std::chrono::nanoseconds default_ttl;
        std::uint32_t promote_after;
        std::size_t normal_budget;
        std::unique_ptr<std::atomic<std::uint8_t>[]> access;

        // Degraded mode: changed under mode_mutex, read without it.
        mutable std::mutex mode_mutex;
        std::atomic<breaker_state> last_state{breaker_state::closed};
        time_point degraded_since{};
        std::chrono::nanoseconds degraded_total{0};
        std::uint64_t degraded_entered = 0;

        std::atomic<std::uint64_t> promotions{0};
        std::atomic<std::uint64_t> bypassed_gets{0};
        std::atomic<std::uint64_t> bypassed_puts{0};
        std::atomic<std::uint64_t> bypassed_erases{0};
        std::atomic<std::uint64_t> stale_served{0};
        std::atomic<std::uint64_t> memory_writes{0};
        std::atomic<std::uint64_t> index_misses{0};
        std::atomic<std::uint64_t> untiered_disk_full{0};  // full disks the disk tier did not count: opening it, probes
        std::atomic<std::uint64_t> loads{0};
        std::atomic<std::uint64_t> load_failures{0};
        std::atomic<std::uint64_t> loads_shared{0};
        std::array<std::atomic<std::uint64_t>, errc_count> memory_errors{};
        std::array<std::atomic<std::uint64_t>, errc_count> disk_errors{};
        latency_histogram get_latency;
        latency_histogram put_latency;
        std::mutex flights_mutex;
        std::unordered_map<Key, std::shared_ptr<flight>, hasher, key_equal> flights;
        mutable std::mutex last_error_mutex;
        std::optional<failure> last_error;
    };

    static constexpr std::size_t access_slots = 4096;

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

    template <class C>
    [[nodiscard]] static C with_ttl(C cfg, std::chrono::nanoseconds ttl) {
        cfg.default_ttl = ttl;
        return cfg;
    }

    // open()'s work past validation: opens the tier over `storage` (or takes `why` the storage
    // failed to open); a run-time fault leaves the cache degraded with the tier detached.
    [[nodiscard]] static result<cache> start(const config& cfg, std::optional<storage_type> storage,
                                             std::optional<failure> why, const clock_type& clock,
                                             const listener_type& listener) requires has_storage {
        if (why && !is_runtime_fault(*why)) return unexpected(std::move(*why));
        auto s = std::make_unique<state>(cfg, clock, listener);
        s->detached.emplace(
            typename state::detached_tier{std::move(storage), cfg.storage, with_ttl(cfg.disk, cfg.default_ttl)});
        cache c(std::move(s));
        if (!why) {
            std::lock_guard lock(c.m->attach_mutex);
            if (auto ok = c.attach_detached(); !ok) why.emplace(std::move(ok).error());
        }
        if (!why) return c;
        if (!is_runtime_fault(*why)) return unexpected(std::move(*why));
        c.emit(event_kind::storage_unavailable,
               "the storage could not be opened; the cache runs degraded until a probe opens it", &*why);
        c.note_open_failure(*why);
        // Every breaker opens on a run of counted failures; one that never opens (breaker::none)
        // leaves the detached tier to degraded mode alone (see tier_state).
        for (int i = 0; i < 100000 && c.m->breaker.state() == breaker_state::closed; ++i)
            if (c.m->breaker.allow()) c.m->breaker.on_failure(breaker_code(*why));
        c.refresh_mode();
        return c;
    }

    // Opens the storage (if open() could not) and the disk tier over it; on success the tier
    // is attached. Caller holds attach_mutex.
    [[nodiscard]] result<void> attach_detached() requires has_storage {
        state& s = *m;
        auto& d = *s.detached;
        if (!d.storage) {
            if constexpr (requires(const storage_config& c) { storage_type::open(c); } ||
                          std::constructible_from<storage_type, const storage_config&>) {
                auto opened = open_storage(d.storage_cfg);
                if (!opened) return unexpected(std::move(opened).error());
                d.storage.emplace(std::move(*opened));
            } else {
                return fail(errc::io_error, tier::disk, "the storage is gone and cannot be opened again");
            }
        }
        auto disk = disk_type::try_open(d.storage, d.disk_cfg, s.clock, s.listener);
        if (!disk) return unexpected(std::move(disk).error());
        s.disk.emplace(std::move(*disk));
        s.detached.reset();
        s.attached.store(true, std::memory_order_release);
        return {};
    }

    // A call the breaker let through while the tier is detached opens it first. A failure
    // is reported to the breaker as the failure of the call (always a counted one: the tier
    // cannot serve) and returned.
    [[nodiscard]] result<void> attach() requires has_storage {
        state& s = *m;
        std::unique_lock lock(s.attach_mutex);
        if (s.attached.load(std::memory_order_acquire)) return {};
        auto ok = attach_detached();
        lock.unlock();
        if (ok) {
            emit(event_kind::storage_attached, "the storage opened; the tier is in use again", nullptr);
            return ok;
        }
        emit(event_kind::storage_unavailable, "probe: the storage could not be opened; the tier stays detached",
             &ok.error());
        s.breaker.on_failure(breaker_code(ok.error()));
        note_open_failure(ok.error());
        refresh_mode();
        return ok;
    }

    [[nodiscard]] static errc breaker_code(const failure& f) noexcept {
        return counts_as_failure(f.code()) ? f.code() : errc::io_error;
    }

    // The storage tier's state for degraded mode: its breaker's, but open while the tier is
    // detached and the breaker closed (breaker::none, or one forced closed).
    [[nodiscard]] breaker_state tier_state() const noexcept {
        const breaker_state b = m->breaker.state();
        return b == breaker_state::closed && !attached() ? breaker_state::open : b;
    }

    [[nodiscard]] static result<storage_type> open_storage(const storage_config& cfg) {
        if constexpr (requires { storage_type::open(cfg); }) {
            return storage_type::open(cfg);
        } else {
            return storage_type(cfg);
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
    [[nodiscard]] static failure open_circuit() noexcept { return failure(errc::circuit_open, tier::disk); }

    // Reports a storage result to the breaker (the call was allowed), counts a failure,
    // and returns the result.
    template <class R>
    R report(R outcome) {
        if (outcome) {
            m->breaker.on_success();
        } else {
            m->breaker.on_failure(outcome.error().code());
            note_error(tier::disk, outcome.error());
        }
        refresh_mode();
        return outcome;
    }

    // A call the breaker refused: follows the breaker into degraded mode, counts the
    // refusal, and returns the failure to answer with.
    [[nodiscard]] failure refused() {
        if (!degraded()) refresh_mode();
        note_error(tier::disk, open_circuit());
        return open_circuit();
    }

    // Under bypass and fail_fast a write asks the breaker before touching any tier; a
    // refusal is counted (in `bypassed` under bypass).
    [[nodiscard]] bool write_allowed(std::atomic<std::uint64_t>& bypassed) {
        if (m->breaker.allow()) return true;
        (void)refused();
        if constexpr (degradation_mode == degraded_mode::bypass) bypassed.fetch_add(1, std::memory_order_relaxed);
        return false;
    }

    // A put reached memory (or nothing) but not the storage tier, so the storage's older
    // copy, if it has one, must never be served again. If the storage tried the write and
    // failed (a full disk, say), the copy is removed now, outside the breaker's books, so
    // that it cannot come back after a restart either; if that fails too, or the breaker
    // refused the write, the key waits as a pending erasure until the tier is back.
    void supersede_stored(const Key& key, const failure& why) requires has_storage {
        // Not skipped for a key the index lacks: a failed read can drop an index entry whose
        // file stays, to be indexed again by the next scan.
        state& s = *m;
        if (why.code() != errc::circuit_open && attached() && s.disk->erase(key)) {
            s.pending.remove(key);
            return;
        }
        s.pending.add(key);
    }

    // Calls the storage through the breaker: errc::circuit_open if it says no.
    template <class F>
    auto guarded(F&& call) -> std::invoke_result_t<F&> {
        if (!m->breaker.allow()) return unexpected(refused());
        return allowed(call);
    }

    // A storage call the breaker allowed: attaches a detached tier first.
    template <class F>
    auto allowed(F&& call) -> std::invoke_result_t<F&> {
        if constexpr (has_storage) {
            if (!attached()) {
                if (auto ok = attach(); !ok) return unexpected(std::move(ok).error());
            }
        }
        return report(call());
    }

    // A storage that could not be opened: counted as the disk tier's errors are, and a full
    // disk also where the full-disk alert looks (the disk tier's own count starts at attach).
    void note_open_failure(const failure& f) {
        if (f.code() == errc::disk_full) m->untiered_disk_full.fetch_add(1, std::memory_order_relaxed);
        note_error(tier::disk, f);
    }

    void note_error(tier where, const failure& f) {
        auto& counts = where == tier::disk ? m->disk_errors : m->memory_errors;
        counts[static_cast<std::size_t>(f.code()) - 1].fetch_add(1, std::memory_order_relaxed);
        if (where != tier::disk) return;
        if (f.code() == errc::miss || f.code() == errc::expired || f.code() == errc::circuit_open) return;
        std::lock_guard lock(m->last_error_mutex);
        m->last_error = f;
    }

    void emit(event_kind kind, std::string_view detail, const failure* cause) noexcept {
        m->listener.on_event(event{kind, tier::disk, detail, cause});
    }

    // Follows the breaker into and out of degraded mode. Cheap when nothing changed.
    void refresh_mode() {
        if constexpr (has_storage) {
            state& s = *m;
            breaker_state now = tier_state();
            if (now == s.last_state.load(std::memory_order_acquire)) return;
            std::lock_guard lock(s.mode_mutex);
            now = tier_state();
            const breaker_state before = s.last_state.load(std::memory_order_acquire);
            if (now == before) return;
            const std::string change = std::string(to_string(before)) + " -> " + std::string(to_string(now));
            emit(event_kind::breaker_state_changed, change, nullptr);
            if (before == breaker_state::closed) {
                s.degraded_since = s.clock.now();
                ++s.degraded_entered;
                if constexpr (degradation_mode == degraded_mode::memory_only)
                    (void)s.memory.set_byte_budget(s.degradation.degraded_budget(s.normal_budget));
                emit(event_kind::degraded_entered,
                     std::string("storage tier unavailable: ") + std::string(to_string(degradation_mode)), nullptr);
            } else if (now == breaker_state::closed) {
                s.degraded_total += detail::elapsed_sat(s.degraded_since, s.clock.now());
                if constexpr (degradation_mode == degraded_mode::memory_only)
                    (void)s.memory.set_byte_budget(s.normal_budget);
                flush_pending();
                emit(event_kind::degraded_left, "storage tier back in service", nullptr);
            }
            s.last_state.store(now, std::memory_order_release);
        }
    }

    // The destructor's part of the pending-erasure rule: nothing superseded may outlive
    // the process in the storage tier (see ~cache).
    void settle_pending() noexcept {
        if constexpr (has_storage) {
            auto nothing_pending = [this] { return m->pending.size() == 0 && !m->pending.overflowed(); };
            if (!m || nothing_pending()) return;
            if (!attached()) {
                std::lock_guard lock(m->attach_mutex);
                if (!attached() && !attach_detached()) {
                    emit(event_kind::io_error,
                         "at close: the storage could not be opened to remove the copies that writes superseded "
                         "while it was detached; a restart may serve them",
                         nullptr);
                    return;
                }
            }
            flush_pending();
            if (nothing_pending() || m->disk->clear()) return;
            emit(event_kind::io_error,
                 "at close: " + std::to_string(m->pending.size()) +
                     " storage copies (or, past max_pending_erasures, any) superseded by later writes could not "
                     "be removed, nor the storage cleared; a restart may serve them",
                 nullptr);
        }
    }

    // Removes the storage copies that writes during the outage superseded.
    void flush_pending() {
        if constexpr (has_storage) {
            state& s = *m;
            if (!attached()) return;
            auto [keys, overflowed] = s.pending.snapshot();
            if (overflowed) {
                if (s.disk->clear()) s.pending.clear_overflow();
                return;
            }
            for (const Key& key : keys) {
                if (s.disk->erase(key)) s.pending.remove(key);
            }
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
            if (!m_published) publish(fail(errc::loader_failed, tier::none, "the loading call threw"));
        }

        void publish(const result<hit<Value>>& outcome) const {
            {
                std::lock_guard lock(m_state.flights_mutex);
                m_state.flights.erase(m_key);
            }
            {
                std::lock_guard lock(m_flight->mutex);
                m_flight->outcome.emplace(outcome);
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

    // The loader's error as a failure: its message, and its OS error if it has one.
    template <class E>
    [[nodiscard]] static failure loader_failure(const E& error) {
        if constexpr (std::is_same_v<E, failure>) {
            return failure(errc::loader_failed, tier::none, "loader: " + error.message(), error.os_error());
        } else if constexpr (std::is_same_v<E, std::error_code>) {
            return failure(errc::loader_failed, tier::none, "loader: " + error.message(), error);
        } else if constexpr (requires { std::string(error.message()); }) {
            return failure(errc::loader_failed, tier::none, "loader: " + std::string(error.message()));
        } else if constexpr (std::is_convertible_v<const E&, std::string_view>) {
            return failure(errc::loader_failed, tier::none, "loader: " + std::string(std::string_view(error)));
        } else {
            return failure(errc::loader_failed, tier::none, "loader returned an error");
        }
    }

    // Whether a tier holds a live entry for key now, counting nothing: get_or_load's leader
    // asks it so that its one lookup counts one miss per tier.
    [[nodiscard]] bool stored_since_lookup(const Key& key) const {
        if (m->memory.contains(key)) return true;
        if constexpr (has_storage) return attached() && m->disk->contains(key);
        return false;
    }

    template <class F>
    result<hit<Value>> load(const Key& key, F& loader, std::optional<Value> stale) {
        state& s = *m;
        s.loads.fetch_add(1, std::memory_order_relaxed);
        std::optional<failure> failed;
        std::optional<Value> value;
        try {
            using R = std::invoke_result_t<F&, const Key&>;
            if constexpr (requires(R r) {
                              { r.has_value() } -> std::convertible_to<bool>;
                              Value(*std::move(r));
                              r.error();
                          }) {
                R r = loader(key);
                if (r.has_value()) {
                    value.emplace(*std::move(r));
                } else {
                    failed.emplace(loader_failure(r.error()));
                }
            } else {
                value.emplace(loader(key));
            }
        } catch (const std::exception& e) {
            failed.emplace(errc::loader_failed, tier::none, std::string("loader threw: ") + e.what());
        } catch (...) {
            failed.emplace(errc::loader_failed, tier::none,
                           "loader threw an exception not derived from std::exception");
        }
        if (failed) {
            s.load_failures.fetch_add(1, std::memory_order_relaxed);
            if (stale) {
                s.stale_served.fetch_add(1, std::memory_order_relaxed);
                return hit<Value>{std::move(*stale), tier::memory, true};
            }
            return unexpected(std::move(*failed));
        }
        (void)put(key, *value);
        return hit<Value>{std::move(*value), tier::none, false};
    }

    // Writes, reads back and removes a canary blob, straight to the storage.
    [[nodiscard]] result<void> probe_storage() requires has_storage {
        static constexpr std::string_view name = "tierguard-probe";
        auto& storage = m->disk->storage();
        std::vector<std::byte> canary(64);
        const auto stamp = static_cast<std::uint64_t>(m->clock.now().time_since_epoch().count());
        for (std::size_t i = 0; i < canary.size(); ++i)
            canary[i] = static_cast<std::byte>((stamp >> ((i % 8) * 8)) ^ i);
        if (auto ok = storage.write(name, canary); !ok) {
            if (ok.error().code() == errc::disk_full) m->untiered_disk_full.fetch_add(1, std::memory_order_relaxed);
            return ok;
        }
        auto back = storage.read(name);
        auto removed = storage.remove(name);
        if (!back) return unexpected(std::move(back).error());
        if (*back != canary)
            return fail(errc::corrupted, tier::disk, "probe: the canary read back differs from what was written");
        if (!removed) return removed;
        return {};
    }

    [[nodiscard]] static std::string render_prometheus(const cache_metrics& mt) {
        using lbl = prometheus_text::label;
        prometheus_text out;
        auto per_tier = [&](const tier_metrics& t) {
            const std::string_view tn = to_string(t.which);
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
                if (code == errc::miss || code == errc::expired) continue;
                out.counter("tierguard_errors_total", "Failed calls to the tier, by error code.",
                            {lbl{"tier", tn}, lbl{"code", to_string(code)}}, t.errors[i]);
            }
            out.gauge("tierguard_entries", "Entries held.", {lbl{"tier", tn}}, static_cast<double>(t.entries));
            out.gauge("tierguard_bytes", "Bytes held, as the tier counts them.", {lbl{"tier", tn}},
                      static_cast<double>(t.bytes));
        };
        per_tier(mt.memory);
        if (mt.storage) {
            const tier_metrics& t = *mt.storage;
            per_tier(t);
            const std::string_view tn = to_string(t.which);
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
        }
        out.gauge("tierguard_degraded", "1 while a storage tier is unavailable.", {}, mt.degraded ? 1.0 : 0.0);
        out.counter("tierguard_degraded_entered_total", "Times the cache entered degraded mode.", {},
                    mt.degraded_entered);
        out.gauge("tierguard_degraded_seconds", "Time spent degraded since the cache opened.", {},
                  std::chrono::duration<double>(mt.degraded_time).count());
        out.counter("tierguard_promotions_total", "Storage hits copied into memory.", {}, mt.promotions);
        out.counter("tierguard_bypassed_total", "Operations the bypass degradation answered without a tier.",
                    {lbl{"op", "get"}}, mt.bypassed_gets);
        out.counter("tierguard_bypassed_total", "", {lbl{"op", "put"}}, mt.bypassed_puts);
        out.counter("tierguard_bypassed_total", "", {lbl{"op", "erase"}}, mt.bypassed_erases);
        out.gauge("tierguard_pending_erasures", "Storage copies superseded during an outage, awaiting removal.", {},
                  static_cast<double>(mt.pending_erasures));
        out.counter("tierguard_loads_total", "Loader calls by get_or_load.", {}, mt.loads);
        out.counter("tierguard_load_failures_total", "Loader calls that failed.", {}, mt.load_failures);
        out.counter("tierguard_loads_shared_total", "get_or_load calls that shared another call's load.", {},
                    mt.loads_shared);
        out.counter("tierguard_stale_served_total", "Expired values served because the loader failed.", {},
                    mt.stale_served);
        out.histogram("tierguard_get_latency_seconds",
                      "Latency of gets; memory hits sampled 1 in 64, every other get timed.", {}, mt.get_latency);
        out.histogram("tierguard_put_latency_seconds", "Latency of puts.", {}, mt.put_latency);
        return out.str();
    }

    result<hit<Value>> lookup(const Key& key, std::optional<Value>* stale) {
        state& s = *m;
        if constexpr (has_storage && degradation_mode == degraded_mode::bypass) {
            if (s.breaker.state() == breaker_state::open) {
                s.bypassed_gets.fetch_add(1, std::memory_order_relaxed);
                return unexpected(refused());
            }
        }
        if (sample_hit()) [[unlikely]]
            return timed_lookup(key, stale);
        return lookup_from<false>(key, stale);
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

    // A get past the bypass check: memory, then the storage tier.
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
                    found = from_disk(key);
                } else {
                    found = fail(errc::expired, tier::memory);
                }
            }
            s.get_latency.observe(std::chrono::steady_clock::now() - started);
        }
        return found;
    }

    // The storage half of a get. Keys the storage tier's index lacks are misses that
    // never reach the breaker: they say nothing about the disk. The breaker is asked
    // before any other work, so a refused call stays cheap.
    result<hit<Value>> from_disk(const Key& key) requires has_storage {
        state& s = *m;
        if (s.breaker.state() == breaker_state::open) return unexpected(refused());
        auto index_miss = [&] {
            s.index_misses.fetch_add(1, std::memory_order_relaxed);
            return fail(errc::miss, tier::disk);
        };
        const bool was_attached = attached();
        if (was_attached && !s.disk->indexed(key)) return index_miss();
        if (!s.breaker.allow()) return unexpected(refused());
        if (!was_attached) {
            if (auto ok = attach(); !ok) return unexpected(std::move(ok).error());
            if (!s.disk->indexed(key)) {
                (void)report(result<void>{});  // the attach was the call
                return index_miss();
            }
        }
        const std::uint64_t h = hash_of(key);
        if (s.pending.contains(key)) {
            auto erased = report(s.disk->erase(key));
            if (!erased) {
                return unexpected(std::move(erased).error());
            }
            s.pending.remove(key);
            return fail(errc::miss, tier::disk, "the disk copy was superseded by a write the disk tier missed");
        }
        const auto ticket = s.fence.quiet(h);
        auto found = report(s.disk->find(key));
        if (!found) {
            return unexpected(std::move(found).error());
        }
        if (ticket) promote(key, h, *ticket, *found);
        return hit<Value>{std::move(found->value), tier::disk, false};
    }

    void promote(const Key& key, std::uint64_t h, std::uint64_t ticket, const disk_entry<Value>& entry) {
        state& s = *m;
        if (s.promote_after > 1) {
            std::atomic<std::uint8_t>& seen = s.access[h % access_slots];
            const unsigned count = seen.load(std::memory_order_relaxed) + 1U;
            if (count < s.promote_after) {
                seen.store(static_cast<std::uint8_t>(std::min(count, 255U)), std::memory_order_relaxed);
                return;
            }
            seen.store(0, std::memory_order_relaxed);
        }
        const time_point now = s.clock.now();
        if (detail::expired(entry.expiry, now)) return;
        const std::chrono::nanoseconds left =
            entry.expiry == time_point::max() ? no_expiry : detail::elapsed_sat(now, entry.expiry);
        if (left <= std::chrono::nanoseconds::zero()) return;
        s.fence.copy_if_quiet(h, ticket, [&] {
            if (s.memory.put(key, entry.value, left)) s.promotions.fetch_add(1, std::memory_order_relaxed);
        });
    }

    std::unique_ptr<state> m;
};

}  // namespace tierguard
