#pragma once

#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/system.hpp>
#include <tierguard/detail/emergency_eviction.hpp>
#include <tierguard/detail/lru_shard.hpp>
#include <tierguard/detail/siphash.hpp>
#include <tierguard/detail/storage_secret.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/hash.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/listener/none.hpp>
#include <tierguard/memory_tier.hpp>
#include <tierguard/result.hpp>
#include <tierguard/serializer/concept.hpp>
#include <tierguard/serializer/standard.hpp>
#include <tierguard/storage/concept.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

namespace tierguard {

/// Run-time settings of a disk tier; validated by disk_tier::open().
struct disk_config {
    /// Bytes of entry files the tier may keep (frames as stored); LRU eviction keeps it.
    /// Over segment_log the log's own config.byte_budget rules (it evicts segments by
    /// itself and the tier keeps no index); this only bounds one frame.
    std::uint64_t byte_budget = std::uint64_t{1} << 30;
    /// Entries the tier may keep; 0 = no count limit. Not enforced over segment_log.
    std::size_t max_entries = 0;
    /// TTL of entries put without one (tierguard::no_expiry: never).
    std::chrono::nanoseconds default_ttl = no_expiry;
    /// 0 stores payloads raw; 1..9 deflates them with zlib at that level.
    int compression_level = 0;
    /// Largest frame (key + payload + 36 bytes) written or read; larger ones are
    /// refused on put (errc::too_large) and treated as corrupted on get.
    std::size_t max_entry_size = std::size_t{64} << 20;
    /// Largest encoded key.
    std::size_t max_key_size = std::size_t{1} << 20;
    /// Share of the entries evicted when a write meets a full disk, before its one retry.
    /// Not used over a storage that evicts by itself (segment_log): removing entries from a
    /// log frees no room, so the tier only retries once (and the storage evicts again).
    double emergency_eviction_fraction = 0.1;
    /// After an emergency eviction whose retry still met a full disk (something else fills
    /// it, or evicting frees nothing the write can use), puts that meet a full disk fail at
    /// once, without evicting, for this long by the tier's clock: otherwise every put would
    /// evict and the tier would empty itself for nothing. 0: evict on every full disk.
    std::chrono::nanoseconds emergency_eviction_backoff = std::chrono::minutes{1};
    /// Quarantined files older than this are purged by scrub() (seed 001: 7 days).
    std::chrono::seconds quarantine_max_age{std::chrono::hours{24 * 7}};
    /// Read and verify every entry at open (scrub). Off (the default): the index is built
    /// from the listing alone (names and sizes; segment_log has checked every record's CRC
    /// in its own open), and a damaged frame is found when it is read (each get checks the
    /// frame's CRC), or by scrub() on demand.
    bool scrub_on_open = false;
    /// Stale-if-error: an entry past its TTL is kept this long (scrub and reads leave it,
    /// find() answers errc::expired, find_stale() returns it), then removed. The cache sets
    /// it to its config.stale_grace. 0 = removed when its TTL passes.
    std::chrono::nanoseconds stale_grace{0};
};

/// Counters of a disk tier since it was opened.
struct disk_stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;              ///< gets that found no entry, or an expired one
    std::uint64_t writes = 0;              ///< puts that reached the storage
    std::uint64_t rejected = 0;            ///< puts refused before writing (too large, bad TTL)
    std::uint64_t evictions = 0;           ///< entries removed to keep the budgets or after a full disk
    std::uint64_t expirations = 0;         ///< entries removed because their TTL passed
    std::uint64_t corrupted = 0;           ///< entries that failed validation, and damage the storage found itself
    std::uint64_t quarantined = 0;         ///< files moved to quarantine
    std::uint64_t version_mismatches = 0;  ///< entries of another format or schema version, removed
    /// Every full disk (ENOSPC, EDQUOT) the storage met: each write it refused, the retry
    /// after an emergency eviction included, whether or not the put then succeeded; and
    /// the segments a storage that handles ENOSPC itself evicted for it (segment_log).
    std::uint64_t disk_full_events = 0;
    std::uint64_t emergency_evictions = 0;  ///< entries evicted to make room after a full disk (in evictions too)
    std::uint64_t io_errors = 0;            ///< storage failures other than the above
    std::size_t entries = 0;
    std::uint64_t bytes = 0;
};

/// What one scrub() found and did (seed 004's cleanup statistics).
struct scrub_report {
    std::uint64_t entries_checked = 0;     ///< entry files read and verified
    std::uint64_t temp_files_removed = 0;  ///< leftovers of interrupted writes
    std::uint64_t foreign_removed = 0;     ///< links, FIFOs, files with names the storage never makes
    std::uint64_t orphans_removed = 0;     ///< files outside the layout, or under another key's name
    std::uint64_t quarantined = 0;         ///< unreadable frames moved to quarantine
    std::uint64_t quarantine_purged = 0;   ///< quarantined files past their maximum age
    std::uint64_t version_mismatches = 0;  ///< entries of another format or schema version removed
    std::uint64_t expired_removed = 0;
    std::uint64_t index_added = 0;    ///< entries found on disk that the index lacked
    std::uint64_t index_dropped = 0;  ///< index entries whose file was gone
    std::uint64_t evicted = 0;        ///< entries evicted to bring the directory within budget
    std::uint64_t io_errors = 0;      ///< files that could not be read
};

/// The disk tier's compile-time policies. Inherit and override a slot; a
/// `static constexpr std::uint32_t schema_version` here overrides value_traits<Value>;
/// `static constexpr bool any_schema_version = true` makes the tier read and keep entries
/// of every schema version (for maintenance tools that do not know the value type, such
/// as tierguard-cli; an application's tier must not set it).
struct disk_defaults {
    using storage = tierguard::storage::posix_directory;  ///< models storage_policy
    using serializer = tierguard::serializer::standard;   ///< models serializer_policy for Key and Value
    using clock = tierguard::clock::system;               ///< wall time: expiries are stored on disk
    using listener = tierguard::listener::none;           ///< models listener_policy
};

/// A value read from a disk tier, with the time its entry expires.
template <class Value>
struct disk_entry {
    Value value;
    std::chrono::system_clock::time_point expiry;
    std::vector<std::string> tags{};  ///< the tags it was put with (a copy into a faster tier keeps them)
};

/// The warm tier: entries as self-describing, checksummed frames in a Storage.
///
/// Guarantees: a get returns the value last put for the key, or a failure; never
/// another key's value (the full key is stored and compared), never a damaged,
/// partial, expired or other-version value. A damaged entry is quarantined, counted,
/// reported to the listener and returned as errc::corrupted; an entry of another
/// schema version is removed and returned as errc::version_mismatch; neither is
/// retried. Nothing throws for a storage failure. File names are a keyed hash of the
/// key (SipHash-2-4 with a per-directory secret), never the key's own characters.
/// The byte and entry budgets hold after every put. Thread-safe: one lock per tier,
/// held across framing (its zlib streams are shared) and the storage call (the storage is
/// the bottleneck, not the lock).
template <class Key, class Value, class Policies = disk_defaults>
class disk_tier {
public:
    using key_type = Key;
    using mapped_type = Value;
    using storage_type = typename Policies::storage;
    using serializer_type = typename Policies::serializer;
    using clock_type = typename Policies::clock;
    using listener_type = typename Policies::listener;

    static_assert(storage_policy<storage_type>,
                  "tierguard::disk_tier: Policies::storage does not model tierguard::storage_policy "
                  "(read, write, remove, list, quarantine, clean); see docs/POLICIES.md");
    static_assert(serializer_policy<serializer_type, Key>,
                  "tierguard::disk_tier: Policies::serializer does not model tierguard::serializer_policy for Key; "
                  "see docs/POLICIES.md");
    static_assert(serializer_policy<serializer_type, Value>,
                  "tierguard::disk_tier: Policies::serializer does not model tierguard::serializer_policy for Value "
                  "(specialize tierguard::codec<Value>); see docs/POLICIES.md");
    static_assert(clock_policy<clock_type>,
                  "tierguard::disk_tier: Policies::clock does not model tierguard::clock_policy; see docs/POLICIES.md");
    static_assert(std::is_same_v<typename clock_type::time_point, std::chrono::system_clock::time_point>,
                  "tierguard::disk_tier: Policies::clock must tell wall time (system_clock::time_point): expiries "
                  "are stored on disk and must mean the same after a restart");
    static_assert(listener_policy<listener_type>,
                  "tierguard::disk_tier: Policies::listener does not model tierguard::listener_policy (a noexcept "
                  "on_event(const tierguard::event&)); see docs/POLICIES.md");

    using time_point = std::chrono::system_clock::time_point;

