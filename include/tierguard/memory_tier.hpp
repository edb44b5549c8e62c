#pragma once

#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/detail/flat_lru_shard.hpp>
#include <tierguard/detail/read_slots.hpp>
#include <tierguard/detail/spin_mutex.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/eviction/concept.hpp>
#include <tierguard/eviction/lru.hpp>
#include <tierguard/eviction/s3fifo.hpp>
#include <tierguard/hash.hpp>
#include <tierguard/result.hpp>
#include <tierguard/weigher/concept.hpp>
#include <tierguard/weigher/dynamic_size.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tierguard {

/// Run-time settings of a memory tier; validated when the tier is built.
struct memory_config {
    /// Payload bytes the tier may hold, as counted by the weigher; split evenly over
    /// the shards, so one entry may weigh at most byte_budget / shards.
    std::size_t byte_budget = std::size_t{64} << 20;
    /// Entries the tier may hold, split evenly over the shards; 0 = no count limit.
    std::size_t max_entries = 0;
    /// Independent shards, each with its own lock and eviction order. More shards: less
    /// contention, a less exact global eviction order, and a smaller largest entry.
    std::size_t shards = 64;
    /// TTL of entries put without one.
    std::chrono::nanoseconds default_ttl = no_expiry;
    /// How long an entry is kept past its TTL for get_with_stale() (stale-if-error);
    /// every other read treats it as expired. 0 = dropped when its TTL passes.
    std::chrono::nanoseconds stale_grace{0};
};

/// Counters of a memory tier, summed over its shards at the time of the call.
struct memory_stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;       ///< gets that found nothing, including expired entries
    std::uint64_t evictions = 0;    ///< unexpired entries dropped to make room (budget or count)
    std::uint64_t expirations = 0;  ///< entries dropped after their TTL passed, once each (docs/METRICS.md)
    std::uint64_t rejected = 0;     ///< puts refused (too large, invalid TTL)
    std::size_t entries = 0;
    std::size_t bytes = 0;
};

/// The memory tier's compile-time policies. Inherit and override a slot:
/// @code
/// struct test_policies : tierguard::memory_defaults {
///     using clock = tierguard::clock::manual;
/// };
/// @endcode
struct memory_defaults {
    using clock = tierguard::clock::steady;            ///< models clock_policy
    using weigher = tierguard::weigher::dynamic_size;  ///< models weigher_policy
    using hash = default_hash;                         ///< hash of Key (transparent for lookups by other types)
    using key_equal = std::equal_to<>;                 ///< equality of keys (transparent likewise)
    using eviction = tierguard::eviction::s3fifo;      ///< models eviction_policy
};

