#pragma once

#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/message.hpp>
#include <tierguard/detail/os_error.hpp>
#include <tierguard/detail/posix_fs.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>
#include <tierguard/storage/concept.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
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

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

namespace tierguard::storage {

/// Named byte blobs as files under one directory: the disk tier's storage.
///
/// A blob "ab/cd/0123" is the file <root>/ab/cd/0123. Guarantees:
///  - Atomic replace: a write goes to a temp file ".tmp.<pid>.<n>" in the blob's own
///    folder, synced as config::sync says, then renamed into place; readers see the old
///    blob or the new one, never a torn one. No temp file outlives a write, failed or not.
///  - Under durability::full an acknowledged write survives a power loss: besides the file
///    and its folder, each folder on its path has its link synced once per instance, also
///    one found existing (made by a process that may have died before syncing it).
///  - No link is followed: every operation works from a descriptor of the root and opens
///    paths below it with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) in one call where
///    the kernel has it, else (and to diagnose a failure other than ENOENT) one segment at
///    a time with O_NOFOLLOW; a symbolic link, FIFO, device or folder where a blob belongs
///    reads as errc::corrupted (a FIFO never blocks a read). For tests, the environment
///    variable TIERGUARD_NO_OPENAT2, set when open() runs, forces the segment walk.
///  - Folders hold no garbage: remove(), quarantine() and clean() delete the blob folders they leave
///    empty (an empty folder costs an inode, and on a file system short of inodes a
///    full disk). Only an empty folder is ever removed (rmdir), so a write racing with
///    the removal either lands first and keeps the folder, or finds it gone and makes
///    it again: it never fails or is lost because of the removal.
///  - Files are made 0600 and folders 0700; open() refuses a root that is a symbolic
///    link, is not owned by the effective uid, or is writable by group or others.
///  - One user at a time: open() takes an exclusive advisory lock (flock) on <root>/.lock
///    and fails with errc::locked while another process or instance holds it.
///  - config::read_only opens an existing directory without changing anything in it: a
///    shared lock on the existing lock file (readers coexist, a writer gets errc::locked),
///    and write, remove, quarantine and clean fail with errc::permission_denied.
///  - Every OS error is mapped as detail::os_failure() says, the errno kept.
/// Every operation is thread-safe; none throws for a storage failure (only bad_alloc).
/// A moved-from posix_directory may only be destroyed or assigned to.
class posix_directory {
public:
    struct config {
        /// The cache's directory; made (0700, with missing parents) if absent.
        std::filesystem::path root;
        /// How far a write goes before it returns.
        durability sync = durability::data;
        /// Largest blob write() stores and read() loads; larger files on disk are refused unread.
        std::size_t max_blob_size = std::size_t{64} << 20;
        /// Inspect only (tools): nothing is made, locked exclusively or written; the root and
        /// its lock file must exist (errc::miss otherwise).
        bool read_only = false;
    };

    /// Opens (making it if needed, unless read_only) and locks the directory `cfg.root`. Errors:
    /// errc::invalid_argument for a bad config or a root that is not a directory,
    /// errc::permission_denied for a root that is a link, not ours, or writable by others,
    /// errc::locked if another process or instance holds it, else the OS error mapped.
    [[nodiscard]] static result<posix_directory> open(config cfg) {
        using detail::os_failure;
        namespace px = detail::posix;
        if (cfg.root.empty())
            return fail(errc::invalid_argument, tier::disk,
                        "posix_directory: config.root is empty; it must name the cache directory");
        if (cfg.max_blob_size == 0)
            return fail(errc::invalid_argument, tier::disk,
                        "posix_directory: config.max_blob_size is 0; it must be at least 1 byte");
        auto root = px::absolute_root(cfg.root);
        if (!root) return unexpected(std::move(root).error());
        cfg.root = std::move(*root);
        auto locked = px::open_locked_root(cfg.root, "posix_directory", cfg.read_only);
        if (!locked) return unexpected(std::move(locked).error());
        px::unique_fd root_fd = std::move(locked->root);
        px::unique_fd lock = std::move(locked->lock);

        const bool beneath = std::getenv("TIERGUARD_NO_OPENAT2") == nullptr && beneath_works(root_fd.get());
        return posix_directory(std::move(cfg), std::move(root_fd), std::move(lock), beneath);
    }

    posix_directory(posix_directory&&) noexcept = default;
    posix_directory& operator=(posix_directory&&) noexcept = default;
    posix_directory(const posix_directory&) = delete;
    posix_directory& operator=(const posix_directory&) = delete;
    /// Closes the descriptors, which releases the lock.
    ~posix_directory() = default;

