// The cache's invalidation delay between two processes: from a put returning in process A
// to process B's get() no longer serving the old value. Both run a cache of memory ->
// storage::redis (distributed invalidation on, its default) on one redis-server.
//
// Each round: B reads the key until its memory serves the current value, tells A "ready"
// (a pipe), and polls get() in a tight loop; A puts the next value and sends B the steady
// clock's reading (CLOCK_MONOTONIC, one clock for the whole machine) taken when put()
// returned; B subtracts it from its own reading at the first get() that returned the new
// value. A delay below 0 means B saw the new value before A's put() had returned (the
// notice overtook the PUBLISH reply).
//
// Usage: bench_invalidation_delay [rounds] [tcp]   (default 1000 rounds, a unix socket)
// Prints p50, p90, p99 and the maximum in microseconds, and the load average. A starts its
// own redis-server (tests/support/redis_server.hpp) and forks B before any thread exists.
#include "support/redis_server.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/storage/redis.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

struct policies : tierguard::cache_defaults {
    using storage = tierguard::tiers<tierguard::storage::redis>;
};
using cache_type = tierguard::cache<std::string, std::string, policies>;

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "bench_invalidation_delay: %s\n", what);
    std::exit(1);
}

cache_type open_cache(const std::string& endpoint) {
    tierguard::storage::redis::config rc;
    rc.endpoints = {endpoint};
    auto storage = tierguard::storage::redis::open(rc);
    if (!storage) die(storage.error().message().c_str());
    auto c = cache_type::open(cache_type::config{}, {std::move(*storage)});
    if (!c) die(c.error().message().c_str());
    // Bounded wait (20 s) for the subscription's link: before it, every get asks redis first.
    for (int i = 0; i < 20000 && !c->metrics().storage[0].link_up; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!c->metrics().storage[0].link_up) die("the invalidation link did not come up");
    return std::move(*c);
}

void read_all(int fd, void* p, std::size_t n) {
    auto* out = static_cast<char*>(p);
    while (n > 0) {
        const ssize_t got = ::read(fd, out, n);
        if (got <= 0) die("pipe closed");
        out += got;
        n -= static_cast<std::size_t>(got);
    }
}

void write_all(int fd, const void* p, std::size_t n) {
    if (::write(fd, p, n) != static_cast<ssize_t>(n)) die("pipe write failed");
}

std::string value(int round) { return "v" + std::to_string(round); }

// Process B: serves the key from memory, then polls until the new value shows.
int reader(const std::string& endpoint, int rounds, int ready_fd, int stamp_fd) {
    cache_type b = open_cache(endpoint);
    std::vector<double> delays_us;
    delays_us.reserve(static_cast<std::size_t>(rounds));
    for (int r = 1; r <= rounds; ++r) {
        const std::string old = value(r - 1);
        const std::string fresh = value(r);
        for (int i = 0;; ++i) {  // until memory holds the current value
            auto got = b.get("k");
            if (got && got->value == old && got->from == tierguard::tier::memory) break;
            if (i > 2000000) die("the reader never saw the current value in memory");
        }
        write_all(ready_fd, "r", 1);
        std::int64_t seen = 0;
        for (long i = 0;; ++i) {
            auto got = b.get("k");
            if (got && got->value == fresh) {
                seen = now_ns();
                break;
            }
            if (got && got->value != old) die("the reader saw a value that is neither the old nor the new one");
            if (i > 200000000L) die("the reader never saw the new value");
        }
        std::int64_t put_returned = 0;
        read_all(stamp_fd, &put_returned, sizeof put_returned);
        delays_us.push_back(static_cast<double>(seen - put_returned) / 1000.0);
    }
    std::sort(delays_us.begin(), delays_us.end());
    auto at = [&](double q) {
        return delays_us[static_cast<std::size_t>(q * static_cast<double>(delays_us.size() - 1))];
    };
    const auto below_zero = std::count_if(delays_us.begin(), delays_us.end(), [](double d) { return d < 0; });
    std::string load;
    std::ifstream("/proc/loadavg") >> load;
    std::printf(
        "rounds %d: delay p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us, min %.1f us (%ld below 0); "
        "load average %s\n",
        rounds, at(0.50), at(0.90), at(0.99), delays_us.back(), delays_us.front(), static_cast<long>(below_zero),
        load.c_str());
    const auto mt = b.metrics();
    std::printf("reader: notices applied %llu, link losses %llu\n",
                static_cast<unsigned long long>(mt.storage[0].notices_applied),
                static_cast<unsigned long long>(mt.storage[0].link_losses));
    std::fflush(stdout);  // the caller leaves by _exit
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 1000;
    const bool tcp = argc > 2 && std::string_view(argv[2]) == "tcp";
    if (rounds < 1) die("rounds must be at least 1");
    tierguard_test::redis_server server(tierguard_test::redis_server::options{tcp});
    const std::string endpoint = tcp ? server.tcp_url() : server.unix_url();
    std::printf("invalidation delay over %s, %d rounds\n", tcp ? "TCP (loopback)" : "a unix socket", rounds);
    std::fflush(stdout);
    int ready[2];
    int stamps[2];
    if (::pipe(ready) != 0 || ::pipe(stamps) != 0) die("pipe failed");
    const pid_t child = ::fork();  // before any thread exists
    if (child < 0) die("fork failed");
    if (child == 0) {
        ::close(ready[0]);
        ::close(stamps[1]);
        std::fflush(stdout);
        ::_exit(reader(endpoint, rounds, ready[1], stamps[0]));
    }
    ::close(ready[1]);
    ::close(stamps[0]);
    cache_type a = open_cache(endpoint);
    if (!a.put("k", value(0))) die("the first put failed");
    for (int r = 1; r <= rounds; ++r) {
        char c = 0;
        read_all(ready[0], &c, 1);
        if (!a.put("k", value(r))) die("a put failed");
        const std::int64_t returned = now_ns();
        write_all(stamps[1], &returned, sizeof returned);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