namespace detail {
// Inline hash and equality of short strings for the memory tier's probes, which the
// default hash and std::equal_to<> would send through a library call each
// (std::_Hash_bytes, memcmp). They read only the string's own bytes.
inline std::uint64_t load_bytes(const char* p, std::size_t n) noexcept {
    std::uint64_t v = 0;
    std::memcpy(&v, p, n);
    return v;
}

// The loads of wyhash for 1 to 16 bytes (as a, b); every byte is in one of them.
inline void short_string_words(std::string_view s, std::uint64_t& a, std::uint64_t& b) noexcept {
    const std::size_t n = s.size();
    const char* p = s.data();
    if (n >= 8) {
        a = load_bytes(p, 8);
        b = load_bytes(p + n - 8, 8);
    } else if (n >= 4) {
        a = load_bytes(p, 4);
        b = load_bytes(p + n - 4, 4);
    } else {
        a = n == 0
                ? 0
                : (std::uint64_t{static_cast<unsigned char>(p[0])} << 16) |
                      (std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) | static_cast<unsigned char>(p[n - 1]);
        b = 0;
    }
}

#if defined(__SIZEOF_INT128__)
inline constexpr bool inline_string_hash = true;
__extension__ using uint128 = unsigned __int128;

// wyhash's mixing: the two halves of a 128-bit product, xored.
inline std::uint64_t mum(std::uint64_t a, std::uint64_t b) noexcept {
    const uint128 r = static_cast<uint128>(a) * b;
    return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

// A hash of a string of at most 16 bytes, every output bit depending on every input
// bit (wyhash's final steps, fixed seed).
inline std::uint64_t short_string_hash(std::string_view s) noexcept {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    short_string_words(s, a, b);
    constexpr std::uint64_t k0 = 0xa0761d6478bd642fULL;
    constexpr std::uint64_t k1 = 0xe7037ed1a0b428dbULL;
    constexpr std::uint64_t k2 = 0x8ebc6af09c88c6e3ULL;
    return mum(mum(a ^ k1, b ^ k2) ^ k0 ^ s.size(), k1);
}
#else
inline constexpr bool inline_string_hash = false;
#endif

// std::equal_to<> for the probes: strings of 8 to 16 bytes compared in two words each.
struct probe_equal_to {
    using is_transparent = void;
    template <class A, class B>
    [[nodiscard]] bool operator()(const A& a, const B& b) const {
        if constexpr (std::is_convertible_v<const A&, std::string_view> &&
                      std::is_convertible_v<const B&, std::string_view>) {
            const std::string_view x(a);
            const std::string_view y(b);
            const std::size_t n = x.size();
            if (n != y.size()) return false;
            if (n < 8 || n > 16) return x == y;
            return ((load_bytes(x.data(), 8) ^ load_bytes(y.data(), 8)) |
                    (load_bytes(x.data() + n - 8, 8) ^ load_bytes(y.data() + n - 8, 8))) == 0;
        } else {
            return a == b;
        }
    }
};

// Policies::eviction, or the default for policy packs written before the slot existed.
template <class P>
struct eviction_of {
    using type = memory_defaults::eviction;
};
template <class P>
    requires requires { typename P::eviction; }
struct eviction_of<P> {
    using type = typename P::eviction;
};
}  // namespace detail

/// Thrown by the memory tier's constructor for a configuration it refuses; what() is
/// the failure's message. Use memory_tier::create() to get a result instead.
class bad_config : public std::invalid_argument {
public:
    explicit bad_config(const failure& f) : std::invalid_argument(f.message()) {}
};

/// A thread-safe, sharded, byte-budgeted cache with TTLs: tierguard's memory tier.
///
/// Guarantees: the byte and entry budgets hold after every call; a get never returns an
/// entry whose TTL has passed; within a shard, the eviction policy (Policies::eviction,
/// default eviction::s3fifo; eviction::lru for least recently used first) picks which
/// entry leaves to make room (get and put count as use; contains does not). All
/// operations are O(1) amortized and thread-safe. Nothing throws because of the cache's
/// state: failures come back as results. Exceptions thrown by Key, Value or the
/// allocator propagate with the tier left valid.
///
/// Threads: a get takes no lock, and writes nothing that another core reads beyond what
/// the eviction policy's hit() writes (s3fifo: one byte, and nothing once the entry is
/// hot), so threads sharing a tier do not slow each other's gets; it waits only while a
/// put, erase or take changes the same shard (they lock it). A policy whose hits need
/// the lock (eviction::lru) takes it only if it is free: one thread alone sees exact LRU
/// order; under concurrency, eviction may not count a get that met a busy shard.
///
/// Storage: an entry whose Key and Value have non-throwing move constructors (std::string,
/// integers, most types) is stored inside its shard's hash table, so a get touches one
/// random cache line or two. An entry with a throwing move is stored in a heap node of its
/// own (one more allocation per put, one more cache miss per get), because the table
/// moves entries when it deletes and grows and could not undo a move that throws.
template <class Key, class Value, class Policies = memory_defaults>
class memory_tier {
public:
    using key_type = Key;
    using mapped_type = Value;
    using clock_type = typename Policies::clock;
    using weigher_type = typename Policies::weigher;
    using hasher = typename Policies::hash;
    using key_equal = typename Policies::key_equal;
    using eviction_type = typename detail::eviction_of<Policies>::type;