    /// The storage is shared by many processes (it declares `static constexpr bool shared =
    /// true;`: a remote server such as storage::redis). The tier then keeps no index: find()
    /// reads the storage every time, indexed() is always true and contains() always false;
    /// open() builds no index and scrubs nothing, scrub() only cleans old quarantine, and
    /// clear() removes every entry the storage lists. It keeps no byte budget and evicts
    /// nothing (the server's own limit does: Redis's maxmemory); stats() counts entries and
    /// bytes as 0. Keys are named with the fixed SipHash key shared_hash_key, so every
    /// process maps a key to the same blob (a collision of names is still caught: the frame
    /// holds the key). Entries are written with the storage's write(name, bytes, expiry)
    /// when it has one, so the server drops them when their TTL passes. Storage calls are
    /// made without the tier's lock, so threads reach the server in parallel. Failures
    /// and events name tier::remote.
    static constexpr bool shared = detail::shared_storage<storage_type>;
    /// The tier its failures and events name: tier::remote over a shared storage.
    static constexpr tier tier_kind = shared ? tier::remote : tier::disk;
    /// The SipHash-2-4 key naming entries in a shared storage ("tierguar" and "d-shared" as
    /// little-endian words): the same in every process and release.
    static constexpr std::array<std::uint64_t, 2> shared_hash_key{0x7261756772656974ULL, 0x6465726168732d64ULL};

    /// The schema version written into every frame and required of every frame read.
    static constexpr std::uint32_t schema_version = detail::schema_version_of<Policies, Value>;
    /// Whether entries of another schema version are kept (Policies::any_schema_version).
    static constexpr bool any_schema_version = [] {
        if constexpr (requires { Policies::any_schema_version; }) {
            return static_cast<bool>(Policies::any_schema_version);
        } else {
            return false;
        }
    }();

    /// The blob holding the directory's hash secret.
    static constexpr std::string_view meta_name = "tierguard-meta";

    [[nodiscard]] static result<void> validate(const disk_config& cfg) {
        auto bad = [](std::string what) { return fail(errc::invalid_argument, tier_kind, std::move(what)); };
        if (cfg.byte_budget == 0) return bad("disk_config.byte_budget is 0; it must be positive");
        if (auto ok = detail::check_ttl(cfg.default_ttl, tier_kind, "disk_config.default_ttl"); !ok) return ok;
        if (cfg.compression_level < 0 || cfg.compression_level > 9)
            return bad("disk_config.compression_level is " + std::to_string(cfg.compression_level) +
                       "; it must be 0 (none) to 9");
        if (cfg.max_entry_size < frame::overhead + 1)
            return bad("disk_config.max_entry_size is " + std::to_string(cfg.max_entry_size) +
                       "; it must exceed the frame overhead of " + std::to_string(frame::overhead) + " bytes");
        if (cfg.max_key_size == 0) return bad("disk_config.max_key_size is 0; it must be positive");
        if (!(cfg.emergency_eviction_fraction > 0.0 && cfg.emergency_eviction_fraction <= 1.0))
            return bad("disk_config.emergency_eviction_fraction is " + std::to_string(cfg.emergency_eviction_fraction) +
                       "; it must be in (0, 1]");
        if (cfg.quarantine_max_age < std::chrono::seconds::zero())
            return bad("disk_config.quarantine_max_age is negative");
        if (cfg.emergency_eviction_backoff < std::chrono::nanoseconds::zero())
            return bad("disk_config.emergency_eviction_backoff is negative");
        if (cfg.stale_grace < std::chrono::nanoseconds::zero())
            return bad("disk_config.stale_grace is negative; use 0 to remove entries when their TTL passes");
        return {};
    }

    /// Opens a tier over `storage`: validates the configuration, reads (or creates) the
    /// directory's hash secret, then scrubs (or, with scrub_on_open off, lists) to build
    /// the index. Fails only if the configuration is bad or the storage cannot be used.
    [[nodiscard]] static result<disk_tier> open(storage_type storage, const disk_config& cfg = {},
                                                clock_type clock = clock_type(),
                                                listener_type listener = listener_type()) {
        std::optional<storage_type> kept(std::move(storage));
        return try_open(kept, cfg, std::move(clock), std::move(listener));
    }

    /// As open(), but takes the storage only on success: on failure `storage` holds it
    /// again, ready for another try (a cache whose storage failed at open keeps it, and
    /// its directory lock, until a probe opens the tier). Requires a non-empty `storage`.
    [[nodiscard]] static result<disk_tier> try_open(std::optional<storage_type>& storage, const disk_config& cfg = {},
                                                    clock_type clock = clock_type(),
                                                    listener_type listener = listener_type()) {
        if (auto ok = validate(cfg); !ok) return unexpected(std::move(ok).error());
        disk_tier tier(std::move(*storage), cfg, std::move(clock), std::move(listener));
        storage.reset();
        auto started = tier.start(cfg.scrub_on_open);
        if (!started) {
            storage.emplace(std::move(tier.m_storage));
            return unexpected(std::move(started).error());
        }
        return tier;
    }

    disk_tier(disk_tier&&) noexcept = default;
    disk_tier& operator=(disk_tier&&) noexcept = default;

    /// The value for `key`: errc::miss when there is none, also for an entry that had
    /// expired or had another schema or format version (removed and counted in stats() as
    /// expirations / version_mismatches, whether a scrub or this get met it first; the
    /// context says which); errc::corrupted (quarantined), errc::io_error,
    /// errc::permission_denied when the entry could not be used.
    [[nodiscard]] result<Value> get(const Key& key) {
        return find(key).transform([](disk_entry<Value>&& e) { return std::move(e.value); });
    }

    /// As get(), with the entry's expiry (time_point::max() for none): what a tier in
    /// front of this one needs to keep a copy no longer than the entry lives.
    [[nodiscard]] result<disk_entry<Value>> find(const Key& key) { return find_entry(key, false); }

    /// As find(), but an entry past its TTL by less than disk_config::stale_grace is
    /// returned too (its expiry says so): stale-if-error's read, for a loader that failed.
    [[nodiscard]] result<disk_entry<Value>> find_stale(const Key& key) { return find_entry(key, true); }

    /// Stores `value` with the default TTL. Evicts least recently used entries to keep
    /// the budgets; on a full disk evicts emergency_eviction_fraction of the entries (none
    /// over segment_log, which evicted segments itself) and retries once (not within
    /// emergency_eviction_backoff of a retry that failed for a full disk: then it fails at
    /// once). errc::too_large if the frame exceeds max_entry_size or the budget;
    /// errc::disk_full, errc::io_error, errc::permission_denied from the storage. A
    /// failed put leaves the previous value (if any) readable, unless the storage dropped
    /// it (segment_log after a failed sync: then a miss).
    result<void> put(const Key& key, const Value& value) { return put(key, value, m_config.default_ttl); }

    /// An invalidation notice (docs/REMOTE.md) a put or an erase hands to a storage that
    /// carries them (storage::redis), to be PUBLISHed in the same round trip; nullopt: none.
    using notice_type = std::optional<std::span<const std::byte>>;
    /// Whether put() and erase() take a notice: a shared storage with write(name, bytes,
    /// notice), write(name, bytes, expiry, notice) and remove(name, notice).
    static constexpr bool carries_notices =
        shared &&
        requires(storage_type & s, std::string_view name, std::span<const std::byte> b, std::chrono::milliseconds px) {
        { s.write(name, b, b) } -> std::same_as<result<void>>;
        { s.write(name, b, px, b) } -> std::same_as<result<void>>;
        { s.remove(name, b) } -> std::same_as<result<void>>;
    };

