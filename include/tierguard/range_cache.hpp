#pragma once

#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/system.hpp>
#include <tierguard/detail/emergency_eviction.hpp>
#include <tierguard/detail/lru_shard.hpp>
#include <tierguard/detail/siphash.hpp>
#include <tierguard/detail/storage_secret.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/listener/none.hpp>
#include <tierguard/memory_tier.hpp>
#include <tierguard/metrics.hpp>
#include <tierguard/result.hpp>
#include <tierguard/storage/concept.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

/// The range cache: byte ranges of large objects, kept as fixed-size blocks (seed 004).
/// docs/RANGE_CACHE.md describes the layout, the failures it handles and its metrics.
namespace tierguard {

/// How often a block read from the storage has its bytes checked (range_config::verify_reads).
enum class range_verify : unsigned char {
    /// Every block read from the storage is checked (CRC-32 of its frame) on every read.
    always = 1,
    /// A block read straight into the caller's span (see range_cache::read) is checked once
    /// per identity of its file: device, inode, size, mtime and ctime in ns, by fstat on the
    /// descriptor the read used, after the read. A later read of the same file with the same
    /// identity is served without a second CRC. Any change made through the file system (a
    /// write by anyone, a truncation, a file renamed over it) changes the identity, so such
    /// damage is still caught. Not caught: a page the device corrupts silently and the kernel
    /// re-reads after its page cache dropped the verified copy. A file whose ctime is less
    /// than range_cache::verify_settle before the cache's clock is checked every time (its
    /// timestamps may not have ticked since). Needs a storage with the identity read
    /// (storage_reads_identified: posix_directory); with another, as `always`. The identities
    /// are kept in memory, 8 bytes per block held, and forgotten when the block is
    /// quarantined, rewritten, evicted or its object's version changes.
    once_per_file_change = 2,
};

/// Run-time settings of a range cache; validated by range_cache::open().
struct range_config {
    /// Bytes per block (the last block of an object is shorter); at most 64 MiB.
    std::uint32_t block_size = std::uint32_t{1} << 20;
    /// Bytes of block files (frames as stored) the storage may hold; LRU by block keeps it.
    std::uint64_t byte_budget = std::uint64_t{1} << 30;
    /// Bytes of block files one object may hold; 0 = no limit. Blocks past it are served, not stored.
    std::uint64_t max_object_bytes = 0;
    /// Bytes of hot blocks kept in memory (tierguard::memory_tier); 0 = no memory tier.
    std::size_t memory_budget = std::size_t{64} << 20;
    /// Shards of the memory tier; open() refuses a block_size over memory_budget / memory_shards.
    std::size_t memory_shards = 8;
    /// Largest origin request, rounded down to whole blocks (at least one): a read works in
    /// windows of this many bytes, so it also bounds the memory a read holds at once.
    std::uint64_t max_request_bytes = std::uint64_t{32} << 20;
    /// Share of the blocks evicted when a write meets a full disk, before its one retry.
    double emergency_eviction_fraction = 0.1;
    /// After an emergency eviction whose retry still met a full disk, writes that meet a full
    /// disk evict nothing for this long by the cache's clock (as disk_config's).
    std::chrono::nanoseconds emergency_eviction_backoff = std::chrono::minutes{1};
    /// Quarantined files older than this are purged by cleanup().
    std::chrono::seconds quarantine_max_age{std::chrono::hours{24 * 7}};
    /// Inspect only (tools, over a read-only storage): nothing is written, removed or
    /// quarantined; open() and cleanup() report what they would fix, reads store nothing.
    bool read_only = false;
    /// Whether a block read from the storage is checked on every read or once per change of
    /// its file (range_verify); docs/RANGE_CACHE.md weighs the two.
    range_verify verify_reads = range_verify::always;
};

/// Which version of an object a read asks for. A different validator or size than the
/// cached one means a new version: the old blocks are never served again and are removed.
struct range_version {
    std::string validator;   ///< ETag, "size:mtime", a version string: anything that changes with the bytes
    std::uint64_t size = 0;  ///< the object's size in bytes
};

/// Counters of a range cache since it was opened (seed 004's names where it has one).
struct range_metrics {
    std::uint64_t reads = 0;                     ///< read calls
    std::uint64_t read_failures = 0;             ///< reads that returned an error
    std::uint64_t memory_hits = 0;               ///< blocks served from the memory tier
    std::uint64_t disk_hits = 0;                 ///< blocks served from the storage
    std::uint64_t misses = 0;                    ///< blocks not cached when read
    std::uint64_t origin_requests = 0;           ///< fetch calls
    std::uint64_t origin_bytes = 0;              ///< bytes fetched
    std::uint64_t origin_failures = 0;           ///< fetch calls that failed or returned too few bytes
    std::uint64_t shared_fetches = 0;            ///< blocks a read took from another read's fetch
    std::uint64_t blocks_stored = 0;             ///< block files written
    std::uint64_t blocks_not_stored = 0;         ///< fetched blocks not kept (write failed, object limit)
    std::uint64_t evictions = 0;                 ///< block files removed to keep the budget
    std::uint64_t emergency_evictions = 0;       ///< of which after a full disk
    std::uint64_t invalidations = 0;             ///< objects dropped because their version changed
    std::uint64_t corruption_metadata = 0;       ///< metadata records that failed validation
    std::uint64_t corruption_missing_range = 0;  ///< referenced block files missing/damaged: read or deep cleanup
    std::uint64_t inconsistency_fixed = 0;       ///< references to absent or wrong-size block files removed
    std::uint64_t partial_write_cleanup = 0;     ///< temp files of interrupted writes removed
    std::uint64_t disk_full_events = 0;          ///< writes refused with ENOSPC / EDQUOT
    std::uint64_t orphaned_files_cleaned = 0;    ///< block files without metadata removed
    std::uint64_t io_errors = 0;                 ///< other storage failures
    std::uint64_t degraded_reads = 0;            ///< reads the origin alone answered (the storage unusable)
    std::uint64_t blocks_verified = 0;           ///< blocks read from the storage whose bytes passed a CRC check
    std::uint64_t objects = 0;                   ///< objects with metadata now
    std::uint64_t blocks = 0;                    ///< block files now
    std::uint64_t bytes = 0;                     ///< bytes of block files now
    std::uint64_t memory_bytes = 0;              ///< bytes of blocks in the memory tier now
    histogram_snapshot read_latency;             ///< read calls, origin time included
};

/// What one cleanup() found and did (seed 004's perform_cache_cleanup statistics).
struct range_cleanup_report {
    std::uint64_t temp_files_cleaned = 0;      ///< leftovers of interrupted writes
    std::uint64_t orphaned_files_cleaned = 0;  ///< block files no metadata references, and foreign files
    std::uint64_t inconsistencies_fixed = 0;   ///< references to absent or wrong-size block files removed
    std::uint64_t corrupt_metadata = 0;        ///< metadata records quarantined
    std::uint64_t damaged_blocks = 0;          ///< block files that failed verification (deep only), quarantined
    std::uint64_t objects_removed = 0;         ///< objects left without a block, removed
    std::uint64_t quarantine_purged = 0;       ///< quarantined files past quarantine_max_age
    std::uint64_t records_restored = 0;        ///< records absent on disk for objects held, written again
    std::uint64_t objects_checked = 0;         ///< records on disk, and objects held whose record was absent
    std::uint64_t blocks_checked = 0;
    std::uint64_t io_errors = 0;  ///< files that could not be read or removed
};

/// One cached object, as inspect() reports it.
struct range_object_info {
    std::string key;
    range_version version;
    std::uint32_t block_size = 0;
    std::vector<std::uint32_t> blocks;     ///< indices of the blocks held
    std::vector<std::uint32_t> checksums;  ///< the frame CRC-32 of each held block, as recorded
    std::uint64_t stored_bytes = 0;
    std::string folder;  ///< the storage folder of its metadata and blocks
};

/// The range cache's compile-time policies. Inherit and override a slot.
struct range_defaults {
    using storage = tierguard::storage::posix_directory;  ///< models storage_policy
    using clock = tierguard::clock::system;               ///< drives the emergency eviction backoff
    using listener = tierguard::listener::none;           ///< models listener_policy
};

namespace detail {

/// A block's bytes, shared by the memory tier, in-flight fetches and readers: the frame as
/// stored (or fetched and framed), and where the block's data sits in it.
struct range_block {
    std::vector<std::byte> frame;
    std::size_t offset = 0;
    std::size_t length = 0;
    bool framed = true;  ///< false: the bytes alone (could not be framed), never stored
    [[nodiscard]] std::span<const std::byte> data() const noexcept {
        return std::span<const std::byte>(frame).subspan(offset, length);
    }
};
using range_block_ptr = std::shared_ptr<const range_block>;

/// A block of `data` alone (a copy), for the memory tier.
inline range_block_ptr unframed_block(std::span<const std::byte> data) {
    auto block = std::make_shared<range_block>();
    block->frame.assign(data.begin(), data.end());
    block->length = data.size();
    block->framed = false;
    return block;
}

struct range_block_weigher {
    std::size_t operator()(const std::string& key, const range_block_ptr& block) const noexcept {
        return key.size() + (block ? block->length : 0);
    }
};

struct range_memory_policies : memory_defaults {
    using weigher = range_block_weigher;
};

inline void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}
inline void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}
inline void put_bytes(std::vector<std::byte>& out, std::string_view s) {
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
}

