#pragma once

#include <cerrno>
#include <string>

#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#include <sys/mount.h>
#endif

namespace tierguard_test {

/// Runs `body` in a forked child killed by SIGALRM after `limit`; returns its exit code,
/// or minus the signal that ended it. The child never returns into Catch.
template <class F>
int in_child(F body, unsigned limit_seconds = 60) {
    const pid_t pid = ::fork();
    if (pid < 0) return -1000;
    if (pid == 0) {
        ::alarm(limit_seconds);
        int code = 125;
        try {
            code = body();
        } catch (...) {
            code = 126;
        }
        ::_exit(code);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return -999;
}

#if defined(__linux__)
/// In a child (it changes the process's namespaces): enters a new mount namespace whose
/// mounts stay private (and, when not root, a user namespace in which we are root, so that
/// mounts and their files belong to our outer uid). False if namespaces are refused.
inline bool enter_private_mount_namespace() {
    const uid_t outer_uid = ::geteuid();
    const gid_t outer_gid = ::getegid();
    auto put = [](const char* file, const std::string& text) {
        const int fd = ::open(file, O_WRONLY | O_CLOEXEC);
        if (fd < 0) return false;
        const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
        return ::close(fd) == 0 && written;
    };
    if (outer_uid == 0) {
        if (::unshare(CLONE_NEWNS) != 0) return false;
    } else {
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
        if (!put("/proc/self/setgroups", "deny") ||
            !put("/proc/self/uid_map", "0 " + std::to_string(outer_uid) + " 1\n") ||
            !put("/proc/self/gid_map", "0 " + std::to_string(outer_gid) + " 1\n"))
            return false;
    }
    return ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}

/// In a child: mounts a private tmpfs with `options` (e.g. "size=256k,mode=0700") on
/// `mount_point`, in the namespaces of enter_private_mount_namespace(). False if
/// namespaces or the mount are refused.
inline bool mount_private_tmpfs(const char* mount_point, const char* options) {
    return enter_private_mount_namespace() && ::mount("tierguard-test", mount_point, "tmpfs", 0, options) == 0;
}
#endif

}  // namespace tierguard_test
