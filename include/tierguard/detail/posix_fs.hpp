#pragma once

#include <tierguard/detail/message.hpp>
#include <tierguard/detail/os_error.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

// The POSIX pieces the directory-backed storages share: descriptors, directory streams,
// link-free opening, and opening a cache root safely under an advisory lock.

#if defined(__linux__) && __has_include(<linux/openat2.h>) && __has_include(<sys/syscall.h>)
#include <linux/openat2.h>
#include <sys/syscall.h>
#if defined(SYS_openat2)
#define TIERGUARD_HAVE_OPENAT2 1
#endif
#endif

namespace tierguard::detail::posix {

/// Owns one file descriptor and closes it on destruction (close errors there are
/// ignored: code that must know calls close on release()).
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : m_fd(fd) {}
    unique_fd(unique_fd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.m_fd, -1));
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return m_fd; }
    explicit operator bool() const noexcept { return m_fd >= 0; }
    [[nodiscard]] int release() noexcept { return std::exchange(m_fd, -1); }
    void reset(int fd = -1) noexcept {
        if (m_fd >= 0) ::close(m_fd);
        m_fd = fd;
    }

private:
    int m_fd = -1;
};

/// Owns an open directory stream; yields entry names other than "." and "..".
class dir_stream {
public:
    explicit dir_stream(DIR* dir) noexcept : m_dir(dir) {}
    dir_stream(dir_stream&& other) noexcept : m_dir(std::exchange(other.m_dir, nullptr)) {}
    dir_stream& operator=(dir_stream&&) = delete;
    ~dir_stream() {
        if (m_dir != nullptr) ::closedir(m_dir);
    }

    [[nodiscard]] int fd() const noexcept { return ::dirfd(m_dir); }

    /// The next name, or nullptr at the end (errno 0) or on an error (errno set).
    [[nodiscard]] const char* next() noexcept {
        for (;;) {
            errno = 0;
            const dirent* entry = ::readdir(m_dir);
            if (entry == nullptr) return nullptr;
            const std::string_view name = entry->d_name;
            if (name != "." && name != "..") return entry->d_name;
        }
    }

private:
    DIR* m_dir;
};

/// Calls f until it does not fail with EINTR.
template <class F>
auto retry_eintr(F f) {
    for (;;) {
        const auto rc = f();
        if (rc != -1 || errno != EINTR) return rc;
    }
}

[[nodiscard]] inline const char* describe_mode(mode_t mode) noexcept {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "a file of unknown type";
}

/// What sits at `name` in `dir_fd`, for a message; never follows a link.
[[nodiscard, gnu::cold]] inline std::string describe_entry(int dir_fd, const char* name) {
    struct stat st {};
    if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return "something it cannot stat";
    return describe_mode(st.st_mode);
}

[[nodiscard, gnu::cold]] inline std::string octal_mode(mode_t mode) {
    std::string out;
    for (const int shift : {9, 6, 3, 0}) out += static_cast<char>('0' + ((mode >> shift) & 7));
    return out;
}

[[nodiscard]] inline std::chrono::system_clock::time_point modified_time(const struct stat& st) noexcept {
#if defined(__APPLE__)
    const timespec& ts = st.st_mtimespec;
#else
    const timespec& ts = st.st_mtim;
#endif
    using duration = std::chrono::system_clock::duration;
    return std::chrono::system_clock::time_point(add_sat(ceil_sat<duration>(std::chrono::seconds(ts.tv_sec)),
                                                         ceil_sat<duration>(std::chrono::nanoseconds(ts.tv_nsec))));
}