    /// As put(key, value), with this entry's own TTL; errc::invalid_argument if ttl <= 0.
    /// `tags` are stored in the frame (docs/FORMAT.md) and indexed for keys_tagged().
    /// With a `notice` (only over a storage that carries_notices, else errc::invalid_argument)
    /// the write and the notice's PUBLISH go out in one round trip; a failure of either
    /// fails the put (the value may be stored: see docs/REMOTE.md).
    result<void> put(const Key& key, const Value& value, std::chrono::nanoseconds ttl,
                     std::span<const std::string> tags = {}, notice_type notice = {}) {
        if (m_closed) return closed_failure();
        if (auto ok = check_notice(notice, "put"); !ok) return ok;
        if (auto ok = detail::check_ttl(ttl, tier_kind, "TTL"); !ok) {
            std::lock_guard lock(*m_mutex);
            ++m_stats.rejected;
            return ok;
        }
        auto name_key = key_bytes(key);
        if (!name_key) return unexpected(std::move(name_key).error());
        std::vector<std::byte> payload;
        if (auto ok = m_serializer.encode(value, payload); !ok)
            return fail(errc::serialization_failed, tier_kind, ok.error().message());
        const time_point expiry = detail::expiry_after(m_clock.now(), ttl);
        const std::uint64_t h = hash_of(*name_key);
        std::vector<std::byte> blob;
        // Under the lock: the frame deflates through the tier's one set of zlib streams.
        std::unique_lock lock(*m_mutex);
        if (auto ok = frame::encode(*name_key, payload, schema_version, to_ns(expiry), m_config.compression_level, blob,
                                    *m_zlib, frame::limits{}, tags);
            !ok) {
            ++m_stats.rejected;
            return unexpected(std::move(ok).error());
        }
        if (blob.size() > m_config.max_entry_size || (!shared && blob.size() > m_config.byte_budget)) {
            ++m_stats.rejected;
            return fail(errc::too_large, tier_kind,
                        "entry frame of " + std::to_string(blob.size()) + " bytes exceeds " +
                            (blob.size() > m_config.max_entry_size ? "disk_config.max_entry_size ("
                                                                   : "disk_config.byte_budget (") +
                            std::to_string(std::min<std::uint64_t>(m_config.max_entry_size, m_config.byte_budget)) +
                            ")");
        }
        if constexpr (shared) {
            lock.unlock();
            auto written = write_blob(name_of(h), blob, expiry, notice);
            lock.lock();
            if (!written) {
                if (written.error().code() == errc::disk_full) {
                    ++m_stats.disk_full_events;
                    emit(event_kind::disk_full, "write of " + name_of(h) + " met a full store", &written.error());
                } else {
                    note_io_error(written.error());
                }
                return written;
            }
            ++m_stats.writes;
            return {};
        }
        // The old entry leaves the index (its file stays until the rename replaces it)
        // so that eviction never picks it; a failed write puts it back.
        std::optional<std::pair<time_point, std::size_t>> previous;
        if (const auto old = m_index.find(h, h, std::equal_to<>{}); !storage_indexed && old != index_type::npos) {
            previous.emplace(m_index.at(old).expiry, m_index.at(old).weight);
            m_index.remove(old);
        }
        make_room(blob.size());
        // Whether the storage says the previous blob left meanwhile (segment_log evicted
        // its segment, or dropped it after a failed sync).
        bool previous_gone = false;
        const std::string name = name_of(h);
        auto written = m_emergency.write(
            name, m_clock, m_config.emergency_eviction_backoff, live_count(), m_config.emergency_eviction_fraction,
            storage_evicts_itself ? "" : "entries", m_stats.disk_full_events, m_stats.emergency_evictions,
            [&] {
                auto out = m_storage.write(name, blob);
                previous_gone = forget_evicted(h) || previous_gone;
                return out;
            },
            [&](std::size_t victims) {
                // A storage that evicts by itself (segment_log) did so before failing, and
                // again on the retry; removing entries from a log frees no room there.
                std::size_t evicted = 0;
                while (!storage_evicts_itself && evicted < victims && m_index.live() != 0) {
                    evict_lru();
                    ++evicted;
                }
                return evicted;
            },
            [&](event_kind kind, const std::string& text, const failure* cause) { emit(kind, text, cause); });
        if (!written) {
            if (written.error().code() != errc::disk_full) note_io_error(written.error());
            if (previous && !previous_gone)
                m_index.insert(h, std::uint64_t{h}, std::monostate{}, previous->first, previous->second);
            return written;
        }
        if constexpr (!storage_indexed) m_index.insert(h, std::uint64_t{h}, std::monostate{}, expiry, blob.size());
        note_meta(h, *name_key, tags);
        ++m_stats.writes;
        return {};
    }

    /// Removes the entry for `key`: true if a file was removed, false if there was none.
    /// If the storage fails to remove it, the entry stays (and stays indexed, unless the
    /// storage says it left: segment_log after a failed sync) and the failure is returned.
    /// A `notice` is PUBLISHed with the removal in one round trip, as by put().
    result<bool> erase(const Key& key, notice_type notice = {}) {
        if (m_closed) return closed_failure();
        if (auto ok = check_notice(notice, "erase"); !ok) return unexpected(std::move(ok).error());
        auto name_key = key_bytes(key);
        if (!name_key) return unexpected(std::move(name_key).error());
        const std::uint64_t h = hash_of(*name_key);
        if constexpr (shared) {
            auto removed = remove_blob(name_of(h), notice);
            if (!removed && removed.error().code() != errc::miss) {
                std::lock_guard lock(*m_mutex);
                note_io_error(removed.error());
                return unexpected(std::move(removed).error());
            }
            return removed.has_value();
        }
        std::lock_guard lock(*m_mutex);
        auto removed = m_storage.remove(name_of(h));
        forget_evicted();
        if (!removed && removed.error().code() != errc::miss) {
            // The file is still there, so its entry stays indexed: a later erase (or the
            // cache's pending erasure) finds it, and budgets keep counting it.
            note_io_error(removed.error());
            return unexpected(std::move(removed).error());
        }
        if (const auto idx = m_index.find(h, h, std::equal_to<>{}); idx != index_type::npos) m_index.remove(idx);
        return removed.has_value();
    }

    /// True if the index holds an entry for `key`, expired or not: whether a get would
    /// read the storage at all (the file is not read).
    [[nodiscard]] bool indexed(const Key& key) const {
        auto name_key = key_bytes(key);
        if (!name_key) return false;
        if constexpr (shared) return true;
        const std::uint64_t h = hash_of(*name_key);
        std::lock_guard lock(*m_mutex);
        return held(h);
    }

    /// True if the index holds an unexpired entry for `key`. The file is not read, except
    /// for an entry whose expiry the index has not learnt (indexed from the listing at open,
    /// not read since) and over a storage that keeps the only index (segment_log): then the
    /// frame's header is read for its expiry (its CRC is not checked: a get may still miss).
    [[nodiscard]] bool contains(const Key& key) const {
        if constexpr (shared) return false;
        auto name_key = key_bytes(key);
        if (!name_key) return false;
        const std::uint64_t h = hash_of(*name_key);
        std::lock_guard lock(*m_mutex);
        if constexpr (storage_indexed) return !m_closed && unexpired_on_disk(h);
        const std::uint32_t idx = m_index.find(h, h, std::equal_to<>{});
        if (idx == index_type::npos) return false;
        if (m_index.at(idx).expiry == unread_expiry) return unexpired_on_disk(h);
        return !detail::expired(m_index.at(idx).expiry, m_clock.now());
    }

    /// Removes every entry file the index knows (over a shared storage: every entry it
    /// lists); the first storage failure is returned. The index is emptied at once under
    /// the tier's lock, so gets miss from then on; the files are removed after, one at a
    /// time without the lock, so other threads' gets, puts and stats() never wait for the
    /// whole clear. Race (accepted, not a lost update of a value read later): each file's
    /// removal checks, under the lock, that its entry was not put again since, then removes
    /// the file without the lock; a put of that key landing between the check and the
    /// removal loses its file, so a later get of it misses (never an old value). Over
    /// segment_log (no index in the tier) the listed blobs are removed under the lock, each
    /// an append of a tombstone: no put is lost, and other calls wait for the clear.
    result<void> clear() {
        if (m_closed) return closed_failure();
        std::vector<std::uint64_t> hashes;
        if constexpr (storage_indexed) {
            // Removals are appends to the log: done under the lock, so no put meanwhile is lost.
            std::lock_guard lock(*m_mutex);
            auto listing = m_storage.list();
            if (!listing) {
                note_io_error(listing.error());
                return unexpected(std::move(listing).error());
            }
            result<void> outcome;
            for (const blob_info& blob : *listing) {
                const auto h = parse_name(blob.name);
                if (!h) continue;
                if (auto removed = m_storage.remove(blob.name); !removed && removed.error().code() != errc::miss) {
                    note_io_error(removed.error());
                    if (outcome) outcome = unexpected(std::move(removed).error());
                }
            }
            forget_evicted();
            return outcome;
        } else if constexpr (shared) {
            auto listing = m_storage.list();
            if (!listing) {
                std::lock_guard lock(*m_mutex);
                note_io_error(listing.error());
                return unexpected(std::move(listing).error());
            }
            for (const blob_info& blob : *listing)
                if (const auto h = parse_name(blob.name)) hashes.push_back(*h);
        } else {
            std::lock_guard lock(*m_mutex);
            m_index.for_each_lru([&](std::uint32_t idx) { hashes.push_back(m_index.at(idx).hash); });
            m_index.clear();
        }
        result<void> outcome;
        for (const std::uint64_t h : hashes) {
            if constexpr (!shared) {
                std::lock_guard lock(*m_mutex);
                if (m_index.find(h, h, std::equal_to<>{}) != index_type::npos) continue;  // put again since
            }
            if (auto removed = m_storage.remove(name_of(h)); !removed && removed.error().code() != errc::miss) {
                std::lock_guard lock(*m_mutex);
                note_io_error(removed.error());
                if (outcome) outcome = unexpected(std::move(removed).error());
            }
        }
        std::lock_guard lock(*m_mutex);
        forget_evicted();
        return outcome;
    }

    /// What open() did to the storage: the temp files, foreign files and old quarantine it
    /// removed (the default open, by name only), or the whole report of its scrub (with
    /// disk_config::scrub_on_open). Nothing over a storage opened read-only.
    [[nodiscard]] const scrub_report& open_report() const noexcept { return m_opened; }

