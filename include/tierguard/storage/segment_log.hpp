#pragma once

#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/crc32.hpp>
#include <tierguard/detail/mapped_allocator.hpp>
#include <tierguard/detail/os_error.hpp>
#include <tierguard/detail/posix_fs.hpp>
#include <tierguard/detail/segment_format.hpp>
#include <tierguard/detail/segment_index.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/hash.hpp>
#include <tierguard/result.hpp>
#include <tierguard/storage/concept.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

namespace tierguard::storage {

/// Counters and sizes of a segment_log; a snapshot.
struct segment_log_stats {
    std::size_t segments = 0;               ///< segment files now
    std::size_t entries = 0;                ///< blobs in the index
    std::uint64_t disk_bytes = 0;           ///< bytes in segment files (buffered ones included)
    std::uint64_t buffered_bytes = 0;       ///< bytes appended but not yet written to the file
    std::size_t index_bytes = 0;            ///< memory of the index
    std::uint64_t segments_evicted = 0;     ///< whole segments dropped to make room, oldest first
    std::uint64_t entries_evicted = 0;      ///< blobs that left with their segment
    std::uint64_t entries_reinserted = 0;   ///< blobs carried into the newest segment instead
    std::uint64_t disk_full_evictions = 0;  ///< segments evicted because an append met ENOSPC
    std::uint64_t frames_recovered = 0;     ///< intact records replayed at open
    std::uint64_t bad_frames = 0;           ///< records failing their CRC (at open, scrub or read)
    std::uint64_t damaged_regions = 0;      ///< stretches with no trustworthy record header, skipped
    std::uint64_t entries_dropped = 0;      ///< blobs dropped for damage: their record's, or a later unreadable one
    std::uint64_t torn_tails = 0;           ///< tails of writes a crash or an error cut short, ignored
    std::uint64_t bad_segments = 0;         ///< segments with an unreadable header, quarantined whole
    std::uint64_t lost_segments = 0;        ///< places segments were found missing at open (a gap, the newest ones)
};

/// Names of blobs that left a segment_log by themselves; see segment_log::take_evicted().
struct evicted_names {
    std::vector<std::string> names;  ///< in the order they left; a name may have been written again since
    bool complete = true;            ///< false: more left than these names (see take_evicted)
};

/// What segment_log::scrub() checked and did.
struct segment_scrub_report {
    std::uint64_t segments_checked = 0;
    std::uint64_t frames_checked = 0;    ///< records read and verified
    std::uint64_t frames_skipped = 0;    ///< damaged records and unreadable stretches
    std::uint64_t entries_dropped = 0;   ///< index entries removed because of damage
    std::uint64_t segments_removed = 0;  ///< oldest segments holding no live blob, deleted
    std::uint64_t bytes_reclaimed = 0;   ///< their bytes
};

/// Named byte blobs in append-only segment files: a storage for many small blobs at a
/// high rate (the disk tier's alternative to posix_directory, chosen by one template
/// argument: `using storage = tierguard::storage::segment_log;` in the policies).
///
/// Layout: <root>/<16 hex digits>.seg, one file per segment, each at most
/// config::segment_size bytes: a segment header, then records (docs/FORMAT.md, "Segment
/// files"). A write appends a record (name, blob, two CRC-32s); a remove appends a
/// tombstone. An in-memory index maps a 64-bit hash of the name to (segment, offset,
/// size) in 16-byte slots (at most 30 bytes per entry with the table's slack); names
/// whose hashes collide are told apart by the names stored in the records. open()
/// rebuilds the index by scanning every segment in order: a later record or tombstone
/// wins, so overwrites and removes survive a restart.
///
/// Refinement of storage_policy (what differs from posix_directory):
///  - Blobs vanish without remove(): when a new segment would pass config::byte_budget,
///    the oldest segment is deleted whole (FIFO), taking its blobs along, except blobs
///    read since they were written (config::reinsert_read), which are copied into the new
///    segment (up to config::max_reinsert_fraction of it).
///    take_evicted() names the blobs that left so (and those damage or a failed sync
///    dropped), so that the disk tier's index and counts follow the storage. The byte
///    budget holds whenever no call is running: a roll makes the new segment, writes the
///    carried copies to it (synced as durability says) and only then deletes the oldest,
///    so that a crash never loses them; in between, the files exceed the budget by the new
///    segment's header and the copies. open() finishes a roll a crash interrupted. A write
///    that meets ENOSPC evicts the oldest segment and retries once; with no older segment,
///    it ends the active one and retries in a new one (evicting the old one if even the
///    new header finds no room), so writing goes on.
///  - config::pinned names (the disk tier's hash secret) are not in the log: each is kept
///    whole in two side files, <root>/pin-<hex name>.0 and .1, replaced through a temp
///    file and a rename, read from either; no segment damage, eviction or full disk takes
///    them. A directory that kept them in the log has them copied out at open.
///  - Names are flat keys: "a" and "a/b" may both exist (no folders, so none of the
///    file system's blob/folder conflicts). The naming rules are the same.
///  - Memory: the index, plus (config::keep_active_in_memory) a copy of the segment being
///    filled, which serves reads of it; scrub() still reads every segment from its file.
///  - Durability: with durability::none, appends collect in a buffer of
///    config::write_buffer bytes, written to the file when full, at flush(), when a
///    segment fills, and on destruction; a crash loses the buffered tail (puts and removes
///    alike, so a removed blob may come back with its older content, as a power loss may
///    do to posix_directory). With data and full, each write and remove is written and
///    synced (fdatasync / fsync) before it returns; full also syncs the folder when a
///    segment file is made or deleted. A write or remove whose sync fails may have left
///    its record in the file: its segment takes no more appends, its name reads as a miss
///    and a remove of it appends a tombstone (never errc::miss), flush() and close()
///    append tombstones for such names; a restart finds the last acknowledged value or
///    a miss, never an older or removed one.
///  - Damage: a record whose CRC fails costs only that blob (read: errc::corrupted;
///    open and scrub: dropped and counted). A record or segment header that one changed
///    byte makes pass its CRCs is rebuilt to learn its name and costs only that blob, so
///    a single flipped byte costs at most one entry. A stretch no such repair explains
///    is skipped up to the next intact record; since it may have held a remove or an
///    overwrite of any name, every blob recorded before it is dropped too (never an older
///    value). A tail no intact record follows (a crash's torn write) ends the segment's
///    valid part and is counted. A segment whose header is unreadable is moved to the
///    quarantine folder whole. A lost segment (a sequence missing between the segments
///    found, or a newest one below the sequence <root>/newest-segment records) drops
///    every blob recorded before it, at every open while those remain (docs/FORMAT.md).
///  - quarantine() copies the blob into <root>/quarantine/ (named as posix_directory
///    names it) and appends a tombstone; clean() purges old quarantine files and removes
///    temp and foreign files in the root. Quarantine files are outside the byte budget.
///  - list() reads every segment (O(bytes stored)); modified is the segment's creation
///    time plus one nanosecond per byte of offset, so that sorting by it gives log order.
/// Same as posix_directory: the root is made 0700 (files 0600), refused if it is a link,
/// not ours or writable by others; an exclusive flock on <root>/.lock (errc::locked);
/// no link is followed; OS errors mapped by detail::os_failure. Thread-safe (one mutex);
/// nothing throws for a storage failure (only bad_alloc). A moved-from segment_log may
/// only be destroyed or assigned to.
class segment_log {
public:
    struct config {
        /// The cache's directory; made (0700, with missing parents) if absent.
        std::filesystem::path root;
        /// How far a write goes before it returns (see the class comment).
        durability sync = durability::data;
        /// Largest blob write() stores and read() returns.
        std::size_t max_blob_size = std::size_t{4} << 20;
        /// Bytes of one segment file, 4 KiB to 128 MiB.
        std::uint64_t segment_size = std::uint64_t{16} << 20;
        /// Bytes of segment files kept; at least two segments' worth, at most 32767 segments.
        std::uint64_t byte_budget = std::uint64_t{1} << 30;
        /// Appends collected before a write to the file (durability::none only).
        std::size_t write_buffer = std::size_t{64} << 10;
        /// Keep a copy of the segment being filled in memory (up to segment_size bytes),
        /// so that reads of recent blobs, and the check a put makes for an older blob of
        /// its name, need no system call. Off: only the unwritten appends stay in memory.
        bool keep_active_in_memory = true;
        /// Carry blobs read since they were written into the new segment when theirs is evicted.
        bool reinsert_read = true;
        /// Share of a segment that carried blobs may fill, 0 to 0.9.
        double max_reinsert_fraction = 0.5;
        /// Names kept outside the log in two side files each (at most 100 bytes): the disk
        /// tier's hash secret must outlive every segment, or a restart orphans every entry.
        std::vector<std::string> pinned{"tierguard-meta"};
    };

    /// Checks a configuration without touching the disk.
    [[nodiscard]] static result<void> validate(const config& cfg) {
        auto bad = [](std::string what) { return fail(errc::invalid_argument, tier::disk, "segment_log: " + what); };
        if (cfg.root.empty()) return bad("config.root is empty; it must name the cache directory");
        if (cfg.max_blob_size == 0) return bad("config.max_blob_size is 0; it must be at least 1 byte");
        if (cfg.segment_size < 4096 || cfg.segment_size > max_segment_size)
            return bad("config.segment_size is " + std::to_string(cfg.segment_size) +
                       "; it must be 4096 to 134217728 bytes");
        if (cfg.byte_budget / cfg.segment_size < 2)
            return bad("config.byte_budget (" + std::to_string(cfg.byte_budget) +
                       ") must hold at least two segments of config.segment_size");
        if (cfg.byte_budget / cfg.segment_size >= detail::segment::location::max_slots)
            return bad("config.byte_budget / config.segment_size exceeds 32767 segments");
        for (const std::string& name : cfg.pinned) {
            if (name.empty() || name.size() > max_pinned_name || !detail::check_blob_name("open", name, tier::disk))
                return bad("config.pinned name '" + name + "' is not a blob name of at most " +
                           std::to_string(max_pinned_name) + " bytes");
        }
        if (!(cfg.max_reinsert_fraction >= 0.0 && cfg.max_reinsert_fraction <= 0.9))
            return bad("config.max_reinsert_fraction is " + std::to_string(cfg.max_reinsert_fraction) +
                       "; it must be in [0, 0.9]");
        return {};
    }