// Reads little-endian fields off the front of a span; fails once past its end.
struct range_reader {
    std::span<const std::byte> in;
    bool ok = true;
    template <class T>
    T take() {
        if (in.size() < sizeof(T)) {
            ok = false;
            return 0;
        }
        const T v = load_le<T>(in.data());
        in = in.subspan(sizeof(T));
        return v;
    }
    std::string take_string(std::size_t limit) {
        const std::uint32_t n = take<std::uint32_t>();
        if (!ok || n > in.size() || n > limit) {
            ok = false;
            return {};
        }
        std::string s(reinterpret_cast<const char*>(in.data()), n);
        in = in.subspan(n);
        return s;
    }
};

}  // namespace detail

/// A cache of byte ranges of large objects that are immutable per version (an object
/// store, a file server, a model file), in front of the caller's origin.
///
/// Objects are stored as fixed-size blocks (range_config::block_size) plus one metadata
/// record each (version, size, which blocks are held and each block frame's CRC), all as
/// frames in a Storage; hot blocks are also kept in a memory_tier. Guarantees:
///  - read() returns every byte of the range exactly as the origin gave it for the version
///    asked, or an error; never a partial answer, another version's or another key's bytes.
///  - Missing blocks are fetched in as few origin requests as possible: each maximal run of
///    contiguous missing blocks within a window of max_request_bytes is one request, aligned
///    to blocks. Concurrent reads of the same missing block fetch it once.
///  - A metadata record that fails validation makes its object a miss (the record is
///    quarantined, its blocks removed); a missing or damaged block is fetched again and
///    re-stored while the other blocks keep serving; a full disk evicts a share of the
///    blocks and retries once, and the read is still answered from the origin.
///  - Writes are temp + rename (or the storage's own atomicity): a crash leaves the old
///    state or the new one; open() and cleanup() remove leftovers and orphans and drop
///    references to absent blocks, each counted (seed 004's metrics).
///  - The disk byte budget holds after every read. Nothing throws for a storage failure or
///    a failing origin (its exceptions become errc::loader_failed); only std::bad_alloc.
/// Thread-safe: one lock over the index and storage calls, released while the origin is
/// called; the memory tier is read without it.
template <class Policies = range_defaults>
class range_cache {
public:
    using storage_type = typename Policies::storage;
    using clock_type = typename Policies::clock;
    using listener_type = typename Policies::listener;
    using time_point = typename clock_type::time_point;

    static_assert(storage_policy<storage_type>,
                  "tierguard::range_cache: Policies::storage does not model tierguard::storage_policy "
                  "(read, write, remove, list, quarantine, clean); see docs/POLICIES.md");
    static_assert(clock_policy<clock_type>,
                  "tierguard::range_cache: Policies::clock does not model tierguard::clock_policy; see "
                  "docs/POLICIES.md");
    static_assert(listener_policy<listener_type>,
                  "tierguard::range_cache: Policies::listener does not model tierguard::listener_policy; see "
                  "docs/POLICIES.md");

    /// Frame schema versions that tell a metadata record from a block.
    static constexpr std::uint32_t metadata_schema = 0x52430001;
    static constexpr std::uint32_t block_schema = 0x52430002;
    /// The blob holding the directory's hash secret.
    static constexpr std::string_view secret_name = "tierguard-range-secret";
    /// While the storage is detached (see open()), reads try it again at most this often,
    /// by the cache's clock: a try may walk the whole directory.
    static constexpr std::chrono::seconds attach_interval{1};
    /// Longest key and validator accepted.
    static constexpr std::size_t max_key_size = 4096;
    /// Under range_verify::once_per_file_change, a block file whose ctime is less than this
    /// before the cache's clock is checked on every read: a change made in the same tick of
    /// the file system's timestamps would leave them as they were (git's racy-clean rule).
    static constexpr std::chrono::seconds verify_settle{2};

    [[nodiscard]] static result<void> validate(const range_config& cfg) {
        auto bad = [](std::string what) { return fail(errc::invalid_argument, tier::disk, std::move(what)); };
        if (cfg.block_size == 0 || cfg.block_size > (std::uint32_t{64} << 20))
            return bad("range_config.block_size is " + std::to_string(cfg.block_size) +
                       "; it must be 1 byte to 64 MiB");
        if (cfg.byte_budget == 0) return bad("range_config.byte_budget is 0; it must be positive");
        if (cfg.memory_budget != 0) {
            if (auto ok = memory_type::validate(memory_settings(cfg)); !ok)
                return bad("range_config.memory_budget / memory_shards: " + ok.error().context());
            if (cfg.block_size > cfg.memory_budget / cfg.memory_shards)
                return bad("range_config.block_size is " + std::to_string(cfg.block_size) +
                           " bytes, more than a memory shard holds (memory_budget / memory_shards = " +
                           std::to_string(cfg.memory_budget / cfg.memory_shards) +
                           "): no block could enter the memory tier; raise memory_budget, lower memory_shards "
                           "or set memory_budget to 0");
        }
        if (!(cfg.emergency_eviction_fraction > 0.0 && cfg.emergency_eviction_fraction <= 1.0))
            return bad("range_config.emergency_eviction_fraction is " +
                       std::to_string(cfg.emergency_eviction_fraction) + "; it must be in (0, 1]");
        if (cfg.emergency_eviction_backoff < std::chrono::nanoseconds::zero())
            return bad("range_config.emergency_eviction_backoff is negative");
        if (cfg.quarantine_max_age < std::chrono::seconds::zero())
            return bad("range_config.quarantine_max_age is negative");
        if (cfg.verify_reads != range_verify::always && cfg.verify_reads != range_verify::once_per_file_change)
            return bad("range_config.verify_reads is " + std::to_string(static_cast<int>(cfg.verify_reads)) +
                       "; it must be range_verify::always or range_verify::once_per_file_change");
        return {};
    }

    /// Opens a range cache over `storage`: validates the configuration, reads (or makes)
    /// the hash secret, then verifies the directory as cleanup() does (without reading the
    /// blocks): every metadata record is read and checked, references to absent block files
    /// dropped, orphans and leftovers removed, each counted. Fails if the configuration is
    /// bad, or the storage fails with a misconfiguration (is_runtime_fault() false) or, with
    /// read_only, at all. A run-time fault (a full disk, an I/O error) opens the cache
    /// detached (attached() false, event storage_unavailable): reads are answered by the
    /// origin alone (degraded_reads), and a read tries the storage again at most once per
    /// attach_interval (as cleanup() does every time); the first try that succeeds (the
    /// secret written, the directory verified) attaches it (event storage_attached) and
    /// caching starts. A storage opened read-only (settings().read_only) under a cache
    /// without range_config::read_only fails with errc::invalid_argument naming both.
    [[nodiscard]] static result<range_cache> open(storage_type storage, const range_config& cfg = {},
                                                  clock_type clock = clock_type(),
                                                  listener_type listener = listener_type()) {
        if (auto ok = validate(cfg); !ok) return unexpected(std::move(ok).error());
        if constexpr (requires { bool(storage.settings().read_only); })
            if (storage.settings().read_only && !cfg.read_only)
                return fail(errc::invalid_argument, tier::disk,
                            "the storage was opened read-only (its config::read_only) but range_config.read_only "
                            "is false; set both to serve from a read-only cache directory");
        range_cache cache(std::move(storage), cfg, std::move(clock), std::move(listener));
        std::lock_guard lock(cache.m->mutex);
        auto& counted = cache.m->counters;
        const std::uint64_t faults_before = counted.disk_full_events + counted.io_errors;
        if (auto ok = cache.attach_locked(); !ok) {
            if (cfg.read_only || !is_runtime_fault(ok.error())) return unexpected(std::move(ok).error());
            if (counted.disk_full_events + counted.io_errors == faults_before)  // not counted where it failed
                ++(ok.error().code() == errc::disk_full ? counted.disk_full_events : counted.io_errors);
            cache.m->detached_at_open = true;
            cache.emit(event_kind::storage_unavailable,
                       "range cache: the storage could not be opened; reads go to the origin until it can be",
                       &ok.error());
        }
        return cache;
    }

    /// False while the storage could not be opened (see open()): reads then go to the origin.
    [[nodiscard]] bool attached() const {
        std::lock_guard lock(m->mutex);
        return m->attached;
    }

    range_cache(range_cache&&) noexcept = default;
    range_cache& operator=(range_cache&&) noexcept = default;

    /// Reads up to out.size() bytes from `offset` of version `v` of object `key` into `out`,
    /// as pread does: the range is cut at v.size (a short read at the end, 0 bytes from
    /// v.size on); returns how many bytes were read. Missing blocks are fetched with
    /// `fetch(std::uint64_t offset, std::span<std::byte> out) -> result<void>`, which must
    /// fill all of `out` with the origin's bytes at `offset` (requests are block-aligned and
    /// end at the object's size at most). Errors: errc::invalid_argument for an oversized
    /// key or validator; errc::loader_failed when the origin failed (its failure's message
    /// kept in the context) or threw; `out` is then unspecified. Storage failures never fail
    /// a read: the origin answers instead. Every call counts in reads, a failed one also in
    /// read_failures.
    template <class Fetch>
        requires std::invocable<Fetch&, std::uint64_t, std::span<std::byte>>
    [[nodiscard]] result<std::size_t> read(std::string_view key, const range_version& v, std::uint64_t offset,
                                           std::span<std::byte> out, Fetch&& fetch) {
        auto unused = [](std::span<const std::byte>) {};
        auto n = observed(key, v, offset, out.size(), fetch, unused, out);
        if (!n) return unexpected(std::move(n).error());
        return static_cast<std::size_t>(*n);
    }