    /// Maintenance (at open with scrub_on_open): removes leftover temp files and foreign files,
    /// purges old quarantine, reads and verifies every entry (quarantining damaged ones,
    /// removing other-version, expired and misplaced ones), reconciles the index with
    /// the files, and evicts down to the budgets. Fails only if the storage cannot be
    /// listed or cleaned.
    result<scrub_report> scrub() {
        if (m_closed) return closed_failure();
        std::lock_guard lock(*m_mutex);
        scrub_report report;
        time_point now = m_clock.now();
        auto cleaned = m_storage.clean(clean_options{now, m_config.quarantine_max_age});
        if (!cleaned) {
            note_io_error(cleaned.error());
            return unexpected(std::move(cleaned).error());
        }
        report.temp_files_removed = cleaned->temp_files_removed;
        report.foreign_removed = cleaned->foreign_removed;
        report.quarantine_purged = cleaned->quarantine_purged;
        if constexpr (shared) return report;  // entries are the server's to keep; reading them all would cost it
        auto listing = m_storage.list();
        if (!listing) {
            note_io_error(listing.error());
            return unexpected(std::move(listing).error());
        }
        // Oldest first, so that entries found on disk enter the LRU order by age.
        std::sort(listing->begin(), listing->end(),
                  [](const blob_info& a, const blob_info& b) { return a.modified < b.modified; });
        std::vector<std::uint64_t> seen;
        seen.reserve(listing->size());
        for (const blob_info& blob : *listing) {
            if (blob.name == meta_name) continue;
            const auto h = parse_name(blob.name);
            if (!h) {
                if (m_storage.remove(blob.name)) ++report.orphans_removed;
                continue;
            }
            const auto before = m_stats;
            std::vector<std::byte> bytes;
            std::vector<std::byte> inflated;
            auto entry = load(*h, now, bytes, inflated, true);
            if (!entry) {
                report.quarantined += m_stats.quarantined - before.quarantined;
                report.version_mismatches += m_stats.version_mismatches - before.version_mismatches;
                report.expired_removed += m_stats.expirations - before.expirations;
                if (entry.error().code() == errc::io_error || entry.error().code() == errc::permission_denied)
                    ++report.io_errors;
                continue;
            }
            if (hash_of(entry->key) != *h) {  // written under another secret, or moved by hand
                if (m_storage.remove(blob.name)) ++report.orphans_removed;
                continue;
            }
            ++report.entries_checked;
            seen.push_back(*h);
            note_meta(*h, entry->key, frame::tags_of(entry->tags));
            if constexpr (storage_indexed) continue;
            const auto idx = m_index.find(*h, *h, std::equal_to<>{});
            const std::size_t weight = static_cast<std::size_t>(blob.size);
            const time_point expiry = from_ns(entry->head.expiry_ns);
            if (idx == index_type::npos) {
                m_index.insert(*h, std::uint64_t{*h}, std::monostate{}, expiry, weight);
                ++report.index_added;
            } else if (m_index.at(idx).weight != weight || m_index.at(idx).expiry != expiry) {
                m_index.remove(idx);
                m_index.insert(*h, std::uint64_t{*h}, std::monostate{}, expiry, weight);
            }
        }
        report.index_dropped = keep_only(seen);
        m_meta_complete = report.io_errors == 0;  // else read_meta reads what could not be read
        const auto evictions_before = m_stats.evictions;
        make_room(0);
        report.evicted = m_stats.evictions - evictions_before;
        forget_evicted();
        note_storage_damage();
        emit(event_kind::scrub_done,
             "checked " + std::to_string(report.entries_checked) + ", temp removed " +
                 std::to_string(report.temp_files_removed) + ", quarantined " + std::to_string(report.quarantined) +
                 ", orphans removed " + std::to_string(report.orphans_removed),
             nullptr);
        return report;
    }

    [[nodiscard]] disk_stats stats() const {
        std::lock_guard lock(*m_mutex);
        disk_stats out = m_stats;
        out.entries = m_closed ? 0 : live_count();
        out.bytes = m_closed ? 0 : live_bytes();
        if (!m_closed) out.disk_full_events += storage_disk_full() - m_storage_disk_full_at_open;
        return out;
    }

    [[nodiscard]] std::size_t size() const { return stats().entries; }
    [[nodiscard]] std::uint64_t bytes() const { return stats().bytes; }

    /// Releases the storage, and with it the directory's lock, without destroying the tier:
    /// another tier or cache may then open the same directory. Afterwards get, find, put,
    /// erase, clear and scrub fail with errc::closed, the index is empty (contains() is
    /// false, stats() counts no entry) and storage() must not be used; name_for() still
    /// answers. Idempotent. Not to be called while another call on the tier runs.
    void close() {
        std::lock_guard lock(*m_mutex);
        if (m_closed) return;
        m_stats.disk_full_events += storage_disk_full() - m_storage_disk_full_at_open;
        m_closed = true;
        m_index.clear();
        const storage_type released(std::move(m_storage));
    }

    /// The blob name an entry for `key` is stored under ("ab/cd/<16 hex digits>"): where
    /// to look for it in the storage (tests damage it there; tierguard-cli inspect).
    [[nodiscard]] result<std::string> name_for(const Key& key) const {
        auto name_key = key_bytes(key);
        if (!name_key) return unexpected(std::move(name_key).error());
        return name_of(hash_of(*name_key));
    }

    // --- Tags, prefixes and warming (docs/RELIABILITY.md, "Invalidation of related entries")

    /// The keys of the entries stored with `tag`, from the tier's tag index. The key and
    /// tag indexes are kept by put() and scrub() from an empty start or a scrub at open;
    /// over entries found by an open without scrub (the default), the first keys_tagged() or
    /// keys_with_prefix() reads every entry once (O(entries) reads) to build them, so a
    /// reopened tier never asked spends no memory on them (errc::io_error if the storage
    /// cannot be listed or an entry read; the next call reads again). Only entries the index holds are
    /// returned. A shared tier keeps no index: it returns no keys. Thread-safe; O(entries with the tag).
    [[nodiscard]] result<std::vector<Key>> keys_tagged(std::string_view tag) {
        if (m_closed) return closed_failure();
        std::lock_guard lock(*m_mutex);
        std::vector<Key> out;
        if constexpr (!shared) {
            if (auto ok = read_meta(); !ok) return unexpected(std::move(ok).error());
            const auto it = m_tagged.find(tag);
            if (it == m_tagged.end()) return out;
            for (const std::uint64_t h : it->second)
                if (const auto k = m_keys_of.find(h); k != m_keys_of.end() && held(h)) append_key(k->second, out);
        }
        return out;
    }

    /// The keys of the entries whose key starts with `prefix` (keys that convert to a
    /// std::string_view), from the tier's key index: a range of it when the serializer
    /// stores such keys as their bytes (serializer::standard does), else a walk of the index
    /// (no storage read). Index as for keys_tagged(). Thread-safe.
    [[nodiscard]] result<std::vector<Key>> keys_with_prefix(std::string_view prefix) requires
        std::convertible_to<const Key&, std::string_view> && std::constructible_from<Key, std::string_view> {
        if (m_closed) return closed_failure();
        std::lock_guard lock(*m_mutex);
        std::vector<Key> out;
        if constexpr (!shared) {
            if (auto ok = read_meta(); !ok) return unexpected(std::move(ok).error());
            std::vector<std::byte> encoded;
            const bool raw = m_serializer.encode(Key(prefix), encoded).has_value() && encoded.size() == prefix.size() &&
                             (prefix.empty() || std::memcmp(encoded.data(), prefix.data(), prefix.size()) == 0);
            auto it = raw ? m_keys.lower_bound(prefix) : m_keys.begin();
            for (; it != m_keys.end() && (!raw || std::string_view(it->first).starts_with(prefix)); ++it) {
                if (!held(it->second)) continue;
                const std::size_t before = out.size();
                append_key(it->first, out);
                if (!raw && out.size() > before && !std::string_view(out.back()).starts_with(prefix)) out.pop_back();
            }
        }
        return out;
    }

    /// Calls f(Key&&, disk_entry<Value>&&) for each of the `n` most recently used live
    /// entries, the least recent of them first (so that an LRU filled in this order keeps
    /// the hottest longest): warming a memory tier at open. Entries that cannot be read are
    /// skipped (and handled as a get would: quarantined, removed). Does not change the
    /// recency order. How many were passed to f. Holds the tier's lock throughout. None
    /// for a shared tier.
    template <class F>
    std::size_t visit_hottest(std::size_t n, F&& f) {
        std::size_t visited = 0;
        if constexpr (!shared) {
            if (m_closed) return 0;
            std::lock_guard lock(*m_mutex);
            std::vector<std::uint64_t> order;
            if constexpr (storage_indexed) {  // no recency order kept: the newest in log order
                auto listing = m_storage.list();
                if (!listing) {
                    note_io_error(listing.error());
                    return 0;
                }
                for (const blob_info& blob : *listing)
                    if (const auto h = parse_name(blob.name)) order.push_back(*h);
            } else {
                order.reserve(m_index.live());
                m_index.for_each_lru([&](std::uint32_t idx) { order.push_back(m_index.at(idx).hash); });
            }
            time_point now = m_clock.now();
            std::vector<std::byte> bytes;
            std::vector<std::byte> inflated;
            for (auto it = order.end() - static_cast<std::ptrdiff_t>(std::min(n, order.size())); it != order.end();
                 ++it) {
                time_point expiry = time_point::max();
                if constexpr (!storage_indexed) {
                    const auto idx = m_index.find(*it, *it, std::equal_to<>{});
                    if (idx == index_type::npos || index_expired(m_index.at(idx).expiry, now)) continue;
                    expiry = m_index.at(idx).expiry;
                }
                auto entry = load(*it, now, bytes, inflated, true);
                if (!entry) continue;
                if (storage_indexed || expiry == unread_expiry) {
                    expiry = from_ns(entry->head.expiry_ns);
                    if (detail::expired(expiry, now) || hash_of(entry->key) != *it) continue;
                }
                auto key = m_serializer.decode(entry->key, std::type_identity<Key>{});
                auto value = m_serializer.decode(entry->payload, std::type_identity<Value>{});
                if (!key || !value) continue;
                f(std::move(*key), disk_entry<Value>{std::move(*value), expiry, frame::tags_of(entry->tags)});
                ++visited;
            }
            forget_evicted();
        } else {
            (void)n;
            (void)f;
        }
        return visited;
    }