    static_assert(clock_policy<clock_type>,
                  "tierguard::memory_tier: Policies::clock does not model tierguard::clock_policy "
                  "(it needs time_point, duration and a noexcept const now()); see docs/POLICIES.md");
    static_assert(weigher_policy<weigher_type, Key, Value>,
                  "tierguard::memory_tier: Policies::weigher does not model tierguard::weigher_policy "
                  "(it needs a noexcept const operator()(const Key&, const Value&) returning a size); "
                  "see docs/POLICIES.md");
    static_assert(std::is_nothrow_invocable_r_v<std::size_t, const hasher&, const Key&>,
                  "tierguard::memory_tier: Policies::hash must be a noexcept hash of Key");
    static_assert(std::is_invocable_r_v<bool, const key_equal&, const Key&, const Key&>,
                  "tierguard::memory_tier: Policies::key_equal must compare two Keys");
    static_assert(eviction_policy<eviction_type>,
                  "tierguard::memory_tier: Policies::eviction does not model tierguard::eviction_policy "
                  "(it needs relocate, insert, hit, noexcept erase, move, victim and clear, and for_each); "
                  "see docs/POLICIES.md");
    static_assert(std::is_move_constructible_v<Key> && std::is_move_constructible_v<Value>,
                  "tierguard::memory_tier: Key and Value must be move-constructible");

    using time_point = typename clock_type::time_point;

private:
    // Types a lookup may use instead of Key: Key itself, or anything a transparent
    // hash and key_equal accept (std::string_view and literals for std::string keys).
    template <class K>
    static constexpr bool lookup_key = std::is_same_v<std::remove_cvref_t<K>, Key> ||
                                       (detail::transparent<hasher> && detail::transparent<key_equal> &&
                                        std::is_nothrow_invocable_r_v<std::size_t, const hasher&, const K&> &&
                                        std::is_invocable_r_v<bool, const key_equal&, const K&, const Key&>);

public:
    /// Checks a configuration without building a tier.
    [[nodiscard]] static result<void> validate(const memory_config& cfg) {
        auto bad = [](std::string what) { return fail(errc::invalid_argument, tier::memory, std::move(what)); };
        if (cfg.shards == 0) return bad("memory_config.shards is 0; it must be at least 1");
        if (cfg.shards > max_shards)
            return bad("memory_config.shards is " + std::to_string(cfg.shards) + "; at most " +
                       std::to_string(max_shards) + " are supported");
        if (cfg.byte_budget == 0) return bad("memory_config.byte_budget is 0; it must be at least 1 byte per shard");
        if (cfg.byte_budget < cfg.shards)
            return bad("memory_config.byte_budget (" + std::to_string(cfg.byte_budget) +
                       ") is smaller than memory_config.shards (" + std::to_string(cfg.shards) +
                       "); each shard needs at least 1 byte");
        if (cfg.max_entries != 0 && cfg.max_entries < cfg.shards)
            return bad("memory_config.max_entries (" + std::to_string(cfg.max_entries) +
                       ") is below memory_config.shards (" + std::to_string(cfg.shards) +
                       "); use 0 for no limit or at least one entry per shard");
        if (auto ok = detail::check_ttl(cfg.default_ttl, tier::memory, "memory_config.default_ttl"); !ok) return ok;
        if (cfg.stale_grace < std::chrono::nanoseconds::zero())
            return bad("memory_config.stale_grace is negative; use 0 to drop entries when their TTL passes");
        return {};
    }

    /// Builds a tier, or returns errc::invalid_argument saying which setting is wrong.
    [[nodiscard]] static result<memory_tier> create(const memory_config& cfg, clock_type clock = clock_type()) {
        if (auto ok = validate(cfg); !ok) return unexpected(std::move(ok).error());
        return memory_tier(cfg, std::move(clock), validated{});
    }