    /// The whole blob. errc::miss if absent; errc::corrupted if something other than a
    /// regular file sits where the blob or one of its folders belongs; errc::too_large,
    /// without reading it, for a file over max_blob_size.
    [[nodiscard]] result<std::vector<std::byte>> read(std::string_view name) const {
        using detail::os_failure;
        auto fd = open_regular(name, m_config.max_blob_size, "max_blob_size");
        if (!fd) return unexpected(std::move(fd).error());
        std::vector<std::byte> bytes(fd->second);
        std::size_t got = 0;
        while (got < bytes.size()) {
            const ssize_t n = ::read(fd->first.get(), bytes.data() + got, bytes.size() - got);
            if (n < 0) {
                if (errno == EINTR) continue;
                return unexpected(os_failure(errno, "read", name, "read"));
            }
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
        }
        bytes.resize(got);
        return bytes;
    }

    /// The blob read into `parts`, in order (see storage_reads_into), with one readv per
    /// step and no buffer of its own; returns its size. Errors as read(); errc::too_large,
    /// nothing read, for a file longer than the parts together (or than max_blob_size).
    [[nodiscard]] result<std::size_t> read_into(std::string_view name,
                                                std::span<const std::span<std::byte>> parts) const {
        return read_parts(name, parts, nullptr);
    }

    /// As read_into(name, parts), and `identity` set from fstat on the descriptor read,
    /// taken after the read (see storage_reads_identified); that one fstat also makes the
    /// checks, so on an error (errc::too_large included) `parts` may hold bytes read.
    [[nodiscard]] result<std::size_t> read_into(std::string_view name, std::span<const std::span<std::byte>> parts,
                                                blob_identity& identity) const {
        return read_parts(name, parts, &identity);
    }

    /// Stores `bytes` under `name` atomically (see the class comment), making missing
    /// folders. errc::too_large past max_blob_size, before anything is touched.
    result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        using detail::os_failure;
        namespace px = detail::posix;
        if (auto ok = detail::check_blob_name("write", name, tier::disk); !ok) return ok;
        if (auto ok = writable("write", name); !ok) return ok;
        if (bytes.size() > m_config.max_blob_size)
            return fail(
                errc::too_large, tier::disk,
                detail::concat({"write ", name, ": blob of ", std::to_string(bytes.size()),
                                " bytes exceeds max_blob_size (", std::to_string(m_config.max_blob_size), ")"}));
        std::optional<folder_ref> dir;
        std::optional<temp_ticket> ticket;
        std::string temp;
        px::unique_fd fd;
        for (int attempt = 0;; ++attempt) {
            // The ticket, taken before the walk, keeps this instance's folder removals away
            // until the write is done (remove_if_empty). ENOENT: another process took a
            // folder on the way; walk again, making it anew.
            ticket.emplace(*m_in_flight);
            auto opened = walk("write", name, parent_of(name), true, false);
            if (!opened) {
                if (attempt < max_write_attempts && missing(opened.error())) continue;
                return unexpected(std::move(opened).error());
            }
            dir.emplace(std::move(*opened));
            temp = m_in_flight->prefix + std::to_string(ticket->number());
            fd.reset(px::retry_eintr([&] {
                return ::openat(dir->fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            }));
            if (fd) break;
            const int err = errno;
            // EEXIST: a crashed process with our pid left this one; take the next number.
            if ((err != EEXIST && err != ENOENT) || attempt == max_write_attempts)
                return unexpected(os_failure(err, "write", name, detail::concat({"create temp file ", temp})));
        }
        temp_remover remover{dir->fd, temp.c_str()};

        for (std::size_t done = 0; done < bytes.size();) {
            const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                return unexpected(os_failure(errno, "write", name, detail::concat({"write temp file ", temp})));
            }
            if (n == 0) return unexpected(os_failure(EIO, "write", name, detail::concat({"write temp file ", temp})));
            done += static_cast<std::size_t>(n);
        }
        if (m_config.sync != durability::none && sync_file(fd.get(), m_config.sync) != 0)
            return unexpected(os_failure(errno, "write", name, detail::concat({"sync temp file ", temp})));
        if (::close(fd.release()) != 0)
            return unexpected(os_failure(errno, "write", name, detail::concat({"close temp file ", temp})));
        const std::string leaf(leaf_of(name));
        if (::renameat(dir->fd, temp.c_str(), dir->fd, leaf.c_str()) != 0)
            return unexpected(os_failure(errno, "write", name, "rename into place"));
        remover.dismiss();
        if (m_config.sync == durability::full && ::fsync(dir->fd) != 0)
            return unexpected(os_failure(errno, "write", name, "sync folder"));
        return {};
    }