    /// Opens (making it if needed) and locks `cfg.root`, then rebuilds the index from the
    /// segments (see the class comment). Errors: as posix_directory::open, and
    /// errc::invalid_argument for a bad config. Damage in the segments is counted in
    /// stats(), never an error.
    [[nodiscard]] static result<segment_log> open(config cfg) {
        namespace px = detail::posix;
        if (auto ok = validate(cfg); !ok) return unexpected(std::move(ok).error());
        auto root = px::absolute_root(cfg.root);
        if (!root) return unexpected(std::move(root).error());
        cfg.root = std::move(*root);
        auto locked = px::open_locked_root(cfg.root, "segment_log");
        if (!locked) return unexpected(std::move(locked).error());
        auto s = std::make_unique<state>(std::move(cfg), std::move(locked->root), std::move(locked->lock));
        if (auto ok = s->recover(); !ok) return unexpected(std::move(ok).error());
        return segment_log(std::move(s));
    }

    segment_log(segment_log&&) noexcept = default;
    segment_log& operator=(segment_log&& other) noexcept {
        if (this != &other) {
            close();
            m = std::move(other.m);
        }
        return *this;
    }
    segment_log(const segment_log&) = delete;
    segment_log& operator=(const segment_log&) = delete;
    /// Writes out the buffer (best effort) and releases the lock.
    ~segment_log() { close(); }

    /// The whole blob. errc::miss if absent (or evicted); errc::corrupted if its record
    /// fails its CRC; errc::too_large for a blob over max_blob_size.
    [[nodiscard]] result<std::vector<std::byte>> read(std::string_view name) const { return read_marking(name, true); }

    /// As read(), into `parts` (see storage_reads_into): the record is read and checked
    /// whole, as by read(), then its blob copied into the parts; errc::too_large, the parts
    /// untouched, for a blob longer than they are together.
    [[nodiscard]] result<std::size_t> read_into(std::string_view name,
                                                std::span<const std::span<std::byte>> parts) const {
        auto bytes = read(name);
        if (!bytes) return unexpected(std::move(bytes).error());
        return detail::scatter_blob(*bytes, parts, name);
    }

    /// As read(), but the blob is not marked as read, so config::reinsert_read does not
    /// carry it: for passes that read every blob to verify it (the disk tier's scrub).
    [[nodiscard]] result<std::vector<std::byte>> peek(std::string_view name) const { return read_marking(name, false); }

    /// As read(), but no CRC of the record is computed: its magic, flags, name and lengths
    /// are compared with the name asked for and the index's blob size (a record that differs
    /// in any of them is parsed and its head CRC checked, as by read()). For a caller whose
    /// blob carries a checksum over all of its bytes and checks it (the disk tier's frame):
    /// one CRC per read, not two or three. A damaged blob is then returned as read, unnoticed
    /// and uncounted here: on a failed check of its own the caller must read() it again,
    /// which finds, counts and reports the damage. A flip in one of the record's two CRC
    /// fields alone (its blob and head intact) is found by read(), scrub() or the next open.
    [[nodiscard]] result<std::vector<std::byte>> read_unverified(std::string_view name) const {
        return read_marking(name, true, false);
    }

    /// As read_unverified(), into `out` (its capacity reused: no allocation once it is large
    /// enough), for a caller that builds `name` itself as a valid blob name: the name is not
    /// checked, as a read opens no file by name and write() refuses invalid names (such a
    /// name reads as errc::miss). Returns zlib's CRC-32 of the blob, computed as it is copied
    /// (one pass over its bytes), for the caller's own check.
    [[nodiscard]] result<std::uint32_t> read_unverified_into(std::string_view name, std::vector<std::byte>& out) const {
        std::lock_guard lock(m->mutex);
        std::uint32_t crc = 0;
        if (auto ok = m->read_into(name, true, false, out, &crc); !ok) return unexpected(std::move(ok).error());
        return crc;
    }

    /// Appends `bytes` under `name`, replacing any previous blob (see the class comment for
    /// when it reaches the disk). errc::too_large past max_blob_size or a segment's room.
    result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        if (auto ok = detail::check_blob_name("write", name, tier::disk); !ok) return ok;
        if (bytes.size() > m->cfg.max_blob_size ||
            detail::segment::record_size(name.size(), bytes.size()) + detail::segment::segment_header_size >
                m->cfg.segment_size)
            return fail(errc::too_large, tier::disk,
                        "write " + std::string(name) + ": blob of " + std::to_string(bytes.size()) +
                            " bytes exceeds max_blob_size (" + std::to_string(m->cfg.max_blob_size) +
                            ") or a segment's room");
        std::lock_guard lock(m->mutex);
        return m->put(name, bytes);
    }

    /// Appends a tombstone for `name`; errc::miss if there was no blob.
    result<void> remove(std::string_view name) {
        if (auto ok = detail::check_blob_name("remove", name, tier::disk); !ok) return ok;
        std::lock_guard lock(m->mutex);
        return m->remove(name);
    }

    /// Every blob, in log order (oldest first). Reads every segment.
    [[nodiscard]] result<std::vector<blob_info>> list() const {
        std::lock_guard lock(m->mutex);
        return m->list();
    }

    /// Copies the blob (as stored, damaged or not) to <root>/quarantine/ under
    /// detail::quarantine_name(name, reason, now), then removes it. errc::miss if absent.
    result<void> quarantine(std::string_view name, std::string_view reason, std::chrono::system_clock::time_point now) {
        if (auto ok = detail::check_blob_name("quarantine", name, tier::disk); !ok) return ok;
        std::lock_guard lock(m->mutex);
        return m->quarantine(name, reason, now);
    }

    /// Removes temp files and foreign files (links, FIFOs, files with names this storage
    /// never makes) from the root and the quarantine folder, and quarantined files older
    /// than options.now - options.quarantine_max_age. Segment files and folders stay.
    result<clean_report> clean(const clean_options& options) {
        std::lock_guard lock(m->mutex);
        return m->clean(options);
    }

    /// Writes the buffered appends to the segment file (synced unless durability::none).
    result<void> flush() {
        std::lock_guard lock(m->mutex);
        if (auto ok = m->flush(true); !ok) return ok;
        return m->settle_doubtful();
    }

    /// Re-reads and verifies every segment: damaged records leave the index (with the
    /// blobs damage hid, see the class comment); the oldest segments that hold no live
    /// blob are deleted. Fails only if a segment cannot be read.
    result<segment_scrub_report> scrub() {
        std::lock_guard lock(m->mutex);
        return m->scrub();
    }

    [[nodiscard]] segment_log_stats stats() const {
        std::lock_guard lock(m->mutex);
        return m->snapshot();
    }

    /// Blobs in the log's index (pinned blobs aside) and the sum of their sizes: O(1).
    struct blob_totals {
        std::size_t count = 0;
        std::uint64_t bytes = 0;
    };
    [[nodiscard]] blob_totals held_blobs() const {
        std::lock_guard lock(m->mutex);
        return {m->index.size(), m->index.blob_bytes()};
    }

    /// Whether a blob is held under `name`, from the index (a record header is read only
    /// when another name shares its hash tag); read() may still fail on damage.
    [[nodiscard]] bool contains(std::string_view name) const {
        if (!detail::check_blob_name("contains", name, tier::disk)) return false;
        std::lock_guard lock(m->mutex);
        return m->pins.contains(name) || m->find(name, state::hash_of(name)) != hash_index::npos;
    }

    /// The names of the blobs that left the index other than by a write or remove of their
    /// name that succeeded, since the last call (open() starts empty): evicted with their
    /// segment, dropped for damage (by scrub()), or dropped by a write or remove whose sync
    /// failed (see the class comment); then forgets them. complete is false when more left
    /// than max_evicted_names, or some left unnamed (an unreadable oldest segment, a damaged
    /// stretch): list() then tells what is held, and the names stop being kept (a caller
    /// that never asks holds at most max_evicted_names). O(1) when nothing left; thread-safe.
    [[nodiscard]] evicted_names take_evicted() {
        std::lock_guard lock(m->mutex);
        return std::exchange(m->evicted, evicted_names{});
    }

    /// The most names take_evicted() keeps between two calls.
    static constexpr std::size_t max_evicted_names = 65536;

    /// Files in the quarantine folder now (0 if it cannot be read).
    [[nodiscard]] std::size_t quarantined() const {
        std::lock_guard lock(m->mutex);
        return m->quarantined();
    }

    /// True for a file name segment_log keeps in its root: a segment file, a side file of a
    /// pinned blob or the newest-segment marker (docs/FORMAT.md), so that a tool listing the
    /// root can tell them from foreign files without opening the log.
    [[nodiscard]] static bool owns_file(std::string_view file) noexcept {
        return state::parse_file_name(file).has_value() || state::is_pin_file(file) || file == newest_file;
    }