    /// Builds a tier; throws bad_config if validate(cfg) fails.
    explicit memory_tier(const memory_config& cfg = {}, clock_type clock = clock_type())
        : memory_tier(checked(cfg), std::move(clock), validated{}) {}

    memory_tier(memory_tier&&) noexcept = default;
    memory_tier& operator=(memory_tier&&) noexcept = default;

    /// The value for `key`, copied out. errc::miss if absent, errc::expired if its TTL
    /// passed (the entry is then dropped, unless within the stale grace). Any K the hash and key_equal accept works,
    /// e.g. a std::string_view or literal for std::string keys, without allocating.
    template <class K>
        requires lookup_key<K>
    [[nodiscard]] result<Value> get(const K& key) requires std::copy_constructible<Value> {
        // Copies the value straight into the result: no move after the copy.
        return read<result<Value>>(key, false, [](const Value& v, bool) { return result<Value>(std::in_place, v); });
    }

    /// Calls f(const Value&) on the value for `key` and returns what f returns: the way
    /// to read move-only values. Writers to the shard wait while f runs, so f must not
    /// call back into the tier. Errors as for get().
    template <class K, class F>
        requires lookup_key<K> && std::invocable<F&, const Value&>
    [[nodiscard]] auto get_with(const K& key, F&& f) -> result<std::invoke_result_t<F&, const Value&>> {
        using out = result<std::invoke_result_t<F&, const Value&>>;
        return read<out>(key, false, [&f](const Value& v, bool) -> out {
            if constexpr (std::is_void_v<std::invoke_result_t<F&, const Value&>>) {
                f(v);
                return {};
            } else {
                return f(v);
            }
        });
    }

    /// Reads as get_with() does, and also an entry whose TTL passed less than
    /// memory_config::stale_grace ago (such a read counts as a miss, as any read of an
    /// expired entry; the expiration is counted when the grace ends and the entry is
    /// dropped): calls f(value, stale),
    /// stale = the TTL passed, and returns what f returns. f returns a result<T> itself,
    /// so it can build T inside it (no move after the copy); a miss or an expired entry
    /// returns the failure in that result<T>, as for get().
    template <class K, class F, class R = std::invoke_result_t<F&, const Value&, bool>>
        requires lookup_key<K> && std::constructible_from<R, unexpected<failure>>
    [[nodiscard]] R get_with_stale(const K& key, F&& f) { return read<R>(key, true, f); }

    /// Removes the entry for `key` and returns its value (moved out). Errors as for get().
    template <class K>
        requires lookup_key<K>
    [[nodiscard]] result<Value> take(const K& key) {
        const std::uint64_t h = hash_of(key);
        const std::size_t si = shard_index(h);
        shard& s = m_shards[si];
        std::lock_guard lock(s.mutex);
        auto found = find_live(s, si, h, key, false);
        if (!found) return unexpected(std::move(found).error());
        const readers_out out_of_shard(*this, s, si);
        result<Value> out(std::in_place, std::move(s.lru.at(found->pos).data().value));
        s.lru.remove(found->pos);
        return out;
    }

    /// Stores `value` under `key` with the default TTL, replacing any previous value and
    /// evicting entries of the shard (the eviction policy picks them) until the budgets hold.
    /// errc::too_large if the entry alone outweighs a shard's budget (nothing changes:
    /// a previous value for the key stays).
    result<void> put(Key key, Value value) { return put(std::move(key), std::move(value), m_default_ttl); }

