// A syscall fault shim: an LD_PRELOAD library that makes file system calls fail with a
// chosen errno at a chosen, seeded rate, so that tests meet the kernel's failures rather
// than a fault-injecting Storage. Plain C inside a C++ file (the project builds no C).
//
// Environment, read once at the first intercepted call:
//   TIERGUARD_SHIM_RULES   "call:probability:ERRNO[:max],..." e.g. "fdatasync:0.3:EIO,pwrite:0.05:ENOSPC";
//                          max (optional) caps the faults of that rule. Calls: open openat openat2
//                          read pread write pwrite fsync fdatasync rename renameat renameat2
//                          unlink unlinkat mkdir mkdirat fallocate posix_fallocate (the *64 and
//                          fortified variants count as their base call).
//   TIERGUARD_SHIM_SEED    seed of the one pseudo-random sequence (decimal; default 1).
//   TIERGUARD_SHIM_PREFIX  absolute path: only calls on paths under it, and on file descriptors
//                          opened under it, are faulted (so the harness's own stdout, pipes and
//                          model files stay healthy). Unset: nothing is faulted.
// The process may switch faults off and on with tierguard_shim_set_enabled() (found with
// dlsym(RTLD_DEFAULT, ...)), e.g. to let a cache drain its pending work before a clean close.
// At exit it prints to stderr one line per rule: calls in scope and faults injected.
//
// Calls go through to the next definition (dlsym(RTLD_NEXT)); openat2, which glibc has no
// wrapper for, is caught in syscall(SYS_openat2, ...).
#undef _FORTIFY_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>

namespace {

enum call_id {
    c_open,
    c_openat,
    c_openat2,
    c_read,
    c_pread,
    c_write,
    c_pwrite,
    c_fsync,
    c_fdatasync,
    c_rename,
    c_renameat,
    c_renameat2,
    c_unlink,
    c_unlinkat,
    c_mkdir,
    c_mkdirat,
    c_fallocate,
    c_posix_fallocate,
    c_count
};

const char* const call_names[c_count] = {"open",   "openat",   "openat2",   "read",    "pread",     "write",
                                         "pwrite", "fsync",    "fdatasync", "rename",  "renameat",  "renameat2",
                                         "unlink", "unlinkat", "mkdir",     "mkdirat", "fallocate", "posix_fallocate"};

struct errno_name {
    const char* name;
    int value;
};
const errno_name errno_names[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC},   {"EDQUOT", EDQUOT}, {"EACCES", EACCES},
    {"EPERM", EPERM},   {"EROFS", EROFS},     {"EINTR", EINTR},   {"EAGAIN", EAGAIN},
    {"EMFILE", EMFILE}, {"ENFILE", ENFILE},   {"ENOMEM", ENOMEM}, {"EEXIST", EEXIST},
    {"ENOENT", ENOENT}, {"EBADF", EBADF},     {"EINVAL", EINVAL}, {"EFBIG", EFBIG},
    {"EXDEV", EXDEV},   {"ELOOP", ELOOP},     {"ENOSYS", ENOSYS}, {"ENAMETOOLONG", ENAMETOOLONG},
    {"ESTALE", ESTALE}, {"ENOTDIR", ENOTDIR}, {"EISDIR", EISDIR}, {"EOPNOTSUPP", EOPNOTSUPP}};

struct rule {
    bool active;
    double probability;
    int error;
    long long max_faults;          // < 0: no cap
    std::atomic<long long> calls;  // calls in scope
    std::atomic<long long> faults;
};

constexpr int max_tracked_fd = 1 << 16;

rule rules[c_count];
std::atomic<unsigned char> tracked[max_tracked_fd];  // 1: the fd was opened under the prefix
char prefix[PATH_MAX];
size_t prefix_len = 0;
std::atomic<uint64_t> rng_state{1};
std::atomic<int> enabled{1};
std::atomic<int> initialized{0};  // 0 not yet, 1 in progress, 2 done

