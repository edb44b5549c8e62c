// Prints a composed cache's Prometheus exposition after some traffic, an outage and a
// recovery, for `promtool check metrics` (ctest: promtool.cache_exposition). Two storage
// tiers (a local one and a shared one playing the remote), so that every per-tier series
// appears once per tier; examples/prometheus_export.cpp covers the single-tier cache.
#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

struct policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::tiers<tierguard::storage::memory_storage, tierguard::storage::remote_memory_storage>;
};

}  // namespace

int main() {
    using namespace std::chrono_literals;
    tierguard::clock::manual clock;
    auto cache = tierguard::cache<std::string, std::string, policies>::open({}, clock);
    if (!cache) {
        std::fprintf(stderr, "%s\n", cache.error().message().c_str());
        return 1;
    }
    for (int i = 0; i < 200; ++i) (void)cache->put("key" + std::to_string(i), std::string(100, 'v'));
    cache->memory().clear();
    (void)cache->disk<0>().clear();  // the next gets come from the remote tier, promoted into the local one
    for (int i = 0; i < 300; ++i) (void)cache->get("key" + std::to_string(i % 250));
    cache->breaker<1>().force_open();
    (void)cache->get("key999");
    (void)cache->put("during", "outage");
    clock.advance(90s);
    cache->breaker<1>().force_closed();
    (void)cache->get("key1");
    std::fputs(cache->to_prometheus().c_str(), stdout);
    return 0;
}