    /// As put(key, value), with this entry's own TTL; errc::invalid_argument if ttl <= 0.
    result<void> put(Key key, Value value, std::chrono::nanoseconds ttl) {
        const std::uint64_t h = hash_of(key);
        const std::size_t si = shard_index(h);
        shard& s = m_shards[si];
        s.lru.prefetch(h);
        const std::size_t weight = static_cast<std::size_t>(m_weigher(std::as_const(key), std::as_const(value)));
        std::lock_guard lock(s.mutex);
        if (auto ok = detail::check_ttl(ttl, tier::memory, "TTL"); !ok) {
            ++s.rejected;
            return ok;
        }
        if (weight > s.byte_budget) {
            ++s.rejected;
            return fail(errc::too_large, tier::memory,
                        "entry weighs " + std::to_string(weight) + " bytes; a shard holds at most " +
                            std::to_string(s.byte_budget) + " (byte_budget / shards)");
        }
        const readers_out out_of_shard(*this, s, si);
        const std::uint32_t old = s.lru.find(h, key, m_equal);
        if (old != lru_type::npos) drop(s, old, false);
        while (s.lru.live() != 0 &&
               (s.lru.bytes() + weight > s.byte_budget || (s.max_entries != 0 && s.lru.live() >= s.max_entries)))
            drop(s, s.lru.victim(), true);
        const std::uint32_t pos =
            s.lru.insert(h, std::move(key), std::move(value), detail::expiry_after(m_clock.now(), ttl), weight);
        // Replacing a value is a use of its key: the policy keeps it as it would a read one.
        if (old != lru_type::npos) s.lru.hit(pos);
        return {};
    }

    /// Removes the entry for `key`; true if there was one.
    template <class K>
        requires lookup_key<K>
    bool erase(const K& key) {
        const std::uint64_t h = hash_of(key);
        const std::size_t si = shard_index(h);
        shard& s = m_shards[si];
        std::lock_guard lock(s.mutex);
        const std::uint32_t idx = s.lru.find(h, key, m_equal);
        if (idx == lru_type::npos) return false;
        const readers_out out_of_shard(*this, s, si);
        s.lru.remove(idx);
        return true;
    }

    /// True if a live, unexpired entry exists. Counts nothing and is not a use.
    template <class K>
        requires lookup_key<K>
    [[nodiscard]] bool contains(const K& key) const {
        const std::uint64_t h = hash_of(key);
        const shard& s = shard_for(h);
        std::lock_guard lock(s.mutex);
        const std::uint32_t idx = s.lru.find(h, key, m_equal);
        return idx != lru_type::npos && age_of(s.lru.at(idx)) == age::fresh;
    }

    /// Removes every entry; counters keep counting.
    void clear() {
        for (std::size_t i = 0; i < m_shard_count; ++i) {
            std::lock_guard lock(m_shards[i].mutex);
            const readers_out out_of_shard(*this, m_shards[i], i);
            m_shards[i].lru.clear();
        }
    }

    /// Drops every expired entry now (gets drop them lazily), except those still within
    /// the stale grace; returns how many.
    std::size_t purge_expired() {
        std::size_t dropped = 0;
        for (std::size_t i = 0; i < m_shard_count; ++i) {
            shard& s = m_shards[i];
            std::lock_guard lock(s.mutex);
            const readers_out out_of_shard(*this, s, i);
            const std::size_t n =
                s.lru.remove_if([&](const typename lru_type::slot& e) { return age_of(e) == age::dead; });
            s.expirations += n;
            dropped += n;
        }
        return dropped;
    }

    /// Changes the byte budget at run time (the degradation policy grows it while a
    /// storage tier is down); shrinking evicts entries until the new budget holds.
    /// errc::invalid_argument if the new budget is smaller than the shard count.
    result<void> set_byte_budget(std::size_t byte_budget) {
        if (byte_budget < m_shard_count)
            return fail(errc::invalid_argument, tier::memory,
                        "byte budget " + std::to_string(byte_budget) + " is smaller than the shard count (" +
                            std::to_string(m_shard_count) + ")");
        for (std::size_t i = 0; i < m_shard_count; ++i) {
            shard& s = m_shards[i];
            std::lock_guard lock(s.mutex);
            const readers_out out_of_shard(*this, s, i);
            s.byte_budget = byte_budget / m_shard_count;
            while (s.lru.bytes() > s.byte_budget) drop(s, s.lru.victim(), true);
        }
        m_byte_budget = byte_budget;
        return {};
    }

