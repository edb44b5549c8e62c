#pragma once

#include <tierguard/result.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tierguard {

/// How far a storage write goes before it is acknowledged.
enum class durability : unsigned char {
    none,  ///< no fsync: fast; a power loss may lose recent writes (never tear them)
    data,  ///< fsync the file before the rename: its bytes survive a power loss
    full,  ///< fsync the file, then the directory after the rename: the entry survives too
};

/// One stored blob, as a listing reports it.
struct blob_info {
    std::string name;                                ///< the name it was written under
    std::uint64_t size = 0;                          ///< bytes
    std::chrono::system_clock::time_point modified;  ///< last write
};

/// What a storage's clean() should do; `now` comes from the caller's clock.
struct clean_options {
    std::chrono::system_clock::time_point now;
    std::chrono::seconds quarantine_max_age{std::chrono::hours{24 * 7}};  ///< seed 001: 7 days
};

/// What a storage's clean() did.
struct clean_report {
    std::uint64_t temp_files_removed = 0;  ///< leftovers of writes a crash interrupted
    std::uint64_t foreign_removed = 0;     ///< things that are not blobs (links, FIFOs, bad names)
    std::uint64_t quarantine_purged = 0;   ///< quarantined files older than the maximum age
    std::uint64_t bytes_freed = 0;

    /// Counts one removed file: a temp file, else purged quarantine, else a foreign file;
    /// `bytes` (its size; 0 for what is not a regular file) in bytes_freed.
    constexpr void count_removed(bool temp, bool purged, std::uint64_t bytes) noexcept {
        ++(temp ? temp_files_removed : purged ? quarantine_purged : foreign_removed);
        bytes_freed += bytes;
    }
};

/// Named byte blobs: what a storage tier (disk, later remote) keeps its entries in.
///
/// Names are relative, '/'-separated, each segment of [A-Za-z0-9_-] and '.' but not
/// starting with '.' (names starting with '.' are the storage's own: temp files, the
/// lock); anything else is refused with errc::invalid_argument. Every OS error is
/// mapped to the taxonomy: ENOENT errc::miss, ENOSPC/EDQUOT errc::disk_full,
/// EACCES/EPERM/EROFS errc::permission_denied, everything else errc::io_error, with
/// the OS error kept in failure::os_error(). No operation throws for a storage failure.
///
/// @code
/// template <tierguard::storage_policy S>
/// void roundtrip(S& s) {
///     std::vector<std::byte> blob(16, std::byte{1});
///     if (s.write("ab/cd/0123", blob)) assert(s.read("ab/cd/0123").value() == blob);
/// }
/// @endcode
template <class S>
concept storage_policy = requires(S& s, std::string_view name, std::span<const std::byte> bytes,
                                  std::string_view reason, std::chrono::system_clock::time_point now,
                                  const clean_options& options) {
    // The whole blob, or errc::miss; errc::too_large past the storage's size limit.
    { s.read(name) } -> std::same_as<result<std::vector<std::byte>>>;
    // Atomic replace: a concurrent or later reader sees the old blob or the new one, whole.
    { s.write(name, bytes) } -> std::same_as<result<void>>;
    // Removes the blob; errc::miss if there was none.
    { s.remove(name) } -> std::same_as<result<void>>;
    // Every blob (not temp files, not quarantined ones), in no particular order.
    { s.list() } -> std::same_as<result<std::vector<blob_info>>>;
    // Moves the blob aside for inspection, under a name with the UTC time `now` and the reason.
    { s.quarantine(name, reason, now) } -> std::same_as<result<void>>;
    // Removes leftovers and foreign files, purges old quarantine.
    { s.clean(options) } -> std::same_as<result<clean_report>>;
};

