// The demo: a tierguard cache in front of a slow backend, serving a read-heavy workload
// while its disk tier goes through the seeds' failures, phase by phase:
//
//   warm-up       normal service; the memory tier fills, the disk tier holds the rest
//   corruption    entry files overwritten with garbage (seed 000): quarantined, reloaded
//   unreadable    the cache directory loses its permissions (seed 000's chmod 000): the
//                 breaker opens and the memory tier, with its budget doubled, carries the load
//   recovered     permissions back: after the recovery time the breaker closes by itself
//   disk full     every write fails with ENOSPC (injected by storage::fault_injecting, seed 004)
//   recovered     the disk has room again
//   redis stopped the remote tier's server is frozen (SIGSTOP) and the clients move on to
//                 keys no tier holds yet: remote calls time out or are refused by the
//                 endpoint's backoff, and the backend fills memory and disk
//   redis back    SIGCONT, and the clients move on to keys no tier holds again: the remote
//                 tier takes writes again and its breaker closes
//
// The remote tier (memory -> disk -> Redis) is a redis-server the demo starts on a unix
// socket in a temp folder and kills at exit. Without redis-server on the PATH (or a build
// without hiredis) the demo says so and runs memory -> disk, the last two phases then
// "recovered"; with CI set it fails instead.
//
// One line per second shows what a person watching a dashboard would see. The run ends
// with the health report and the Prometheus exposition, and exits 0 only if every
// request got its backend's value: no request failed, and none got a wrong value,
// because of the cache.
//
// Usage: demo [--duration SECONDS]   (default 30; ctest runs a short one)
#include <tierguard/tierguard.hpp>
#if TIERGUARD_DEMO_REDIS
#include "support/redis_server.hpp"

#include <tierguard/storage/redis.hpp>
#endif

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// The cache's disk is a real directory, wrapped so that the demo can make it fail on cue.
using demo_storage = tierguard::storage::fault_injecting<tierguard::storage::posix_directory>;
struct demo_policies : tierguard::cache_defaults {
    using storage = demo_storage;
};
using demo_cache = tierguard::cache<std::string, std::string, demo_policies>;

// The redis-server of the remote tier: how to stop and resume it, and its URL.
struct remote_server {
    std::function<void()> stop, resume;
    std::string url;
};

constexpr int key_space = 4000;
constexpr int clients = 4;
constexpr auto backend_latency = 3ms;

// The slow backend: a database row, an object, a model answer. Deterministic, so every
// value the cache returns can be checked.
std::string backend_value(const std::string& key) {
    const std::size_t h = std::hash<std::string>{}(key);
    std::string value = "row for " + key + ":";
    value.append(200 + h % 1800, static_cast<char>('a' + h % 26));
    return value;
}

std::atomic<std::uint64_t> backend_calls{0};
std::string backend(const std::string& key) {
    backend_calls.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(backend_latency);
    return backend_value(key);
}

// Keys drawn from Zipf(0.99): a few hot keys, a long tail, as real traffic.
class zipf_keys {
public:
    zipf_keys() : m_cdf(key_space) {
        double sum = 0;
        for (int k = 0; k < key_space; ++k) m_cdf[k] = sum += 1.0 / std::pow(k + 1, 0.99);
        for (double& c : m_cdf) c /= sum;
    }
    [[nodiscard]] std::string draw(std::mt19937_64& rng) const {
        const double u = std::uniform_real_distribution<double>(0, 1)(rng);
        const auto k = std::lower_bound(m_cdf.begin(), m_cdf.end(), u) - m_cdf.begin();
        return "user:" + std::to_string(k);
    }

private:
    std::vector<double> m_cdf;
};

// What the clients saw in one interval: requests by the tier that answered, failures,
// wrong values, and request latency in a log-scale histogram (4 buckets per octave).
struct interval_stats {
    static constexpr int buckets = 160;
    std::atomic<std::uint64_t> from_memory{0}, from_disk{0}, from_remote{0}, loaded{0}, failed{0}, wrong{0};
    std::array<std::atomic<std::uint64_t>, buckets> latency{};

    static int bucket_of(std::chrono::nanoseconds d) {
        const double ns = std::max<double>(1.0, static_cast<double>(d.count()));
        return std::min(buckets - 1, static_cast<int>(std::log2(ns) * 4));
    }
    [[nodiscard]] std::uint64_t requests() const { return from_memory + from_disk + from_remote + loaded + failed; }
    // The latency below which `q` of the requests fell, in microseconds (bucket upper edge).
    [[nodiscard]] double quantile_us(double q) const {
        const auto total = static_cast<double>(requests());
        double seen = 0;
        for (int b = 0; b < buckets; ++b) {
            seen += static_cast<double>(latency[b].load());
            if (total > 0 && seen >= q * total) return std::exp2((b + 1) / 4.0) / 1e3;
        }
        return 0;
    }
};