    /// As read() into a span, returning the bytes in a new vector (shorter than `length`
    /// where the range passes v.size).
    template <class Fetch>
        requires std::invocable<Fetch&, std::uint64_t, std::span<std::byte>>
    [[nodiscard]] result<std::vector<std::byte>> read(std::string_view key, const range_version& v,
                                                      std::uint64_t offset, std::uint64_t length, Fetch&& fetch) {
        std::vector<std::byte> out(static_cast<std::size_t>(clamped(v, offset, length)));
        if (auto ok = read(key, v, offset, std::span<std::byte>(out), fetch); !ok)
            return unexpected(std::move(ok).error());
        return out;
    }

    /// Streams [offset, offset + length), cut at v.size as read() does, to
    /// `sink(std::span<const std::byte>)` in order, one call per window (max_request_bytes),
    /// so a read larger than memory holds one window; returns the bytes streamed. On an
    /// error the bytes already given to the sink were the range's right prefix, and the read
    /// as a whole failed: the caller must not use them as the whole range.
    template <class Fetch, class Sink>
        requires std::invocable<Fetch&, std::uint64_t, std::span<std::byte>> &&
            std::invocable<Sink&, std::span<const std::byte>>
    [[nodiscard]] result<std::uint64_t> read_stream(std::string_view key, const range_version& v, std::uint64_t offset,
                                                    std::uint64_t length, Fetch&& fetch, Sink&& sink) {
        return observed(key, v, offset, length, fetch, sink, {});
    }

    /// Maintenance (seed 004's perform_cache_cleanup), also run at open: removes temp files
    /// of interrupted writes and purges old quarantine; checks every metadata record
    /// (quarantining damaged ones, their objects dropped), drops references to block files
    /// that are absent or of the wrong size, removes objects left without a block and block
    /// files no record references. With `deep`, also reads and verifies every block file
    /// (a damaged one is quarantined and its reference dropped). Fails only if the storage
    /// cannot be cleaned or listed.
    result<range_cleanup_report> cleanup(bool deep = false) {
        std::lock_guard lock(m->mutex);
        if (!m->attached) {
            auto report = attach_locked();
            if (!report || !deep) return report;
        }
        return reconcile_locked(deep);
    }

    /// Removes every block and record of object `key` (from memory too); true if it was cached.
    result<bool> erase(std::string_view key) {
        const auto k = as_bytes(key);
        std::lock_guard lock(m->mutex);
        const auto it = m->objects.find(hash_of(k));
        if (it == m->objects.end() || !std::ranges::equal(it->second.key, k)) return false;
        drop_object_locked(it->first);
        return true;
    }

    /// The object `key` as cached: its version and the blocks held; errc::miss if none.
    [[nodiscard]] result<range_object_info> inspect(std::string_view key) const {
        const auto k = as_bytes(key);
        std::lock_guard lock(m->mutex);
        const auto it = m->objects.find(hash_of(k));
        if (it == m->objects.end() || !std::ranges::equal(it->second.key, k)) return fail(errc::miss, tier::disk);
        return info_of(it->first, it->second);
    }

    /// Every cached object, as inspect() reports it, in no particular order.
    [[nodiscard]] std::vector<range_object_info> objects() const {
        std::lock_guard lock(m->mutex);
        std::vector<range_object_info> out;
        out.reserve(m->objects.size());
        for (const auto& [h, o] : m->objects) out.push_back(info_of(h, o));
        return out;
    }

    [[nodiscard]] range_metrics metrics() const {
        std::lock_guard lock(m->mutex);
        range_metrics out = m->counters;
        out.objects = m->objects.size();
        out.blocks = m->blocks.live();
        out.bytes = m->blocks.bytes();
        out.memory_bytes = m->memory ? m->memory->bytes() : 0;
        out.read_latency = m->read_latency.snapshot();
        return out;
    }

    /// metrics() as Prometheus text, names prefixed tierguard_range_ (docs/METRICS.md).
    [[nodiscard]] std::string to_prometheus() const {
        const range_metrics r = metrics();
        prometheus_text out;
        auto counter = [&](const char* name, const char* help, std::uint64_t v) { out.counter(name, help, {}, v); };
        counter("tierguard_range_reads_total", "Range reads.", r.reads);
        counter("tierguard_range_read_failures_total", "Range reads that returned an error.", r.read_failures);
        out.counter("tierguard_range_block_hits_total", "Blocks served from a cache tier.", {{"tier", "memory"}},
                    r.memory_hits);
        out.counter("tierguard_range_block_hits_total", "Blocks served from a cache tier.", {{"tier", "disk"}},
                    r.disk_hits);
        counter("tierguard_range_block_misses_total", "Blocks not cached when read.", r.misses);
        counter("tierguard_range_origin_requests_total", "Requests to the origin.", r.origin_requests);
        counter("tierguard_range_origin_bytes_total", "Bytes fetched from the origin.", r.origin_bytes);
        counter("tierguard_range_origin_failures_total", "Origin requests that failed.", r.origin_failures);
        counter("tierguard_range_shared_fetches_total", "Blocks a read took from a concurrent read's fetch.",
                r.shared_fetches);
        counter("tierguard_range_blocks_stored_total", "Block files written.", r.blocks_stored);
        counter("tierguard_range_blocks_not_stored_total", "Fetched blocks not kept (write failed, object limit).",
                r.blocks_not_stored);
        counter("tierguard_range_evictions_total", "Block files removed to keep the byte budget or after a full disk.",
                r.evictions);
        counter("tierguard_range_emergency_evictions_total", "Block files evicted after a full disk.",
                r.emergency_evictions);
        counter("tierguard_range_invalidations_total", "Objects dropped because their version changed.",
                r.invalidations);
        counter("tierguard_range_corruption_metadata_total", "Metadata records that failed validation.",
                r.corruption_metadata);
        counter("tierguard_range_corruption_missing_range_total",
                "Referenced block files found missing or damaged by a read or a deep cleanup.",
                r.corruption_missing_range);
        counter("tierguard_range_inconsistency_fixed_total", "References to absent or wrong-size block files removed.",
                r.inconsistency_fixed);
        counter("tierguard_range_partial_write_cleanup_total", "Temp files of interrupted writes removed.",
                r.partial_write_cleanup);
        counter("tierguard_range_disk_full_events_total", "Writes refused for a full disk.", r.disk_full_events);
        counter("tierguard_range_orphaned_files_cleaned_total", "Block files without metadata removed.",
                r.orphaned_files_cleaned);
        counter("tierguard_range_io_errors_total", "Storage failures other than a full disk.", r.io_errors);
        counter("tierguard_range_degraded_reads_total",
                "Reads answered by the origin alone because the storage could not be opened.", r.degraded_reads);
        counter("tierguard_range_blocks_verified_total", "Blocks read from the storage whose bytes passed a CRC check.",
                r.blocks_verified);
        out.gauge("tierguard_range_objects", "Objects cached.", {}, static_cast<double>(r.objects));
        out.gauge("tierguard_range_blocks", "Block files held.", {}, static_cast<double>(r.blocks));
        out.gauge("tierguard_range_bytes", "Bytes of block files held.", {{"tier", "disk"}},
                  static_cast<double>(r.bytes));
        out.gauge("tierguard_range_bytes", "Bytes of block files held.", {{"tier", "memory"}},
                  static_cast<double>(r.memory_bytes));
        out.histogram("tierguard_range_read_duration_seconds", "Range read latency, origin time included.", {},
                      r.read_latency);
        return out.str();
    }

    /// A range cache failure as one log line, "[tierguard.<code>] range cache: <context>"
    /// (plus the OS error): failure::message() with the range cache named instead of the
    /// tier (a range cache's failures carry tier::disk for the storage, tier::loader for the
    /// origin, tier::none otherwise).
    [[nodiscard]] static std::string describe(const failure& why) {
        std::string out =
            "[tierguard." + std::string(to_string(why.code())) + "] range cache: " +
            (why.context().empty() ? errc_category().message(static_cast<int>(why.code())) : why.context());
        if (why.os_error()) out += " (" + why.os_error().message() + ')';
        return out;
    }

    [[nodiscard]] const range_config& config() const noexcept { return m->config; }
    /// The underlying storage (tests inject faults through it). Not thread-safe against reads.
    [[nodiscard]] storage_type& storage() noexcept { return m->storage; }
    /// The storage folder of object `key` ("ab/<16 hex digits>"): its record is
    /// "<folder>/meta", its block i "<folder>/<i as 8 hex digits>".
    [[nodiscard]] std::string folder_for(std::string_view key) const { return folder_of(hash_of(as_bytes(key))); }
    [[nodiscard]] static std::string block_name(std::string_view folder, std::uint32_t index) {
        return std::string(folder) + '/' + hex(index, 8);
    }
    [[nodiscard]] static std::string metadata_name(std::string_view folder) { return std::string(folder) + "/meta"; }

private:
    using memory_type = memory_tier<std::string, detail::range_block_ptr, detail::range_memory_policies>;

