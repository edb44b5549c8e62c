// Prints a composed cache's Prometheus exposition after some traffic, an outage and a
// recovery, for `promtool check metrics` (ctest: promtool.cache_exposition).
#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

struct policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::storage::memory_storage;
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
    for (int i = 0; i < 300; ++i) (void)cache->get("key" + std::to_string(i % 250));
    cache->breaker().force_open();
    (void)cache->get("key999");
    (void)cache->put("during", "outage");
    clock.advance(90s);
    cache->breaker().force_closed();
    (void)cache->get("key1");
    std::fputs(cache->to_prometheus().c_str(), stdout);
    return 0;
}