    /// The storage the tier owns (tests inject faults through it; its own stats()). Not
    /// after close().
    [[nodiscard]] storage_type& storage() noexcept { return m_storage; }
    [[nodiscard]] const disk_config& config() const noexcept { return m_config; }
    [[nodiscard]] const clock_type& clock() const noexcept { return m_clock; }

private:
    using index_type = detail::lru_shard<std::uint64_t, std::monostate, time_point>;

    disk_tier(storage_type storage, const disk_config& cfg, clock_type clock, listener_type listener)
        : m_storage(std::move(storage)),
          m_config(cfg),
          m_clock(std::move(clock)),
          m_listener(std::move(listener)),
          m_mutex(std::make_unique<std::mutex>()),
          m_zlib(std::make_unique<frame::zlib_streams>()),
          m_storage_disk_full_at_open(storage_disk_full()) {}

    // An expired or other-version entry is removed and counted wherever it is met; a get
    // answers it as a plain miss, as it does once a scrub has removed it, so the answer does
    // not depend on scrub_on_open (issue 17). The context says why.
    static constexpr const char* expired_removed = "the entry had expired; removed";
    // The expiry of an entry indexed from the listing, not read yet: never expired by the
    // index's checks (the frame decides at read), never reported (contains() is false).
    static constexpr time_point unread_expiry = time_point::max() - time_point::duration{1};
    // A get's time before the clock was read (see find_locked). A clock that reads min()
    // itself only makes examine() read it again.
    static constexpr time_point clock_unread = time_point::min();
    // A get keeps its key and frame buffers up to this capacity between calls.
    static constexpr std::size_t kept_get_buffer = std::size_t{64} << 10;
    [[nodiscard]] static failure as_answered(failure f) {
        if (f.code() == errc::expired) return failure(errc::miss, f.where(), expired_removed);
        if (f.code() == errc::version_mismatch)
            return failure(errc::miss, f.where(), f.context() + "; removed (version_mismatch)");
        return f;
    }

    [[nodiscard]] static unexpected<failure> closed_failure() {
        return fail(errc::closed, tier_kind, "the tier was closed (close()); open a new one");
    }

    // Full disks a storage handled itself and so never returned (segment_log evicts a
    // segment and retries), from its own counters; 0 for a storage that returns them all.
    [[nodiscard]] std::uint64_t storage_disk_full() const {
        if constexpr (requires(const storage_type& s) {
                          { s.stats().disk_full_evictions } -> std::convertible_to<std::uint64_t>;
                      }) {
            return m_storage.stats().disk_full_evictions;
        } else {
            return 0;
        }
    }

    // Damage a storage found and handled itself (segment_log drops a damaged record's
    // blob at open or scrub, which then reads as a miss), from its own counters: records
    // failing their CRC, unreadable stretches, segments with an unreadable header, lost segments.
    [[nodiscard]] std::uint64_t storage_damage() const {
        if constexpr (requires(const storage_type& s) {
                          {
                              s.stats().bad_frames + s.stats().damaged_regions + s.stats().bad_segments +
                                  s.stats().lost_segments
                              } -> std::convertible_to<std::uint64_t>;
                      }) {
            const auto st = m_storage.stats();
            return st.bad_frames + st.damaged_regions + st.bad_segments + st.lost_segments;
        } else {
            return 0;
        }
    }

    // Counts the damage the storage found since the last call in `corrupted` and reports
    // it as one event (called at the end of open and of each scrub). Caller holds the lock.
    void note_storage_damage() {
        const std::uint64_t found = storage_damage();
        if (found <= m_storage_damage_counted) return;
        const std::uint64_t fresh = found - m_storage_damage_counted;
        m_storage_damage_counted = found;
        m_stats.corrupted += fresh;
        const failure why(errc::corrupted, tier_kind,
                          "the storage found " + std::to_string(fresh) +
                              " damaged records, stretches or segments; their entries are gone");
        emit(event_kind::corrupted, "storage", &why);
    }

    [[nodiscard]] result<std::vector<std::byte>> key_bytes(const Key& key) const {
        std::vector<std::byte> out;
        if (auto ok = key_bytes_into(key, out); !ok) return unexpected(std::move(ok).error());
        return out;
    }

    // key_bytes() into `out` (cleared first; its capacity reused).
    [[nodiscard]] result<void> key_bytes_into(const Key& key, std::vector<std::byte>& out) const {
        out.clear();
        if (auto ok = m_serializer.encode(key, out); !ok)
            return fail(errc::serialization_failed, tier_kind, "key: " + ok.error().message());
        if (out.size() > m_config.max_key_size)
            return fail(errc::invalid_argument, tier_kind,
                        "key of " + std::to_string(out.size()) + " bytes exceeds disk_config.max_key_size (" +
                            std::to_string(m_config.max_key_size) + ")");
        return {};
    }

    [[nodiscard]] std::uint64_t hash_of(std::span<const std::byte> key) const noexcept {
        return detail::siphash24(m_secret, key);
    }