    struct block_id {
        std::uint64_t object;
        std::uint32_t index;
        friend bool operator==(const block_id&, const block_id&) = default;
    };
    using block_index = detail::lru_shard<block_id, std::monostate, time_point>;

    struct object_state {
        std::vector<std::byte> key;
        range_version version;
        std::uint32_t block_size = 0;
        std::vector<std::uint32_t> crc;  // per block: its frame's CRC-32, when held
        std::vector<bool> held;
        // Per block, under range_verify::once_per_file_change: a keyed hash of the identity of
        // the file whose bytes were last checked (0: none); empty until the first is recorded.
        std::vector<std::uint64_t> verified;
        std::uint64_t stored_bytes = 0;
        std::size_t held_count = 0;
    };

    // A fetch in flight: readers of the same block wait for it instead of fetching again.
    struct flight {
        bool done = false;
        detail::range_block_ptr block;  // null when the fetch failed
        std::optional<failure> error;
    };

    struct state {
        state(storage_type st, const range_config& cfg, clock_type c, listener_type l)
            : storage(std::move(st)), config(cfg), clock(std::move(c)), listener(std::move(l)) {}
        storage_type storage;
        range_config config;
        [[no_unique_address]] clock_type clock;
        [[no_unique_address]] listener_type listener;
        std::mutex mutex;
        std::condition_variable cv;
        bool attached = false;          // the secret is loaded and the directory verified (see open())
        bool detached_at_open = false;  // open() met a run-time fault of the storage
        time_point next_attach{};       // while detached: no read tries the storage before this
        std::array<std::uint64_t, 2> secret{};
        std::unordered_map<std::uint64_t, object_state> objects;
        std::unordered_set<std::uint64_t> dirty;  // objects whose record must be rewritten
        block_index blocks;
        std::unordered_map<std::string, std::shared_ptr<flight>> flights;
        std::optional<memory_type> memory;
        frame::zlib_streams zlib;
        range_metrics counters;
        latency_histogram read_latency;
        detail::emergency_eviction<time_point> emergency;
    };

    range_cache(storage_type st, const range_config& cfg, clock_type c, listener_type l)
        : m(std::make_unique<state>(std::move(st), cfg, std::move(c), std::move(l))) {
        if (cfg.memory_budget != 0) m->memory.emplace(memory_settings(cfg));
    }

    static memory_config memory_settings(const range_config& cfg) {
        return memory_config{.byte_budget = cfg.memory_budget, .shards = cfg.memory_shards};
    }

    static std::span<const std::byte> as_bytes(std::string_view s) noexcept {
        return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
    }

    [[nodiscard]] std::uint64_t hash_of(std::span<const std::byte> key) const noexcept {
        return detail::siphash24(m->secret, key);
    }

