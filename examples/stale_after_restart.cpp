// Stale-if-error after a restart: the service comes back while its backend is down, and
// get_or_load serves what the disk kept, marked stale, instead of failing every request.
// This file is quoted in the README and built and run by CI.
#include "scratch_dir.hpp"

#include <tierguard/tierguard.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

// A manual clock stands in for the hour between the two runs.
struct example_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
};
using profile_cache = tierguard::cache<std::string, std::string, example_policies>;

int run(const std::filesystem::path& root) {
    using namespace std::chrono_literals;
    tierguard::clock::manual clock;
    profile_cache::config cfg;
    cfg.storage.root = root;
    cfg.default_ttl = 10min;
    cfg.stale_grace = 24h;  // while the backend fails, serve values up to a day past their TTL

    {  // The first run: the backend answers.
        auto cache = profile_cache::open(cfg, clock);
        if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;
        auto ada = cache->get_or_load("ada", [](const std::string& id) { return "profile of " + id; });
        if (!ada) return std::printf("%s\n", ada.error().message().c_str()), 1;
        std::printf("first run: ada from %s: %s\n", std::string(to_string(ada->from)).c_str(), ada->value.c_str());
    }  // the process stops

    clock.advance(1h);  // ada's entry is now 50 minutes past its TTL
    auto cache = profile_cache::open(cfg, clock);
    if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;
    auto backend_down = [](const std::string&) -> std::string { throw std::runtime_error("db: connection refused"); };
    auto ada = cache->get_or_load("ada", backend_down);
    if (!ada) return std::printf("%s\n", ada.error().message().c_str()), 1;
    std::printf("after restart: ada from %s, stale %s: %s\n", std::string(to_string(ada->from)).c_str(),
                ada->stale ? "yes" : "no", ada->value.c_str());
    auto bob = cache->get_or_load("bob", backend_down);  // never cached: nothing to fall back on
    if (!bob) std::printf("bob: %s\n", bob.error().message().c_str());
    const auto metrics = cache->metrics();
    std::printf("load_failures=%llu stale_served=%llu\n", static_cast<unsigned long long>(metrics.load_failures),
                static_cast<unsigned long long>(metrics.stale_served));
    return ada->stale && !bob ? 0 : 1;
}

int main() { return run_in_scratch_dir("cache", run); }
