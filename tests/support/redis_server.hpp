#pragma once

#include "support/temp_dir.hpp"

#include <hiredis/hiredis.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

namespace tierguard_test {

/// Why redis-server cannot be started here, or nullopt if it is on the PATH.
inline std::optional<std::string> redis_server_missing() {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
    while (!dirs.empty()) {
        const std::size_t colon = dirs.find(':');
        const std::filesystem::path dir(std::string(dirs.substr(0, colon)));
        if (::access((dir / "redis-server").c_str(), X_OK) == 0) return std::nullopt;
        dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    }
    return "redis-server is not on the PATH (Debian: apt-get install redis-server)";
}

/// For a test binary that needs redis-server, as the initializer of a namespace-scope
/// constant: true if it is here; otherwise the binary prints why and exits, 77 (skipped,
/// ctest's SKIP_RETURN_CODE) on a developer's machine, 1 in CI (CI set), where the redis
/// tests must run.
inline bool redis_server_or_exit(const char* test) {
    const auto missing = redis_server_missing();
    if (!missing) return true;
    const bool ci = std::getenv("CI") != nullptr;
    std::fprintf(stderr, "%s: %s: %s%s\n", test, ci ? "FAILED" : "SKIPPED", missing->c_str(),
                 ci ? " (CI is set: the redis tests must run in CI)" : "");
    std::exit(ci ? 1 : 77);
}

/// A free TCP port on 127.0.0.1 (the kernel's pick; free when this returns).
inline int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("free_loopback_port: no port");
    ::close(fd);
    return ntohs(a.sin_port);
}

/// A redis-server of the test's own: a unix socket in a fresh folder (and a loopback TCP
/// port if asked), no persistence; started by the constructor, which waits for PING, and
/// killed by the destructor, whatever the test did. stop()/resume() send SIGSTOP/SIGCONT;
/// kill() and start() kill it and start it again empty on the same socket and port.
class redis_server {
public:
    struct options {
        bool tcp = false;
        std::vector<std::string> args{};  ///< more redis-server arguments, e.g. {"--requirepass", "pw"}
        std::string password{};           ///< what command() authenticates with
    };

    redis_server() : redis_server(options{}) {}
    explicit redis_server(options opts) : m_options(std::move(opts)) {
        if (m_options.tcp) m_port = free_loopback_port();
        start();
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;
    ~redis_server() { kill(); }

    [[nodiscard]] std::string socket_path() const { return (m_dir.path() / "s.sock").string(); }
    [[nodiscard]] std::string unix_url() const { return "unix://" + socket_path(); }
    [[nodiscard]] std::string tcp_url(int db = 0) const {
        return "redis://127.0.0.1:" + std::to_string(m_port) + "/" + std::to_string(db);
    }
    [[nodiscard]] int port() const noexcept { return m_port; }
    [[nodiscard]] pid_t pid() const noexcept { return m_pid; }

    void stop() const { ::kill(m_pid, SIGSTOP); }
    void resume() const { ::kill(m_pid, SIGCONT); }

    void kill() {
        if (m_pid <= 0) return;
        ::kill(m_pid, SIGKILL);
        while (::waitpid(m_pid, nullptr, 0) < 0 && errno == EINTR) {}
        m_pid = -1;
    }

    /// Starts the server (again, empty) and waits until it answers PING.
    void start() {
        kill();
        std::vector<std::string> args{"redis-server",
                                      "--port",
                                      std::to_string(m_port),
                                      "--unixsocket",
                                      socket_path(),
                                      "--unixsocketperm",
                                      "700",
                                      "--save",
                                      "",
                                      "--appendonly",
                                      "no",
                                      "--dir",
                                      m_dir.path().string(),
                                      "--daemonize",
                                      "no"};
        if (m_options.tcp) args.insert(args.end(), {"--bind", "127.0.0.1"});
        args.insert(args.end(), m_options.args.begin(), m_options.args.end());
        const std::string log = (m_dir.path() / "server.log").string();
        m_pid = ::fork();
        if (m_pid < 0) throw std::runtime_error("redis_server: fork failed");
        if (m_pid == 0) {
#if defined(__linux__)
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no server outlives a crashed test
#endif
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
            }
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execvp("redis-server", argv.data());
            ::_exit(127);
        }
        // Readiness is polled a bounded number of times (at most 10 s): nothing is asserted
        // about how long it took.
        for (int attempt = 0; attempt < 2000; ++attempt) {
            if (::waitpid(m_pid, nullptr, WNOHANG) == m_pid) {
                m_pid = -1;
                throw std::runtime_error("redis-server exited at start; its log:\n" + file_text(log));
            }
            if (answers_ping()) return;
            const timespec pause{0, 5'000'000};
            ::nanosleep(&pause, nullptr);
        }
        throw std::runtime_error("redis-server did not answer PING within 10 s; its log:\n" + file_text(log));
    }

    /// Runs one command on a connection of its own; the reply as text ("ERR ..." for an
    /// error, the number for an integer, "(nil)"), or throws if the server does not answer.
    std::string command(std::initializer_list<std::string_view> words) const {
        redisContext* c = redisConnectUnix(socket_path().c_str());
        if (c == nullptr || c->err != 0) {
            redisFree(c);
            throw std::runtime_error("redis_server::command: cannot connect");
        }
        if (!m_options.password.empty()) freeReplyObject(redisCommand(c, "AUTH %s", m_options.password.c_str()));
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto w : words) {
            argv.push_back(w.data());
            lens.push_back(w.size());
        }
        auto* r =
            static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
        std::string out;
        if (r == nullptr) {
            redisFree(c);
            throw std::runtime_error("redis_server::command: no reply");
        }
        if (r->type == REDIS_REPLY_INTEGER) {
            out = std::to_string(r->integer);
        } else if (r->type == REDIS_REPLY_NIL) {
            out = "(nil)";
        } else if (r->str != nullptr) {
            out.assign(r->str, r->len);
        }
        freeReplyObject(r);
        redisFree(c);
        return out;
    }

private:
    static std::string file_text(const std::string& path) {
        std::ifstream in(path);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    [[nodiscard]] bool answers_ping() const {
        redisContext* c = redisConnectUnix(socket_path().c_str());
        bool up = false;
        if (c != nullptr && c->err == 0) {
            auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
            // A server with requirepass answers NOAUTH: it is up all the same.
            up = r != nullptr && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR);
            freeReplyObject(r);
        }
        redisFree(c);
        return up;
    }

    options m_options;
    temp_dir m_dir;
    int m_port = 0;
    pid_t m_pid = -1;
};

/// Sets up a run of the redis tests: nullopt to go on, or why to skip them. In CI (the
/// environment variable CI set) a missing redis-server is an error, never a skip.
inline std::optional<std::string> redis_tests_skip_reason() {
    auto missing = redis_server_missing();
    if (!missing) return std::nullopt;
    if (std::getenv("CI") != nullptr)
        throw std::runtime_error("CI is set and " + *missing + ": the redis tests must run in CI");
    return missing;
}

}  // namespace tierguard_test