    static std::string hex(std::uint64_t v, int digits) {
        static constexpr char d[] = "0123456789abcdef";
        std::string out(static_cast<std::size_t>(digits), '0');
        for (int i = digits - 1; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = d[v & 0xf];
        return out;
    }

    static std::optional<std::uint64_t> parse_hex(std::string_view s) {
        std::uint64_t v = 0;
        for (const char c : s) {
            if (c >= '0' && c <= '9')
                v = (v << 4) | static_cast<std::uint64_t>(c - '0');
            else if (c >= 'a' && c <= 'f')
                v = (v << 4) | static_cast<std::uint64_t>(c - 'a' + 10);
            else
                return std::nullopt;
        }
        return v;
    }

    static std::string folder_of(std::uint64_t h) {
        const std::string digits = hex(h, 16);
        return digits.substr(0, 2) + '/' + digits;
    }

    // A blob name of the layout: its object hash, and its block index (nullopt for the record).
    struct parsed_name {
        std::uint64_t object;
        std::optional<std::uint32_t> block;
    };
    static std::optional<parsed_name> parse_name(std::string_view name) {
        if (name.size() < 20 || name[2] != '/' || name[19] != '/') return std::nullopt;
        const auto h = parse_hex(name.substr(3, 16));
        if (!h || name.substr(0, 2) != name.substr(3, 2)) return std::nullopt;
        const std::string_view leaf = name.substr(20);
        if (leaf == "meta") return parsed_name{*h, std::nullopt};
        const auto i = leaf.size() == 8 ? parse_hex(leaf) : std::nullopt;
        if (!i) return std::nullopt;
        return parsed_name{*h, static_cast<std::uint32_t>(*i)};
    }

    static std::uint64_t block_hash(const block_id& b) noexcept {
        std::uint64_t x = b.object ^ (std::uint64_t{b.index} * 0x9e3779b97f4a7c15ULL);
        x ^= x >> 31;
        x *= 0xbf58476d1ce4e5b9ULL;
        return x ^ (x >> 29);
    }

    static std::uint32_t block_count(std::uint64_t size, std::uint32_t block_size) noexcept {
        return static_cast<std::uint32_t>((size + block_size - 1) / block_size);
    }
    static std::size_t block_length(const object_state& o, std::uint32_t i) noexcept {
        const std::uint64_t start = std::uint64_t{i} * o.block_size;
        return static_cast<std::size_t>(std::min<std::uint64_t>(o.block_size, o.version.size - start));
    }

    // The identity a block frame carries: key, version and index, so a block never serves
    // another object, version or position.
    static std::vector<std::byte> block_key(std::span<const std::byte> key, const range_version& v,
                                            std::uint32_t index) {
        std::vector<std::byte> out;
        out.reserve(key.size() + v.validator.size() + 24);
        detail::put_bytes(out, std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
        detail::put_bytes(out, v.validator);
        detail::put_u64(out, v.size);
        detail::put_u32(out, index);
        return out;
    }

    // The size of block i's file: frame::overhead, block_key's size and the block's bytes.
    static std::uint64_t block_file_size(const object_state& o, std::uint32_t i) noexcept {
        return frame::overhead + (4 + o.key.size()) + (4 + o.version.validator.size()) + 8 + 4 + block_length(o, i);
    }

    // The memory tier's key of a block: the same identity, as a string.
    static std::string memory_key(std::span<const std::byte> key, const range_version& v, std::uint32_t index) {
        const auto id = block_key(key, v, index);
        return std::string(reinterpret_cast<const char*>(id.data()), id.size());
    }

    // The length of [offset, offset + length) cut at the object's end.
    static std::uint64_t clamped(const range_version& v, std::uint64_t offset, std::uint64_t length) noexcept {
        return offset < v.size ? std::min(length, v.size - offset) : 0;
    }

    // stream(), timed and counted.
    template <class Fetch, class Sink>
    result<std::uint64_t> observed(std::string_view key, const range_version& v, std::uint64_t offset,
                                   std::uint64_t length, Fetch& fetch, Sink& sink, std::span<std::byte> direct) {
        const auto started = std::chrono::steady_clock::now();
        auto outcome = stream(key, v, offset, length, fetch, sink, direct);
        m->read_latency.observe(std::chrono::steady_clock::now() - started);
        std::lock_guard lock(m->mutex);
        ++m->counters.reads;
        if (!outcome) ++m->counters.read_failures;
        return outcome;
    }

    // The range to `sink`, or, when `direct` is not empty, into `direct` (the range's bytes):
    // blocks wholly inside it are then read from the storage straight into it.
    template <class Fetch, class Sink>
    result<std::uint64_t> stream(std::string_view key, const range_version& v, std::uint64_t offset,
                                 std::uint64_t length, Fetch& fetch, Sink& sink, std::span<std::byte> direct) {
        if (key.size() > max_key_size || v.validator.size() > max_key_size)
            return fail(errc::invalid_argument, tier::none,
                        "key or validator longer than " + std::to_string(max_key_size) + " bytes");
        length = clamped(v, offset, length);
        if (length == 0) return 0;
        bool degraded = false;
        {
            std::lock_guard lock(m->mutex);
            if (!m->attached && m->clock.now() >= m->next_attach && !attach_locked())
                m->next_attach = m->clock.now() + attach_interval;
            if (!m->attached) {
                degraded = true;
                ++m->counters.degraded_reads;
            }
        }
        const auto k = as_bytes(key);
        const std::uint32_t bs = m->config.block_size;
        const std::uint64_t window = std::max<std::uint64_t>(1, m->config.max_request_bytes / bs);
        const std::uint64_t first = offset / bs;
        const std::uint64_t last = (offset + length - 1) / bs;  // inclusive
        std::vector<std::byte> joined;  // a window's pieces for the sink, when there are several
        for (std::uint64_t w = first; w <= last; w += window) {
            const auto lo = static_cast<std::uint32_t>(w);
            const auto hi = static_cast<std::uint32_t>(std::min<std::uint64_t>(last + 1, w + window));
            std::vector<detail::range_block_ptr> got;
            if (auto ok = degraded ? origin_window(v, lo, hi, fetch, got)
                                   : window_blocks(k, v, lo, hi, fetch, got, direct, offset);
                !ok)
                return unexpected(std::move(ok).error());
            std::span<const std::byte> single;
            std::size_t pieces = 0;
            joined.clear();
            for (std::uint32_t i = lo; i < hi; ++i) {
                if (!got[i - lo]) continue;  // read into `direct` in place
                const std::uint64_t start = std::uint64_t{i} * bs;
                auto data = got[i - lo]->data();
                const std::uint64_t from = std::max(offset, start) - start;
                const std::uint64_t to = std::min<std::uint64_t>(offset + length, start + data.size()) - start;
                const auto piece = data.subspan(static_cast<std::size_t>(from), static_cast<std::size_t>(to - from));
                if (!direct.empty()) {
                    std::memcpy(direct.data() + (start + from - offset), piece.data(), piece.size());
                } else if (++pieces == 1) {
                    single = piece;
                } else {
                    if (pieces == 2) joined.assign(single.begin(), single.end());
                    joined.insert(joined.end(), piece.begin(), piece.end());
                }
            }
            if (pieces != 0) sink(pieces == 1 ? single : std::span<const std::byte>(joined));
        }
        return length;
    }

    // Blocks [lo, hi) straight from the origin (the storage could not be opened), in one
    // request: got[0] holds all their bytes (the others null), nothing is cached.
    template <class Fetch>
    result<void> origin_window(const range_version& v, std::uint32_t lo, std::uint32_t hi, Fetch& fetch,
                               std::vector<detail::range_block_ptr>& got) {
        const std::uint32_t bs = m->config.block_size;
        const std::uint64_t start = std::uint64_t{lo} * bs;
        auto bytes = std::make_shared<detail::range_block>();
        bytes->frame.resize(static_cast<std::size_t>(std::min<std::uint64_t>(v.size, std::uint64_t{hi} * bs) - start));
        bytes->length = bytes->frame.size();
        bytes->framed = false;
        if (auto error = call_origin(fetch, start, bytes->frame)) return unexpected(std::move(*error));
        got.assign(hi - lo, nullptr);
        got[0] = std::move(bytes);
        return {};
    }

    // Blocks [lo, hi) of the object, each from memory, the storage, another read's fetch or
    // the origin (fetched in runs of contiguous missing blocks), into `got`; a block wholly
    // inside `direct` (the bytes from `offset` on) that the storage has is read into it
    // instead, its `got` left null.
    template <class Fetch>
    result<void> window_blocks(std::span<const std::byte> k, const range_version& v, std::uint32_t lo, std::uint32_t hi,
                               Fetch& fetch, std::vector<detail::range_block_ptr>& got, std::span<std::byte> direct,
                               std::uint64_t offset) {
        state& s = *m;
        got.assign(hi - lo, nullptr);
        std::vector<std::string> mkeys(hi - lo);
        std::uint64_t memory_hits = 0;
        for (std::uint32_t i = lo; i < hi; ++i) {
            mkeys[i - lo] = memory_key(k, v, i);
            if (s.memory) {
                if (auto hit = s.memory->get(mkeys[i - lo])) {
                    got[i - lo] = std::move(*hit);
                    ++memory_hits;
                }
            }
        }
        std::vector<std::uint32_t> mine;  // blocks this read fetches
        std::vector<std::pair<std::uint32_t, std::shared_ptr<flight>>> waits;
        const std::uint64_t h = hash_of(k);
        {
            std::lock_guard lock(s.mutex);
            s.counters.memory_hits += memory_hits;
            object_state& o = object_for_locked(h, k, v);
            for (std::uint32_t i = lo; i < hi; ++i) {
                if (got[i - lo]) continue;
                const auto dest = direct_part(o, i, direct, offset);
                if (o.held[i] && !dest.empty()) {
                    if (place_block_locked(h, o, i, dest)) {
                        ++s.counters.disk_hits;
                        if (s.memory) (void)s.memory->put(mkeys[i - lo], detail::unframed_block(dest));
                        continue;
                    }
                } else if (o.held[i]) {
                    got[i - lo] = load_block_locked(h, o, i);
                    if (got[i - lo]) {
                        ++s.counters.disk_hits;
                        if (s.memory) (void)s.memory->put(mkeys[i - lo], got[i - lo]);
                        continue;
                    }
                }
                ++s.counters.misses;
                auto [it, fresh] = s.flights.try_emplace(mkeys[i - lo]);
                if (fresh) {
                    it->second = std::make_shared<flight>();
                    mine.push_back(i);
                } else {
                    waits.emplace_back(i, it->second);
                }
            }
            flush_dirty_locked();
        }
        std::optional<failure> error;
        if (!mine.empty()) {
            try {
                error = fetch_runs(k, v, h, mine, fetch, got, mkeys, lo);
            } catch (...) {  // std::bad_alloc: readers waiting for these blocks must not wait forever
                abandon_flights(mine, mkeys, lo);
                throw;
            }
        }
        if (!waits.empty()) {
            std::unique_lock lock(s.mutex);
            for (auto& [i, f] : waits) {
                s.cv.wait(lock, [&f = f] { return f->done; });
                if (f->block) {
                    got[i - lo] = f->block;
                    ++s.counters.shared_fetches;
                } else if (!error) {
                    error = f->error;
                }
            }
        }
        if (error) return unexpected(std::move(*error));
        return {};
    }

    // Fetches the blocks in `mine` (ascending) in runs of contiguous ones, frames them,
    // stores them and publishes them to waiting readers. The first origin failure, if any.
    template <class Fetch>
    std::optional<failure> fetch_runs(std::span<const std::byte> k, const range_version& v, std::uint64_t h,
                                      const std::vector<std::uint32_t>& mine, Fetch& fetch,
                                      std::vector<detail::range_block_ptr>& got, const std::vector<std::string>& mkeys,
                                      std::uint32_t lo) {
        state& s = *m;
        const std::uint32_t bs = s.config.block_size;
        std::optional<failure> error;
        std::vector<std::byte> buffer;
        for (std::size_t a = 0; a < mine.size();) {
            std::size_t b = a + 1;
            while (b < mine.size() && mine[b] == mine[b - 1] + 1) ++b;
            const std::uint64_t start = std::uint64_t{mine[a]} * bs;
            const std::uint64_t end = std::min<std::uint64_t>(v.size, std::uint64_t{mine[b - 1] + 1} * bs);
            if (!error) {
                buffer.resize(static_cast<std::size_t>(end - start));
                error = call_origin(fetch, start, buffer);
            }
            std::vector<std::pair<std::uint32_t, detail::range_block_ptr>> framed;
            if (!error) {
                for (std::size_t j = a; j < b; ++j) {
                    const std::uint32_t i = mine[j];
                    const std::uint64_t at = std::uint64_t{i} * bs - start;
                    const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(bs, end - at - start));
                    auto block = std::make_shared<detail::range_block>();
                    const auto id = block_key(k, v, i);
                    std::span<const std::byte> data(buffer.data() + at, len);
                    // Uncompressed, so no zlib stream (the cache's are used under its lock only).
                    if (frame::encode(id, data, block_schema, 0, 0, block->frame,
                                      frame::limits{max_key_size * 2 + 64, std::size_t{64} << 20})) {
                        block->offset = frame::header_size + id.size();
                    } else {  // not within the validated limits: served, never stored
                        block->frame.assign(data.begin(), data.end());
                        block->framed = false;
                    }
                    block->length = len;
                    framed.emplace_back(i, std::move(block));
                }
            }
            std::lock_guard lock(s.mutex);
            for (auto& [i, block] : framed) {
                store_block_locked(h, k, v, i, block);
                got[i - lo] = block;
                if (s.memory) (void)s.memory->put(mkeys[i - lo], block);
            }
            for (std::size_t j = a; j < b; ++j) {
                const auto it = s.flights.find(mkeys[mine[j] - lo]);
                if (it == s.flights.end()) continue;
                it->second->done = true;
                it->second->block = got[mine[j] - lo];
                if (!it->second->block) it->second->error = error;
                s.flights.erase(it);
            }
            flush_dirty_locked();
            s.cv.notify_all();
            a = b;
        }
        return error;
    }

    // Completes, as failed, the flights of `mine` that fetch_runs did not complete.
    void abandon_flights(const std::vector<std::uint32_t>& mine, const std::vector<std::string>& mkeys,
                         std::uint32_t lo) {
        state& s = *m;
        std::lock_guard lock(s.mutex);
        for (const std::uint32_t i : mine) {
            const auto it = s.flights.find(mkeys[i - lo]);
            if (it == s.flights.end()) continue;
            it->second->done = true;
            it->second->error.emplace(errc::loader_failed, tier::loader, "the fetching read ran out of memory");
            s.flights.erase(it);
        }
        s.cv.notify_all();
    }

    template <class Fetch>
    std::optional<failure> call_origin(Fetch& fetch, std::uint64_t start, std::span<std::byte> out) {
        std::optional<failure> error;
        const std::string where =
            "origin fetch of [" + std::to_string(start) + ", " + std::to_string(start + out.size()) + ")";
        try {
            using returned = std::invoke_result_t<Fetch&, std::uint64_t, std::span<std::byte>>;
            if constexpr (std::is_void_v<returned>) {
                fetch(start, out);
            } else {
                auto r = fetch(start, out);
                if constexpr (std::is_same_v<returned, bool>) {
                    if (!r) error.emplace(errc::loader_failed, tier::loader, where + " failed");
                } else if (!r) {
                    error.emplace(errc::loader_failed, tier::loader, where + ": " + r.error().message());
                }
            }
        } catch (const std::bad_alloc&) {
            throw;
        } catch (const std::exception& e) {
            error.emplace(errc::loader_failed, tier::loader, where + " threw: " + e.what());
        } catch (...) {
            error.emplace(errc::loader_failed, tier::loader, where + " threw a non-standard exception");
        }
        std::lock_guard lock(m->mutex);
        ++m->counters.origin_requests;
        if (error)
            ++m->counters.origin_failures;
        else
            m->counters.origin_bytes += out.size();
        return error;
    }

    // The object's state for version v: made empty if absent; replaced (its old blocks
    // removed) if it holds another version or another key with the same hash.
    object_state& object_for_locked(std::uint64_t h, std::span<const std::byte> k, const range_version& v) {
        state& s = *m;
        auto it = s.objects.find(h);
        if (it != s.objects.end()) {
            object_state& o = it->second;
            if (std::ranges::equal(o.key, k) && o.version.validator == v.validator && o.version.size == v.size &&
                o.block_size == s.config.block_size)
                return o;
            ++s.counters.invalidations;
            drop_object_locked(h);
        }
        object_state fresh;
        fresh.key.assign(k.begin(), k.end());
        fresh.version = v;
        fresh.block_size = s.config.block_size;
        const std::uint32_t n = block_count(v.size, fresh.block_size);
        fresh.crc.assign(n, 0);
        fresh.held.assign(n, false);
        return s.objects.emplace(h, std::move(fresh)).first->second;
    }

    // Removes every block and the record of object h, from memory too.
    void drop_object_locked(std::uint64_t h) {
        state& s = *m;
        const auto it = s.objects.find(h);
        if (it == s.objects.end()) return;
        object_state& o = it->second;
        const std::string folder = folder_of(h);
        for (std::uint32_t i = 0; i < o.held.size(); ++i) {
            if (s.memory) (void)s.memory->erase(memory_key(o.key, o.version, i));
            if (!o.held[i]) continue;
            const block_id id{h, i};
            if (const auto idx = s.blocks.find(block_hash(id), id, std::equal_to<>{}); idx != block_index::npos)
                s.blocks.remove(idx);
            remove_blob_locked(block_name(folder, i));
        }
        remove_blob_locked(metadata_name(folder));
        s.objects.erase(it);
        s.dirty.erase(h);
    }

    void remove_blob_locked(const std::string& name) {
        if (m->config.read_only) return;
        if (auto removed = m->storage.remove(name); !removed && removed.error().code() != errc::miss)
            note_io_error(removed.error());
    }

    // Unsets block i of object h (its file gone or to be removed); drops an object left empty.
    void forget_block_locked(std::uint64_t h, object_state& o, std::uint32_t i) {
        state& s = *m;
        if (!o.held[i]) return;
        const block_id id{h, i};
        if (const auto idx = s.blocks.find(block_hash(id), id, std::equal_to<>{}); idx != block_index::npos) {
            o.stored_bytes -= s.blocks.at(idx).weight;
            s.blocks.remove(idx);
        }
        o.held[i] = false;
        o.crc[i] = 0;
        if (!o.verified.empty()) o.verified[i] = 0;
        --o.held_count;
        s.dirty.insert(h);
    }

    // Reads and verifies block i; null (the block unset, the damage counted and its file
    // quarantined or removed) if it cannot be served.
    detail::range_block_ptr load_block_locked(std::uint64_t h, object_state& o, std::uint32_t i) {
        state& s = *m;
        const std::string name = block_name(folder_of(h), i);
        auto bytes = s.storage.read(name);
        if (!bytes) {
            block_unreadable_locked(h, o, i, name, bytes.error());
            return nullptr;
        }
        auto block = std::make_shared<detail::range_block>();
        block->frame = std::move(*bytes);
        std::vector<std::byte> unused;
        auto view = frame::decode_view(block->frame, unused, s.zlib,
                                       frame::limits{max_key_size * 2 + 64, std::size_t{64} << 20});
        std::string problem;
        if (!view) {
            problem = view.error().context();
        } else if (view->head.schema_version != block_schema || view->head.compressed() ||
                   !std::ranges::equal(view->key, block_key(o.key, o.version, i))) {
            problem = "block file of another object, version or position";
        } else if (view->payload.size() != block_length(o, i)) {
            problem = "block of " + std::to_string(view->payload.size()) + " bytes, expected " +
                      std::to_string(block_length(o, i));
        } else if (detail::load_le<std::uint32_t>(block->frame.data() + block->frame.size() - 4) != o.crc[i]) {
            problem = "block CRC differs from the one its metadata recorded";
        }
        if (!problem.empty()) {
            block_damaged_locked(h, o, i, name, problem);
            return nullptr;
        }
        ++s.counters.blocks_verified;
        block->offset = static_cast<std::size_t>(view->payload.data() - block->frame.data());
        block->length = view->payload.size();
        touch_block_locked(h, i);
        return block;
    }

    // Block i could not be read: an I/O error leaves it held (the file may be fine; the
    // origin answers this time); a missing or unreadable file unsets it, counted.
    void block_unreadable_locked(std::uint64_t h, object_state& o, std::uint32_t i, const std::string& name,
                                 const failure& why) {
        state& s = *m;
        const errc code = why.code();
        if (code == errc::io_error || code == errc::permission_denied) {
            note_io_error(why);
            return;
        }
        ++s.counters.corruption_missing_range;
        if (code == errc::miss) {
            emit(event_kind::corrupted, name, &why);
        } else {
            quarantine_locked(name, "unreadable", why);
        }
        forget_block_locked(h, o, i);
    }

    // Block i's file failed its checks (`problem`): quarantined, the block unset, counted.
    void block_damaged_locked(std::uint64_t h, object_state& o, std::uint32_t i, const std::string& name,
                              const std::string& problem) {
        ++m->counters.corruption_missing_range;
        quarantine_locked(name, "block", failure(errc::corrupted, tier::disk, name + ": " + problem));
        forget_block_locked(h, o, i);
    }

    void touch_block_locked(std::uint64_t h, std::uint32_t i) {
        const block_id id{h, i};
        if (const auto idx = m->blocks.find(block_hash(id), id, std::equal_to<>{}); idx != block_index::npos)
            m->blocks.touch(idx);
    }

    // Where block i goes in `direct` (the range's bytes from `offset` on): empty unless the
    // block lies wholly inside it and the storage reads into caller's buffers.
    static std::span<std::byte> direct_part(const object_state& o, std::uint32_t i, std::span<std::byte> direct,
                                            std::uint64_t offset) noexcept {
        if constexpr (storage_reads_into<storage_type>) {
            const std::uint64_t start = std::uint64_t{i} * o.block_size;
            const std::size_t length = block_length(o, i);
            if (!direct.empty() && start >= offset && start - offset + length <= direct.size())
                return direct.subspan(static_cast<std::size_t>(start - offset), length);
        }
        return {};
    }

    // As load_block_locked, but the block's bytes are read straight into `dest` (its size
    // is the block's) and checked there: the frame's head must be the one store wrote for
    // this key, version, index and length, and the CRC-32 over head and bytes must match
    // the frame's and the record's. False (the block unset as load_block_locked does, `dest`
    // then unspecified) if it cannot be served.
    bool place_block_locked(std::uint64_t h, object_state& o, std::uint32_t i, std::span<std::byte> dest) {
        if constexpr (!storage_reads_into<storage_type>) {
            return false;  // not reached: direct_part() gives no room without read_into
        } else {
            state& s = *m;
            const std::string name = block_name(folder_of(h), i);
            const auto id = block_key(o.key, o.version, i);
            std::vector<std::byte> head(frame::header_size + id.size());
            std::array<std::byte, frame::checksum_size> tail{};
            const std::span<std::byte> parts[] = {head, dest, tail};
            std::uint64_t identity = 0;  // a hash of the file's identity, when it may be trusted
            auto size = read_identified_locked(name, parts, identity);
            const bool known = identity != 0 && !o.verified.empty() && o.verified[i] == identity;
            if (!size) {
                block_unreadable_locked(h, o, i, name, size.error());
                return false;
            }
            const std::size_t expected = head.size() + dest.size() + tail.size();
            const std::uint32_t crc = detail::load_le<std::uint32_t>(tail.data());
            std::string problem;
            if (*size != expected) {
                problem = "block file of " + std::to_string(*size) + " bytes, expected " + std::to_string(expected);
            } else if (!block_head_ok(head, id, dest.size())) {
                problem = "block file of another object, version, position or length";
            } else if (crc != o.crc[i]) {
                problem = "block CRC differs from the one its metadata recorded";
            } else if (known) {
                // checked before under this very identity (range_verify::once_per_file_change)
            } else if (const auto actual = detail::crc32_update(detail::crc32_update(0, head), dest); actual != crc) {
                problem =
                    "checksum mismatch (stored " + std::to_string(crc) + ", computed " + std::to_string(actual) + ")";
            } else {
                ++s.counters.blocks_verified;
                if (identity != 0) {
                    if (o.verified.empty()) o.verified.assign(o.held.size(), 0);
                    o.verified[i] = identity;
                }
            }
            if (!problem.empty()) {
                block_damaged_locked(h, o, i, name, problem);
                return false;
            }
            touch_block_locked(h, i);
            return true;
        }
    }

    // storage.read_into(name, parts); under range_verify::once_per_file_change with a storage
    // that reports the file's identity, `identity` set to a keyed hash of it (never 0), left
    // 0 while the file's ctime is within verify_settle of the clock's now.
    result<std::size_t> read_identified_locked(const std::string& name, std::span<const std::span<std::byte>> parts,
                                               std::uint64_t& identity) {
        state& s = *m;
        if constexpr (storage_reads_identified<storage_type>) {
            if (s.config.verify_reads == range_verify::once_per_file_change) {
                blob_identity id;
                auto size = s.storage.read_into(name, parts, id);
                const auto changed = std::chrono::system_clock::time_point(
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::nanoseconds(id.ctime_ns)));
                if (size && changed + verify_settle <= s.clock.now()) {
                    const std::uint64_t fields[] = {id.device, id.inode, id.size,
                                                    static_cast<std::uint64_t>(id.mtime_ns),
                                                    static_cast<std::uint64_t>(id.ctime_ns)};
                    identity = std::max<std::uint64_t>(
                        1, detail::siphash24(s.secret, std::as_bytes(std::span<const std::uint64_t>(fields))));
                }
                return size;
            }
        }
        return s.storage.read_into(name, parts);
    }