    /// Entries held now (expired ones not yet dropped included).
    [[nodiscard]] std::size_t size() const {
        return sum([](const shard& s) { return s.lru.live(); });
    }
    /// Bytes held now, as counted by the weigher.
    [[nodiscard]] std::size_t bytes() const {
        return sum([](const shard& s) { return s.lru.bytes(); });
    }
    [[nodiscard]] std::size_t byte_budget() const noexcept { return m_byte_budget; }
    [[nodiscard]] std::size_t shard_count() const noexcept { return m_shard_count; }

    [[nodiscard]] memory_stats stats() const {
        memory_stats out;
        for (std::size_t i = 0; i < m_shard_count; ++i) {
            const shard& s = m_shards[i];
            std::lock_guard lock(s.mutex);
            out.hits += s.hits;
            out.misses += s.misses;
            out.evictions += s.evictions;
            out.expirations += s.expirations;
            out.rejected += s.rejected;
            out.entries += s.lru.live();
            out.bytes += s.lru.bytes();
        }
        for (std::size_t i = 0; i < m_readers.size(); ++i) {
            out.hits += m_readers.local(i).hits.load(std::memory_order_relaxed);
            out.misses += m_readers.local(i).misses.load(std::memory_order_relaxed);
        }
        return out;
    }

    /// The keys of one shard in the order the eviction policy would consider evicting
    /// them (least recently used first for eviction::lru; for s3fifo, its small FIFO
    /// then its main FIFO, oldest first). For tests and diagnostics.
    [[nodiscard]] std::vector<Key> eviction_order(std::size_t shard_index) const requires std::copy_constructible<Key> {
        const shard& s = m_shards[shard_index];
        std::lock_guard lock(s.mutex);
        std::vector<Key> keys;
        s.lru.for_each_in_order([&](std::uint32_t idx) { keys.push_back(s.lru.at(idx).data().key); });
        return keys;
    }

    /// Which shard a key lives in.
    template <class K>
        requires lookup_key<K>
    [[nodiscard]] std::size_t shard_of(const K& key) const noexcept { return shard_index(hash_of(key)); }

    [[nodiscard]] const clock_type& clock() const noexcept { return m_clock; }

private:
    static constexpr std::size_t max_shards = 1U << 16;

    using lru_type = detail::flat_lru_shard<Key, Value, time_point, eviction_type>;

    struct alignas(64) shard {
        // Read by every get; set, with the lock held, while the table changes.
        std::atomic<bool> writing{false};
        lru_type lru;  // what lookups read comes first; what hit() writes has lines of its own
        // The rest is used under the lock.
        alignas(64) mutable detail::spin_mutex mutex;
        std::size_t byte_budget = 0;
        std::size_t max_entries = 0;
        std::uint64_t hits = 0;
        std::uint64_t misses = 0;
        std::uint64_t evictions = 0;
        std::uint64_t expirations = 0;
        std::uint64_t rejected = 0;
    };

    // A read slot's own data; only the slot's holder writes it.
    struct reader {
        std::atomic<std::uint64_t> hits{0};
        std::atomic<std::uint64_t> misses{0};
    };
    using readers = detail::read_slots<reader>;

    // Keeps gets out of shard si while its table changes; the shard's lock is held.
    class readers_out {
    public:
        readers_out(const memory_tier& t, shard& s, std::size_t si) : m_shard(s) {
            s.writing.store(true, std::memory_order_seq_cst);
            t.m_readers.wait_for_readers(si);
        }
        readers_out(const readers_out&) = delete;
        readers_out& operator=(const readers_out&) = delete;
        ~readers_out() { m_shard.writing.store(false, std::memory_order_release); }

    private:
        shard& m_shard;
    };

    struct validated {};

    static const memory_config& checked(const memory_config& cfg) {
        if (auto ok = validate(cfg); !ok) throw bad_config(ok.error());
        return cfg;
    }