    // std::ranges::equal over std::byte compared byte by byte (13% of a 100-byte get).
    [[nodiscard]] static bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
        return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
    }

    // The 8 lowercase hex digits of v, first digit first, as the bytes of a word in memory
    // order: computed in a register (SWAR), stored whole.
    [[nodiscard]] static std::uint64_t hex_word(std::uint32_t v) noexcept {
        std::uint64_t x = (v >> 24) | ((v >> 8) & 0xff00U) | ((v << 8) & 0xff0000U) | (v << 24);  // first byte low
        x = (x | (x << 16)) & 0x0000ffff0000ffffULL;
        x = (x | (x << 8)) & 0x00ff00ff00ff00ffULL;                                   // byte k of v at byte 2k
        x = ((x >> 4) & 0x000f000f000f000fULL) | ((x & 0x000f000f000f000fULL) << 8);  // one nibble a byte
        const std::uint64_t letters = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;  // nibble > 9
        x += 0x3030303030303030ULL + letters * ('a' - '0' - 10);
        if constexpr (std::endian::native == std::endian::big) x = __builtin_bswap64(x);
        return x;
    }

    // The blob name of hash h ("ab/cd/abcd..."), without an allocation.
    using name_chars = std::array<char, 22>;
    [[nodiscard]] static name_chars name_buf(std::uint64_t h) noexcept {
        name_chars name{'0', '0', '/', '0', '0', '/'};
        const std::uint64_t high = hex_word(static_cast<std::uint32_t>(h >> 32));
        const std::uint64_t low = hex_word(static_cast<std::uint32_t>(h));
        std::memcpy(name.data() + 6, &high, 8);
        std::memcpy(name.data() + 14, &low, 8);
        name[0] = name[6];
        name[1] = name[7];
        name[3] = name[8];
        name[4] = name[9];
        return name;
    }
    [[nodiscard]] static std::string name_of(std::uint64_t h) {
        const name_chars name = name_buf(h);
        return std::string(name.data(), name.size());
    }

    [[nodiscard]] static std::optional<std::uint64_t> parse_name(std::string_view name) {
        if (name.size() != 22 || name[2] != '/' || name[5] != '/') return std::nullopt;
        const std::string_view hex = name.substr(6);
        if (name.substr(0, 2) != hex.substr(0, 2) || name.substr(3, 2) != hex.substr(2, 2)) return std::nullopt;
        std::uint64_t h = 0;
        for (const char c : hex) {
            int digit;
            if (c >= '0' && c <= '9') {
                digit = c - '0';
            } else if (c >= 'a' && c <= 'f') {
                digit = c - 'a' + 10;
            } else {
                return std::nullopt;
            }
            h = (h << 4) | static_cast<std::uint64_t>(digit);
        }
        return h;
    }

    // The frame's expiry_ns, where 0 means never: an expiry at the epoch itself is stored 1 ns earlier.
    static std::int64_t to_ns(time_point t) noexcept {
        if (t == time_point::max()) return 0;
        const std::int64_t ns = detail::ceil_sat<std::chrono::nanoseconds>(t.time_since_epoch()).count();
        return ns == 0 ? -1 : ns;
    }
    static time_point from_ns(std::int64_t ns) noexcept {
        if (ns == 0) return time_point::max();
        return time_point(std::chrono::floor<time_point::duration>(std::chrono::nanoseconds(ns)));
    }
    [[nodiscard]] result<disk_entry<Value>> find_entry(const Key& key, bool stale_ok) {
        if (m_closed) return closed_failure();
        if constexpr (shared) {
            auto name_key = key_bytes(key);
            if (!name_key) return unexpected(std::move(name_key).error());
            return find_shared(hash_of(*name_key), *name_key, stale_ok);
        } else {
            // Under the lock the key's bytes and the frame go to buffers the tier keeps (no
            // allocation per get); the serializer already ran under this lock for decode.
            std::lock_guard lock(*m_mutex);
            if (auto ok = key_bytes_into(key, m_get_key); !ok) return unexpected(std::move(ok).error());
            auto found = find_locked(hash_of(m_get_key), m_get_key, stale_ok);
            if (m_get_frame.capacity() > kept_get_buffer) std::vector<std::byte>().swap(m_get_frame);
            if (!found) forget_evicted();  // removing a damaged or expired entry appends to a segment_log
            return found;
        }
    }

    // Past its TTL and its stale grace: the entry is removed.
    [[nodiscard]] bool outlived(time_point expiry, time_point now) const noexcept {
        return detail::expired(expiry, now) && detail::elapsed_sat(expiry, now) >= m_config.stale_grace;
    }

    // Whether the index's expiry says expired; one indexed from a listing (unread_expiry, a
    // sentinel a clock at time_point::max() would pass) is not: its frame tells.
    [[nodiscard]] static bool index_expired(time_point expiry, time_point now) noexcept {
        return expiry != unread_expiry && detail::expired(expiry, now);
    }

    // An entry expired within the grace, asked for by a plain find: counted as a miss.
    [[nodiscard]] result<disk_entry<Value>> kept_for_stale() {
        ++m_stats.misses;
        return fail(errc::expired, tier_kind);
    }

    // find() under the lock. Over an indexed storage the clock is read only for a frame
    // with an expiry (examine() reads it).
    [[nodiscard]] result<disk_entry<Value>> find_locked(std::uint64_t h, std::span<const std::byte> name_key,
                                                        bool stale_ok) {
        time_point now = storage_indexed ? clock_unread : m_clock.now();
        std::uint32_t idx = index_type::npos;
        if constexpr (!storage_indexed) {  // else the frame tells (a missing blob reads as a miss)
            idx = m_index.find(h, h, std::equal_to<>{});
            if (idx == index_type::npos) {
                ++m_stats.misses;
                return fail(errc::miss, tier_kind);
            }
            if (m_index.at(idx).expiry != unread_expiry && outlived(m_index.at(idx).expiry, now)) {
                drop(idx, h);
                ++m_stats.expirations;
                ++m_stats.misses;
                return fail(errc::miss, tier_kind, expired_removed);
            }
            if (!stale_ok && index_expired(m_index.at(idx).expiry, now)) return kept_for_stale();
        }
        std::vector<std::byte> inflated;
        auto entry = load(h, now, m_get_frame, inflated);
        if (!entry) {
            const errc code = entry.error().code();
            if (code == errc::miss || code == errc::expired) ++m_stats.misses;
            if (code != errc::io_error && code != errc::permission_denied) {
                if (const auto still = m_index.find(h, h, std::equal_to<>{}); still != index_type::npos)
                    m_index.remove(still);
            }
            return unexpected(as_answered(std::move(entry).error()));
        }
        if (!same_bytes(entry->key, name_key)) {  // another key with the same 64-bit hash owns the file
            ++m_stats.misses;
            return fail(errc::miss, tier_kind, "hash collision with another key");
        }
        const time_point expiry = from_ns(entry->head.expiry_ns);
        if constexpr (!storage_indexed)
            if (m_index.at(idx).expiry == unread_expiry) m_index.at(idx).expiry = expiry;
        // `now` is clock_unread only for an entry without expiry, which never expires.
        if (!stale_ok && detail::expired(expiry, now)) {  // indexed from a listing, without its expiry
            if constexpr (!storage_indexed) m_index.at(idx).expiry = expiry;
            return kept_for_stale();
        }
        auto value = m_serializer.decode(entry->payload, std::type_identity<Value>{});
        if (!value) {
            quarantine(h, "decode", value.error());
            if constexpr (!storage_indexed) m_index.remove(idx);
            return fail(errc::corrupted, tier_kind, "entry " + name_of(h) + ": " + value.error().message());
        }
        ++m_stats.hits;
        if constexpr (storage_indexed) {
            return disk_entry<Value>{std::move(*value), expiry, frame::tags_of(entry->tags)};
        } else {
            m_index.touch(idx);
            return disk_entry<Value>{std::move(*value), m_index.at(idx).expiry, frame::tags_of(entry->tags)};
        }
    }

    // find() over a shared storage: the read runs without the lock, the rest under it.
    [[nodiscard]] result<disk_entry<Value>> find_shared(std::uint64_t h, std::span<const std::byte> name_key,
                                                        bool stale_ok) {
        const std::string name = name_of(h);
        auto read = m_storage.read(name);
        std::vector<std::byte> bytes;
        std::vector<std::byte> inflated;
        std::lock_guard lock(*m_mutex);
        time_point now = m_clock.now();
        auto entry = examine(h, name, now, std::move(read), bytes, inflated);
        if (!entry) {
            const errc code = entry.error().code();
            if (code == errc::miss || code == errc::expired) ++m_stats.misses;
            return unexpected(as_answered(std::move(entry).error()));
        }
        if (!same_bytes(entry->key, name_key)) {
            ++m_stats.misses;
            return fail(errc::miss, tier_kind, "hash collision with another key");
        }
        if (!stale_ok && detail::expired(from_ns(entry->head.expiry_ns), m_clock.now())) return kept_for_stale();
        auto value = m_serializer.decode(entry->payload, std::type_identity<Value>{});
        if (!value) {
            quarantine(h, "decode", value.error());
            return fail(errc::corrupted, tier_kind, "entry " + name + ": " + value.error().message());
        }
        ++m_stats.hits;
        return disk_entry<Value>{std::move(*value), from_ns(entry->head.expiry_ns), frame::tags_of(entry->tags)};
    }

    // Writes a frame; with the storage's expiring write when it has one, and the notice
    // (check_notice let it through) in the same call.
    result<void> write_blob(const std::string& name, std::span<const std::byte> blob, time_point expiry,
                            notice_type notice = {}) {
        if constexpr (requires { m_storage.write(name, blob, std::chrono::milliseconds{1}); }) {
            if (expiry != time_point::max()) {
                const auto px = std::max(std::chrono::ceil<std::chrono::milliseconds>(detail::elapsed_sat(
                                             m_clock.now(), detail::add_sat(expiry, m_config.stale_grace))),
                                         std::chrono::milliseconds{1});
                if constexpr (carries_notices)
                    if (notice) return m_storage.write(name, blob, px, *notice);
                return m_storage.write(name, blob, px);
            }
        }
        if constexpr (carries_notices)
            if (notice) return m_storage.write(name, blob, *notice);
        return m_storage.write(name, blob);
    }

    result<void> remove_blob(const std::string& name, notice_type notice) {
        if constexpr (carries_notices)
            if (notice) return m_storage.remove(name, *notice);
        return m_storage.remove(name);
    }

    // A notice over a storage that cannot carry one is a caller's mistake, refused up front.
    [[nodiscard]] static result<void> check_notice(const notice_type& notice, std::string_view call) {
        if (!notice || carries_notices) return {};
        return fail(errc::invalid_argument, tier_kind,
                    "disk_tier::" + std::string(call) +
                        ": a notice was given, but the storage carries none (it needs write(name, bytes, notice) "
                        "and remove(name, notice), as storage::redis has)");
    }

    // Reads the frame stored under h into `bytes` and validates it; the view points into
    // `bytes`, or into `inflated` for a compressed payload. Damaged frames are quarantined,
    // other-version and expired ones (past the stale grace) removed; each is counted and reported;
    // an entry expired within the grace is returned. Caller holds the lock.
    // A verifying pass (`verifying`) reads with the storage's peek() where it has one, so
    // that it does not count as a use (segment_log would carry every blob on eviction).
    // `now` may be clock_unread: examine() reads the clock if the frame needs it and sets `now`.
    [[nodiscard]] result<frame::view> load(std::uint64_t h, time_point& now, std::vector<std::byte>& bytes,
                                           std::vector<std::byte>& inflated, bool verifying = false) {
        const name_chars chars = name_buf(h);
        const std::string_view name(chars.data(), chars.size());
        if constexpr (requires { m_storage.peek(name); }) {
            if (verifying) return examine(h, name, now, m_storage.peek(name), bytes, inflated);
        }
        if constexpr (requires { m_storage.read_unverified_into(name, bytes); }) {
            // The frame's CRC covers every byte of the blob: the record's is not computed too,
            // and the blob's own CRC, computed as it was copied, checks the frame's.
            // The name is built here, so the storage need not check it again.
            auto read = m_storage.read_unverified_into(name, bytes);
            if (!read) return examine_read(h, name, now, unexpected(std::move(read).error()), bytes, inflated, true);
            return examine_read(h, name, now, {}, bytes, inflated, true, *read);
        } else if constexpr (requires { m_storage.read_unverified(name); }) {
            return examine(h, name, now, m_storage.read_unverified(name), bytes, inflated, true);
        }
        return examine(h, name, now, m_storage.read(name), bytes, inflated);
    }

    // load()'s work past the read of blob `name`. Caller holds the lock. `unverified`: the
    // storage did not check the blob (read_unverified); a frame that fails to decode is read
    // again with read(), so that damage is found, counted and handled as without it.
    [[nodiscard]] result<frame::view> examine(std::uint64_t h, std::string_view name, time_point& now,
                                              result<std::vector<std::byte>> read, std::vector<std::byte>& bytes,
                                              std::vector<std::byte>& inflated, bool unverified = false) {
        if (read) bytes = std::move(*read);
        return examine_read(h, name, now, read ? result<void>() : unexpected(std::move(read).error()), bytes, inflated,
                            unverified);
    }

    // examine() of a read that left the blob in `bytes` (if it succeeded); `bytes_crc`: their
    // CRC-32, if the read computed it.
    [[nodiscard]] result<frame::view> examine_read(std::uint64_t h, std::string_view name, time_point& now,
                                                   result<void> read, std::vector<std::byte>& bytes,
                                                   std::vector<std::byte>& inflated, bool unverified = false,
                                                   std::optional<std::uint32_t> bytes_crc = std::nullopt) {
        if (!read) {
            const errc code = read.error().code();
            if (code == errc::miss) {
                return fail(errc::miss, tier_kind, "entry file " + std::string(name) + " vanished");
            }
            if (code == errc::corrupted || code == errc::too_large) {
                quarantine(h, "unreadable", read.error());
                m_storage_damage_counted = storage_damage();  // the storage counted this read's damage too
                return fail(errc::corrupted, tier_kind, read.error().context());
            }
            note_io_error(read.error());
            return unexpected(std::move(read).error());
        }
        auto decoded = frame::decode_view(bytes, inflated, *m_zlib,
                                          frame::limits{m_config.max_key_size, m_config.max_entry_size}, bytes_crc);
        if (!decoded) {
            if (unverified) return examine(h, name, now, m_storage.read(name), bytes, inflated);
            if (decoded.error().code() == errc::version_mismatch) {
                remove_other_version(h, decoded.error());
                return unexpected(std::move(decoded).error());
            }
            quarantine(h, "frame", decoded.error());
            return fail(errc::corrupted, tier_kind, "entry " + std::string(name) + ": " + decoded.error().context());
        }
        if (!any_schema_version && decoded->head.schema_version != schema_version) {
            const failure why(errc::version_mismatch, tier_kind,
                              "entry " + std::string(name) + " has schema version " +
                                  std::to_string(decoded->head.schema_version) + ", this tier reads " +
                                  std::to_string(schema_version));
            remove_other_version(h, why);
            return unexpected(why);
        }
        if (decoded->head.expiry_ns != 0 && now == clock_unread) now = m_clock.now();
        if (outlived(from_ns(decoded->head.expiry_ns), now)) {
            // A shared store expires entries itself, and another process may be replacing it.
            if constexpr (!shared) (void)m_storage.remove(name);
            ++m_stats.expirations;
            return fail(errc::expired, tier_kind);
        }
        return decoded;
    }

    void quarantine(std::uint64_t h, std::string_view reason, const failure& why) {
        const std::string name = name_of(h);
        ++m_stats.corrupted;
        emit(event_kind::corrupted, name, &why);
        if (auto moved = m_storage.quarantine(name, reason, m_clock.now()); moved) {
            ++m_stats.quarantined;
            emit(event_kind::quarantined, name, &why);
        } else if (moved.error().code() != errc::miss) {
            note_io_error(moved.error());
            (void)m_storage.remove(name);  // do not meet the same damage again
        }
    }

    void remove_other_version(std::uint64_t h, const failure& why) {
        ++m_stats.version_mismatches;
        (void)m_storage.remove(name_of(h));
        emit(event_kind::version_mismatch, name_of(h), &why);
    }

    void note_io_error(const failure& why) {
        ++m_stats.io_errors;
        emit(event_kind::io_error, why.context(), &why);
    }

    void emit(event_kind kind, std::string_view detail, const failure* cause) noexcept {
        m_listener.on_event(event{kind, tier_kind, detail, cause});
    }

    // Drops an index entry and its file.
    void drop(std::uint32_t idx, std::uint64_t h) {
        m_index.remove(idx);
        if (auto removed = m_storage.remove(name_of(h)); !removed && removed.error().code() != errc::miss)
            note_io_error(removed.error());
    }

    void evict_lru() {
        const std::uint32_t victim = m_index.lru();
        drop(victim, m_index.at(victim).hash);
        ++m_stats.evictions;
    }

    // Evicts until `incoming` more bytes and one more entry fit the budgets.
    void make_room(std::size_t incoming) {
        const bool adding = incoming != 0;
        while (m_index.live() != 0 &&
               (m_index.bytes() + incoming > m_config.byte_budget ||
                (m_config.max_entries != 0 && m_index.live() + (adding ? 1 : 0) > m_config.max_entries))) {
            evict_lru();
        }
    }

    // Reads (or makes) the hash secret, then builds the index: open()'s work on the storage.
    [[nodiscard]] result<void> start(bool scrub_first) {
        if constexpr (shared) {
            m_secret = shared_hash_key;
            return {};
        }
        const auto replaced = load_secret();
        if (!replaced) return unexpected(replaced.error());
        // A replaced secret leaves every entry an orphan: the scrub removes them (an index
        // from names alone would count entries no get can reach).
        if (!scrub_first && !*replaced) {
            auto indexed = storage_indexed ? result<void>{} : index_from_listing();
            note_storage_damage();
            // Key and tag indexes from the first put when the tier starts empty; over entries
            // found at open, from the first lookup (read_meta).
            m_meta_kept = m_meta_complete = indexed && live_count() == 0;
            return indexed;
        }
        m_meta_kept = true;  // the scrub reads every entry anyway
        auto report = scrub();
        if (!report) return unexpected(std::move(report).error());
        m_opened = *report;
        return {};
    }

    // Removes the index entries whose hashes `held` lacks (a sorted vector, cheaper than a
    // node-based set at a million entries); how many.
    std::size_t keep_only(std::vector<std::uint64_t>& held) {
        std::sort(held.begin(), held.end());
        std::vector<std::uint32_t> stale;
        m_index.for_each_lru([&](std::uint32_t idx) {
            if (!std::binary_search(held.begin(), held.end(), m_index.at(idx).hash)) stale.push_back(idx);
        });
        for (const std::uint32_t idx : stale) m_index.remove(idx);
        return stale.size();
    }

    // Whether the storage evicts blobs by itself and names them (segment_log::take_evicted).
    static constexpr bool storage_evicts_itself = requires(storage_type & s) {
        { s.take_evicted().names } -> std::convertible_to<std::vector<std::string>>;
        { s.take_evicted().complete } -> std::convertible_to<bool>;
    };
    // Whether, moreover, it answers for what it holds from its own index (segment_log:
    // contains(), held_blobs(), peek()): then the tier keeps no per-entry index of its own.
    static constexpr bool storage_indexed =
        storage_evicts_itself && requires(const storage_type& s, std::string_view name) {
        { s.contains(name) } -> std::same_as<bool>;
        { s.held_blobs().count } -> std::convertible_to<std::size_t>;
        { s.held_blobs().bytes } -> std::convertible_to<std::uint64_t>;
        { s.peek(name) } -> std::same_as<result<std::vector<std::byte>>>;
    };

    // Drops the index entries of the blobs such a storage let go since the last call (it
    // keeps a bounded account; past it, or with blobs it could not name, the index keeps
    // what list() shows, retried on the next call if listing fails), so that entries and
    // bytes follow what it holds. True if the entry under `watched` was among them.
    // Caller holds the lock.
    bool forget_evicted(std::optional<std::uint64_t> watched = std::nullopt) {
        if constexpr (storage_indexed) {
            (void)m_storage.take_evicted();  // nothing to follow: keeps its account empty
            return false;
        } else if constexpr (storage_evicts_itself) {
            auto gone = m_storage.take_evicted();
            if (gone.complete && !m_relist) {
                bool hit = false;
                for (const std::string& name : gone.names) {
                    const auto h = parse_name(name);
                    if (!h) continue;
                    hit = hit || *h == watched;
                    if (const auto idx = m_index.find(*h, *h, std::equal_to<>{}); idx != index_type::npos)
                        m_index.remove(idx);
                }
                return hit;
            }
            auto listing = m_storage.list();
            m_relist = !listing;
            if (!listing) {
                note_io_error(listing.error());
                return false;
            }
            std::vector<std::uint64_t> held;
            for (const blob_info& blob : *listing)
                if (const auto h = parse_name(blob.name)) held.push_back(*h);
            keep_only(held);
            return watched && !std::binary_search(held.begin(), held.end(), *watched);
        } else {
            (void)watched;
            return false;
        }
    }

    // Whether the secret was damaged and replaced.
    [[nodiscard]] result<bool> load_secret() {
        // A damaged secret, or a link, FIFO or oversized file in its place, is set aside (or
        // the directory would never open again): entries written under the old secret
        // become orphans for scrub.
        bool replaced = false;
        auto secret = detail::load_or_make_secret(m_storage, meta_name, m_clock.now(), replaced);
        if (!secret) return unexpected(std::move(secret).error());
        m_secret = *secret;
        if (replaced) {
            ++m_stats.corrupted;
            ++m_stats.quarantined;
            const failure why(errc::corrupted, tier_kind, "the directory's meta file is damaged; starting afresh");
            emit(event_kind::corrupted, meta_name, &why);
        }
        return replaced;
    }

    // Removes leftover temp files, foreign files and old quarantine (as scrub does; names
    // only, no entry is read; not over a storage opened read-only), then indexes what is
    // left from the listing.
    [[nodiscard]] result<void> index_from_listing() {
        const clean_options options{m_clock.now(), m_config.quarantine_max_age};
        auto listing = [&]() -> result<std::vector<blob_info>> {
            if constexpr (requires { bool(m_storage.settings().read_only); }) {
                if (m_storage.settings().read_only) return m_storage.list();
            }
            auto note = [&](const clean_report& cleaned) {
                m_opened.temp_files_removed = cleaned.temp_files_removed;
                m_opened.foreign_removed = cleaned.foreign_removed;
                m_opened.quarantine_purged = cleaned.quarantine_purged;
            };
            if constexpr (storage_cleans_listing<storage_type>) {
                std::vector<blob_info> blobs;
                auto cleaned = m_storage.clean(options, blobs);
                if (!cleaned) return unexpected(std::move(cleaned).error());
                note(*cleaned);
                return blobs;
            } else {
                auto cleaned = m_storage.clean(options);
                if (!cleaned) return unexpected(std::move(cleaned).error());
                note(*cleaned);
                return m_storage.list();
            }
        }();
        if (!listing) return unexpected(std::move(listing).error());
        std::sort(listing->begin(), listing->end(),
                  [](const blob_info& a, const blob_info& b) { return a.modified < b.modified; });
        for (const blob_info& blob : *listing) {
            const auto h = parse_name(blob.name);
            if (!h && blob.name != meta_name && m_storage.remove(blob.name))  // a stray blob, as scrub removes it
                ++m_opened.orphans_removed;
            if (h && m_index.find(*h, *h, std::equal_to<>{}) == index_type::npos)
                m_index.insert(*h, std::uint64_t{*h}, std::monostate{}, unread_expiry,
                               static_cast<std::size_t>(blob.size));
        }
        make_room(0);
        forget_evicted();
        m_meta_complete = m_index.live() == 0;  // keys and tags are read on first need (read_meta)
        return {};
    }

    // Whether the frame stored under h says it is unexpired (header only; false if unreadable).
    [[nodiscard]] bool unexpired_on_disk(std::uint64_t h) const {
        const std::string name = name_of(h);
        auto bytes = [&] {
            if constexpr (requires { m_storage.peek(name); }) {
                return m_storage.peek(name);
            } else {
                return m_storage.read(name);
            }
        }();
        if (!bytes) return false;
        const auto head = frame::decode_header(*bytes);
        return head && !detail::expired(from_ns(head->expiry_ns), m_clock.now());
    }

    // Whether the index holds h (the storage's, when it keeps the only one).
    [[nodiscard]] bool held(std::uint64_t h) const {
        if constexpr (storage_indexed) {
            return !m_closed && m_storage.contains(name_of(h));
        } else {
            return m_index.find(h, h, std::equal_to<>{}) != index_type::npos;
        }
    }

    // Entries and bytes held: the storage's account when it keeps the only index.
    [[nodiscard]] std::size_t live_count() const {
        if constexpr (storage_indexed) {
            return m_storage.held_blobs().count;
        } else {
            return m_index.live();
        }
    }
    [[nodiscard]] std::uint64_t live_bytes() const {
        if constexpr (storage_indexed) {
            return m_storage.held_blobs().bytes;
        } else {
            return m_index.bytes();
        }
    }

    // Decodes the key bytes `name_key` onto out (a key the serializer refuses is left out).
    void append_key(std::string_view name_key, std::vector<Key>& out) const {
        const auto* p = reinterpret_cast<const std::byte*>(name_key.data());
        if (auto key = m_serializer.decode(std::span(p, name_key.size()), std::type_identity<Key>{}))
            out.push_back(std::move(*key));
    }

    // Records the key bytes and tags of the entry under h (after a write or a read of its
    // frame). Entries the index dropped since are left behind and skipped by held(); they
    // are pruned once they outnumber the live ones. Caller holds the lock.
    void note_meta(std::uint64_t h, std::span<const std::byte> name_key, std::span<const std::string> tags) {
        if constexpr (!shared) {
            if (!m_meta_kept) return;  // no key or tag lookup yet: read_meta builds them on the first
            std::string key(reinterpret_cast<const char*>(name_key.data()), name_key.size());
            if (auto old = m_keys_of.find(h); old != m_keys_of.end() && old->second != key) m_keys.erase(old->second);
            m_keys.insert_or_assign(key, h);
            m_keys_of.insert_or_assign(h, std::move(key));
            forget_tags(h);
            if (!tags.empty()) {
                auto& mine = m_tags_of[h];
                for (const std::string& tag : tags) {
                    mine.push_back(tag);
                    auto it = m_tagged.find(std::string_view(tag));
                    if (it == m_tagged.end()) it = m_tagged.emplace(tag, std::unordered_set<std::uint64_t>{}).first;
                    it->second.insert(h);
                }
            }
            if (m_keys_of.size() > 2 * live_count() + 1024) prune_meta();
        }
    }

    void forget_tags(std::uint64_t h) {
        const auto it = m_tags_of.find(h);
        if (it == m_tags_of.end()) return;
        for (const std::string& tag : it->second) {
            if (const auto t = m_tagged.find(std::string_view(tag)); t != m_tagged.end()) {
                t->second.erase(h);
                if (t->second.empty()) m_tagged.erase(t);
            }
        }
        m_tags_of.erase(it);
    }

    void prune_meta() {
        for (auto it = m_keys_of.begin(); it != m_keys_of.end();) {
            if (held(it->first)) {
                ++it;
                continue;
            }
            forget_tags(it->first);
            m_keys.erase(it->second);
            it = m_keys_of.erase(it);
        }
    }

    // Builds the key and tag indexes by reading every entry the storage lists, if open() or
    // the last scrub did not (scrub_on_open off, or files it could not read: those are
    // indexed again here). Entries that cannot be used are handled as a get would; an I/O
    // error leaves the indexes incomplete, to be read again by the next lookup.
    [[nodiscard]] result<void> read_meta() {
        if (!m_meta_kept) {
            m_meta_kept = true;
            m_meta_complete = false;
        }
        if (m_meta_complete) return {};
        auto listing = m_storage.list();
        if (!listing) {
            note_io_error(listing.error());
            return unexpected(std::move(listing).error());
        }
        time_point now = m_clock.now();
        std::vector<std::byte> bytes;
        std::vector<std::byte> inflated;
        for (const blob_info& blob : *listing) {
            const auto h = blob.name == meta_name ? std::nullopt : parse_name(blob.name);
            if (!h) continue;
            auto entry = load(*h, now, bytes, inflated, true);
            if (entry && hash_of(entry->key) == *h) {
                if (!storage_indexed && !held(*h))
                    m_index.insert(*h, std::uint64_t{*h}, std::monostate{}, from_ns(entry->head.expiry_ns),
                                   static_cast<std::size_t>(blob.size));
                note_meta(*h, entry->key, frame::tags_of(entry->tags));
                continue;
            }
            if (entry) continue;  // another secret's: left to scrub
            const errc code = entry.error().code();
            if (code == errc::io_error || code == errc::permission_denied) return unexpected(std::move(entry).error());
            // The index forgets the entry only once its file is gone (a quarantine that failed
            // leaves it): else no tag lookup finds it and a reopen would index it again.
            if (auto gone = m_storage.remove(blob.name); !gone && gone.error().code() != errc::miss) {
                note_io_error(gone.error());
                return unexpected(std::move(gone).error());
            }
            if (const auto idx = m_index.find(*h, *h, std::equal_to<>{}); idx != index_type::npos) m_index.remove(idx);
        }
        make_room(0);
        forget_evicted();
        m_meta_complete = true;
        return {};
    }

    mutable storage_type m_storage;  // contains() may read a frame's header (fault_injecting's read is not const)
    disk_config m_config;
    [[no_unique_address]] clock_type m_clock;
    [[no_unique_address]] listener_type m_listener;
    [[no_unique_address]] serializer_type m_serializer{};
    std::unique_ptr<std::mutex> m_mutex;
    std::unique_ptr<frame::zlib_streams> m_zlib;  // used under *m_mutex only
    std::vector<std::byte> m_get_key;             // a get's key bytes, under *m_mutex only
    std::vector<std::byte> m_get_frame;           // a get's frame, under *m_mutex only
    std::array<std::uint64_t, 2> m_secret{};
    index_type m_index;
    disk_stats m_stats;
    detail::emergency_eviction<time_point> m_emergency;
    std::uint64_t m_storage_disk_full_at_open = 0;
    std::uint64_t m_storage_damage_counted = 0;  // the storage's damage already in m_stats.corrupted
    bool m_relist = false;                       // forget_evicted could not list the storage: it lists on its next call
    bool m_closed = false;                       // close(): m_storage is moved from
    scrub_report m_opened;                       // what open() cleaned, or its whole scrub
    // Key and tag indexes (not for a shared tier): key bytes -> hash, ordered for prefixes;
    // hash -> key bytes; tag -> hashes; hash -> its tags (tagged entries only).
    std::map<std::string, std::uint64_t, std::less<>> m_keys;
    std::unordered_map<std::uint64_t, std::string> m_keys_of;
    std::unordered_map<std::string, std::unordered_set<std::uint64_t>, default_hash, std::equal_to<>> m_tagged;
    std::unordered_map<std::uint64_t, std::vector<std::string>> m_tags_of;
    bool m_meta_complete = true;
    // Whether the key and tag indexes are kept: from the first keys_tagged() or
    // keys_with_prefix() on, so that a tier never asked costs no memory or time for them.
    bool m_meta_kept = false;
};

}  // namespace tierguard