    /// Removes the blob; errc::miss if there was none. Never follows a link (a link where
    /// a blob belongs is itself removed). Then removes the folders on its path that this
    /// left empty.
    result<void> remove(std::string_view name) {
        using detail::os_failure;
        if (auto ok = detail::check_blob_name("remove", name, tier::disk); !ok) return ok;
        if (auto ok = writable("remove", name); !ok) return ok;
        auto dir = walk("remove", name, parent_of(name), false, false);
        if (!dir) return unexpected(std::move(dir).error());
        const std::string leaf(leaf_of(name));
        if (::unlinkat(dir->fd, leaf.c_str(), 0) != 0) return unexpected(os_failure(errno, "remove", name, "unlink"));
        if (m_config.sync == durability::full && ::fsync(dir->fd) != 0)
            return unexpected(os_failure(errno, "remove", name, "sync folder"));
        return remove_empty_parents("remove", name);
    }

    /// Every regular file under the root whose path is a valid blob name; skips dot-names
    /// (temp files, the lock), the quarantine folder and anything not a regular file.
    /// Entries vanishing while the listing runs are skipped. O(files + folders) syscalls.
    [[nodiscard]] result<std::vector<blob_info>> list() const {
        using detail::os_failure;
        namespace px = detail::posix;
        std::vector<blob_info> out;
        std::vector<std::string> pending{std::string()};
        while (!pending.empty()) {
            const std::string folder = std::move(pending.back());
            pending.pop_back();
            auto stream = open_stream("list", folder);
            if (!stream) {
                if (vanished(stream.error())) continue;
                return unexpected(std::move(stream).error());
            }
            while (const char* entry = stream->next()) {
                const std::string_view entry_name = entry;
                if (!detail::is_blob_segment(entry_name)) continue;
                if (folder.empty() && entry_name == detail::quarantine_folder) continue;
                std::string name = px::join(folder, entry_name);
                if (name.size() > detail::max_blob_name_length) continue;
                struct stat st {};
                if (::fstatat(stream->fd(), entry, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                    if (errno == ENOENT) continue;
                    return unexpected(os_failure(errno, "list", name, "stat"));
                }
                if (S_ISDIR(st.st_mode)) {
                    pending.push_back(std::move(name));
                } else if (S_ISREG(st.st_mode)) {
                    out.push_back(
                        blob_info{std::move(name), static_cast<std::uint64_t>(st.st_size), px::modified_time(st)});
                }
            }
            if (errno != 0) return unexpected(os_failure(errno, "list", folder.empty() ? "." : folder, "read folder"));
        }
        return out;
    }

    /// Moves the blob (a rename, no copy) to <root>/quarantine/ as
    /// detail::quarantine_name(name, reason, now), e.g.
    /// "20261123T104501Z.ab_cd_0123.bad_checksum", replacing a file of that same name.
    /// Moves whatever non-directory sits there, links included (never followed), then
    /// removes the folders this left empty. errc::miss if absent.
    [[gnu::cold]] result<void> quarantine(std::string_view name, std::string_view reason,
                                          std::chrono::system_clock::time_point now) {
        using detail::os_failure;
        namespace px = detail::posix;
        if (auto ok = detail::check_blob_name("quarantine", name, tier::disk); !ok) return ok;
        if (auto ok = writable("quarantine", name); !ok) return ok;
        auto dir = walk("quarantine", name, parent_of(name), false, false);
        if (!dir) return unexpected(std::move(dir).error());
        const std::string leaf(leaf_of(name));
        struct stat st {};
        if (::fstatat(dir->fd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
            return unexpected(os_failure(errno, "quarantine", name, "stat"));
        if (S_ISDIR(st.st_mode))
            return fail(errc::io_error, tier::disk,
                        detail::concat({"quarantine ", name, ": found a directory where a blob belongs"}),
                        std::error_code(EISDIR, std::generic_category()));
        auto folder = walk("quarantine", name, detail::quarantine_folder, true, false);
        if (!folder) return unexpected(std::move(folder).error());
        const std::string target = detail::quarantine_name(name, reason, now);
        if (::renameat(dir->fd, leaf.c_str(), folder->fd, target.c_str()) != 0)
            return unexpected(os_failure(errno, "quarantine", name, detail::concat({"move to quarantine/", target})));
        if (m_config.sync == durability::full && (::fsync(folder->fd) != 0 || ::fsync(dir->fd) != 0))
            return unexpected(os_failure(errno, "quarantine", name, "sync folders"));
        return remove_empty_parents("quarantine", name);
    }

    /// Removes, without following any link: temp files of interrupted writes (not those
    /// of this instance's writes in flight); foreign things (links, FIFOs, sockets,
    /// devices, files and folders whose names are not blob names, anything unexpected in
    /// the quarantine folder); quarantined files older than options.now -
    /// options.quarantine_max_age, by the time in their names; blob folders left empty
    /// (a write racing with that makes the folder again, see the class comment). Never
    /// opens anything but folders.
    result<clean_report> clean(const clean_options& options) { return clean_walk(options, nullptr); }

    /// As clean(options), and `listing` replaced by what list() would then return, from the
    /// same walk (storage_cleans_listing): half the directory reads and stats of the two calls.
    result<clean_report> clean(const clean_options& options, std::vector<blob_info>& listing) {
        listing.clear();
        return clean_walk(options, &listing);
    }

    /// Files in the quarantine folder now (0 if it cannot be read).
    [[nodiscard]] std::size_t quarantined() const {
        auto stream = open_stream("quarantined", detail::quarantine_folder);
        if (!stream) return 0;
        std::size_t count = 0;
        while (const char* entry = stream->next()) {
            struct stat st {};
            if (detail::quarantine_time(entry) && ::fstatat(stream->fd(), entry, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(st.st_mode))
                ++count;
        }
        return count;
    }

    /// The root as opened: absolute and normalized.
    [[nodiscard]] const std::filesystem::path& root() const noexcept { return m_config.root; }
    [[nodiscard]] const config& settings() const noexcept { return m_config; }

private:
    static constexpr std::string_view lock_file = detail::posix::lock_file_name;
    // Tries of a write whose temp name is taken, or whose folder a removal took away.
    static constexpr int max_write_attempts = 16;

    // This instance's temp names, ".tmp.<pid>.<n>" with the pid of the process that opened
    // it, and which numbers belong to writes in flight, so that clean() running beside them
    // leaves those alone.
    struct in_flight {
        const std::string prefix = std::string(detail::temp_prefix) + std::to_string(::getpid()) + ".";
        std::mutex mutex;
        std::uint64_t next = 0;
        std::vector<std::uint64_t> active;
        // Folders whose link in their parent this instance has synced (durability::full):
        // one found existing may have been made by an instance that never synced it.
        std::unordered_set<std::string> durable_folders;
        // Folders removed so far: a folder synced while one was removed may be gone (and
        // made again unsynced), so it is not marked.
        std::uint64_t removals = 0;

        [[nodiscard]] bool durable(std::string_view folder) {
            std::lock_guard lock(mutex);
            return durable_folders.contains(std::string(folder));
        }
        [[nodiscard]] std::uint64_t removed() {
            std::lock_guard lock(mutex);
            return removals;
        }
        void mark_durable(std::string_view folder, std::uint64_t removed_before) {
            std::lock_guard lock(mutex);
            if (removals == removed_before) durable_folders.emplace(folder);
        }

        [[nodiscard]] bool owns(std::string_view temp_name) {
            if (!temp_name.starts_with(prefix)) return false;
            temp_name.remove_prefix(prefix.size());
            if (temp_name.empty()) return false;
            std::uint64_t number = 0;
            for (const char c : temp_name) {
                if (c < '0' || c > '9') return false;
                number = number * 10 + static_cast<std::uint64_t>(c - '0');
            }
            std::lock_guard lock(mutex);
            return std::find(active.begin(), active.end(), number) != active.end();
        }
    };

    class temp_ticket {
    public:
        explicit temp_ticket(in_flight& registry) : m_registry(registry) {
            std::lock_guard lock(m_registry.mutex);
            m_number = m_registry.next++;
            m_registry.active.push_back(m_number);
        }
        temp_ticket(const temp_ticket&) = delete;
        temp_ticket& operator=(const temp_ticket&) = delete;
        ~temp_ticket() {
            std::lock_guard lock(m_registry.mutex);
            m_registry.active.erase(std::find(m_registry.active.begin(), m_registry.active.end(), m_number));
        }
        [[nodiscard]] std::uint64_t number() const noexcept { return m_number; }

    private:
        in_flight& m_registry;
        std::uint64_t m_number = 0;
    };

    class temp_remover {
    public:
        temp_remover(int dir_fd, const char* name) noexcept : m_dir_fd(dir_fd), m_name(name) {}
        temp_remover(const temp_remover&) = delete;
        temp_remover& operator=(const temp_remover&) = delete;
        ~temp_remover() {
            if (m_name != nullptr) ::unlinkat(m_dir_fd, m_name, 0);
        }
        void dismiss() noexcept { m_name = nullptr; }

    private:
        int m_dir_fd;
        const char* m_name;
    };

    // An open folder: the root (not owned) or one below it (owned).
    struct folder_ref {
        detail::posix::unique_fd owned;
        int fd = -1;
    };

    posix_directory(config cfg, detail::posix::unique_fd root, detail::posix::unique_fd lock, bool beneath)
        : m_config(std::move(cfg)),
          m_root(std::move(root)),
          m_lock(std::move(lock)),
          m_in_flight(std::make_unique<in_flight>()),
          m_beneath(beneath) {}

    [[nodiscard]] result<void> writable(std::string_view operation, std::string_view name) const {
        if (!m_config.read_only) return {};
        return fail(errc::permission_denied, tier::disk,
                    detail::concat({operation, " ", name, ": the directory was opened read-only"}),
                    std::error_code(EROFS, std::generic_category()));
    }

    [[nodiscard]] static std::string_view parent_of(std::string_view name) noexcept {
        return detail::blob_parent(name);
    }
    [[nodiscard]] static std::string_view leaf_of(std::string_view name) noexcept { return detail::blob_leaf(name); }
    // Gone, or replaced by a non-folder, while a listing or a clean walked to it.
    [[nodiscard]] static bool vanished(const failure& f) noexcept {
        return f.os_error() == std::error_code(ENOENT, std::generic_category()) ||
               f.os_error() == std::error_code(ENOTDIR, std::generic_category());
    }

    [[nodiscard]] static bool missing(const failure& f) noexcept {
        return f.os_error() == std::error_code(ENOENT, std::generic_category());
    }

    // Removes blob folder `folders` if it is empty: true if it did, false if it was not
    // empty, is gone, or a write of this instance is under way (it may have walked into the
    // folder and not yet made its file there: left for a later remove or clean), an error
    // (EIO, say) otherwise. rmdir refuses a folder that is not empty.
    result<bool> remove_if_empty(std::string_view operation, std::string_view folders) {
        auto parent = walk(operation, folders, parent_of(folders), false, false);
        if (!parent) {
            if (vanished(parent.error())) return false;
            return unexpected(std::move(parent).error());
        }
        const std::string leaf(leaf_of(folders));
        std::lock_guard lock(m_in_flight->mutex);
        if (!m_in_flight->active.empty()) return false;
        if (::unlinkat(parent->fd, leaf.c_str(), AT_REMOVEDIR) != 0) {
            const int err = errno;
            if (err == ENOTEMPTY || err == EEXIST || err == ENOENT || err == ENOTDIR || err == EBUSY) return false;
            return unexpected(detail::os_failure(err, operation, folders, "remove the emptied folder"));
        }
        ++m_in_flight->removals;
        std::erase_if(m_in_flight->durable_folders, [&](const std::string& f) {
            return f.starts_with(folders) && (f.size() == folders.size() || f[folders.size()] == '/');
        });
        return true;
    }

    // Removes the folders on blob `name`'s path that are empty, deepest first.
    result<void> remove_empty_parents(std::string_view operation, std::string_view name) {
        for (auto folder = parent_of(name); !folder.empty(); folder = parent_of(folder)) {
            auto removed = remove_if_empty(operation, folder);
            if (!removed) return unexpected(std::move(removed).error());
            if (!*removed) break;
        }
        return {};
    }

    static int sync_file(int fd, durability level) noexcept {
#if defined(__linux__)
        if (level == durability::data) return ::fdatasync(fd);
#else
        (void)level;
#endif
        return ::fsync(fd);
    }

    // Whether open_beneath works here: built in, and neither the kernel nor a seccomp
    // filter refuses it.
    [[nodiscard]] static bool beneath_works(int root_fd) noexcept {
        detail::posix::unique_fd probe(detail::posix::open_beneath(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        return static_cast<bool>(probe);
    }

    // read_into(): with `identity`, also the file's identity, by fstat after the read.
    [[nodiscard]] result<std::size_t> read_parts(std::string_view name, std::span<const std::span<std::byte>> parts,
                                                 blob_identity* identity) const {
        std::size_t capacity = 0;
        for (const auto part : parts) capacity += part.size();
        const std::uint64_t limit = std::min<std::uint64_t>(capacity, m_config.max_blob_size);
        const std::string_view limit_name = capacity < m_config.max_blob_size ? "the buffers given" : "max_blob_size";
        // With `identity`, one fstat after the read serves the checks too: the file is
        // opened without blocking, and the readv never goes past the parts.
        detail::posix::unique_fd fd;
        std::uint64_t size = limit;
        if (identity == nullptr) {
            auto opened = open_regular(name, limit, limit_name);
            if (!opened) return unexpected(std::move(opened).error());
            fd = std::move(opened->first);
            size = opened->second;
        } else {
            if (auto ok = detail::check_blob_name("read", name, tier::disk); !ok)
                return unexpected(std::move(ok).error());
            auto opened = open_blob(name);
            if (!opened) return unexpected(std::move(opened).error());
            fd = std::move(*opened);
        }
        std::array<::iovec, 4> few{};  // the range cache reads 3 parts: no allocation
        std::vector<::iovec> many(parts.size() > few.size() ? parts.size() : 0);
        const std::span<::iovec> room = many.empty() ? std::span<::iovec>(few) : std::span<::iovec>(many);
        std::size_t used = 0;
        for (const auto part : parts)
            if (!part.empty()) room[used++] = ::iovec{part.data(), part.size()};
        const std::span<::iovec> io = room.first(used);
        std::size_t got = 0;
        int failed = 0;
        for (std::size_t first = 0; got < size && first < io.size();) {
            const int count = static_cast<int>(std::min<std::size_t>(io.size() - first, IOV_MAX));
            const ssize_t n = ::readv(fd.get(), io.data() + first, count);
            if (n < 0) {
                if (errno == EINTR) continue;
                failed = errno;
                break;
            }
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
            for (auto left = static_cast<std::size_t>(n); left > 0;) {  // past the parts filled
                const std::size_t step = std::min(left, io[first].iov_len);
                io[first].iov_base = static_cast<std::byte*>(io[first].iov_base) + step;
                io[first].iov_len -= step;
                left -= step;
                if (io[first].iov_len == 0) ++first;
            }
        }
        if (identity != nullptr) {
            struct stat st {};
            if (::fstat(fd.get(), &st) != 0) return unexpected(detail::os_failure(errno, "read", name, "stat"));
            if (auto ok = check_regular(name, st, limit, limit_name); !ok) return unexpected(std::move(ok).error());
            *identity = blob_identity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                                      static_cast<std::uint64_t>(st.st_size),
                                      std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
                                      std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec};
        }
        if (failed != 0) return unexpected(detail::os_failure(failed, "read", name, "read"));
        return got;
    }

    // clean(); with `listing`, the blobs it keeps are added to it, as list() reports them.
    result<clean_report> clean_walk(const clean_options& options, std::vector<blob_info>* listing) {
        using detail::os_failure;
        namespace px = detail::posix;
        enum class kind : unsigned char { blobs, quarantine, foreign };
        struct folder {
            std::string path;
            kind what;
        };
        if (auto ok = writable("clean", "."); !ok) return unexpected(std::move(ok).error());
        clean_report report;
        const auto oldest = detail::sub_sat(options.now, options.quarantine_max_age);
        std::vector<folder> pending{{std::string(), kind::blobs}};
        std::vector<std::string> foreign_folders;  // each found after its parent: removed in reverse
        std::vector<std::string> blob_folders;     // the same
        while (!pending.empty()) {
            const folder current = std::move(pending.back());
            pending.pop_back();
            auto stream = open_stream("clean", current.path);
            if (!stream) {
                if (vanished(stream.error())) continue;
                return unexpected(std::move(stream).error());
            }
            const bool at_root = current.path.empty();
            while (const char* entry = stream->next()) {
                const std::string_view entry_name = entry;
                if (at_root && entry_name == lock_file) continue;
                std::string path = px::join(current.path, entry_name);
                struct stat st {};
                if (::fstatat(stream->fd(), entry, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                    if (errno == ENOENT) continue;
                    return unexpected(os_failure(errno, "clean", path, "stat"));
                }
                if (S_ISDIR(st.st_mode)) {
                    kind what = kind::foreign;
                    if (at_root && entry_name == detail::quarantine_folder)
                        what = kind::quarantine;
                    else if (current.what == kind::blobs && detail::is_blob_segment(entry_name) &&
                             path.size() <= detail::max_blob_name_length)
                        what = kind::blobs;
                    if (what == kind::foreign) foreign_folders.push_back(path);
                    if (what == kind::blobs) blob_folders.push_back(path);
                    pending.push_back({std::move(path), what});
                    continue;
                }
                const bool regular = S_ISREG(st.st_mode);
                const bool temp = regular && entry_name.starts_with(detail::temp_prefix);
                bool purge = false;
                if (temp) {
                    if (m_in_flight->owns(entry_name)) continue;
                } else if (regular && current.what == kind::blobs) {
                    if (detail::is_blob_segment(entry_name) && path.size() <= detail::max_blob_name_length &&
                        !(at_root && entry_name == detail::quarantine_folder)) {
                        if (listing != nullptr)
                            listing->push_back(blob_info{std::move(path), static_cast<std::uint64_t>(st.st_size),
                                                         px::modified_time(st)});
                        continue;
                    }
                } else if (regular && current.what == kind::quarantine) {
                    if (const auto since = detail::quarantine_time(entry_name)) {
                        if (*since >= oldest) continue;
                        purge = true;
                    }
                }
                if (::unlinkat(stream->fd(), entry, 0) != 0) {
                    if (errno == ENOENT) continue;
                    return unexpected(os_failure(errno, "clean", path, "remove"));
                }
                report.count_removed(temp, purge, regular ? static_cast<std::uint64_t>(st.st_size) : 0);
            }
            if (errno != 0)
                return unexpected(os_failure(errno, "clean", current.path.empty() ? "." : current.path, "read folder"));
        }
        for (auto it = foreign_folders.rbegin(); it != foreign_folders.rend(); ++it) {
            auto parent = walk("clean", *it, parent_of(*it), false, false);
            if (!parent) {
                if (vanished(parent.error())) continue;
                return unexpected(std::move(parent).error());
            }
            const std::string leaf(leaf_of(*it));
            if (::unlinkat(parent->fd, leaf.c_str(), AT_REMOVEDIR) == 0) {
                ++report.foreign_removed;
            } else if (errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST) {
                return unexpected(os_failure(errno, "clean", *it, "remove folder"));
            }
        }
        // Folders it hoped were empty: a failed rmdir (EACCES before ENOTEMPTY, say) leaves one.
        for (auto it = blob_folders.rbegin(); it != blob_folders.rend(); ++it) (void)remove_if_empty("clean", *it);
        return report;
    }

    // Opens blob `name` for reading and checks it is a regular file of at most `limit`
    // bytes (`limit_name` says what bounds it): the descriptor and the file's size.
    [[nodiscard]] result<std::pair<detail::posix::unique_fd, std::size_t>> open_regular(
        std::string_view name, std::uint64_t limit, std::string_view limit_name) const {
        namespace px = detail::posix;
        if (auto ok = detail::check_blob_name("read", name, tier::disk); !ok) return unexpected(std::move(ok).error());
        auto fd = open_blob(name);
        if (!fd) return unexpected(std::move(fd).error());
        struct stat st {};
        if (::fstat(fd->get(), &st) != 0) return unexpected(detail::os_failure(errno, "read", name, "stat"));
        if (auto ok = check_regular(name, st, limit, limit_name); !ok) return unexpected(std::move(ok).error());
        return std::pair{std::move(*fd), static_cast<std::size_t>(st.st_size)};
    }

    // Whether `st` is a regular file of at most `limit` bytes; errc::corrupted, errc::too_large if not.
    [[nodiscard]] static result<void> check_regular(std::string_view name, const struct stat& st, std::uint64_t limit,
                                                    std::string_view limit_name) {
        if (!S_ISREG(st.st_mode))
            return fail(errc::corrupted, tier::disk,
                        detail::concat({"read ", name, ": found ", detail::posix::describe_mode(st.st_mode),
                                        " where a blob belongs"}));
        const auto size = static_cast<std::uint64_t>(st.st_size);
        if (size > limit)
            return fail(errc::too_large, tier::disk,
                        detail::concat({"read ", name, ": the file holds ", std::to_string(size), " bytes, over ",
                                        limit_name, " (", std::to_string(limit), "); not read"}));
        return {};
    }

    // Opens blob `name` for reading, never blocking on a FIFO: in one open_beneath call
    // where it works; else, or when that fails other than with ENOENT, through walk, which
    // says what is wrong. Something other than a file where the blob belongs is errc::corrupted.
    [[nodiscard]] result<detail::posix::unique_fd> open_blob(std::string_view name) const {
        namespace px = detail::posix;
        constexpr int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
        if (m_beneath) {
            const std::string path(name);
            px::unique_fd fd(px::open_beneath(m_root.get(), path.c_str(), flags));
            if (fd) return fd;
            if (errno == ENOENT) return unexpected(detail::os_failure(ENOENT, "read", name, "open"));
        }
        auto dir = walk("read", name, parent_of(name), false, true);
        if (!dir) return unexpected(std::move(dir).error());
        const std::string leaf(leaf_of(name));
        px::unique_fd fd(px::retry_eintr([&] { return ::openat(dir->fd, leaf.c_str(), flags); }));
        if (fd) return fd;
        const int err = errno;
        if (err == ELOOP || err == EMLINK || err == ENXIO)
            return fail(errc::corrupted, tier::disk,
                        detail::concat({"read ", name, ": found ", px::describe_entry(dir->fd, leaf.c_str()),
                                        " where a blob belongs"}),
                        std::error_code(err, std::generic_category()));
        return unexpected(detail::os_failure(err, "read", name, "open"));
    }

    // Opens `folders` ('/'-separated, empty for the root): in one open_beneath call where it
    // works and the folders exist; else one segment at a time, each with O_NOFOLLOW, and with
    // `create` making missing ones (0700). A non-folder on the way is errc::corrupted if
    // `foreign_is_corruption`, else errc::io_error (ENOTDIR).
    [[nodiscard]] result<folder_ref> walk(std::string_view operation, std::string_view name, std::string_view folders,
                                          bool create, bool foreign_is_corruption) const {
        namespace px = detail::posix;
        folder_ref ref;
        ref.fd = m_root.get();
        if (folders.empty()) return ref;
        // Under durability::full a write is acknowledged only once every folder on its
        // path is linked durably, whoever made the folder.
        const bool sync_links = create && m_config.sync == durability::full;
        const std::uint64_t removed_before = sync_links ? m_in_flight->removed() : 0;
        if (m_beneath && (!sync_links || m_in_flight->durable(folders))) {
            ref.owned.reset(
                px::open_beneath(m_root.get(), std::string(folders).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (ref.owned) {
                ref.fd = ref.owned.get();
                return ref;
            }
        }
        std::string segment;
        for (std::size_t start = 0;;) {
            const std::size_t slash = folders.find('/', start);
            const std::size_t end = slash == std::string_view::npos ? folders.size() : slash;
            segment.assign(folders.substr(start, end - start));
            auto open_segment = [&] {
                return px::retry_eintr(
                    [&] { return ::openat(ref.fd, segment.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); });
            };
            int fd = open_segment();
            if (fd < 0 && errno == ENOENT && create) {
                if (::mkdirat(ref.fd, segment.c_str(), 0700) != 0 && errno != EEXIST)
                    return unexpected(detail::os_failure(errno, operation, name,
                                                         detail::concat({"create folder ", folders.substr(0, end)})));
                fd = open_segment();
            }
            if (fd >= 0 && sync_links && !m_in_flight->durable(folders.substr(0, end))) {
                if (::fsync(ref.fd) != 0) {
                    const int err = errno;
                    ::close(fd);
                    return unexpected(detail::os_failure(
                        err, operation, name, detail::concat({"sync the parent of folder ", folders.substr(0, end)})));
                }
                m_in_flight->mark_durable(folders.substr(0, end), removed_before);
            }
            if (fd < 0) {
                const int err = errno;
                const std::string where(folders.substr(0, end));
                if (err == ENOTDIR || err == ELOOP)
                    return fail(
                        foreign_is_corruption ? errc::corrupted : errc::io_error, tier::disk,
                        detail::concat({operation, " ", name, ": found ", px::describe_entry(ref.fd, segment.c_str()),
                                        " where the folder ", where, " belongs"}),
                        std::error_code(err, std::generic_category()));
                return unexpected(detail::os_failure(err, operation, name, detail::concat({"open folder ", where})));
            }
            ref.owned.reset(fd);
            ref.fd = fd;
            if (slash == std::string_view::npos) return ref;
            start = slash + 1;
        }
    }

    // A directory stream over `folders` (empty for the root).
    [[nodiscard]] result<detail::posix::dir_stream> open_stream(std::string_view operation,
                                                                std::string_view folders) const {
        namespace px = detail::posix;
        const std::string_view shown = folders.empty() ? std::string_view(".") : folders;
        auto ref = walk(operation, shown, folders, false, false);
        if (!ref) return unexpected(std::move(ref).error());
        int fd = ref->owned
                     ? ref->owned.release()
                     : px::retry_eintr([&] { return ::openat(ref->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
        if (fd < 0) return unexpected(detail::os_failure(errno, operation, shown, "open folder"));
        DIR* dir = ::fdopendir(fd);
        if (dir == nullptr) {
            const int err = errno;
            ::close(fd);
            return unexpected(detail::os_failure(err, operation, shown, "read folder"));
        }
        return px::dir_stream(dir);
    }

    config m_config;
    detail::posix::unique_fd m_root;
    detail::posix::unique_fd m_lock;
    std::unique_ptr<in_flight> m_in_flight;
    bool m_beneath;  // open_beneath works: see open_blob and walk
};

static_assert(storage_policy<posix_directory>);
static_assert(storage_reads_identified<posix_directory> && storage_cleans_listing<posix_directory>);

}  // namespace tierguard::storage