    memory_tier(const memory_config& cfg, clock_type clock, validated)
        : m_shards(std::make_unique<shard[]>(cfg.shards)),
          m_shard_count(cfg.shards),
          m_byte_budget(cfg.byte_budget),
          m_default_ttl(cfg.default_ttl),
          m_stale_grace(std::chrono::ceil<typename clock_type::duration>(cfg.stale_grace)),
          m_clock(std::move(clock)) {
        for (std::size_t i = 0; i < m_shard_count; ++i) {
            m_shards[i].byte_budget = cfg.byte_budget / cfg.shards;
            m_shards[i].max_entries = cfg.max_entries / cfg.shards;
        }
    }

    // The default hash of a string of at most 16 bytes is detail::short_string_hash,
    // inline. Longer ones: libstdc++ and libc++ hash strings with murmur2 or CityHash, each
    // output bit depending on every input bit, so they need no mixing, which saves a get
    // three dependent multiplications. Other hashes (identity hashes of integers, FNV-1a's
    // weak low bits) are mixed.
    static constexpr bool strings_hash_well =
#if defined(__GLIBCXX__) || defined(_LIBCPP_VERSION)
        sizeof(std::size_t) == sizeof(std::uint64_t);
#else
        false;
#endif

    template <class K>
    [[nodiscard]] std::uint64_t hash_of(const K& key) const noexcept {
        if constexpr (std::is_same_v<hasher, default_hash> && std::is_convertible_v<const K&, std::string_view>) {
            const std::string_view s(key);
            if constexpr (detail::inline_string_hash) {
                if (s.size() <= 16) return detail::short_string_hash(s);
            }
            if constexpr (strings_hash_well) {
                return m_hash(s);
            } else {
                return detail::mix(static_cast<std::uint64_t>(m_hash(s)));
            }
        } else {
            return detail::mix(static_cast<std::uint64_t>(m_hash(key)));
        }
    }

    [[nodiscard]] std::size_t shard_index(std::uint64_t h) const noexcept {
        return static_cast<std::size_t>(((h >> 32) * m_shard_count) >> 32);
    }
    [[nodiscard]] const shard& shard_for(std::uint64_t h) const noexcept { return m_shards[shard_index(h)]; }

    // Past its TTL an entry is stale for m_stale_grace (kept for get_with_stale), then dead.
    enum class age : unsigned char { fresh, stale, dead };

    // Reads the clock only for entries that can expire, so a cache without TTLs never pays
    // for it; the check for those stays small enough to be inlined into a get.
    [[nodiscard]] age age_of(const typename lru_type::slot& n) const noexcept {
        return n.expiry == time_point::max() ? age::fresh : age_now(n.expiry);
    }
    [[nodiscard]] age age_now(time_point expiry) const noexcept {
        const time_point now = m_clock.now();
        if (expiry > now) return age::fresh;
        return detail::elapsed_sat(expiry, now) < m_stale_grace ? age::stale : age::dead;
    }

    // Removes the live entry at pos (the shard's lock held, readers out), replaced by a put
    // or, if evicted, to make room: an entry whose TTL has passed counts as an expiration
    // (its only one: reads within the grace count none), any other evicted one as an eviction.
    void drop(shard& s, std::uint32_t pos, bool evicted) noexcept {
        if (age_of(s.lru.at(pos)) != age::fresh) {
            ++s.expirations;
        } else if (evicted) {
            ++s.evictions;
        }
        s.lru.remove(pos);
    }

    struct found_entry {
        std::uint32_t pos;
        bool stale;
    };

