// memory -> disk -> Redis: three tiers in one cache. Here the Redis server is absent (a
// unix socket nobody listens on), so the remote tier's breaker opens and memory and the
// local disk serve; with a server at the URL the same code shares entries between
// processes. Needs hiredis (CMake target tierguard::redis).
#include "scratch_dir.hpp"

#include <tierguard/storage/redis.hpp>
#include <tierguard/tierguard.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <tuple>

struct three_tier_policies : tierguard::cache_defaults {
    using storage = tierguard::tiers<tierguard::storage::posix_directory, tierguard::storage::redis>;
};
using profile_cache = tierguard::cache<std::string, std::string, three_tier_policies>;

int run(const std::filesystem::path& root) {
    using namespace std::chrono_literals;
    profile_cache::config cfg;
    cfg.default_ttl = 10min;
    auto& [disk, remote] = cfg.tiers;  // names default to "disk" and "remote"
    disk.storage.root = root;
    remote.storage.endpoints = {"unix://" + (root.parent_path() / "no-server.sock").string()};
    remote.storage.command_timeout = 50ms;
    remote.breaker.failure_threshold = 2;
    remote.storage.backoff_min = 0ms;  // every call tries the server, so the breaker sees each failure
    remote.storage.backoff_max = 0ms;
    auto cache = profile_cache::open(cfg);
    if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;

    auto put = cache->put("ada", "profile of ada");
    std::printf("put: %s, disk %s, remote %s\n", std::string(to_string(put->where)).c_str(),
                put->stored_in_tier(0) ? "yes" : "no", put->stored_in_tier(1) ? "yes" : "no");
    (void)cache->put("grace", "profile of grace");  // the remote breaker opens after 2 failures
    cache->memory().clear();
    auto got = cache->get("ada");
    std::printf("get ada from %s: %s\n", std::string(to_string(got->from)).c_str(), got->value.c_str());

    const auto m = cache->metrics();
    for (const auto& t : m.storage)
        std::printf("tier %-6s breaker %-9s writes %llu errors(io_error) %llu\n", t.name.c_str(),
                    std::string(to_string(t.breaker)).c_str(), static_cast<unsigned long long>(t.writes),
                    static_cast<unsigned long long>(t.errors_of(tierguard::errc::io_error)));
    std::printf("health %s\n", std::string(to_string(cache->health().status)).c_str());
    return got && got->from == tierguard::tier::disk ? 0 : 1;
}

int main() { return run_in_scratch_dir("cache", run); }