    // Whether a block frame's first bytes (header and key, as read) are those frame::encode
    // writes for an uncompressed block with key `id` and `length` bytes (FORMAT.md's layout;
    // the expiry is not looked at, as decode does not).
    static bool block_head_ok(std::span<const std::byte> head, std::span<const std::byte> id,
                              std::size_t length) noexcept {
        using detail::load_le;
        const std::byte* p = head.data();
        return std::equal(frame::magic.begin(), frame::magic.end(), p) &&
               load_le<std::uint16_t>(p + 4) == frame::current_format_version && load_le<std::uint16_t>(p + 6) == 0 &&
               load_le<std::uint32_t>(p + 8) == block_schema && load_le<std::uint32_t>(p + 12) == id.size() &&
               load_le<std::uint32_t>(p + 16) == length && load_le<std::uint32_t>(p + 20) == length &&
               std::ranges::equal(head.subspan(frame::header_size), id);
    }

    void quarantine_locked(const std::string& name, std::string_view reason, const failure& why) {
        state& s = *m;
        emit(event_kind::corrupted, name, &why);
        if (s.config.read_only) return;
        if (auto moved = s.storage.quarantine(name, reason, s.clock.now()); moved) {
            emit(event_kind::quarantined, name, &why);
        } else if (moved.error().code() != errc::miss) {
            note_io_error(moved.error());
            remove_blob_locked(name);
        }
    }