void* next_symbol(const char* name) {
    void* f = dlsym(RTLD_NEXT, name);
    if (f == nullptr) {
        const char msg[] = "tierguard-shim: dlsym(RTLD_NEXT) found no definition of an intercepted call\n";
        (void)!syscall(SYS_write, 2, msg, sizeof msg - 1);
        abort();
    }
    return f;
}

// The real function `name`, looked up once.
#define TIERGUARD_SHIM_REAL(type, name) \
    static type real_fn = nullptr;      \
    if (real_fn == nullptr) real_fn = reinterpret_cast<type>(next_symbol(name));

int errno_of(const char* text) {
    for (const errno_name& e : errno_names) {
        if (strcmp(e.name, text) == 0) return e.value;
    }
    char* end = nullptr;
    const long n = strtol(text, &end, 10);
    return end != text && *end == '\0' && n > 0 ? static_cast<int>(n) : 0;
}

[[noreturn]] void bad_rules(const char* why, const char* where) {
    fprintf(stderr, "tierguard-shim: TIERGUARD_SHIM_RULES: %s at \"%s\"\n", why, where);
    _exit(2);
}

void parse_rules(const char* text) {
    char buffer[1024];
    if (strlen(text) >= sizeof buffer) bad_rules("longer than 1023 characters", text);
    strcpy(buffer, text);
    char* save = nullptr;
    for (char* item = strtok_r(buffer, ",", &save); item != nullptr; item = strtok_r(nullptr, ",", &save)) {
        char* fields[4] = {nullptr, nullptr, nullptr, nullptr};
        int n = 0;
        char* field_save = nullptr;
        for (char* f = strtok_r(item, ":", &field_save); f != nullptr && n < 4; f = strtok_r(nullptr, ":", &field_save))
            fields[n++] = f;
        if (n < 3) bad_rules("expected call:probability:ERRNO[:max]", item);
        int id = -1;
        for (int i = 0; i < c_count; ++i) {
            if (strcmp(call_names[i], fields[0]) == 0) id = i;
        }
        if (id < 0) bad_rules("unknown call", fields[0]);
        char* end = nullptr;
        const double p = strtod(fields[1], &end);
        if (end == fields[1] || *end != '\0' || !(p >= 0.0 && p <= 1.0))
            bad_rules("probability must be 0 to 1", fields[1]);
        const int error = errno_of(fields[2]);
        if (error == 0) bad_rules("unknown errno", fields[2]);
        long long cap = -1;
        if (n == 4) {
            cap = strtoll(fields[3], &end, 10);
            if (end == fields[3] || *end != '\0' || cap < 0) bad_rules("max must be a count", fields[3]);
        }
        rules[id].active = true;
        rules[id].probability = p;
        rules[id].error = error;
        rules[id].max_faults = cap;
    }
}

void report() {
    if (prefix_len == 0) return;
    bool any = false;
    for (int i = 0; i < c_count; ++i) {
        if (!rules[i].active) continue;
        any = true;
        fprintf(stderr, "tierguard-shim: %s: %lld faults (%s) in %lld calls under %s\n", call_names[i],
                rules[i].faults.load(), strerror(rules[i].error), rules[i].calls.load(), prefix);
    }
    if (!any) fprintf(stderr, "tierguard-shim: no rules\n");
}

void init() {
    int expected = 0;
    if (!initialized.compare_exchange_strong(expected, 1)) {
        while (initialized.load() != 2) {}
        return;
    }
    const char* p = getenv("TIERGUARD_SHIM_PREFIX");
    if (p != nullptr && p[0] == '/' && strlen(p) < sizeof prefix) {
        strcpy(prefix, p);
        prefix_len = strlen(prefix);
        while (prefix_len > 1 && prefix[prefix_len - 1] == '/') prefix[--prefix_len] = '\0';
    }
    const char* seed = getenv("TIERGUARD_SHIM_SEED");
    rng_state.store(seed != nullptr ? strtoull(seed, nullptr, 10) : 1ULL);
    if (const char* r = getenv("TIERGUARD_SHIM_RULES"); r != nullptr) parse_rules(r);
    atexit(report);
    initialized.store(2);
}

