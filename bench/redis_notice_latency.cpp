// The invalidation transport's latency between two processes: process A writes with a
// notice (storage::redis::write(name, bytes, expiry, notice): SET PX + PUBLISH in one round
// trip), process B's subscription hands the notice to its callback. Each notice carries the
// steady clock's reading (CLOCK_MONOTONIC, one clock for the whole machine) taken just
// before A's write; B subtracts it from its own reading in the callback.
//
// Usage: bench_redis_notice_latency [notices] [tcp]   (default 2000 notices, a unix socket)
// Prints p50, p90, p99 and the maximum in microseconds. A starts its own redis-server
// (tests/support/redis_server.hpp) and forks B before any thread exists. This is the
// transport alone: when a cache in B stops serving the old value is the cache's step.
#include "support/redis_server.hpp"

#include <tierguard/storage/redis.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

using tierguard::storage::redis;
using steady = std::chrono::steady_clock;

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

/// Calls io(bytes done so far), which moves some of the rest, until all `size` are moved.
template <class Io>
bool whole(std::size_t size, Io io) {
    for (std::size_t done = 0; done < size;) {
        const ssize_t n = io(done);
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

bool write_all(int fd, const void* data, std::size_t size) {
    return whole(size,
                 [&](std::size_t done) { return ::write(fd, static_cast<const char*>(data) + done, size - done); });
}

bool read_all(int fd, void* data, std::size_t size) {
    return whole(size, [&](std::size_t done) { return ::read(fd, static_cast<char*>(data) + done, size - done); });
}

/// Process B: subscribes, says 'u' on `to_a` once its link is up, records each notice's
/// delay, and on the notice "end" sends the delays (count, link losses, then int64
/// nanoseconds each) and exits.
int subscriber(const std::string& url, int to_a) {
    auto storage = redis::open({.endpoints = {url}}).value();
    std::mutex mutex;
    std::vector<std::int64_t> delays;
    bool done = false;
    bool announced = false;
    std::uint64_t losses = 0;
    std::condition_variable finished;
    auto sub = storage.subscribe(
        [&](redis::notice_bytes n) {
            const std::int64_t now = now_ns();
            std::lock_guard lock(mutex);
            if (n.size() == sizeof(std::int64_t)) {
                std::int64_t sent = 0;
                std::memcpy(&sent, n.data(), sizeof sent);
                delays.push_back(now - sent);
            } else {
                done = true;
                finished.notify_all();
            }
        },
        [&](bool up) {
            std::lock_guard lock(mutex);
            if (!up) ++losses;
            if (up && !announced) announced = write_all(to_a, "u", 1);
        });
    if (!sub) return 1;
    std::unique_lock lock(mutex);
    finished.wait(lock, [&] { return done; });
    const std::uint64_t count = delays.size();
    const bool sent = write_all(to_a, &count, sizeof count) && write_all(to_a, &losses, sizeof losses) &&
                      write_all(to_a, delays.data(), count * sizeof(std::int64_t));
    return sent ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const int notices = argc > 1 ? std::atoi(argv[1]) : 2000;
    const bool tcp = argc > 2 && std::string_view(argv[2]) == "tcp";
    if (notices <= 0) {
        std::fprintf(stderr, "usage: %s [notices > 0] [tcp]\n", argv[0]);
        return 2;
    }
    tierguard_test::redis_server server({.tcp = tcp});
    const std::string url = tcp ? server.tcp_url() : server.unix_url();
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) return 1;
    const pid_t b = ::fork();
    if (b < 0) return 1;
    if (b == 0) {
        ::close(pipe_fds[0]);
        ::_exit(subscriber(url, pipe_fds[1]));
    }
    ::close(pipe_fds[1]);
    char state = 0;
    if (!read_all(pipe_fds[0], &state, 1) || state != 'u') {
        std::fprintf(stderr, "process B's subscription did not come up\n");
        return 1;
    }

    auto storage = redis::open({.endpoints = {url}}).value();
    const std::vector<std::byte> value(1024, std::byte{'v'});
    int failed = 0;
    for (int i = 0; i < notices; ++i) {
        const std::int64_t sent = now_ns();
        const auto notice = std::as_bytes(std::span(&sent, 1));
        if (!storage.write("latency/" + std::to_string(i % 100), value, std::chrono::minutes(1), notice)) ++failed;
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // one notice at a time, not a flood
    }
    const std::string end = "end";
    if (!storage.publish(std::as_bytes(std::span(end)))) ++failed;

    std::uint64_t count = 0;
    std::uint64_t losses = 0;
    std::vector<std::int64_t> delays;
    if (!read_all(pipe_fds[0], &count, sizeof count) || !read_all(pipe_fds[0], &losses, sizeof losses)) return 1;
    delays.resize(count);
    if (!read_all(pipe_fds[0], delays.data(), count * sizeof(std::int64_t))) return 1;
    int status = 0;
    ::waitpid(b, &status, 0);
    std::sort(delays.begin(), delays.end());
    auto at = [&](double q) {
        return delays.empty() ? 0.0
                              : static_cast<double>(delays[static_cast<std::size_t>(q * (delays.size() - 1))]) / 1e3;
    };
    std::printf("notices sent %d (failed writes %d), received %llu over %s; B's link lost %llu times\n", notices,
                failed, static_cast<unsigned long long>(count), tcp ? "tcp" : "a unix socket",
                static_cast<unsigned long long>(losses));
    std::printf("write call to callback in another process, us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", at(0.5),
                at(0.9), at(0.99), at(1.0));
    return count == static_cast<std::uint64_t>(notices) && failed == 0 ? 0 : 1;
}