    /// The root as opened: absolute and normalized.
    [[nodiscard]] const std::filesystem::path& root() const noexcept { return m->cfg.root; }
    [[nodiscard]] const config& settings() const noexcept { return m->cfg; }

private:
    [[nodiscard]] result<std::vector<std::byte>> read_marking(std::string_view name, bool mark,
                                                              bool verify = true) const {
        if (auto ok = detail::check_blob_name("read", name, tier::disk); !ok) return unexpected(std::move(ok).error());
        std::lock_guard lock(m->mutex);
        return m->read(name, mark, verify);
    }

    static constexpr std::uint64_t max_segment_size = std::uint64_t{128} << 20;
    static constexpr std::string_view segment_suffix = ".seg";
    static constexpr std::string_view pin_prefix = "pin-";
    static constexpr std::size_t max_pinned_name = 100;  // its file name: 4 + 2 * 100 + 2 bytes
    static constexpr std::string_view newest_file = "newest-segment";

    using location = detail::segment::location;
    using hash_index = detail::segment::hash_index;

    struct segment {
        std::uint64_t sequence = 0;
        detail::posix::unique_fd fd;
        std::uint64_t size = 0;  // bytes appended, buffered ones included
        std::int64_t created_ns = 0;
        std::size_t live = 0;  // index entries pointing here
    };

    enum class match : unsigned char { same, other, unreadable };

    struct state {
        state(config c, detail::posix::unique_fd r, detail::posix::unique_fd l)
            : cfg(std::move(c)),
              root(std::move(r)),
              lock(std::move(l)),
              max_segments(static_cast<std::size_t>(cfg.byte_budget / cfg.segment_size)),
              slots(max_segments + 1) {}  // a roll makes the new segment before the oldest goes

        config cfg;
        detail::posix::unique_fd root;
        detail::posix::unique_fd lock;
        std::size_t max_segments;
        std::mutex mutex;
        std::vector<std::optional<segment>> slots;  // by the slot number the index keeps
        std::deque<std::uint32_t> order;            // slots oldest first; back() is appended to
        std::uint64_t next_sequence = 1;
        // The active segment's bytes from tail_start on; the file holds them up to `flushed_to`.
        // Without keep_active_in_memory, tail_start == flushed_to after every write.
        std::vector<std::byte> tail;
        std::uint64_t tail_start = 0;
        std::uint64_t flushed_to = 0;
        hash_index index;
        // The active segment met a failed sync: what its pages hold is unknown (a later
        // sync may report success without writing them), so it takes no more appends.
        bool sealed = false;
        // Names whose last record in the log may differ from the index: a write or remove
        // that failed after its record reached the file. They read as a miss; a remove,
        // a write, or close() appends the record that settles them.
        std::unordered_set<std::string> doubtful;
        // Pinned blobs, kept in two side files each (pin-<hex name>.0 and .1), not in the log.
        std::map<std::string, std::vector<std::byte>, std::less<>> pins;
        // Bit (n % 64) set for each pinned name of n bytes: most reads skip the pins' lookup.
        std::uint64_t pin_lengths = length_bits(cfg.pinned);
        segment_log_stats counters;
        std::vector<std::byte> scratch;
        evicted_names evicted;  // see take_evicted()

        // ---- helpers ------------------------------------------------------------------

        [[nodiscard]] static std::uint64_t length_bits(const std::vector<std::string>& names) noexcept {
            std::uint64_t bits = 0;
            for (const std::string& name : names) bits |= std::uint64_t{1} << (name.size() % 64);
            return bits;
        }

        [[nodiscard]] static std::uint64_t hash_of(std::string_view name) noexcept {
            return detail::mix(static_cast<std::uint64_t>(std::hash<std::string_view>{}(name)));
        }

        [[nodiscard]] static std::string file_name(std::uint64_t sequence) {
            static constexpr char digits[] = "0123456789abcdef";
            std::string out(16, '0');
            for (std::size_t i = 16; i-- > 0; sequence >>= 4) out[i] = digits[sequence & 0xf];
            out += segment_suffix;
            return out;
        }

        [[nodiscard]] static std::optional<std::uint64_t> parse_file_name(std::string_view name) noexcept {
            if (name.size() != 16 + segment_suffix.size() || !name.ends_with(segment_suffix)) return std::nullopt;
            std::uint64_t value = 0;
            for (std::size_t i = 0; i < 16; ++i) {
                const char c = name[i];
                int digit = 0;
                if (c >= '0' && c <= '9')
                    digit = c - '0';
                else if (c >= 'a' && c <= 'f')
                    digit = c - 'a' + 10;
                else
                    return std::nullopt;
                value = (value << 4) | static_cast<std::uint64_t>(digit);
            }
            return value;
        }

        [[nodiscard]] static std::string pin_file(std::string_view name, int copy) {
            static constexpr char digits[] = "0123456789abcdef";
            std::string out(pin_prefix);
            for (const char c : name) {
                out += digits[static_cast<unsigned char>(c) >> 4];
                out += digits[static_cast<unsigned char>(c) & 0xf];
            }
            out += copy == 0 ? ".0" : ".1";
            return out;
        }

        [[nodiscard]] static bool is_pin_file(std::string_view file) noexcept {
            if (!file.starts_with(pin_prefix) || !(file.ends_with(".0") || file.ends_with(".1"))) return false;
            const std::string_view hex = file.substr(pin_prefix.size(), file.size() - pin_prefix.size() - 2);
            return !hex.empty() && hex.size() % 2 == 0 &&
                   hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
        }

        [[nodiscard]] segment& seg(std::uint32_t slot) noexcept { return *slots[slot]; }
        [[nodiscard]] bool has_active() const noexcept { return !order.empty(); }
        [[nodiscard]] std::uint32_t active() const noexcept { return order.back(); }

        [[nodiscard]] failure os_error(int err, std::string_view operation, std::string_view what,
                                       std::string_view step) const {
            return detail::os_failure(err, operation, what, step);
        }

        [[nodiscard]] int sync_fd(int fd) const noexcept {
#if defined(__linux__)
            if (cfg.sync == durability::data) return ::fdatasync(fd);
#endif
            return ::fsync(fd);
        }

        [[nodiscard]] result<void> sync_root(std::string_view operation) const {
            if (cfg.sync == durability::full && ::fsync(root.get()) != 0)
                return unexpected(os_error(errno, operation, cfg.root.native(), "sync the cache folder"));
            return {};
        }

        [[nodiscard]] static result<void> pwrite_all(int fd, std::span<const std::byte> bytes, std::uint64_t at,
                                                     std::string_view operation, const std::string& file) {
            for (std::size_t done = 0; done < bytes.size();) {
                const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(at + done));
                if (n < 0) {
                    if (errno == EINTR) continue;
                    return unexpected(detail::os_failure(errno, operation, file, "append"));
                }
                if (n == 0) return unexpected(detail::os_failure(EIO, operation, file, "append"));
                done += static_cast<std::size_t>(n);
            }
            return {};
        }

        [[nodiscard]] std::uint64_t unwritten() const noexcept { return tail_start + tail.size() - flushed_to; }

        // Bytes [offset, offset + n) of the segment in `slot`, from the file and the tail
        // (only the unwritten part with `from_file`); fewer if the file ends first.
        template <class Bytes>
        [[nodiscard]] result<void> read_at(std::uint32_t slot, std::size_t offset, std::size_t n, Bytes& out,
                                           bool from_file = false) {
            out.resize(n);
            std::size_t got = 0;
            const bool is_active = has_active() && slot == active();
            const std::uint64_t file_end = !is_active ? seg(slot).size : from_file ? flushed_to : tail_start;
            while (got < n && offset + got < file_end) {
                const std::size_t want =
                    static_cast<std::size_t>(std::min<std::uint64_t>(n - got, file_end - (offset + got)));
                const ssize_t r = ::pread(seg(slot).fd.get(), out.data() + got, want, static_cast<off_t>(offset + got));
                if (r < 0) {
                    if (errno == EINTR) continue;
                    return unexpected(os_error(errno, "read", file_name(seg(slot).sequence), "read segment"));
                }
                if (r == 0) break;
                got += static_cast<std::size_t>(r);
            }
            if (is_active && offset + got >= tail_start) {
                const std::uint64_t from = offset + got;
                if (from < tail_start + tail.size()) {
                    const auto k =
                        static_cast<std::size_t>(std::min<std::uint64_t>(n - got, tail_start + tail.size() - from));
                    std::copy_n(tail.begin() + static_cast<std::ptrdiff_t>(from - tail_start), k,
                                out.begin() + static_cast<std::ptrdiff_t>(got));
                    got += k;
                }
            }
            out.resize(got);
            return {};
        }

        // Bytes [offset, offset + n) of the segment in `slot`: in place when the tail holds
        // them all, else read into `spill` (see read_at).
        [[nodiscard]] result<std::span<const std::byte>> view_at(std::uint32_t slot, std::size_t offset, std::size_t n,
                                                                 std::vector<std::byte>& spill) {
            if (has_active() && slot == active() && offset >= tail_start && offset + n <= tail_start + tail.size())
                return std::span<const std::byte>(tail).subspan(static_cast<std::size_t>(offset - tail_start), n);
            if (auto ok = read_at(slot, offset, n, spill); !ok) return unexpected(std::move(ok).error());
            return std::span<const std::byte>(spill);
        }

        // Whether the record at `loc` is `name`'s, reading its head; an unreadable head
        // (or a failed read) cannot be told apart from it.
        [[nodiscard]] match compare(std::uint64_t loc, std::string_view name) {
            const std::size_t n =
                std::min(location::size(loc), detail::segment::record_header_size + detail::segment::max_name);
            const auto bytes = view_at(location::slot(loc), location::offset(loc), n, scratch);
            if (!bytes) return match::unreadable;
            const auto head = detail::segment::parse_head(*bytes);
            if (!head) return match::unreadable;
            return head->name == name ? match::same : match::other;
        }