__attribute__((constructor)) void init_at_load() { init(); }

bool under_prefix(const char* path) {
    if (path == nullptr || prefix_len == 0) return false;
    if (path[0] != '/') {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) == nullptr) return false;
        const size_t n = strlen(cwd);
        return strncmp(cwd, prefix, prefix_len) == 0 && (n == prefix_len || cwd[prefix_len] == '/');
    }
    return strncmp(path, prefix, prefix_len) == 0 && (path[prefix_len] == '\0' || path[prefix_len] == '/');
}

bool fd_in_scope(int fd) { return fd >= 0 && fd < max_tracked_fd && tracked[fd].load() != 0; }

bool at_in_scope(int dir, const char* path) {
    if (path != nullptr && path[0] != '/' && dir != AT_FDCWD) return fd_in_scope(dir);
    return under_prefix(path);
}

void track(int fd, bool in_scope) {
    if (fd >= 0 && fd < max_tracked_fd) tracked[fd].store(in_scope ? 1 : 0);
}

// splitmix64 over one shared state: the same seed and call sequence give the same faults.
double next_uniform() {
    uint64_t z = rng_state.fetch_add(0x9e3779b97f4a7c15ULL) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

// 0: make the call; else the errno to fail it with.
int fault_for(call_id id, bool in_scope) {
    if (initialized.load() != 2) init();
    if (!in_scope) return 0;
    rule& r = rules[id];
    if (!r.active) return 0;
    ++r.calls;
    if (enabled.load() == 0) return 0;
    if (next_uniform() >= r.probability) return 0;
    if (r.max_faults >= 0 && r.faults.fetch_add(1) >= r.max_faults) {
        --r.faults;
        return 0;
    }
    if (r.max_faults < 0) ++r.faults;
    return r.error;
}

mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

using open_fn = int (*)(const char*, int, ...);
using openat_fn = int (*)(int, const char*, int, ...);

int do_open(open_fn real, const char* path, int flags, mode_t mode) {
    const bool scope = under_prefix(path);
    if (const int e = fault_for(c_open, scope); e != 0) {
        errno = e;
        return -1;
    }
    const int fd = real(path, flags, mode);
    if (fd >= 0) track(fd, scope);
    return fd;
}

int do_openat(openat_fn real, int dir, const char* path, int flags, mode_t mode) {
    const bool scope = at_in_scope(dir, path);
    if (const int e = fault_for(c_openat, scope); e != 0) {
        errno = e;
        return -1;
    }
    const int fd = real(dir, path, flags, mode);
    if (fd >= 0) track(fd, scope);
    return fd;
}

template <class F>
auto fd_call(call_id id, int fd, F call) -> decltype(call()) {
    if (const int e = fault_for(id, fd_in_scope(fd)); e != 0) {
        errno = e;
        return -1;
    }
    return call();
}

template <class F>
int path_call(call_id id, bool scope, F call) {
    if (const int e = fault_for(id, scope); e != 0) {
        errno = e;
        return -1;
    }
    return call();
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void tierguard_shim_set_enabled(int on) { enabled.store(on); }

__attribute__((visibility("default"))) long long tierguard_shim_faults() {
    long long n = 0;
    for (const rule& r : rules) n += r.faults.load();
    return n;
}

int open(const char* path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    const mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    TIERGUARD_SHIM_REAL(open_fn, "open")
    return do_open(real_fn, path, flags, mode);
}

int open64(const char* path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    const mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    TIERGUARD_SHIM_REAL(open_fn, "open64")
    return do_open(real_fn, path, flags, mode);
}

int __open_2(const char* path, int flags) {
    TIERGUARD_SHIM_REAL(open_fn, "open")
    return do_open(real_fn, path, flags, 0);
}
int __open64_2(const char* path, int flags) {
    TIERGUARD_SHIM_REAL(open_fn, "open64")
    return do_open(real_fn, path, flags, 0);
}

int openat(int dir, const char* path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    const mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    TIERGUARD_SHIM_REAL(openat_fn, "openat")
    return do_openat(real_fn, dir, path, flags, mode);
}

int openat64(int dir, const char* path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    const mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    TIERGUARD_SHIM_REAL(openat_fn, "openat64")
    return do_openat(real_fn, dir, path, flags, mode);
}

int __openat_2(int dir, const char* path, int flags) {
    TIERGUARD_SHIM_REAL(openat_fn, "openat")
    return do_openat(real_fn, dir, path, flags, 0);
}
int __openat64_2(int dir, const char* path, int flags) {
    TIERGUARD_SHIM_REAL(openat_fn, "openat64")
    return do_openat(real_fn, dir, path, flags, 0);
}

long syscall(long number, ...) noexcept {
    using fn = long (*)(long, ...);
    TIERGUARD_SHIM_REAL(fn, "syscall")
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (long& x : a) x = va_arg(ap, long);
    va_end(ap);
#ifdef SYS_openat2
    if (number == SYS_openat2) {
        const int dir = static_cast<int>(a[0]);
        const char* path = reinterpret_cast<const char*>(a[1]);
        const bool scope = at_in_scope(dir, path);
        if (const int e = fault_for(c_openat2, scope); e != 0) {
            errno = e;
            return -1;
        }
        const long fd = real_fn(number, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (fd >= 0) track(static_cast<int>(fd), scope);
        return fd;
    }
#endif
    return real_fn(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int close(int fd) {
    using fn = int (*)(int);
    TIERGUARD_SHIM_REAL(fn, "close")
    track(fd, false);
    return real_fn(fd);
}

ssize_t read(int fd, void* buf, size_t n) {
    using fn = ssize_t (*)(int, void*, size_t);
    TIERGUARD_SHIM_REAL(fn, "read")
    return fd_call(c_read, fd, [&] { return real_fn(fd, buf, n); });
}

ssize_t pread(int fd, void* buf, size_t n, off_t at) {
    using fn = ssize_t (*)(int, void*, size_t, off_t);
    TIERGUARD_SHIM_REAL(fn, "pread")
    return fd_call(c_pread, fd, [&] { return real_fn(fd, buf, n, at); });
}

ssize_t pread64(int fd, void* buf, size_t n, off64_t at) {
    using fn = ssize_t (*)(int, void*, size_t, off64_t);
    TIERGUARD_SHIM_REAL(fn, "pread64")
    return fd_call(c_pread, fd, [&] { return real_fn(fd, buf, n, at); });
}

ssize_t write(int fd, const void* buf, size_t n) {
    using fn = ssize_t (*)(int, const void*, size_t);
    TIERGUARD_SHIM_REAL(fn, "write")
    return fd_call(c_write, fd, [&] { return real_fn(fd, buf, n); });
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t at) {
    using fn = ssize_t (*)(int, const void*, size_t, off_t);
    TIERGUARD_SHIM_REAL(fn, "pwrite")
    return fd_call(c_pwrite, fd, [&] { return real_fn(fd, buf, n, at); });
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t at) {
    using fn = ssize_t (*)(int, const void*, size_t, off64_t);
    TIERGUARD_SHIM_REAL(fn, "pwrite64")
    return fd_call(c_pwrite, fd, [&] { return real_fn(fd, buf, n, at); });
}

int fsync(int fd) {
    using fn = int (*)(int);
    TIERGUARD_SHIM_REAL(fn, "fsync")
    return fd_call(c_fsync, fd, [&] { return real_fn(fd); });
}

int fdatasync(int fd) {
    using fn = int (*)(int);
    TIERGUARD_SHIM_REAL(fn, "fdatasync")
    return fd_call(c_fdatasync, fd, [&] { return real_fn(fd); });
}

int fallocate(int fd, int mode, off_t at, off_t len) {
    using fn = int (*)(int, int, off_t, off_t);
    TIERGUARD_SHIM_REAL(fn, "fallocate")
    return fd_call(c_fallocate, fd, [&] { return real_fn(fd, mode, at, len); });
}

int fallocate64(int fd, int mode, off64_t at, off64_t len) {
    using fn = int (*)(int, int, off64_t, off64_t);
    TIERGUARD_SHIM_REAL(fn, "fallocate64")
    return fd_call(c_fallocate, fd, [&] { return real_fn(fd, mode, at, len); });
}

// posix_fallocate returns the error instead of setting errno.
int posix_fallocate(int fd, off_t at, off_t len) {
    using fn = int (*)(int, off_t, off_t);
    TIERGUARD_SHIM_REAL(fn, "posix_fallocate")
    if (const int e = fault_for(c_posix_fallocate, fd_in_scope(fd)); e != 0) return e;
    return real_fn(fd, at, len);
}

int posix_fallocate64(int fd, off64_t at, off64_t len) {
    using fn = int (*)(int, off64_t, off64_t);
    TIERGUARD_SHIM_REAL(fn, "posix_fallocate64")
    if (const int e = fault_for(c_posix_fallocate, fd_in_scope(fd)); e != 0) return e;
    return real_fn(fd, at, len);
}

int rename(const char* from, const char* to) noexcept {
    using fn = int (*)(const char*, const char*);
    TIERGUARD_SHIM_REAL(fn, "rename")
    return path_call(c_rename, under_prefix(from) || under_prefix(to), [&] { return real_fn(from, to); });
}

int renameat(int from_dir, const char* from, int to_dir, const char* to) noexcept {
    using fn = int (*)(int, const char*, int, const char*);
    TIERGUARD_SHIM_REAL(fn, "renameat")
    return path_call(c_renameat, at_in_scope(from_dir, from) || at_in_scope(to_dir, to),
                     [&] { return real_fn(from_dir, from, to_dir, to); });
}

int renameat2(int from_dir, const char* from, int to_dir, const char* to, unsigned flags) noexcept {
    using fn = int (*)(int, const char*, int, const char*, unsigned);
    TIERGUARD_SHIM_REAL(fn, "renameat2")
    return path_call(c_renameat2, at_in_scope(from_dir, from) || at_in_scope(to_dir, to),
                     [&] { return real_fn(from_dir, from, to_dir, to, flags); });
}

int unlink(const char* path) noexcept {
    using fn = int (*)(const char*);
    TIERGUARD_SHIM_REAL(fn, "unlink")
    return path_call(c_unlink, under_prefix(path), [&] { return real_fn(path); });
}

int unlinkat(int dir, const char* path, int flags) noexcept {
    using fn = int (*)(int, const char*, int);
    TIERGUARD_SHIM_REAL(fn, "unlinkat")
    return path_call(c_unlinkat, at_in_scope(dir, path), [&] { return real_fn(dir, path, flags); });
}

int mkdir(const char* path, mode_t mode) noexcept {
    using fn = int (*)(const char*, mode_t);
    TIERGUARD_SHIM_REAL(fn, "mkdir")
    return path_call(c_mkdir, under_prefix(path), [&] { return real_fn(path, mode); });
}

int mkdirat(int dir, const char* path, mode_t mode) noexcept {
    using fn = int (*)(int, const char*, mode_t);
    TIERGUARD_SHIM_REAL(fn, "mkdirat")
    return path_call(c_mkdirat, at_in_scope(dir, path), [&] { return real_fn(dir, path, mode); });
}

}  // extern "C"