/// Opens `path` below the directory `dir_fd` in one call, failing (ELOOP) at any symbolic
/// link on the way, the last segment included, and (EXDEV) at any escape from `dir_fd`:
/// openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS. -1 with errno ENOSYS where the
/// build lacks openat2; the kernel or a seccomp filter may refuse it too (ENOSYS, EPERM).
[[nodiscard]] inline int open_beneath(int dir_fd, const char* path, int flags) noexcept {
#if defined(TIERGUARD_HAVE_OPENAT2)
    open_how how{};
    how.flags = static_cast<decltype(how.flags)>(flags);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    return static_cast<int>(retry_eintr([&] { return ::syscall(SYS_openat2, dir_fd, path, &how, sizeof how); }));
#else
    (void)dir_fd, (void)path, (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

[[nodiscard]] inline std::string join(std::string_view folder, std::string_view name) {
    std::string out(folder);
    if (!out.empty()) out += '/';
    out += name;
    return out;
}

/// The lock file every storage keeps in its root.
inline constexpr std::string_view lock_file_name = ".lock";

// Makes `dir` and its missing parents (0700).
[[nodiscard]] inline result<void> make_folders(const std::filesystem::path& dir) {
    if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return {};
    if (errno != ENOENT || !dir.has_parent_path() || dir.parent_path() == dir)
        return unexpected(detail::os_failure(errno, "open", dir.native(), "create the cache folder"));
    if (auto ok = make_folders(dir.parent_path()); !ok) return ok;
    if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return {};
    return unexpected(detail::os_failure(errno, "open", dir.native(), "create the cache folder"));
}

// ", held by pid N" from the lock file's content, or nothing.
[[nodiscard, gnu::cold]] inline std::string holder_of(int lock_fd, std::string_view who) {
    char buf[24] = {};
    const ssize_t n = ::pread(lock_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return {};
    std::string pid;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid += buf[i];
    if (pid.empty()) return {};
    if (pid == std::to_string(::getpid())) return concat({"; held by this process: another ", who, " has it open"});
    return concat({"; held by pid ", pid});
}

/// `root` made absolute and normalized, without a trailing '/'.
[[nodiscard]] inline result<std::filesystem::path> absolute_root(const std::filesystem::path& root) {
    std::error_code ec;
    std::filesystem::path out = std::filesystem::absolute(root, ec).lexically_normal();
    if (ec) return unexpected(os_failure(ec.value(), "open", root.native(), "make the path absolute"));
    if (!out.has_filename() && out.has_parent_path() && out.parent_path() != out) out = out.parent_path();
    return out;
}

/// A cache root opened by open_locked_root: the folder's descriptor and the held lock.
struct locked_root {
    unique_fd root;
    unique_fd lock;
};

/// Makes (0700, with missing parents) and opens the folder `root` (absolute), refusing a
/// root that is a symbolic link, not a directory, not owned by the effective uid, or
/// writable by group or others, and takes an exclusive flock on <root>/.lock. Errors:
/// errc::invalid_argument (not a directory), errc::permission_denied (unsafe),
/// errc::locked (another process or instance holds it; `who` names the storage kind in
/// the message), else the OS error mapped. With `read_only`, makes nothing, opens an
/// existing lock file and takes a shared lock (readers exclude writers, not each other).
[[nodiscard]] inline result<locked_root> open_locked_root(const std::filesystem::path& root, std::string_view who,
                                                          bool read_only = false) {
    const std::string& path = root.native();

    if (!read_only) {
        if (auto made = make_folders(root); !made) return unexpected(std::move(made).error());
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return unexpected(os_failure(errno, "open", path, "stat the cache folder"));
    if (S_ISLNK(st.st_mode))
        return fail(errc::permission_denied, tier::disk,
                    concat({"open ", path,
                            ": the cache folder is a symbolic link; tierguard never follows links in its directory "
                            "(configure the link's target as the root)"}));
    if (!S_ISDIR(st.st_mode))
        return fail(errc::invalid_argument, tier::disk,
                    concat({"open ", path, ": the cache folder is ", describe_mode(st.st_mode), ", not a directory"}));

    unique_fd root_fd(
        retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); }));
    if (!root_fd) {
        const int err = errno;
        if (err == ENOTDIR || err == ELOOP)
            return fail(errc::permission_denied, tier::disk,
                        concat({"open ", path, ": the cache folder was replaced by a symbolic link while opening it"}),
                        std::error_code(err, std::generic_category()));
        return unexpected(os_failure(err, "open", path, "open the cache folder"));
    }
    if (::fstat(root_fd.get(), &st) != 0) return unexpected(os_failure(errno, "open", path, "stat the cache folder"));
    if (st.st_uid != ::geteuid())
        return fail(errc::permission_denied, tier::disk,
                    concat({"open ", path, ": the cache folder is owned by uid ", std::to_string(st.st_uid),
                            ", not by this process's effective uid ", std::to_string(::geteuid()),
                            "; tierguard only keeps its cache in a folder it owns"}));
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return fail(errc::permission_denied, tier::disk,
                    concat({"open ", path, ": the cache folder is writable by group or others (mode ",
                            octal_mode(st.st_mode & 07777),
                            "); tierguard requires a folder only its owner can write (chmod 0700 ", path, ")"}));

    const std::string lock_path = path + "/" + std::string(lock_file_name);
    const int lock_flags = read_only ? O_RDONLY : O_RDWR | O_CREAT;
    unique_fd lock(retry_eintr([&] {
        return ::openat(root_fd.get(), lock_file_name.data(), lock_flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    }));
    if (!lock) {
        const int err = errno;
        if (err == ELOOP)
            return fail(errc::io_error, tier::disk,
                        concat({"open ", path, ": the lock file ", lock_path, " is a symbolic link; remove it"}),
                        std::error_code(err, std::generic_category()));
        return unexpected(os_failure(err, "open", path, concat({"open the lock file ", lock_path})));
    }
    if (::fstat(lock.get(), &st) != 0)
        return unexpected(os_failure(errno, "open", path, concat({"stat the lock file ", lock_path})));
    if (!S_ISREG(st.st_mode))
        return fail(errc::io_error, tier::disk,
                    concat({"open ", path, ": the lock file ", lock_path, " is ", describe_mode(st.st_mode),
                            ", not a regular file; remove it"}));
    const int lock_kind = read_only ? LOCK_SH : LOCK_EX;
    if (retry_eintr([&] { return ::flock(lock.get(), lock_kind | LOCK_NB); }) != 0) {
        const int err = errno;
        if (err == EWOULDBLOCK)
            return fail(errc::locked, tier::disk,
                        concat({"open ", path, ": cache directory ", path, " is in use by another process (lock file ",
                                lock_path, holder_of(lock.get(), who), ")"}),
                        std::error_code(err, std::generic_category()));
        return unexpected(os_failure(err, "open", path, concat({"lock ", lock_path})));
    }
    // Only a hint for the message above; a failure here changes nothing.
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (!read_only && ::ftruncate(lock.get(), 0) == 0) (void)!::pwrite(lock.get(), pid.data(), pid.size(), 0);
    return locked_root{std::move(root_fd), std::move(lock)};
}

}  // namespace tierguard::detail::posix