/// Optional storage member: a scatter read of a blob into the caller's buffers, so a reader
/// that knows the blob's layout (the range cache's block frames) gets its bytes in place,
/// without a buffer of the storage's and without zero-filling one.
/// `read_into(name, parts)` fills `parts` in order with the blob's bytes and returns the
/// blob's size; a blob shorter than the parts together fills a prefix of them. Errors as
/// read(); errc::too_large, nothing read, for a blob longer than the parts together. Storages
/// without it are read with read() and copied.
///
/// @code
/// template <tierguard::storage_reads_into S>
/// bool header_and_body(const S& s, std::span<std::byte> head, std::span<std::byte> body) {
///     const std::span<std::byte> parts[] = {head, body};
///     auto n = s.read_into("ab/cd/0123", parts);
///     return n && *n == head.size() + body.size();
/// }
/// @endcode
template <class S>
concept storage_reads_into = requires(const S& s, std::string_view name, std::span<const std::span<std::byte>> parts) {
    // The blob's size; its bytes in parts, in order.
    { s.read_into(name, parts) } -> std::same_as<result<std::size_t>>;
};

/// A stored file's identity as fstat reports it on the descriptor a read used: any change
/// made through the file system (a write, a truncation, a rename over it) changes at least
/// the inode, the size or the ctime.
struct blob_identity {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;  ///< since the epoch
    std::int64_t ctime_ns = 0;  ///< since the epoch
    friend bool operator==(const blob_identity&, const blob_identity&) = default;
};

/// Optional storage member: read_into() that also reports the identity of the file it read,
/// taken with fstat on the same descriptor after the read, so a change that reached any byte
/// read also reached the identity (the range cache's range_verify::once_per_file_change).
///
/// @code
/// template <tierguard::storage_reads_identified S>
/// bool same_file_as_before(const S& s, std::span<std::byte> body, tierguard::blob_identity& last) {
///     const std::span<std::byte> parts[] = {body};
///     tierguard::blob_identity now;
///     return s.read_into("ab/cd/0123", parts, now) && std::exchange(last, now) == now;
/// }
/// @endcode
template <class S>
concept storage_reads_identified = storage_reads_into<S> &&
    requires(const S& s, std::string_view name, std::span<const std::span<std::byte>> parts, blob_identity& identity) {
    // As read_into(name, parts), but `parts` unspecified on any error; `identity` set on success.
    { s.read_into(name, parts, identity) } -> std::same_as<result<std::size_t>>;
};

/// Optional storage member: clean() that also returns what list() would return after it,
/// from the same walk of the storage (one pass over a directory tree instead of two).
///
/// @code
/// template <tierguard::storage_cleans_listing S>
/// std::size_t blobs_after_clean(S& s) {
///     std::vector<tierguard::blob_info> listing;
///     return s.clean(tierguard::clean_options{std::chrono::system_clock::now()}, listing) ? listing.size() : 0;
/// }
/// @endcode
template <class S>
concept storage_cleans_listing = requires(S& s, const clean_options& options, std::vector<blob_info>& listing) {
    // As clean(options), and `listing` replaced by every blob left, as list() reports them.
    { s.clean(options, listing) } -> std::same_as<result<clean_report>>;
};

namespace detail {

/// read_into() for a storage that has the blob's bytes in a buffer: copies `blob` into
/// `parts` in order and returns its size; errc::too_large, the parts untouched, if it does
/// not fit.
[[nodiscard]] inline result<std::size_t> scatter_blob(std::span<const std::byte> blob,
                                                      std::span<const std::span<std::byte>> parts,
                                                      std::string_view name) {
    std::size_t capacity = 0;
    for (const auto part : parts) capacity += part.size();
    if (blob.size() > capacity)
        return fail(errc::too_large, tier::disk,
                    "read " + std::string(name) + ": blob of " + std::to_string(blob.size()) +
                        " bytes, over the buffers given (" + std::to_string(capacity) + "); not read");
    const std::size_t size = blob.size();
    for (const auto part : parts) {
        const std::size_t n = std::min(part.size(), blob.size());
        std::copy_n(blob.begin(), n, part.begin());
        blob = blob.subspan(n);
    }
    return size;
}

/// A storage many processes see at once (a remote server): it declares
/// `static constexpr bool shared = true;`. A disk_tier over it keeps no index and names
/// keys with a fixed hash key (see disk_tier::shared).
template <class S>
inline constexpr bool shared_storage = [] {
    if constexpr (requires { S::shared; }) {
        return static_cast<bool>(S::shared);
    } else {
        return false;
    }
}();

}  // namespace detail

}  // namespace tierguard
