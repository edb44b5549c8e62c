#pragma once

#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/result.hpp>
#include <tierguard/storage/concept.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace tierguard::storage {

/// Named byte blobs in a map: the reference model of posix_directory, and a storage
/// for tests.
///
/// Refuses, stores and quarantines exactly as posix_directory does, down to the error
/// codes: the same name rules (errc::invalid_argument), errc::miss for an absent blob,
/// errc::too_large past max_blob_size, and the file system's conflicts between a blob
/// and a folder of the same name (a blob where a folder belongs: errc::io_error with
/// ENOTDIR on write and remove, errc::corrupted on read; a folder, once made, where a
/// blob is written: errc::io_error with EISDIR). Folders, as on disk, stay once made
/// until a remove(), quarantine() or clean() leaves them empty.
/// Quarantined blobs go to a second map under the name posix_directory would give
/// them; clean() purges those older than the maximum age. Every operation is
/// thread-safe (one mutex) and O(log n) plus the bytes copied.
class memory_storage {
public:
    struct config {
        /// Largest blob write() accepts.
        std::size_t max_blob_size = std::size_t{64} << 20;
    };

    memory_storage() = default;
    explicit memory_storage(config cfg) : m_config(cfg) {}

    memory_storage(memory_storage&& other) {
        std::lock_guard lock(other.m_mutex);
        m_config = other.m_config;
        m_blobs = std::move(other.m_blobs);
        m_folders = std::move(other.m_folders);
        m_quarantine = std::move(other.m_quarantine);
    }
    memory_storage& operator=(memory_storage&& other) {
        if (this != &other) {
            std::scoped_lock lock(m_mutex, other.m_mutex);
            m_config = other.m_config;
            m_blobs = std::move(other.m_blobs);
            m_folders = std::move(other.m_folders);
            m_quarantine = std::move(other.m_quarantine);
        }
        return *this;
    }
    memory_storage(const memory_storage&) = delete;
    memory_storage& operator=(const memory_storage&) = delete;
    ~memory_storage() = default;

    /// A copy of the blob; errc::miss if absent, errc::corrupted if a blob sits where one
    /// of its folders belongs or a folder where it belongs.
    [[nodiscard]] result<std::vector<std::byte>> read(std::string_view name) const {
        if (auto ok = detail::check_blob_name("read", name, tier::disk); !ok) return unexpected(std::move(ok).error());
        std::lock_guard lock(m_mutex);
        if (const auto blocked = blob_on_path(name))
            return fail(
                errc::corrupted, tier::disk,
                "read " + std::string(name) + ": found a regular file where a folder belongs (" + *blocked + ")",
                std::error_code(ENOTDIR, std::generic_category()));
        if (m_folders.contains(name))
            return fail(errc::corrupted, tier::disk,
                        "read " + std::string(name) + ": found a directory where a blob belongs");
        const auto it = m_blobs.find(name);
        if (it == m_blobs.end())
            return fail(errc::miss, tier::disk, "read " + std::string(name) + ": open",
                        std::error_code(ENOENT, std::generic_category()));
        return it->second.bytes;
    }