        // The first index position for `name` (same or unreadable record), skipping `except`.
        [[nodiscard]] std::size_t find(std::string_view name, std::uint64_t h, std::uint64_t except = 0) {
            return index.find_if(h, [&](std::size_t pos) {
                const std::uint64_t loc = index.at(pos).loc;
                return location::place(loc) != except && compare(loc, name) != match::other;
            });
        }

        // The index position that points at the record placed at `here`, or npos.
        [[nodiscard]] std::size_t find_placed(std::uint64_t h, std::uint64_t here) const {
            return index.find_if(h, [&](std::size_t pos) { return location::place(index.at(pos).loc) == here; });
        }

        void drop_at(std::size_t pos) {
            --seg(location::slot(index.at(pos).loc)).live;
            index.erase(pos);
        }

        // Notes a blob that left the index without a remove() of its name (see take_evicted);
        // an empty name: one that left unnamed.
        void note_left(std::string_view name) {
            if (name.empty() || evicted.names.size() >= max_evicted_names) {
                evicted.complete = false;
                evicted.names = {};  // list() tells the rest; a caller that never asks keeps no memory
            }
            if (evicted.complete) evicted.names.emplace_back(name);
        }

        // Makes the index follow a record for `name` (a blob of `size` bytes) just appended
        // at `loc` (0: a tombstone): the record replaces every earlier one of that name.
        void apply(std::string_view name, std::uint64_t h, std::uint64_t loc, std::size_t size = 0) {
            const std::uint64_t keep = location::place(loc);
            bool placed = loc == 0;
            for (std::size_t pos = find(name, h, keep); pos != hash_index::npos; pos = find(name, h, keep)) {
                if (!placed) {
                    --seg(location::slot(index.at(pos).loc)).live;
                    index.set(pos, loc, static_cast<std::uint32_t>(size));
                    ++seg(location::slot(loc)).live;
                    placed = true;
                } else {
                    drop_at(pos);
                }
            }
            if (!placed) {
                index.insert(h, loc, static_cast<std::uint32_t>(size));
                ++seg(location::slot(loc)).live;
            }
        }

        // ---- appending ----------------------------------------------------------------

        // Writes the unwritten tail to the active segment; on ENOSPC evicts the oldest
        // segment (if another remains) and retries once.
        [[nodiscard]] result<void> write_buffer_out() {
            if (unwritten() == 0) return {};
            segment& a = seg(active());
            const std::string file = file_name(a.sequence);
            const auto pending =
                std::span<const std::byte>(tail).subspan(static_cast<std::size_t>(flushed_to - tail_start));
            auto ok = pwrite_all(a.fd.get(), pending, flushed_to, "write", file);
            if (!ok && ok.error().code() == errc::disk_full && evict_for_space()) {
                ok = pwrite_all(a.fd.get(), pending, flushed_to, "write", file);
            }
            if (!ok) return ok;
            flushed_to = tail_start + tail.size();
            if (!cfg.keep_active_in_memory) {
                tail.clear();
                tail_start = flushed_to;
            }
            return {};
        }

        [[nodiscard]] result<void> flush(bool synced) {
            if (!has_active()) return {};
            if (auto ok = write_buffer_out(); !ok) {
                if (cfg.sync != durability::none && ok.error().code() != errc::disk_full) sealed = true;
                return ok;
            }
            if (synced && cfg.sync != durability::none && !sealed && sync_fd(seg(active()).fd.get()) != 0) {
                sealed = true;
                return unexpected(os_error(errno, "flush", file_name(seg(active()).sequence), "sync segment"));
            }
            return {};
        }

        // A segment over the budget is left (an eviction is under way, or its copies or its
        // delete failed) while the tail is unwritten: the oldest may hold the only written
        // copy of blobs carried into the tail, so it is not evicted for space. The only
        // segment goes only for `leaving_last` (a roll away from it that found no room).
        [[nodiscard]] bool evict_for_space(bool leaving_last = false) {
            if (order.empty() || (order.size() < 2 && !leaving_last) ||
                (order.size() > max_segments && unwritten() > 0))
                return false;
            if (!evict_oldest(0)) return false;
            ++counters.disk_full_evictions;
            return true;
        }

        [[nodiscard]] bool pinned(std::string_view name) const {
            return std::find(cfg.pinned.begin(), cfg.pinned.end(), name) != cfg.pinned.end();
        }

        // A whole segment's bytes, in memory given back to the system when freed.
        using segment_bytes = std::vector<std::byte, detail::mapped_allocator<std::byte>>;

        // The whole segment in `slot` into `out`: file and tail (see read_at). Callers that
        // read segment after segment pass one buffer, which then maps its pages only once.
        [[nodiscard]] result<void> load(std::uint32_t slot, segment_bytes& out, bool from_file = false) {
            return read_at(slot, 0, static_cast<std::size_t>(seg(slot).size), out, from_file);
        }

        // Deletes the oldest segment; its live blobs leave the index, except those copied
        // into the active segment (read ones and pinned ones, up to `room` bytes; none with
        // room 0). The copies reach the file (and the disk, as durability says) before the
        // oldest is deleted, so a crash in between loses none of them. If they cannot be
        // written, or the oldest cannot be deleted, it stays with the blobs not carried
        // still indexed, and a later roll (after its flush) or open deletes it.
        [[nodiscard]] result<void> evict_oldest(std::size_t room) {
            const std::uint32_t slot = order.front();
            segment& victim = seg(slot);
            // Carries what fits of the records the index still points at in the oldest
            // segment, and notes the others (hash and place) to drop once the file is gone.
            struct visitor {
                state& s;
                std::uint32_t slot;
                std::size_t room;
                std::span<const std::byte> data;
                struct leaving {
                    std::uint64_t h;
                    std::uint64_t here;
                    std::string_view name;  // in `data`
                };
                std::vector<leaving> left{};
                bool carried_any = false;
                void record(std::size_t off, const detail::segment::record_view& r) {
                    if (r.head.tombstone()) return;
                    const std::uint64_t h = hash_of(r.head.name);
                    const std::uint64_t here = location::pack(slot, off, r.head.size());
                    const std::size_t pos = s.find_placed(h, here);
                    if (pos == hash_index::npos) return;
                    const bool read = (s.index.at(pos).loc & location::read_bit) != 0;
                    const std::size_t size = r.head.size();
                    if (!((read && s.cfg.reinsert_read) || s.pinned(r.head.name)) || size > room) {
                        left.push_back({h, here, r.head.name});
                        return;
                    }
                    // The whole record; padding a torn tail lost comes back as zeros.
                    segment& a = s.seg(s.active());
                    const std::size_t stored = std::min(size, data.size() - off);
                    const auto from = data.begin() + static_cast<std::ptrdiff_t>(off);
                    s.tail.insert(s.tail.end(), from, from + static_cast<std::ptrdiff_t>(stored));
                    s.tail.resize(s.tail.size() + (size - stored));
                    --s.seg(slot).live;
                    s.index.set_loc(pos, location::pack(s.active(), static_cast<std::size_t>(a.size), size));
                    a.size += size;
                    ++a.live;
                    ++s.counters.entries_reinserted;
                    room -= size;
                    carried_any = true;
                }
                void damaged_record(std::size_t, const detail::segment::record_view&) {}
                void unreadable(std::size_t, std::size_t) {}
                void torn(std::size_t, std::size_t) {}
            };
            segment_bytes data;
            const bool loaded = victim.live > 0 && load(slot, data).has_value();
            visitor v{*this, slot, room, loaded ? std::span<const std::byte>(data) : std::span<const std::byte>()};
            if (loaded) detail::segment::scan_records(data, v);
            // The copies first; evict_for_space leaves the oldest alone meanwhile.
            if (v.carried_any) {
                if (auto copied = flush(true); !copied) return copied;
            }
            const std::string file = file_name(victim.sequence);
            if (::unlinkat(root.get(), file.c_str(), 0) != 0 && errno != ENOENT)
                return unexpected(os_error(errno, "evict", file, "delete the oldest segment"));
            for (const auto& gone : v.left) {
                const std::size_t pos = find_placed(gone.h, gone.here);
                if (pos == hash_index::npos) continue;
                ++counters.entries_evicted;
                drop_at(pos);
                note_left(gone.name);
            }
            if (victim.live > 0) {  // records damaged since they were indexed, or an unreadable segment
                counters.entries_evicted += victim.live;
                index.erase_if([&](const hash_index::slot& e) { return location::slot(e.loc) == slot; });
                victim.live = 0;
                note_left({});
            }
            victim.fd.reset();
            slots[slot].reset();
            order.pop_front();
            ++counters.segments_evicted;
            return sync_root("evict");
        }

        [[nodiscard]] std::uint32_t free_slot() const noexcept {
            for (std::uint32_t i = 0; i < slots.size(); ++i)
                if (!slots[i]) return i;
            return 0;  // unreachable: create_segment and recover check that a slot is free
        }