    // The entry for key in s (its lock held), counted as a hit (a stale one as a miss); or
    // the failure to return, counted as a miss (a dead entry is dropped on the way, a stale
    // one kept).
    template <class K>
    [[nodiscard]] result<found_entry> find_live(shard& s, std::size_t si, std::uint64_t h, const K& key,
                                                bool accept_stale) {
        const std::uint32_t idx = s.lru.find(h, key, m_equal);
        if (idx == lru_type::npos) {
            ++s.misses;
            return fail(errc::miss, tier::memory);
        }
        const age a = age_of(s.lru.at(idx));
        if (a == age::dead) {
            const readers_out out_of_shard(*this, s, si);
            s.lru.remove(idx);
            ++s.expirations;
            ++s.misses;
            return fail(errc::expired, tier::memory);
        }
        if (a == age::stale) {  // a miss; kept for stale-if-error, its expiration counted when dropped
            ++s.misses;
            if (!accept_stale) return fail(errc::expired, tier::memory);
        } else {
            ++s.hits;
        }
        return found_entry{idx, a == age::stale};
    }

    // A get: on an entry find_live accepts, marks it used and returns on_hit(value, stale).
    // It reads under its thread's read slot, and falls back to the lock when the slot is
    // held by another thread, a writer is changing the shard, or the entry must be dropped.
    template <class R, class K, class F>
    [[nodiscard]] R read(const K& key, bool accept_stale, F&& on_hit) {
        const std::uint64_t h = hash_of(key);
        const std::size_t si = shard_index(h);
        shard& s = m_shards[si];
        // Unlike put, no prefetch first: claiming the read slot is too short to hide a miss.
        if (auto* r = m_readers.claim_to_read(si, s.writing)) {
            const typename readers::hold held(*r);
            const std::uint32_t idx = s.lru.find(h, key, m_equal);
            if (idx == lru_type::npos) {
                bump(r->local.misses);
                return fail(errc::miss, tier::memory);
            }
            if (age_of(s.lru.at(idx)) == age::fresh) {
                bump(r->local.hits);
                note_use(s, idx);
                return on_hit(std::as_const(s.lru.at(idx).data().value), false);
            }
        }
        std::lock_guard lock(s.mutex);
        auto found = find_live(s, si, h, key, accept_stale);
        if (!found) return unexpected(std::move(found).error());
        s.lru.hit(found->pos);
        return on_hit(std::as_const(s.lru.at(found->pos).data().value), found->stale);
    }

    // Counts an event in a read slot's counter (only its holder writes it).
    static void bump(std::atomic<std::uint64_t>& counter) noexcept {
        counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    // A hit's use of pos, from a get that holds a read slot and not the lock. A policy
    // whose hits need the lock takes it only if it is free: its holder then cannot be a
    // writer waiting for this read. If it is not free, another thread is busy in the
    // shard, and this one use goes uncounted (a single thread never loses one).
    static void note_use(shard& s, std::uint32_t pos) noexcept {
        if constexpr (eviction_type::concurrent_hits) {
            s.lru.hit(pos);
        } else {
            if (!s.mutex.try_lock()) return;
            std::lock_guard lock(s.mutex, std::adopt_lock);
            s.lru.hit(pos);
        }
    }

    template <class F>
    [[nodiscard]] std::size_t sum(F&& f) const {
        std::size_t total = 0;
        for (std::size_t i = 0; i < m_shard_count; ++i) {
            std::lock_guard lock(m_shards[i].mutex);
            total += f(m_shards[i]);
        }
        return total;
    }

    std::unique_ptr<shard[]> m_shards;
    readers m_readers;
    std::size_t m_shard_count;
    std::size_t m_byte_budget;
    std::chrono::nanoseconds m_default_ttl;
    typename clock_type::duration m_stale_grace;
    [[no_unique_address]] clock_type m_clock;
    [[no_unique_address]] weigher_type m_weigher{};
    [[no_unique_address]] hasher m_hash{};
    // key_equal, or the same comparison inlined for short strings where it is std::equal_to<>.
    [[no_unique_address]] std::conditional_t<std::is_same_v<key_equal, std::equal_to<>>, detail::probe_equal_to,
                                             key_equal>
        m_equal{};
};

}  // namespace tierguard