    /// Stores a copy of `bytes` under `name`, replacing any previous blob.
    result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        if (auto ok = detail::check_blob_name("write", name, tier::disk); !ok) return ok;
        if (bytes.size() > m_config.max_blob_size)
            return fail(errc::too_large, tier::disk,
                        "write " + std::string(name) + ": blob of " + std::to_string(bytes.size()) +
                            " bytes exceeds max_blob_size (" + std::to_string(m_config.max_blob_size) + ")");
        std::lock_guard lock(m_mutex);
        if (const auto blocked = blob_on_path(name))
            return fail(errc::io_error, tier::disk, "write " + std::string(name) + ": open folder " + *blocked,
                        std::error_code(ENOTDIR, std::generic_category()));
        if (m_folders.contains(name))
            return fail(errc::io_error, tier::disk, "write " + std::string(name) + ": rename into place",
                        std::error_code(EISDIR, std::generic_category()));
        for (std::size_t slash = name.find('/'); slash != std::string_view::npos; slash = name.find('/', slash + 1))
            m_folders.emplace(name.substr(0, slash));
        blob& b = m_blobs[std::string(name)];
        b.bytes.assign(bytes.begin(), bytes.end());
        b.modified = std::chrono::system_clock::now();
        return {};
    }

    /// Drops the blob; errc::miss if there was none.
    result<void> remove(std::string_view name) {
        if (auto ok = detail::check_blob_name("remove", name, tier::disk); !ok) return ok;
        std::lock_guard lock(m_mutex);
        if (auto ok = check_removable("remove", name); !ok) return ok;
        m_blobs.erase(m_blobs.find(name));
        drop_empty_parents(name);
        return {};
    }

    /// Every blob, in name order.
    [[nodiscard]] result<std::vector<blob_info>> list() const {
        std::lock_guard lock(m_mutex);
        std::vector<blob_info> out;
        out.reserve(m_blobs.size());
        for (const auto& [name, b] : m_blobs) out.push_back(blob_info{name, b.bytes.size(), b.modified});
        return out;
    }

    /// Moves the blob to the quarantine map under detail::quarantine_name(name, reason, now),
    /// replacing a blob quarantined under that same name. errc::miss if absent.
    result<void> quarantine(std::string_view name, std::string_view reason, std::chrono::system_clock::time_point now) {
        if (auto ok = detail::check_blob_name("quarantine", name, tier::disk); !ok) return ok;
        std::lock_guard lock(m_mutex);
        if (auto ok = check_removable("quarantine", name); !ok) return ok;
        const auto it = m_blobs.find(name);
        quarantined_blob& q = m_quarantine[detail::quarantine_name(name, reason, now)];
        q.bytes = std::move(it->second.bytes);
        q.since = std::chrono::system_clock::time_point(detail::ceil_sat<std::chrono::system_clock::duration>(
            std::chrono::floor<std::chrono::seconds>(now).time_since_epoch()));
        m_blobs.erase(it);
        drop_empty_parents(name);
        return {};
    }

    /// Purges quarantined blobs older than options.now - options.quarantine_max_age (to
    /// the second, as the directory's file names keep it). Nothing else needs cleaning.
    result<clean_report> clean(const clean_options& options) {
        std::lock_guard lock(m_mutex);
        clean_report report;
        const auto oldest = detail::sub_sat(options.now, options.quarantine_max_age);
        for (auto it = m_quarantine.begin(); it != m_quarantine.end();) {
            if (it->second.since < oldest) {
                ++report.quarantine_purged;
                report.bytes_freed += it->second.bytes.size();
                it = m_quarantine.erase(it);
            } else {
                ++it;
            }
        }
        // Deepest first, as posix_directory removes them; its quarantine folder stays.
        const std::vector<std::string> folders(m_folders.rbegin(), m_folders.rend());
        for (const std::string& folder : folders)
            if (folder != detail::quarantine_folder) (void)drop_if_empty(m_folders.find(folder));
        return report;
    }

    /// Blobs in quarantine now.
    [[nodiscard]] std::size_t quarantined() const {
        std::lock_guard lock(m_mutex);
        return m_quarantine.size();
    }

    [[nodiscard]] const config& settings() const noexcept { return m_config; }

private:
    struct blob {
        std::vector<std::byte> bytes;
        std::chrono::system_clock::time_point modified;
    };
    struct quarantined_blob {
        std::vector<std::byte> bytes;
        std::chrono::system_clock::time_point since;
    };

    // Drops the folder at `it` if no blob or folder is in it; true if it did.
    bool drop_if_empty(std::set<std::string, std::less<>>::iterator it) {
        if (it == m_folders.end()) return false;
        const std::string inside = *it + "/";
        const auto first_blob = m_blobs.lower_bound(inside);
        const auto folder = m_folders.lower_bound(inside);
        if ((first_blob != m_blobs.end() && first_blob->first.starts_with(inside)) ||
            (folder != m_folders.end() && folder->starts_with(inside)))
            return false;
        m_folders.erase(it);
        return true;
    }

    void drop_empty_parents(std::string_view name) {
        for (auto folder = detail::blob_parent(name); !folder.empty() && drop_if_empty(m_folders.find(folder));
             folder = detail::blob_parent(folder)) {}
    }

    // The first folder of `name` that is a blob, as the directory would find it walking down.
    [[nodiscard]] std::optional<std::string> blob_on_path(std::string_view name) const {
        for (std::size_t slash = name.find('/'); slash != std::string_view::npos; slash = name.find('/', slash + 1)) {
            const std::string_view folder = name.substr(0, slash);
            if (m_blobs.contains(folder)) return std::string(folder);
        }
        return std::nullopt;
    }

    [[nodiscard]] result<void> check_removable(std::string_view operation, std::string_view name) const {
        const std::string context = std::string(operation) + " " + std::string(name);
        if (const auto blocked = blob_on_path(name))
            return fail(errc::io_error, tier::disk, context + ": open folder " + *blocked,
                        std::error_code(ENOTDIR, std::generic_category()));
        if (m_folders.contains(name))
            return fail(errc::io_error, tier::disk, context + ": found a directory where a blob belongs",
                        std::error_code(EISDIR, std::generic_category()));
        if (!m_blobs.contains(name))
            return fail(errc::miss, tier::disk, context, std::error_code(ENOENT, std::generic_category()));
        return {};
    }

    config m_config;
    mutable std::mutex m_mutex;
    std::map<std::string, blob, std::less<>> m_blobs;
    std::set<std::string, std::less<>> m_folders;
    std::map<std::string, quarantined_blob, std::less<>> m_quarantine;
};

static_assert(storage_policy<memory_storage>);

/// A memory_storage that declares itself shared (`shared = true`), standing in for a
/// remote server in tests: a disk_tier over it keeps no index and names tier::remote, as
/// over storage::redis (but nothing expires by itself).
class remote_memory_storage : public memory_storage {
public:
    using memory_storage::memory_storage;
    static constexpr bool shared = true;
};

}  // namespace tierguard::storage