struct phase {
    std::string_view name;
    int starts_at;  // in ticks (a tick is a second at the default duration of 30 s)
};
constexpr std::array<phase, 8> phases{{{"warm-up", 0},
                                       {"corruption", 4},
                                       {"unreadable", 8},
                                       {"recovered", 12},
                                       {"disk full", 15},
                                       {"recovered", 19},
                                       {"redis stopped", 22},
                                       {"redis back", 26}}};
constexpr int ticks = 30;

// Without a remote tier the redis phases are more of the last "recovered".
std::string_view phase_at(int tick, bool remote) {
    std::string_view name = phases[0].name;
    for (const phase& p : phases)
        if (tick >= p.starts_at && (remote || !p.name.starts_with("redis"))) name = p.name;
    return name;
}

// Overwrites up to `count` entry files with the bytes seed 000 used. Returns how many.
int corrupt_entry_files(const fs::path& root, int count, std::mt19937_64& rng) {
    std::vector<fs::path> entries;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        if (it->is_directory() && it->path().filename() == "quarantine") it.disable_recursion_pending();
        // Entries live two folder levels down; dot-names are the storage's own temp files.
        if (it->is_regular_file() && it.depth() == 2 && !it->path().filename().native().starts_with('.'))
            entries.push_back(it->path());
    }
    std::shuffle(entries.begin(), entries.end(), rng);
    int done = 0;
    for (const fs::path& p : entries) {
        if (done == count) break;
        std::ofstream(p, std::ios::trunc | std::ios::binary) << "corrupted data";
        ++done;
    }
    return done;
}

// seed 000 made the directory unreadable with chmod 000. Permission bits do not bind
// root, so as root the same EACCES comes from the fault-injecting storage instead.
void set_unreadable(const fs::path& root, tierguard::storage::fault_control& faults, bool unreadable) {
    if (::geteuid() != 0) {
        fs::permissions(root, unreadable ? fs::perms::none : fs::perms::owner_all);
    } else {
        faults.set_rates(unreadable ? tierguard::storage::fault_rates{.permission_denied = 1.0}
                                    : tierguard::storage::fault_rates{});
    }
}

#if TIERGUARD_DEMO_REDIS
struct remote_policies : tierguard::cache_defaults {
    using storage = tierguard::tiers<demo_storage, tierguard::storage::redis>;
};
using remote_cache = tierguard::cache<std::string, std::string, remote_policies>;
#endif

// Opens the cache over `storage` (and the remote server, if any).
template <class Cache>
tierguard::result<Cache> open_cache(demo_storage storage, std::chrono::milliseconds tick, const remote_server* remote) {
    typename Cache::config cfg;
    cfg.memory.byte_budget = 1 << 20;  // about a quarter of the working set
    cfg.memory.shards = 8;
    cfg.default_ttl = 10min;
    auto set_breaker = [&](auto& b) {
        b.failure_threshold = 5;
        b.recovery_time = tick;
        b.max_recovery_time = 3 * tick;
        b.test_requests = 3;
    };
    auto set_disk = [&](auto& disk) {
        disk.byte_budget = 64 << 20;  // all of it
        disk.compression_level = 1;
    };
    if constexpr (std::is_same_v<Cache, demo_cache>) {
        set_disk(cfg.disk);
        set_breaker(cfg.breaker);
        return Cache::open(cfg, std::move(storage));
    } else {
        auto& [disk, redis] = cfg.tiers;
        set_disk(disk.disk);
        set_breaker(disk.breaker);
        set_breaker(redis.breaker);
        redis.storage.endpoints = {remote->url};
        redis.storage.connect_timeout = 50ms;
        redis.storage.command_timeout = 50ms;  // what a call to the stopped server waits
        redis.storage.pool_size = clients;
        auto server = tierguard::storage::redis::open(redis.storage);
        if (!server) return tierguard::unexpected(server.error());
        return Cache::open(cfg, {std::move(storage), std::move(*server)});
    }
}