    // Stores a fetched block if the object still holds version v and has room; a block
    // that cannot be stored is still served.
    void store_block_locked(std::uint64_t h, std::span<const std::byte> k, const range_version& v, std::uint32_t i,
                            const detail::range_block_ptr& block) {
        state& s = *m;
        const auto it = s.objects.find(h);
        if (s.config.read_only || it == s.objects.end() || !std::ranges::equal(it->second.key, k) ||
            it->second.version.validator != v.validator || it->second.version.size != v.size || it->second.held[i] ||
            !block->framed) {
            ++s.counters.blocks_not_stored;
            return;
        }
        const std::size_t weight = block->frame.size();
        if (weight > s.config.byte_budget ||
            (s.config.max_object_bytes != 0 && it->second.stored_bytes + weight > s.config.max_object_bytes)) {
            ++s.counters.blocks_not_stored;
            return;
        }
        make_room_locked(weight);
        if (!write_locked(block_name(folder_of(h), i), block->frame)) {
            ++s.counters.blocks_not_stored;
            return;
        }
        // Eviction may have dropped the object when it held nothing else.
        const auto again = s.objects.find(h);
        object_state& o = again != s.objects.end() ? again->second : object_for_locked(h, k, v);
        o.held[i] = true;
        ++o.held_count;
        o.crc[i] = detail::load_le<std::uint32_t>(block->frame.data() + block->frame.size() - 4);
        if (!o.verified.empty()) o.verified[i] = 0;
        o.stored_bytes += weight;
        s.blocks.insert(block_hash({h, i}), block_id{h, i}, std::monostate{}, time_point::max(), weight);
        s.dirty.insert(h);
        ++s.counters.blocks_stored;
    }

    // Writes a blob; on a full disk evicts a share of the blocks and retries once (not within
    // the backoff after a retry that met a full disk again): detail::emergency_eviction.
    bool write_locked(const std::string& name, std::span<const std::byte> bytes) {
        state& s = *m;
        if (s.config.read_only) return false;
        auto written = s.emergency.write(
            name, s.clock, s.config.emergency_eviction_backoff, s.blocks.live(), s.config.emergency_eviction_fraction,
            "blocks", s.counters.disk_full_events, s.counters.emergency_evictions,
            [&] {
                auto out = s.storage.write(name, bytes);
                forget_evicted_locked();
                return out;
            },
            [&](std::size_t victims) {
                std::size_t evicted = 0;
                while (evicted < victims && s.blocks.live() != 0) {
                    evict_lru_locked();
                    ++evicted;
                }
                return evicted;
            },
            [&](event_kind kind, const std::string& text, const failure* cause) { emit(kind, text, cause); });
        if (!written && written.error().code() != errc::disk_full) note_io_error(written.error());
        return written.has_value();
    }

    // Whether the storage evicts blobs by itself and names them (segment_log::take_evicted).
    static constexpr bool storage_evicts_itself = requires(storage_type & st) {
        { st.take_evicted().names } -> std::convertible_to<std::vector<std::string>>;
        { st.take_evicted().complete } -> std::convertible_to<bool>;
    };

    // Follows the blobs such a storage let go: their blocks are no longer held (a name written
    // again since is then an orphan for cleanup()), a record that left is written again. Names
    // it could not keep are found by the next read (a missing block) or cleanup().
    void forget_evicted_locked() {
        if constexpr (storage_evicts_itself) {
            state& s = *m;
            for (const std::string& name : s.storage.take_evicted().names) {
                const auto parsed = parse_name(name);
                if (!parsed) continue;
                const auto it = s.objects.find(parsed->object);
                if (it == s.objects.end()) continue;
                if (!parsed->block) {
                    s.dirty.insert(parsed->object);
                } else if (*parsed->block < it->second.held.size() && it->second.held[*parsed->block]) {
                    forget_block_locked(parsed->object, it->second, *parsed->block);
                    ++s.counters.evictions;
                }
            }
        }
    }

    void evict_lru_locked() {
        state& s = *m;
        const std::uint32_t victim = s.blocks.lru();
        const block_id id = s.blocks.at(victim).data->key;
        const auto it = s.objects.find(id.object);
        ++s.counters.evictions;
        if (it == s.objects.end()) {
            s.blocks.remove(victim);
            return;
        }
        forget_block_locked(id.object, it->second, id.index);
        remove_blob_locked(block_name(folder_of(id.object), id.index));
    }

    void make_room_locked(std::size_t incoming) {
        state& s = *m;
        while (s.blocks.live() != 0 && s.blocks.bytes() + incoming > s.config.byte_budget) evict_lru_locked();
    }

    // The record of an object: key, version, block size, and per block held + frame CRC.
    static std::vector<std::byte> encode_record(const object_state& o) {
        std::vector<std::byte> payload;
        payload.reserve(o.version.validator.size() + 24 + 5 * o.held.size());
        detail::put_bytes(payload, o.version.validator);
        detail::put_u64(payload, o.version.size);
        detail::put_u32(payload, o.block_size);
        detail::put_u32(payload, static_cast<std::uint32_t>(o.held.size()));
        for (std::size_t i = 0; i < o.held.size(); ++i) {
            payload.push_back(std::byte{o.held[i] ? std::uint8_t{1} : std::uint8_t{0}});
            detail::put_u32(payload, o.crc[i]);
        }
        return payload;
    }

    static result<object_state> decode_record(std::span<const std::byte> bytes) {
        auto decoded = frame::decode(bytes, frame::limits{max_key_size, std::size_t{64} << 20});
        if (!decoded) return unexpected(std::move(decoded).error());
        auto bad = [](const std::string& why) { return fail(errc::corrupted, tier::disk, "range record: " + why); };
        if (decoded->head.schema_version != metadata_schema) return bad("not a range metadata record");
        object_state o;
        o.key = std::move(decoded->key);
        detail::range_reader r{decoded->payload};
        o.version.validator = r.take_string(max_key_size);
        o.version.size = r.take<std::uint64_t>();
        o.block_size = r.take<std::uint32_t>();
        const std::uint32_t n = r.take<std::uint32_t>();
        if (!r.ok || o.block_size == 0) return bad("truncated header");
        if (n != block_count(o.version.size, o.block_size) || r.in.size() != std::size_t{n} * 5)
            return bad("block table of " + std::to_string(n) + " entries does not match the object size");
        o.held.assign(n, false);
        o.crc.assign(n, 0);
        for (std::uint32_t i = 0; i < n; ++i) {
            const auto flag = r.take<std::uint8_t>();
            o.crc[i] = r.take<std::uint32_t>();
            if (flag > 1) return bad("block flag " + std::to_string(flag) + " is neither 0 nor 1");
            o.held[i] = flag == 1;
        }
        return o;
    }

