#pragma once

#include <cerrno>
#include <cstddef>
#include <exception>
#include <utility>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tierguard_test {

/// A forked child that runs a workload until the parent kills it, for crash tests.
///
/// The child runs body(progress), where progress() sends the parent one byte down a pipe
/// (say after each completed operation), so that the parent can wait until the child has
/// done real work before it kills it. The child never returns into the test framework:
/// it _exits 0 if body returns, 1 if it throws. Catch assertions must not be used in body.
class killable_child {
public:
    /// Sends one progress byte to the parent; safe to call in the child only.
    class progress_pipe {
    public:
        explicit progress_pipe(int fd) noexcept : m_fd(fd) {}
        void operator()() const noexcept {
            const char byte = 1;
            while (::write(m_fd, &byte, 1) < 0 && errno == EINTR) {}
        }

    private:
        int m_fd;
    };

    /// Forks and starts body(progress_pipe) in the child. ok() is false if fork or pipe failed.
    template <class Body>
    explicit killable_child(Body body) {
        int fds[2];
        if (::pipe(fds) != 0) return;
        m_pid = ::fork();
        if (m_pid == 0) {
            ::close(fds[0]);
            int code = 0;
            try {
                body(progress_pipe(fds[1]));
            } catch (...) {
                code = 1;
            }
            ::_exit(code);
        }
        ::close(fds[1]);
        if (m_pid < 0) {
            ::close(fds[0]);
            return;
        }
        m_progress = fds[0];
    }

    killable_child(const killable_child&) = delete;
    killable_child& operator=(const killable_child&) = delete;
    ~killable_child() {
        (void)kill_and_reap();
        if (m_progress >= 0) ::close(m_progress);
    }

    [[nodiscard]] bool ok() const noexcept { return m_pid > 0 && m_progress >= 0; }

    /// Blocks until the child has reported `count` more progress steps; false if it
    /// stopped first (it exited, or closed the pipe).
    [[nodiscard]] bool wait_for_progress(std::size_t count) {
        char buffer[256];
        while (count != 0) {
            const std::size_t want = count < sizeof buffer ? count : sizeof buffer;
            const ssize_t n = ::read(m_progress, buffer, want);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            count -= static_cast<std::size_t>(n);
        }
        return true;
    }

    /// Sends SIGKILL and reaps the child; true if SIGKILL is what ended it (false if it
    /// had already exited, or was reaped before).
    bool kill_and_reap() {
        if (m_pid <= 0) return false;
        ::kill(m_pid, SIGKILL);
        int status = 0;
        while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {}
        m_pid = -1;
        return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    }

private:
    pid_t m_pid = -1;
    int m_progress = -1;
};

}  // namespace tierguard_test