        // Makes the next segment file with its header; ENOSPC evicts the oldest and retries once.
        [[nodiscard]] result<void> create_segment() {
            if (order.size() >= slots.size())  // a roll finishes a failed eviction first; never reached
                return fail(errc::io_error, tier::disk, "segment_log: no free segment slot");
            std::array<std::byte, detail::segment::segment_header_size> header{};
            for (int attempt = 0;; ++attempt) {
                const std::uint64_t sequence = next_sequence;  // used up only by a segment made
                const std::string file = file_name(sequence);
                detail::posix::unique_fd fd(detail::posix::retry_eintr([&] {
                    return ::openat(root.get(), file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                }));
                if (!fd) {
                    const int err = errno;
                    if (err == EEXIST && attempt < 16) {  // a foreign file: the next open meets it as a segment
                        ++next_sequence;
                        continue;
                    }
                    if ((err == ENOSPC || err == EDQUOT) && attempt == 0 && evict_for_space(true)) continue;
                    return unexpected(os_error(err, "write", file, "create segment"));
                }
                // No earlier than the previous segment's creation plus its size, so that
                // list()'s modified times (creation + offset) follow log order.
                std::int64_t created = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count();
                if (has_active())
                    created = std::max(created, detail::add_sat(seg(active()).created_ns,
                                                                static_cast<std::int64_t>(cfg.segment_size)));
                // The previous segment's length, so that an open notices if it is lost.
                const std::uint64_t previous =
                    has_active() && seg(active()).sequence + 1 == sequence ? seg(active()).size : 0;
                detail::segment::encode_segment_header({sequence, created, static_cast<std::uint32_t>(previous)},
                                                       header.data());
                auto written = pwrite_all(fd.get(), header, 0, "write", file);
                if (written && cfg.sync != durability::none && sync_fd(fd.get()) != 0)
                    written = unexpected(os_error(errno, "write", file, "sync segment header"));
                if (!written) {
                    ::unlinkat(root.get(), file.c_str(), 0);
                    if (written.error().code() == errc::disk_full && attempt == 0 && evict_for_space(true)) continue;
                    return written;
                }
                if (auto ok = sync_root("write"); !ok) return ok;
                next_sequence = sequence + 1;
                // The segment's name is in the folder before the marker names it (a marker too
                // high would make the next open drop everything); a marker left lower costs nothing.
                if (cfg.sync == durability::full || ::fsync(root.get()) == 0) (void)write_newest(sequence);
                const std::uint32_t slot = free_slot();
                slots[slot].emplace(segment{sequence, std::move(fd), header.size(), created, 0});
                order.push_back(slot);
                tail.clear();
                tail_start = flushed_to = header.size();
                sealed = false;
                return {};
            }
        }

        // Bytes the blobs carried out of the oldest segment may fill in the active one,
        // leaving `reserve` bytes free.
        [[nodiscard]] std::size_t carry_room(std::size_t reserve) {
            const std::uint64_t used = seg(active()).size + reserve;
            const double free = used < cfg.segment_size ? static_cast<double>(cfg.segment_size - used) : 0.0;
            return static_cast<std::size_t>(
                std::min(static_cast<double>(cfg.segment_size) * cfg.max_reinsert_fraction, free));
        }

        // Seals the active segment and starts a new one; past the budget, the oldest is then
        // evicted, its carried blobs copied into the new one first (leaving `reserve` bytes).
        [[nodiscard]] result<void> roll(std::size_t reserve) {
            if (auto ok = flush(!sealed); !ok) return ok;
            while (order.size() > max_segments) {  // an eviction that failed before: its copies are written now
                if (auto ok = evict_oldest(0); !ok) return ok;
            }
            if (auto ok = create_segment(); !ok) return ok;
            if (order.size() > max_segments) return evict_oldest(carry_room(reserve));
            return {};
        }

        // Puts one record in the active segment's tail (rolling first if it is sealed or
        // full); its location, or the failure (nothing placed).
        [[nodiscard]] result<std::uint64_t> place(std::string_view name, std::span<const std::byte> blob,
                                                  std::uint16_t flags) {
            const std::size_t size = detail::segment::record_size(name.size(), blob.size());
            if (!has_active() || sealed || seg(active()).size + size > cfg.segment_size) {
                if (auto ok = roll(size); !ok) return unexpected(std::move(ok).error());
            }
            if (cfg.sync == durability::none && unwritten() > 0 && unwritten() + size > cfg.write_buffer) {
                if (auto ok = write_buffer_out(); !ok) return unexpected(std::move(ok).error());
            }
            segment& a = seg(active());
            const std::uint64_t loc = location::pack(active(), static_cast<std::size_t>(a.size), size);
            detail::segment::append_record(tail, name, blob, flags);
            a.size += size;
            return loc;
        }

        // Appends one record; its location, or the failure. A record whose write or sync
        // failed may be in the file or not: it is forgotten if the file cannot hold it,
        // and either way its name becomes doubtful (see `doubtful`), so that neither the
        // index nor a restart returns the value it replaced.
        // A disk full with no older segment to evict (a file system with less room than a
        // segment) ends the active segment where it is and retries once in a new one, which
        // evicts the old one if even its header finds no room: writing goes on.
        [[nodiscard]] result<std::uint64_t> append(std::string_view name, std::span<const std::byte> blob,
                                                   std::uint16_t flags, bool retried = false) {
            auto loc = place(name, blob, flags);
            if (!loc || cfg.sync == durability::none) return loc;
            if (auto ok = flush(true); !ok) {
                const std::uint64_t at = location::offset(*loc);
                const bool unwritten_record = flushed_to <= at;
                if (unwritten_record) {  // not (wholly) written: later appends overwrite it
                    tail.resize(static_cast<std::size_t>(at - tail_start));
                    seg(active()).size = at;
                }
                const std::uint64_t h = hash_of(name);
                if (find(name, h) != hash_index::npos) note_left(name);
                apply(name, h, 0);
                doubtful.emplace(name);
                if (!retried && unwritten_record && ok.error().code() == errc::disk_full && order.size() == 1 &&
                    at > detail::segment::segment_header_size) {
                    sealed = true;
                    return append(name, blob, flags, true);
                }
                return unexpected(std::move(ok).error());
            }
            if (!doubtful.empty()) doubtful.erase(std::string(name));
            return loc;
        }

        // Appends a tombstone for every doubtful name, synced (a sealed segment is left
        // for a new one): a restart then finds what the index says.
        [[nodiscard]] result<void> settle_doubtful() {
            if (doubtful.empty()) return {};
            for (const std::string& name : doubtful) {
                if (auto loc = place(name, {}, detail::segment::flag_tombstone); !loc)
                    return unexpected(std::move(loc).error());
            }
            if (auto ok = flush(true); !ok) return ok;
            doubtful.clear();
            return {};
        }

        // ---- operations ---------------------------------------------------------------

        [[nodiscard]] result<std::vector<std::byte>> read(std::string_view name, bool mark, bool verify = true) {
            std::vector<std::byte> bytes;
            if (auto ok = read_into(name, mark, verify, bytes); !ok) return unexpected(std::move(ok).error());
            return bytes;
        }

        // read() into `out`, whose capacity is reused: one copy of the blob, no allocation
        // once `out` is large enough. With `crc`, also the blob's CRC-32 there, computed as
        // the blob is copied.
        [[nodiscard]] result<void> read_into(std::string_view name, bool mark, bool verify, std::vector<std::byte>& out,
                                             std::uint32_t* crc = nullptr) {
            bool spilled = false;
            auto blob = view(name, mark, verify, out, spilled);
            if (!blob) return unexpected(std::move(blob).error());
            if (!spilled) {
                if (crc == nullptr) {
                    out.assign(blob->begin(), blob->end());
                } else {
                    out.resize(blob->size());  // fills only what `out` grows by
                    *crc = detail::crc32_copy(0, out.data(), *blob);
                }
                return {};
            }
            // Keep only the blob of the record read into `out`, no second buffer.
            const auto at = blob->data() - out.data();
            const std::size_t length = blob->size();
            out.erase(out.begin(), out.begin() + at);
            out.resize(length);
            if (crc != nullptr) *crc = detail::crc32_update(0, out);
            return {};
        }

        // The blob of the record at the start of `record` if its magic, flags (none), lengths
        // and name are those of a blob of `name` of `size` bytes; no CRC is computed. For an
        // unverified read: a caller's checksum over the blob covers the rest (a record whose
        // head differs in any of these, damaged or another name's, is parsed and checked whole).
        [[nodiscard]] static std::optional<std::span<const std::byte>> named_blob(std::span<const std::byte> record,
                                                                                  std::string_view name,
                                                                                  std::size_t size) noexcept {
            namespace seg = detail::segment;
            const std::size_t body = seg::record_header_size + name.size();
            if (record.size() < body || record.size() - body < size) return std::nullopt;
            const std::byte* p = record.data();
            if (std::memcmp(p, seg::record_magic.data(), 4) != 0 || detail::load_le<std::uint16_t>(p + 4) != 0 ||
                detail::load_le<std::uint16_t>(p + 6) != name.size() || detail::load_le<std::uint32_t>(p + 8) != size ||
                std::memcmp(p + seg::record_header_size, name.data(), name.size()) != 0)
                return std::nullopt;
            return record.subspan(body, size);
        }

        // The blob of `name`, viewed where it lies: in the tail, in a pin, or in `spill`
        // (the record read from its file: `spilled`). Valid until the state changes.
        [[nodiscard]] result<std::span<const std::byte>> view(std::string_view name, bool mark, bool verify,
                                                              std::vector<std::byte>& spill, bool& spilled) {
            if (!pins.empty() && ((pin_lengths >> (name.size() % 64)) & 1U) != 0)
                if (const auto pin = pins.find(name); pin != pins.end()) return std::span<const std::byte>(pin->second);
            const std::uint64_t h = hash_of(name);
            bool damaged = false;
            std::optional<failure> error;
            std::span<const std::byte> blob;
            bool found = false;
            index.find_if(h, [&](std::size_t pos) {
                const std::uint64_t loc = index.at(pos).loc;
                auto record = view_at(location::slot(loc), location::offset(loc), location::size(loc), spill);
                if (!record) {
                    error = std::move(record).error();
                    return true;
                }
                if (!verify) {
                    if (const auto named = named_blob(*record, name, index.at(pos).size)) {
                        if (mark) index.set_loc(pos, loc | location::read_bit);
                        found = true;
                        spilled = record->data() == spill.data();
                        blob = *named;
                        return true;
                    }
                }
                const auto r = detail::segment::parse_record(*record, verify);
                if (!r) {
                    damaged = true;
                    return false;
                }
                if (r->head.name != name) return false;
                if (!r->intact) {
                    damaged = true;
                    return true;
                }
                if (mark) index.set_loc(pos, loc | location::read_bit);
                found = true;
                spilled = record->data() == spill.data();
                blob = r->blob;
                return true;
            });
            if (error) return unexpected(std::move(*error));
            if (found) {
                if (blob.size() > cfg.max_blob_size)
                    return fail(errc::too_large, tier::disk,
                                "read " + std::string(name) + ": blob of " + std::to_string(blob.size()) +
                                    " bytes, over max_blob_size (" + std::to_string(cfg.max_blob_size) + ")");
                return blob;
            }
            if (damaged) {
                ++counters.bad_frames;
                return fail(errc::corrupted, tier::disk,
                            "read " + std::string(name) + ": its segment record fails its checksum");
            }
            return fail(errc::miss, tier::disk, "read " + std::string(name) + ": open",
                        std::error_code(ENOENT, std::generic_category()));
        }

        [[nodiscard]] result<void> put(std::string_view name, std::span<const std::byte> blob) {
            if (pinned(name)) {
                if (auto ok = write_pin(name, blob); !ok) return ok;
                pins.insert_or_assign(std::string(name), std::vector<std::byte>(blob.begin(), blob.end()));
                return {};
            }
            auto loc = append(name, blob, 0);
            if (!loc) return unexpected(std::move(loc).error());
            apply(name, hash_of(name), *loc, blob.size());
            return {};
        }

        [[nodiscard]] result<void> remove(std::string_view name) {
            const std::uint64_t h = hash_of(name);
            bool was_pinned = false;
            if (pins.contains(name)) {
                if (auto ok = remove_pin(name); !ok) return ok;
                was_pinned = true;
            }
            if (find(name, h) == hash_index::npos && !doubtful.contains(std::string(name))) {
                if (was_pinned) return {};
                return fail(errc::miss, tier::disk, "remove " + std::string(name),
                            std::error_code(ENOENT, std::generic_category()));
            }
            auto loc = append(name, {}, detail::segment::flag_tombstone);
            if (!loc) return unexpected(std::move(loc).error());
            apply(name, h, 0);
            return {};
        }

        [[nodiscard]] std::int64_t modified_ns(std::uint32_t slot, std::size_t offset) {
            return detail::add_sat(seg(slot).created_ns, static_cast<std::int64_t>(offset));
        }

        [[nodiscard]] result<std::vector<blob_info>> list() {
            std::vector<blob_info> out;
            out.reserve(index.size());
            segment_bytes data;
            for (const std::uint32_t slot : order) {
                if (auto ok = load(slot, data); !ok) return unexpected(std::move(ok).error());
                struct visitor {
                    state& s;
                    std::uint32_t slot;
                    std::vector<blob_info>& out;
                    void record(std::size_t off, const detail::segment::record_view& r) {
                        if (r.head.tombstone() || s.pins.contains(r.head.name)) return;
                        const std::uint64_t here = location::pack(slot, off, r.head.size());
                        const std::size_t pos = s.find_placed(hash_of(r.head.name), here);
                        if (pos == hash_index::npos) return;
                        const auto at = std::chrono::system_clock::time_point(
                            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                std::chrono::nanoseconds(s.modified_ns(slot, off))));
                        out.push_back(blob_info{std::string(r.head.name), r.head.blob_length, at});
                    }
                    void damaged_record(std::size_t off, const detail::segment::record_view& r) { record(off, r); }
                    void unreadable(std::size_t, std::size_t) {}
                    void torn(std::size_t, std::size_t) {}
                } v{*this, slot, out};
                detail::segment::scan_records(data, v);
            }
            // Pinned blobs first: their modified time is the epoch, before every segment's.
            std::vector<blob_info> pinned_blobs;
            for (const auto& [name, blob] : pins) pinned_blobs.push_back(blob_info{name, blob.size(), {}});
            out.insert(out.begin(), pinned_blobs.begin(), pinned_blobs.end());
            return out;
        }