    // Rewrites the records of the objects changed since the last call; an object left with
    // no block loses its record. A record that fails to write stays dirty for the next call.
    void flush_dirty_locked() {
        state& s = *m;
        if (s.config.read_only) return;
        std::vector<std::uint64_t> pending(s.dirty.begin(), s.dirty.end());
        for (const std::uint64_t h : pending) {
            const auto it = s.objects.find(h);
            if (it == s.objects.end()) {
                s.dirty.erase(h);
                continue;
            }
            if (it->second.held_count == 0) {
                remove_blob_locked(metadata_name(folder_of(h)));
                s.objects.erase(it);
                s.dirty.erase(h);
                continue;
            }
            std::vector<std::byte> blob;
            if (!frame::encode(it->second.key, encode_record(it->second), metadata_schema, 0, 0, blob, s.zlib,
                               frame::limits{max_key_size, std::size_t{64} << 20}))
                continue;
            if (write_locked(metadata_name(folder_of(h)), blob)) s.dirty.erase(h);
        }
    }

    // Reads (or makes) the hash secret and verifies the directory (reconcile_locked's
    // report); then the storage is in use. Event storage_attached unless at open.
    result<range_cleanup_report> attach_locked() {
        state& s = *m;
        bool replaced = false;
        auto secret = detail::load_or_make_secret(s.storage, secret_name, s.clock.now(), replaced, !s.config.read_only);
        if (!secret) return unexpected(std::move(secret).error());
        s.secret = *secret;
        if (replaced) {
            const failure why(errc::corrupted, tier::disk, "the range cache's secret was damaged; starting afresh");
            emit(event_kind::corrupted, secret_name, &why);
        }
        auto report = reconcile_locked(false);
        if (!report) return report;
        s.attached = true;
        if (s.detached_at_open) emit(event_kind::storage_attached, "range cache: the storage is in use", nullptr);
        return report;
    }

    // open() and cleanup(): brings the index, the records and the files into agreement.
    result<range_cleanup_report> reconcile_locked(bool deep) {
        state& s = *m;
        range_cleanup_report report;
        flush_dirty_locked();
        auto listing = clean_and_list_locked(report);
        if (!listing) {
            note_io_error(listing.error());
            return unexpected(std::move(listing).error());
        }
        std::sort(listing->begin(), listing->end(),
                  [](const blob_info& a, const blob_info& b) { return a.modified < b.modified; });
        std::unordered_map<std::uint64_t, std::map<std::uint32_t, const blob_info*>> files;  // block files per object
        std::vector<std::uint64_t> records;
        std::unordered_set<std::uint64_t> unreadable;
        auto orphan = [&](const std::string& name) {
            if (auto removed = s.config.read_only ? result<void>() : s.storage.remove(name); removed)
                ++report.orphaned_files_cleaned;
            else if (removed.error().code() != errc::miss)
                ++report.io_errors;
        };
        for (const blob_info& blob : *listing) {
            if (blob.name == secret_name) continue;
            const auto parsed = parse_name(blob.name);
            if (!parsed) {
                orphan(blob.name);
            } else if (parsed->block) {
                files[parsed->object][*parsed->block] = &blob;
            } else {
                records.push_back(parsed->object);
            }
        }
        // Whether block i of object h has a file of the right size; if not, the reference
        // is counted as fixed, and a file of the wrong size (torn, truncated) removed here
        // rather than counted again as an orphan.
        auto block_file_ok = [&](std::uint64_t h, const object_state& o, std::uint32_t i) {
            const blob_info* file = nullptr;
            if (const auto f = files.find(h); f != files.end())
                if (const auto b = f->second.find(i); b != f->second.end()) file = b->second;
            if (file != nullptr && file->size == block_file_size(o, i)) return true;
            ++report.inconsistencies_fixed;
            ++s.counters.inconsistency_fixed;
            if (file != nullptr) {
                remove_blob_locked(file->name);
                files[h].erase(i);
            }
            return false;
        };
        // Records: adopt those the index lacks (at open, all), drop damaged ones.
        for (const std::uint64_t h : records) {
            ++report.objects_checked;
            const std::string name = metadata_name(folder_of(h));
            auto bytes = s.storage.read(name);
            if (!bytes && bytes.error().code() == errc::miss) continue;
            if (!bytes && (bytes.error().code() == errc::io_error || bytes.error().code() == errc::permission_denied)) {
                note_io_error(bytes.error());
                ++report.io_errors;
                unreadable.insert(h);  // its blocks are no orphans: the record may read fine next time
                continue;
            }
            result<object_state> record = bytes ? decode_record(*bytes) : unexpected(std::move(bytes).error());
            if (record && (hash_of(record->key) != h || record->key.size() > max_key_size))
                record = fail(errc::corrupted, tier::disk, "range record: key does not hash to its folder");
            if (!record) {
                ++report.corrupt_metadata;
                ++s.counters.corruption_metadata;
                quarantine_locked(name, "metadata", record.error());
                if (const auto it = s.objects.find(h); it != s.objects.end()) {
                    for (std::uint32_t i = 0; i < it->second.held.size(); ++i) forget_block_locked(h, it->second, i);
                    s.objects.erase(it);
                    s.dirty.erase(h);
                }
                continue;
            }
            if (!s.objects.contains(h)) {
                record->stored_bytes = 0;
                record->held_count = 0;
                std::vector<bool> held = std::move(record->held);
                record->held.assign(held.size(), false);
                object_state& o = s.objects.emplace(h, std::move(*record)).first->second;
                for (std::uint32_t i = 0; i < held.size(); ++i) {
                    if (!held[i]) continue;
                    if (!block_file_ok(h, o, i)) {
                        s.dirty.insert(h);
                        continue;
                    }
                    const blob_info* file = files[h][i];
                    o.held[i] = true;
                    ++o.held_count;
                    o.stored_bytes += file->size;
                    s.blocks.insert(block_hash({h, i}), block_id{h, i}, std::monostate{}, time_point::max(),
                                    static_cast<std::size_t>(file->size));
                }
                if (o.held_count == 0) s.dirty.insert(h);
            }
        }
        // Objects in the index: a record on disk (rewritten if it went), and a file for every held block.
        const std::unordered_set<std::uint64_t> recorded(records.begin(), records.end());
        for (auto& [h, o] : s.objects) {
            if (!recorded.contains(h)) {
                s.dirty.insert(h);
                ++report.objects_checked;
                ++report.records_restored;
            }
            for (std::uint32_t i = 0; i < o.held.size(); ++i) {
                if (!o.held[i]) continue;
                ++report.blocks_checked;
                if (!block_file_ok(h, o, i)) {
                    forget_block_locked(h, o, i);
                } else if (deep && !load_block_locked(h, o, i)) {
                    ++report.damaged_blocks;
                }
            }
        }
        // Block files no record references.
        for (const auto& [h, blocks] : files) {
            if (unreadable.contains(h)) continue;
            const auto it = s.objects.find(h);
            for (const auto& [i, file] : blocks)
                if (it == s.objects.end() || i >= it->second.held.size() || !it->second.held[i]) orphan(file->name);
        }
        for (const auto& [h, o] : s.objects)
            if (o.held_count == 0) ++report.objects_removed;
        flush_dirty_locked();
        make_room_locked(0);
        flush_dirty_locked();
        s.counters.partial_write_cleanup += report.temp_files_cleaned;
        s.counters.orphaned_files_cleaned += report.orphaned_files_cleaned;
        emit(event_kind::scrub_done,
             "range cache: " + std::to_string(report.objects_checked) + " records checked, " +
                 std::to_string(report.inconsistencies_fixed) + " references fixed, " +
                 std::to_string(report.orphaned_files_cleaned) + " orphans and " +
                 std::to_string(report.temp_files_cleaned) + " temp files removed",
             nullptr);
        return report;
    }

    // The storage's clean() (not with read_only), its counts into `report`, then its listing:
    // from the same walk where the storage offers it (storage_cleans_listing).
    result<std::vector<blob_info>> clean_and_list_locked(range_cleanup_report& report) {
        state& s = *m;
        std::vector<blob_info> listing;
        if (!s.config.read_only) {
            const clean_options options{s.clock.now(), s.config.quarantine_max_age};
            result<clean_report> cleaned;
            if constexpr (storage_cleans_listing<storage_type>)
                cleaned = s.storage.clean(options, listing);
            else
                cleaned = s.storage.clean(options);
            if (!cleaned) return unexpected(std::move(cleaned).error());
            report.temp_files_cleaned = cleaned->temp_files_removed;
            report.orphaned_files_cleaned += cleaned->foreign_removed;
            report.quarantine_purged = cleaned->quarantine_purged;
            if constexpr (storage_cleans_listing<storage_type>) return listing;
        }
        return s.storage.list();
    }

    range_object_info info_of(std::uint64_t h, const object_state& o) const {
        range_object_info info;
        info.key.assign(reinterpret_cast<const char*>(o.key.data()), o.key.size());
        info.version = o.version;
        info.block_size = o.block_size;
        for (std::uint32_t i = 0; i < o.held.size(); ++i) {
            if (!o.held[i]) continue;
            info.blocks.push_back(i);
            info.checksums.push_back(o.crc[i]);
        }
        info.stored_bytes = o.stored_bytes;
        info.folder = folder_of(h);
        return info;
    }

    void note_io_error(const failure& why) {
        ++m->counters.io_errors;
        emit(event_kind::io_error, why.context(), &why);
    }

    void emit(event_kind kind, std::string_view detail, const failure* cause) noexcept {
        m->listener.on_event(event{kind, tier::disk, detail, cause});
    }

    std::unique_ptr<state> m;
};

}  // namespace tierguard
