// The composed cache in front of a slow backend: get_or_load, a storage outage carried
// by the memory tier, the recovery, and what an operator sees (health and metrics).
#include "scratch_dir.hpp"

#include <tierguard/tierguard.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

// Stands in for a database or a model call.
std::string slow_lookup(const std::string& id) { return "profile of " + id; }

// A manual clock lets the example pass the breaker's recovery time without waiting.
struct example_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
};
using profile_cache = tierguard::cache<std::string, std::string, example_policies>;

int run(const std::filesystem::path& root) {
    using namespace std::chrono_literals;
    tierguard::clock::manual clock;

    profile_cache::config cfg;
    cfg.storage.root = root;
    cfg.memory.byte_budget = 16 << 20;
    cfg.default_ttl = 10min;
    cfg.breaker.failure_threshold = 3;
    cfg.breaker.recovery_time = 30s;
    auto cache = profile_cache::open(cfg, clock);
    if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;

    for (const char* id : {"ada", "grace", "ada"}) {
        auto profile = cache->get_or_load(id, slow_lookup);
        if (!profile) return std::printf("%s\n", profile.error().message().c_str()), 1;
        std::printf("%-6s from %-6s %s\n", id, std::string(to_string(profile->from)).c_str(), profile->value.c_str());
    }

    // An operator (or a run of failures) takes the disk tier out: the memory tier serves.
    cache->breaker().force_open();
    auto during = cache->put("edsger", slow_lookup("edsger"));
    std::printf("during the outage: put stored in %s, health %s\n", std::string(to_string(during->where)).c_str(),
                std::string(to_string(cache->health().status)).c_str());
    std::printf("ada    from %s\n", std::string(to_string(cache->get("ada")->from)).c_str());

    cache->breaker().force_closed();
    clock.advance(1min);
    (void)cache->get("grace");  // the next call notices the recovery
    const auto health = cache->health(/*probe=*/true);
    const auto metrics = cache->metrics();
    std::printf("after recovery: health %s, degraded %d time(s), pending erasures %llu\n",
                std::string(to_string(health.status)).c_str(), static_cast<int>(metrics.degraded_entered),
                static_cast<unsigned long long>(metrics.pending_erasures));
    std::printf("loads=%llu memory hits=%llu disk entries=%llu\n", static_cast<unsigned long long>(metrics.loads),
                static_cast<unsigned long long>(metrics.memory.hits),
                static_cast<unsigned long long>(metrics.storage.front().entries));
    return health.status == tierguard::health_status::healthy && metrics.loads == 2 ? 0 : 1;
}

int main() { return run_in_scratch_dir("cache", run); }