        [[nodiscard]] result<detail::posix::unique_fd> quarantine_folder(std::string_view operation, bool create) {
            namespace px = detail::posix;
            const std::string folder(detail::quarantine_folder);
            if (create && ::mkdirat(root.get(), folder.c_str(), 0700) != 0 && errno != EEXIST)
                return unexpected(os_error(errno, operation, folder, "create folder"));
            px::unique_fd fd(px::retry_eintr(
                [&] { return ::openat(root.get(), folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); }));
            if (!fd) return unexpected(os_error(errno, operation, folder, "open folder"));
            return fd;
        }

        // Writes `bytes` to <dir>/<target> through a temp file (0600) and a rename; syncs the
        // folder when `sync_folder`.
        [[nodiscard]] result<void> write_replacing(int dir, std::string_view operation, const std::string& target,
                                                   std::span<const std::byte> bytes, bool sync_folder) const {
            namespace px = detail::posix;
            const std::string temp = std::string(detail::temp_prefix) + "q." + std::to_string(::getpid());
            px::unique_fd fd(px::retry_eintr([&] {
                return ::openat(dir, temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
            }));
            if (!fd) return unexpected(os_error(errno, operation, temp, "create temp file"));
            auto ok = pwrite_all(fd.get(), bytes, 0, operation, temp);
            if (ok && cfg.sync != durability::none && sync_fd(fd.get()) != 0)
                ok = unexpected(os_error(errno, operation, temp, "sync temp file"));
            if (ok && ::renameat(dir, temp.c_str(), dir, target.c_str()) != 0)
                ok = unexpected(os_error(errno, operation, target, "rename into place"));
            if (!ok) {
                ::unlinkat(dir, temp.c_str(), 0);
                return ok;
            }
            if (sync_folder && ::fsync(dir) != 0)
                return unexpected(os_error(errno, operation, target, "sync its folder"));
            return {};
        }

        // Writes `bytes` to quarantine/<target>.
        [[nodiscard]] result<void> put_quarantined(std::string_view operation, const std::string& target,
                                                   std::span<const std::byte> bytes) {
            auto folder = quarantine_folder(operation, true);
            if (!folder) return unexpected(std::move(folder).error());
            return write_replacing(folder->get(), operation, target, bytes, cfg.sync == durability::full);
        }

        // ---- pinned names -------------------------------------------------------------

        // Writes both side files of a pinned name, each replaced whole (a crash leaves each
        // old or new); ENOSPC evicts the oldest segment and retries once.
        [[nodiscard]] result<void> write_pin(std::string_view name, std::span<const std::byte> blob) {
            std::vector<std::byte> record;
            detail::segment::append_record(record, name, blob, 0);
            for (int copy = 0; copy < 2; ++copy) {
                const std::string file = pin_file(name, copy);
                auto ok = write_replacing(root.get(), "write", file, record, cfg.sync != durability::none);
                if (!ok && ok.error().code() == errc::disk_full && evict_for_space())
                    ok = write_replacing(root.get(), "write", file, record, cfg.sync != durability::none);
                if (!ok) {
                    if (copy == 1) ::unlinkat(root.get(), file.c_str(), 0);  // never an older second copy
                    return ok;
                }
            }
            return {};
        }

        // The blob of a pinned name's side file if the file holds an intact record of it.
        [[nodiscard]] std::optional<std::vector<std::byte>> read_pin(std::string_view name, int copy) const {
            // A record's blob length is 32 bits: a larger max_blob_size must not wrap the bound.
            return read_side_file(pin_file(name, copy), name, std::min<std::size_t>(cfg.max_blob_size, UINT32_MAX));
        }

        // The blob of <root>/<file> if the file holds an intact record of `name` with at most
        // `longest` bytes of blob.
        [[nodiscard]] std::optional<std::vector<std::byte>> read_side_file(const std::string& file,
                                                                           std::string_view name,
                                                                           std::size_t longest) const {
            namespace px = detail::posix;
            px::unique_fd fd(px::retry_eintr(
                [&] { return ::openat(root.get(), file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC); }));
            struct stat st {};
            if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
            const auto size = static_cast<std::uint64_t>(st.st_size);
            if (size > detail::segment::record_size(name.size(), longest)) return std::nullopt;
            std::vector<std::byte> bytes(static_cast<std::size_t>(size));
            for (std::size_t got = 0; got < bytes.size();) {
                const ssize_t n = ::pread(fd.get(), bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) return std::nullopt;
                got += static_cast<std::size_t>(n);
            }
            const auto r = detail::segment::parse_record(bytes);
            if (!r || !r->intact || r->head.tombstone() || r->head.name != name) return std::nullopt;
            return std::vector<std::byte>(r->blob.begin(), r->blob.end());
        }

        // Loads the pinned names at open: from either side file (a damaged copy is rewritten),
        // else from the log (a directory of format 1 kept them there), copied to side files.
        // A log record of a name the side files hold leaves the index (it is not a blob of
        // the log: held_blobs() and list() would count it twice).
        void load_pins() {
            for (const std::string& name : cfg.pinned) {
                auto first = read_pin(name, 0);
                auto second = read_pin(name, 1);
                if (first || second) {
                    if (!first || !second) (void)write_pin(name, first ? *first : *second);
                    pins.insert_or_assign(name, first ? std::move(*first) : std::move(*second));
                } else if (auto logged = read(name, false); logged && write_pin(name, *logged)) {
                    pins.insert_or_assign(name, *logged);
                } else {
                    continue;
                }
                if (const auto pos = find(name, hash_of(name)); pos != hash_index::npos) drop_at(pos);
            }
        }

        [[nodiscard]] result<void> remove_pin(std::string_view name) {
            for (int copy = 0; copy < 2; ++copy) {
                const std::string file = pin_file(name, copy);
                if (::unlinkat(root.get(), file.c_str(), 0) != 0 && errno != ENOENT)
                    return unexpected(os_error(errno, "remove", file, "delete pinned blob"));
            }
            if (auto ok = sync_root("remove"); !ok) return ok;
            pins.erase(pins.find(name));
            return {};
        }

        [[nodiscard]] result<void> quarantine(std::string_view name, std::string_view reason,
                                              std::chrono::system_clock::time_point now) {
            if (const auto pin = pins.find(name); pin != pins.end()) {
                if (auto ok = put_quarantined("quarantine", detail::quarantine_name(name, reason, now), pin->second);
                    !ok)
                    return ok;
                return remove(name);
            }
            const std::uint64_t h = hash_of(name);
            const std::size_t pos = find(name, h);
            if (pos == hash_index::npos)
                return fail(errc::miss, tier::disk, "quarantine " + std::string(name),
                            std::error_code(ENOENT, std::generic_category()));
            const std::uint64_t loc = index.at(pos).loc;
            std::vector<std::byte> bytes;
            if (auto ok = read_at(location::slot(loc), location::offset(loc), location::size(loc), bytes); !ok)
                return ok;
            std::span<const std::byte> content(bytes);
            if (const auto r = detail::segment::parse_record(bytes)) content = r->blob;
            if (auto ok = put_quarantined("quarantine", detail::quarantine_name(name, reason, now), content); !ok)
                return ok;
            auto tomb = append(name, {}, detail::segment::flag_tombstone);
            if (!tomb) return unexpected(std::move(tomb).error());
            apply(name, h, 0);
            return {};
        }

        [[nodiscard]] result<clean_report> clean(const clean_options& options) {
            namespace px = detail::posix;
            clean_report report;
            auto sweep = [&](int dir_fd, std::string_view where, bool in_quarantine) -> result<void> {
                const int fd =
                    px::retry_eintr([&] { return ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
                if (fd < 0) return unexpected(os_error(errno, "clean", where, "open folder"));
                DIR* dir = ::fdopendir(fd);
                if (dir == nullptr) {
                    const int err = errno;
                    ::close(fd);
                    return unexpected(os_error(err, "clean", where, "read folder"));
                }
                px::dir_stream stream(dir);
                const auto oldest = detail::sub_sat(options.now, options.quarantine_max_age);
                while (const char* entry = stream.next()) {
                    const std::string_view entry_name = entry;
                    struct stat st {};
                    if (::fstatat(stream.fd(), entry, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
                    if (S_ISDIR(st.st_mode)) continue;
                    const bool regular = S_ISREG(st.st_mode);
                    const bool temp = regular && entry_name.starts_with(detail::temp_prefix);
                    bool purge = false;
                    if (!in_quarantine) {
                        if (entry_name == detail::posix::lock_file_name) continue;
                        if (regular &&
                            (parse_file_name(entry_name) || is_pin_file(entry_name) || entry_name == newest_file))
                            continue;
                    } else if (regular && !temp) {
                        const auto since = detail::quarantine_time(entry_name);
                        if (since && *since >= oldest) continue;
                        purge = since.has_value();
                    }
                    if (::unlinkat(stream.fd(), entry, 0) != 0) {
                        if (errno == ENOENT) continue;
                        return unexpected(os_error(errno, "clean", px::join(where, entry_name), "remove"));
                    }
                    report.count_removed(temp, purge, regular ? static_cast<std::uint64_t>(st.st_size) : 0);
                }
                if (errno != 0) return unexpected(os_error(errno, "clean", where, "read folder"));
                return {};
            };
            if (auto ok = sweep(root.get(), ".", false); !ok) return unexpected(std::move(ok).error());
            auto folder = quarantine_folder("clean", false);
            if (!folder) {
                if (folder.error().code() == errc::miss) return report;
                return unexpected(std::move(folder).error());
            }
            if (auto ok = sweep(folder->get(), detail::quarantine_folder, true); !ok)
                return unexpected(std::move(ok).error());
            return report;
        }

        [[nodiscard]] std::size_t quarantined() {
            auto folder = quarantine_folder("quarantined", false);
            if (!folder) return 0;
            const int fd = ::dup(folder->get());
            if (fd < 0) return 0;
            DIR* dir = ::fdopendir(fd);
            if (dir == nullptr) {
                ::close(fd);
                return 0;
            }
            detail::posix::dir_stream stream(dir);
            std::size_t count = 0;
            while (const char* entry = stream.next()) {
                struct stat st {};
                if (detail::quarantine_time(entry) && ::fstatat(stream.fd(), entry, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISREG(st.st_mode))
                    ++count;
            }
            return count;
        }

        // Drops every index entry recorded before (slot's segment, offset): damage there
        // may have hidden a remove or an overwrite of any of them.
        std::size_t drop_before(std::uint32_t slot, std::size_t offset) {
            const std::uint64_t sequence = seg(slot).sequence;
            const std::size_t dropped = index.erase_if([&](const hash_index::slot& s) {
                const segment& at = *slots[location::slot(s.loc)];
                return at.sequence < sequence || (at.sequence == sequence && location::offset(s.loc) < offset);
            });
            for (auto& sg : slots)
                if (sg) sg->live = 0;
            index.for_each([&](std::size_t pos) { ++seg(location::slot(index.at(pos).loc)).live; });
            counters.entries_dropped += dropped;
            return dropped;
        }

        // Replays (recovery) or verifies (scrub) one segment's records.
        struct replay_visitor {
            state& s;
            std::uint32_t slot;
            bool recovering;
            segment_scrub_report* report = nullptr;
            bool sealed = false;  // a newer segment follows: no crash cuts its tail

            [[nodiscard]] std::size_t position(std::uint64_t h, std::size_t off, std::size_t size) const {
                const std::uint64_t here = location::pack(slot, off, size);
                return s.find_placed(h, here);
            }
            void record(std::size_t off, const detail::segment::record_view& r) {
                if (recovering) {
                    ++s.counters.frames_recovered;
                    s.apply(r.head.name, hash_of(r.head.name),
                            r.head.tombstone() ? 0 : location::pack(slot, off, r.head.size()), r.head.blob_length);
                } else {
                    ++report->frames_checked;
                }
            }
            void damaged_record(std::size_t off, const detail::segment::record_view& r) {
                ++s.counters.bad_frames;
                const std::uint64_t h = hash_of(r.head.name);
                if (recovering) {
                    s.apply(r.head.name, h, 0);  // it replaced any earlier record of its name
                    return;
                }
                ++report->frames_skipped;
                if (const auto pos = position(h, off, r.head.size()); pos != hash_index::npos) {
                    s.drop_at(pos);
                    s.note_left(r.head.name);
                    ++report->entries_dropped;
                    ++s.counters.entries_dropped;
                }
            }
            void unreadable(std::size_t from, std::size_t) {
                ++s.counters.damaged_regions;
                const std::size_t dropped = s.drop_before(slot, from);
                if (!recovering && dropped > 0) s.note_left({});
                if (report != nullptr) {
                    ++report->frames_skipped;
                    report->entries_dropped += dropped;
                }
            }
            // The newest segment's torn tail is a write a crash cut short. A sealed segment's
            // is damage: the records lost may have removed or replaced anything older.
            void torn(std::size_t from, std::size_t to) {
                if (!recovering) return;
                if (sealed) {
                    unreadable(from, to);
                } else {
                    ++s.counters.torn_tails;
                }
            }
        };

        [[nodiscard]] result<segment_scrub_report> scrub() {
            segment_scrub_report report;
            if (auto ok = flush(false); !ok) return unexpected(std::move(ok).error());
            segment_bytes data;
            for (const std::uint32_t slot : std::vector<std::uint32_t>(order.begin(), order.end())) {
                if (auto ok = load(slot, data, true); !ok) return unexpected(std::move(ok).error());
                ++report.segments_checked;
                replay_visitor v{*this, slot, false, &report};
                detail::segment::scan_records(data, v);
            }
            while (order.size() > 1 && seg(order.front()).live == 0) {
                const std::uint64_t size = seg(order.front()).size;
                if (auto ok = evict_oldest(0); !ok) return unexpected(std::move(ok).error());
                --counters.segments_evicted;  // reclaimed, not evicted for room
                ++report.segments_removed;
                report.bytes_reclaimed += size;
            }
            return report;
        }

        // ---- the newest segment's marker -----------------------------------------------

        // Records `sequence` as the newest segment made, in <root>/newest-segment: a record
        // whose blob is the sequence (8 bytes, little-endian), written over the old one in
        // place (no temp file: a torn write reads as no marker), synced unless durability::none.
        [[nodiscard]] bool write_newest(std::uint64_t sequence) {
            namespace px = detail::posix;
            std::array<std::byte, 8> blob{};
            for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<std::byte>(sequence >> (8 * i));
            std::vector<std::byte> record;
            detail::segment::append_record(record, newest_file, blob, 0);
            px::unique_fd fd(px::retry_eintr([&] {
                return ::openat(root.get(), newest_file.data(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
            }));
            return fd && pwrite_all(fd.get(), record, 0, "open", std::string(newest_file)) &&
                   ::ftruncate(fd.get(), static_cast<off_t>(record.size())) == 0 &&
                   (cfg.sync == durability::none || sync_fd(fd.get()) == 0);
        }

        // The sequence the marker records; nullopt if it is absent or damaged.
        [[nodiscard]] std::optional<std::uint64_t> read_newest() const {
            const auto blob = read_side_file(std::string(newest_file), newest_file, 8);
            if (!blob || blob->size() != 8) return std::nullopt;
            std::uint64_t sequence = 0;
            for (std::size_t i = 8; i-- > 0;) sequence = (sequence << 8) | std::to_integer<std::uint64_t>((*blob)[i]);
            return sequence;
        }

        // Drops the whole index at open: a segment that may have removed or replaced any
        // name recorded before it is lost. The dropped entries are counted.
        void drop_all() {
            counters.entries_dropped += index.size();
            index.clear();
            for (auto& sg : slots)
                if (sg) sg->live = 0;
        }

        // True for a segment file of at most a header's size with no readable header.
        [[nodiscard]] bool torn_at_birth(std::uint64_t sequence) const {
            namespace px = detail::posix;
            px::unique_fd fd(px::retry_eintr([&] {
                return ::openat(root.get(), file_name(sequence).c_str(),
                                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            }));
            struct stat st {};
            if (!fd || ::fstat(fd.get(), &st) != 0 ||
                static_cast<std::uint64_t>(st.st_size) > detail::segment::segment_header_size)
                return false;
            bool repaired = false;
            return !read_head(fd.get(), sequence, repaired);
        }

        // The header of segment `sequence`, open as `fd` (see read_segment_header); nothing
        // if the file is shorter than a header.
        [[nodiscard]] static std::optional<detail::segment::segment_header> read_head(int fd, std::uint64_t sequence,
                                                                                      bool& repaired) {
            std::array<std::byte, detail::segment::segment_header_size> head{};
            repaired = false;
            if (::pread(fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) return std::nullopt;
            return detail::segment::read_segment_header(head, sequence, repaired);
        }

        // The length of segment `sequence` as the header of the segment after it records it;
        // 0 if that segment is not `next` or its header does not say.
        [[nodiscard]] std::uint64_t recorded_length(std::uint64_t sequence, std::optional<std::uint64_t> next) const {
            namespace px = detail::posix;
            if (next != sequence + 1) return 0;
            px::unique_fd fd(px::retry_eintr([&] {
                return ::openat(root.get(), file_name(*next).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            }));
            bool repaired = false;
            const auto head = fd ? read_head(fd.get(), *next, repaired) : std::nullopt;
            if (!head || head->sequence != *next || head->previous_length < detail::segment::segment_header_size)
                return 0;
            return head->previous_length;
        }

        // Moves a segment file whose header is unreadable into quarantine (deletes it if
        // that fails).
        void quarantine_segment(const std::string& file) {
            ++counters.bad_segments;
            auto folder = quarantine_folder("open", true);
            const std::string target = detail::quarantine_name("segment/" + file.substr(0, 16), "unreadable header",
                                                               std::chrono::system_clock::now());
            if (!folder || ::renameat(root.get(), file.c_str(), folder->get(), target.c_str()) != 0)
                ::unlinkat(root.get(), file.c_str(), 0);
        }

        [[nodiscard]] result<void> recover() {
            namespace px = detail::posix;
            std::vector<std::uint64_t> found;
            {
                const int fd = ::dup(root.get());
                if (fd < 0) return unexpected(os_error(errno, "open", cfg.root.native(), "read folder"));
                DIR* dir = ::fdopendir(fd);
                if (dir == nullptr) {
                    const int err = errno;
                    ::close(fd);
                    return unexpected(os_error(err, "open", cfg.root.native(), "read folder"));
                }
                px::dir_stream stream(dir);
                ::rewinddir(dir);
                while (const char* entry = stream.next()) {
                    struct stat st {};
                    const auto sequence = parse_file_name(entry);
                    if (sequence && ::fstatat(stream.fd(), entry, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
                        found.push_back(*sequence);
                }
                if (errno != 0) return unexpected(os_error(errno, "open", cfg.root.native(), "read folder"));
            }
            std::sort(found.begin(), found.end());
            // One segment more than the budget is a roll a crash interrupted (finished below);
            // more than that, the budget shrank: the oldest go.
            while (found.size() > max_segments + 1) {
                const std::string file = file_name(found.front());
                if (::unlinkat(root.get(), file.c_str(), 0) != 0 && errno != ENOENT)
                    return unexpected(os_error(errno, "open", file, "delete a segment over the budget"));
                ++counters.segments_evicted;
                found.erase(found.begin());
            }
            // Segments are made with consecutive sequences and only the oldest is deleted by
            // the log: a sequence missing between the found ones, or a newest one below the
            // marker's, is a lost segment, which may have removed or replaced anything older.
            std::optional<std::uint64_t> recorded = read_newest();
            if (!found.empty() && torn_at_birth(found.back())) {
                // A crash while the newest segment was being made: nothing in it yet. It is
                // deleted and its sequence made again; a marker naming it first goes one lower,
                // so that no open takes the removal for a lost segment (else the file stays).
                const std::uint64_t sequence = found.back();
                if (recorded != sequence || write_newest(sequence - 1))
                    ::unlinkat(root.get(), file_name(sequence).c_str(), 0);
                if (recorded == sequence) recorded = sequence - 1;
                found.pop_back();  // if still there, the next create skips its name
                ++counters.torn_tails;
            }
            const bool tail_lost = recorded && !found.empty() && found.back() < *recorded;
            next_sequence = std::max(found.empty() ? 1 : found.back() + 1, recorded ? *recorded + 1 : 1);
            segment_bytes data;
            std::uint64_t active_file_size = 0;
            for (std::size_t i = 0; i < found.size(); ++i) {
                const std::uint64_t sequence = found[i];
                if (i > 0 && sequence != found[i - 1] + 1) {  // counted once however many are missing
                    ++counters.lost_segments;
                    drop_all();
                }
                const std::string file = file_name(sequence);
                px::unique_fd fd(px::retry_eintr(
                    [&] { return ::openat(root.get(), file.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC); }));
                if (!fd) return unexpected(os_error(errno, "open", file, "open segment"));
                struct stat st {};
                if (::fstat(fd.get(), &st) != 0) return unexpected(os_error(errno, "open", file, "stat segment"));
                const auto file_size = static_cast<std::uint64_t>(st.st_size);
                bool repaired = false;
                const auto head = read_head(fd.get(), sequence, repaired);
                if (repaired) ++counters.bad_frames;
                if (!head || head->sequence != sequence || file_size > max_segment_size) {
                    fd.reset();
                    quarantine_segment(file);  // the next open finds a gap in its place
                    drop_all();                // its records may have removed or replaced anything older
                    continue;
                }
                // A sealed segment ends where the next one's header says. Bytes past that
                // are a write that failed (its put failed too): cut off, as a crash's torn
                // tail (if the cut fails, they are still not replayed).
                const auto next = i + 1 < found.size() ? std::optional(found[i + 1]) : std::nullopt;
                const std::uint64_t length = recorded_length(sequence, next);
                std::uint64_t size = file_size;
                if (length != 0 && length < file_size) {
                    size = length;
                    ++counters.torn_tails;
                    (void)::ftruncate(fd.get(), static_cast<off_t>(length));
                }
                const std::uint32_t slot = free_slot();
                slots[slot].emplace(segment{sequence, std::move(fd), size, head->created_ns, 0});
                order.push_back(slot);
                tail.clear();
                tail_start = flushed_to = size;  // read_at reads the file only
                if (auto ok = load(slot, data); !ok) return unexpected(std::move(ok).error());
                replay_visitor v{*this, slot, true, nullptr, next.has_value()};
                const std::size_t end = detail::segment::scan_records(data, v);
                // Shorter than recorded with no torn record to show it (cut at a record's
                // end): the lost records may have removed or replaced anything older.
                if (end >= data.size() && end < length) v.unreadable(end, static_cast<std::size_t>(length));
                seg(slot).size = end;
                tail_start = flushed_to = end;
                active_file_size = file_size;
            }
            // The active segment's torn tail is cut so that appends follow its last record. A
            // sealed segment's stays, so that every open drops again what it may have replaced.
            if (!order.empty() && active_file_size > seg(active()).size) {
                if (::ftruncate(seg(active()).fd.get(), static_cast<off_t>(seg(active()).size)) != 0)
                    return unexpected(os_error(errno, "open", file_name(seg(active()).sequence), "cut a torn tail"));
            }
            if (tail_lost) {
                ++counters.lost_segments;
                drop_all();
            } else if (next_sequence > 1 && recorded < next_sequence - 1) {
                (void)write_newest(next_sequence - 1);  // a directory from before the marker, or a damaged one
            }
            // A roll interrupted between making the newest segment and deleting the oldest:
            // the copies it had not written yet are made again (read bits are not kept
            // across a restart, so only pinned names are carried). A disk too full for them
            // leaves both in place (see evict_oldest); the open still succeeds.
            if (order.size() > max_segments) {
                if (auto ok = evict_oldest(carry_room(0)); !ok && ok.error().code() != errc::disk_full) return ok;
            }
            load_pins();
            evicted = {};  // the index a caller builds after open() sees what is left
            return {};
        }

        [[nodiscard]] segment_log_stats snapshot() {
            segment_log_stats out = counters;
            out.segments = order.size();
            out.entries = index.size();
            for (const auto& pin : pins)
                if (find(pin.first, hash_of(pin.first)) == hash_index::npos) ++out.entries;
            out.index_bytes = index.memory_bytes();
            out.buffered_bytes = unwritten();
            out.disk_bytes = 0;
            for (const std::uint32_t slot : order) out.disk_bytes += slots[slot]->size;
            return out;
        }
    };

    explicit segment_log(std::unique_ptr<state> s) noexcept : m(std::move(s)) {}

    void close() noexcept {
        if (!m) return;
        try {
            std::lock_guard lock(m->mutex);
            (void)m->flush(true);
            (void)m->settle_doubtful();
        } catch (...) {  // bad_alloc while building a failure: the buffer is lost, as in a crash
        }
    }

    std::unique_ptr<state> m;
};

static_assert(storage_policy<segment_log>);

}  // namespace tierguard::storage
