#pragma once

#include "support/temp_dir.hpp"

#include <atomic>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace tierguard_test {

/// A fake server on a unix socket that answers every connection with `answer` once it has
/// read something (or at once, if `answer_first`), then closes it if `close_after`.
/// first_reads() holds what each connection's one read got.
class fake_server {
public:
    fake_server(std::string answer, bool close_after, bool answer_first = false)
        : m_answer(std::move(answer)), m_close_after(close_after), m_answer_first(answer_first) {
        m_fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        const std::string path = url_path();
        path.copy(a.sun_path, sizeof a.sun_path - 1);
        if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(m_fd, 16) != 0)
            throw std::runtime_error("fake_server: cannot listen on " + path);
        m_thread = std::thread([this] { serve(); });
    }
    fake_server(const fake_server&) = delete;
    fake_server& operator=(const fake_server&) = delete;
    ~fake_server() {
        m_stop = true;
        ::shutdown(m_fd, SHUT_RDWR);
        m_thread.join();
        ::close(m_fd);
        for (const int c : m_open) ::close(c);
    }
    [[nodiscard]] std::string url_path() const { return (m_dir.path() / "fake.sock").string(); }
    [[nodiscard]] std::string url() const { return "unix://" + url_path(); }
    [[nodiscard]] std::vector<std::string> first_reads() const {
        std::lock_guard lock(m_mutex);
        return m_first_reads;
    }

private:
    void serve() {
        while (!m_stop) {
            const int c = ::accept(m_fd, nullptr, nullptr);
            if (c < 0) return;
            if (!m_answer_first) {
                char buffer[4096];
                const ssize_t n = ::recv(c, buffer, sizeof buffer, 0);
                std::lock_guard lock(m_mutex);
                m_first_reads.emplace_back(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
            }
            (void)::send(c, m_answer.data(), m_answer.size(), MSG_NOSIGNAL);
            if (m_close_after) {
                ::close(c);
            } else {
                m_open.push_back(c);
            }
        }
    }

    tierguard_test::temp_dir m_dir;
    std::string m_answer;
    bool m_close_after;
    bool m_answer_first;
    int m_fd = -1;
    std::atomic<bool> m_stop{false};
    std::vector<int> m_open;
    mutable std::mutex m_mutex;
    std::vector<std::string> m_first_reads;
    std::thread m_thread;
};

}  // namespace tierguard_test
