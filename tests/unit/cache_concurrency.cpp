#include "support/scripted_storage.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::tier;

namespace {

using scripted = tierguard_test::scripted_storage<tierguard::storage::memory_storage>;

struct policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = scripted;
};
using test_cache = tierguard::cache<std::string, std::string, policies>;

test_cache open_cache(std::shared_ptr<scripted::script> faults, tierguard::clock::manual clock) {
    auto c = test_cache::open({.memory = {.byte_budget = 1 << 16, .shards = 4}, .breaker = {.recovery_time = 1ms}},
                              scripted(tierguard::storage::memory_storage(), std::move(faults)), clock);
    REQUIRE(c);
    return std::move(*c);
}

}  // namespace

TEST_CASE("cache concurrency: concurrent misses on one key call the loader once and share its value") {
    constexpr int threads = 8;
    auto cache = open_cache(std::make_shared<scripted::script>(), tierguard::clock::manual());
    std::atomic<int> arrived{0};
    std::atomic<int> calls{0};
    std::vector<std::string> seen(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            arrived.fetch_add(1);
            auto got = cache.get_or_load("key", [&](const std::string& key) {
                calls.fetch_add(1);
                // Hold the load until every thread has asked: they wait for it or find its value.
                while (arrived.load() < threads) std::this_thread::yield();
                return "loaded " + key;
            });
            seen[static_cast<std::size_t>(t)] = got ? got->value : got.error().message();
        });
    }
    for (auto& th : pool) th.join();
    CHECK(calls.load() == 1);
    for (const auto& value : seen) CHECK(value == "loaded key");
    const auto mt = cache.metrics();
    CHECK(mt.loads == 1);
}

TEST_CASE("cache concurrency: gets never return another key's or an erased key's value under faults") {
    // Values carry their key; a failing storage flips on and off while 4 threads put,
    // get, erase and load. Any get that succeeds must return a value of its own key.
    auto faults = std::make_shared<scripted::script>();
    std::atomic<bool> failing{false};
    *faults = [&](tierguard_test::storage_op, std::string_view) -> std::optional<tierguard::failure> {
        if (failing.load(std::memory_order_relaxed)) return tierguard::failure(errc::io_error, tier::disk, "injected");
        return std::nullopt;
    };
    tierguard::clock::manual clock;
    auto cache = open_cache(faults, clock);
    std::atomic<int> wrong{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t) {
        pool.emplace_back([&, t] {
            std::mt19937 rng(static_cast<std::uint32_t>(t) + 1);
            for (int i = 0; i < 20000; ++i) {
                const std::string key = "k" + std::to_string(rng() % 64);
                switch (rng() % 6) {
                    case 0:
                    case 1: (void)cache.put(key, key + "#" + std::to_string(i)); break;
                    case 2: (void)cache.erase(key); break;
                    case 3:
                        if (auto got = cache.get_or_load(key, [](const std::string& k) { return k + "#loaded"; });
                            got && got->value.rfind(key + "#", 0) != 0)
                            wrong.fetch_add(1);
                        break;
                    default:
                        if (auto got = cache.get(key); got && got->value.rfind(key + "#", 0) != 0) wrong.fetch_add(1);
                }
                if (t == 0 && i % 500 == 0) {
                    failing.store(!failing.load());
                    clock.advance(10ms);
                }
            }
        });
    }
    for (auto& th : pool) th.join();
    stop.store(true);
    CHECK(wrong.load() == 0);
    failing.store(false);
    // The cache recovers once the faults stop and the open period passes.
    for (int i = 0; i < 100 && cache.breaker().state() != tierguard::breaker_state::closed; ++i) {
        clock.advance(10min);
        (void)cache.put("probe", "probe#" + std::to_string(i));
    }
    CHECK(cache.breaker().state() == tierguard::breaker_state::closed);
    CHECK_FALSE(cache.degraded());
}
