// Quick start: a memory tier in front of something slow. This file is quoted in the
// README and built and run by CI, so the README's snippet cannot rot.
#include <tierguard/tierguard.hpp>

#include <chrono>
#include <cstdio>
#include <string>

// Stands in for a database, an object store, a model call.
std::string slow_lookup(const std::string& user_id) { return "profile of " + user_id; }

int main() {
    using namespace std::chrono_literals;
    tierguard::memory_tier<std::string, std::string> cache({
        .byte_budget = 64 << 20,  // payload bytes, split over the shards
        .shards = 16,
        .default_ttl = 5min,
    });

    for (const std::string id : {"ada", "grace", "ada"}) {
        auto profile = cache.get(id);
        if (!profile) {
            // A plain miss, or an expired entry: tell them apart with error().code().
            std::printf("%-6s %s -> loading\n", id.c_str(), std::string(to_string(profile.error().code())).c_str());
            if (auto stored = cache.put(id, slow_lookup(id)); !stored) {
                std::printf("not cached: %s\n", stored.error().message().c_str());
            }
            profile = cache.get(id);
        } else {
            std::printf("%-6s hit\n", id.c_str());
        }
        std::printf("       %s\n", profile.value().c_str());
    }

    const auto stats = cache.stats();
    std::printf("hits=%llu misses=%llu entries=%zu bytes=%zu\n", static_cast<unsigned long long>(stats.hits),
                static_cast<unsigned long long>(stats.misses), stats.entries, stats.bytes);
    return stats.hits == 3 && stats.misses == 2 ? 0 : 1;
}