template <class Cache>
int run(const fs::path& root, std::chrono::milliseconds tick, const remote_server* remote) {
    auto dir = tierguard::storage::posix_directory::open({.root = root, .sync = tierguard::durability::none});
    if (!dir) return std::fprintf(stderr, "demo: %s\n", dir.error().message().c_str()), 2;
    demo_storage storage(std::move(*dir));
    auto faults = storage.control();
    auto opened = open_cache<Cache>(std::move(storage), tick, remote);
    if (!opened) return std::fprintf(stderr, "demo: %s\n", opened.error().message().c_str()), 2;
    Cache& cache = *opened;

    std::printf("tierguard demo: %d clients, Zipf(0.99) over %d keys, backend %lld ms per call, memory 1 MiB\n",
                clients, key_space, static_cast<long long>(backend_latency.count()));
    std::printf("the disk tier is %s (%s)\n", root.c_str(),
                ::geteuid() == 0 ? "running as root: EACCES is injected, as chmod does not bind root"
                                 : "chmod 000 makes it unreadable");
    if (remote) std::printf("the remote tier is the demo's own redis-server at %s\n", remote->url.c_str());
    std::printf("\n%6s %-13s %8s %6s %6s %6s %6s %7s %7s %-9s %-9s %7s %-8s %5s %4s\n", "t", "phase", "requests",
                "mem%", "disk%", "rem%", "load%", "p50 us", "p99 us", "disk brk", "rem brk", "rem err", "degraded",
                "quar", "fail");

    std::vector<interval_stats> stats(ticks);
    const zipf_keys keys;
    const auto start = steady::now();
    const auto end = start + ticks * tick;
    auto tick_of = [&](steady::time_point t) { return std::clamp(static_cast<int>((t - start) / tick), 0, ticks - 1); };

    // Which keys the clients ask for: the redis phases move them on to keys no tier holds yet.
    std::atomic<int> key_set{0};
    constexpr std::array<std::string_view, 3> key_prefixes{"", "fresh-", "fresher-"};
    std::vector<std::thread> workers;
    for (int c = 0; c < clients; ++c) {
        workers.emplace_back([&, c] {
            std::mt19937_64 rng(1000 + c);
            while (steady::now() < end) {
                const std::string key = std::string(key_prefixes[key_set]) + keys.draw(rng);
                const auto t0 = steady::now();
                auto got = cache.get_or_load(key, backend);
                const auto t1 = steady::now();
                interval_stats& s = stats[tick_of(t1)];
                s.latency[interval_stats::bucket_of(t1 - t0)].fetch_add(1, std::memory_order_relaxed);
                if (!got) {
                    s.failed.fetch_add(1);
                    std::fprintf(stderr, "demo: request for %s failed: %s\n", key.c_str(),
                                 got.error().message().c_str());
                    continue;
                }
                if (got->value != backend_value(key)) s.wrong.fetch_add(1);
                auto& by_tier = got->from == tierguard::tier::memory   ? s.from_memory
                                : got->from == tierguard::tier::disk   ? s.from_disk
                                : got->from == tierguard::tier::remote ? s.from_remote
                                                                       : s.loaded;
                by_tier.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }

    std::mt19937_64 chaos(7);
    std::uint64_t remote_errors_seen = 0;
    for (int t = 0; t < ticks; ++t) {
        const std::string_view now = phase_at(t, remote != nullptr);
        if (t > 0 && now != phase_at(t - 1, remote != nullptr)) {
            // Leaving a phase undoes it; entering one starts it.
            set_unreadable(root, faults, now == "unreadable");
            if (now == "disk full") faults.set_rates(tierguard::storage::op::write, {.disk_full = 1.0});
            if (now == "recovered") faults.heal();
            if (remote && now == "redis stopped") {
                remote->stop();
                key_set = 1;  // requests now miss memory and disk, and reach the stopped server
            }
            if (remote && now == "redis back") key_set = 2;  // and now the server that is back
            if (remote && now == "redis back") remote->resume();
        }
        if (now == "corruption") (void)corrupt_entry_files(root, 20, chaos);
        std::this_thread::sleep_until(start + (t + 1) * tick);

        const interval_stats& s = stats[t];
        const auto m = cache.metrics();
        const double n = std::max<double>(1.0, static_cast<double>(s.requests()));
        const std::string remote_breaker = m.storage.size() > 1 ? std::string(to_string(m.storage[1].breaker)) : "-";
        // Failed remote calls in this interval: timeouts, and calls its endpoint's backoff refused.
        std::uint64_t remote_errors = 0;
        if (m.storage.size() > 1)
            for (const auto code : {tierguard::errc::timeout, tierguard::errc::io_error, tierguard::errc::circuit_open})
                remote_errors += m.storage[1].errors_of(code);
        std::printf("%5.1fs %-13.*s %8llu %6.1f %6.1f %6.1f %6.1f %7.1f %7.0f %-9s %-9s %7llu %-8s %5llu %4llu\n",
                    std::chrono::duration<double>((t + 1) * tick).count(), static_cast<int>(now.size()), now.data(),
                    static_cast<unsigned long long>(s.requests()), 100.0 * static_cast<double>(s.from_memory) / n,
                    100.0 * static_cast<double>(s.from_disk) / n, 100.0 * static_cast<double>(s.from_remote) / n,
                    100.0 * static_cast<double>(s.loaded) / n, s.quantile_us(0.50), s.quantile_us(0.99),
                    std::string(to_string(m.storage.front().breaker)).c_str(), remote_breaker.c_str(),
                    static_cast<unsigned long long>(remote_errors - remote_errors_seen), m.degraded ? "yes" : "no",
                    static_cast<unsigned long long>(m.storage.front().quarantined),
                    static_cast<unsigned long long>(s.failed + s.wrong));
        std::fflush(stdout);
        remote_errors_seen = remote_errors;
    }
    for (std::thread& w : workers) w.join();
    if (remote) remote->resume();
    set_unreadable(root, faults, false);
    faults.heal();

    std::uint64_t requests = 0, failed = 0, wrong = 0;
    for (const interval_stats& s : stats) {
        requests += s.requests();
        failed += s.failed;
        wrong += s.wrong;
    }
    const auto health = cache.health(/*probe=*/true);
    std::printf("\nhealth: %s\n", std::string(to_string(health.status)).c_str());
    for (const auto& th : health.tiers) {
        std::printf("  %-6s breaker %-9s last error: %s\n", std::string(to_string(th.which)).c_str(),
                    std::string(to_string(th.breaker)).c_str(),
                    th.last_error ? th.last_error->message().c_str() : "none");
    }
    std::printf("\n# Prometheus exposition (cache.to_prometheus())\n%s\n", cache.to_prometheus().c_str());
    std::printf("requests %llu, backend calls %llu, failed because of the cache %llu, wrong values %llu\n",
                static_cast<unsigned long long>(requests), static_cast<unsigned long long>(backend_calls.load()),
                static_cast<unsigned long long>(failed), static_cast<unsigned long long>(wrong));
    const bool ok = failed == 0 && wrong == 0 && requests > 0;
    std::printf("%s\n",
                ok ? "PASS: every request was served its backend's value" : "FAIL: the cache let a request down");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    int seconds = ticks;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--duration" && i + 1 < argc) {
            seconds = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: demo [--duration SECONDS]   (%d to 3600; default %d)\n", ticks / 5, ticks);
            return 2;
        }
    }
    if (seconds < ticks / 5 || seconds > 3600) {
        std::fprintf(stderr, "demo: --duration must be %d to 3600 seconds\n", ticks / 5);
        return 2;
    }
    std::string scratch = (fs::temp_directory_path() / "tierguard-demo-XXXXXX").string();
    if (::mkdtemp(scratch.data()) == nullptr) return std::perror("demo: mkdtemp"), 2;
    const fs::path root = fs::path(scratch) / "cache";
    const std::chrono::milliseconds tick(seconds * 1000 / ticks);
    int status = 0;
#if TIERGUARD_DEMO_REDIS
    const auto missing = tierguard_test::redis_server_missing();
#else
    const std::optional<std::string> missing = "this demo was built without hiredis (tierguard::redis)";
#endif
    if (missing) {
        const bool ci = std::getenv("CI") != nullptr && std::string_view(std::getenv("CI")) == "true";
        std::fprintf(stderr, "demo: %s: %s\n", missing->c_str(),
                     ci ? "CI=true needs the remote phase; scripts/install-deps installs redis-server"
                        : "running without the remote tier and its phase");
        status = ci ? 2 : run<demo_cache>(root, tick, nullptr);
    } else {
#if TIERGUARD_DEMO_REDIS
        try {
            tierguard_test::redis_server server;  // killed when it goes out of scope
            const remote_server remote{[&] { server.stop(); }, [&] { server.resume(); }, server.unix_url()};
            status = run<remote_cache>(root, tick, &remote);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "demo: could not start redis-server: %s\n", e.what());
            status = 2;
        }
#endif
    }
    std::error_code ec;
    fs::permissions(fs::path(scratch) / "cache", fs::perms::owner_all, ec);
    fs::remove_all(scratch, ec);
    return status;
}
