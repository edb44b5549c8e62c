// Many threads hammer one memory tier. Run under ThreadSanitizer in CI: a data race
// fails the run even where the assertions below would not notice it.
#include "support/test_framework.hpp"

#include <tierguard/memory_tier.hpp>

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {
// A value names its key, so a reader can tell it never got another key's value.
std::string value_for(int key, int version) { return "key" + std::to_string(key) + "/v" + std::to_string(version); }
bool belongs_to(const std::string& value, int key) { return value.rfind("key" + std::to_string(key) + "/v", 0) == 0; }

template <class Policies>
void concurrent_put_get_erase() {
    constexpr int threads = 4;
    constexpr int ops_per_thread = 20000;
    constexpr int keys = 512;
    constexpr std::size_t budget = 4096;  // far smaller than the key space: constant eviction
    tierguard::memory_tier<std::string, std::string, Policies> tier({.byte_budget = budget, .shards = 8});

    std::atomic<std::uint64_t> gets{0}, foreign{0}, over_budget{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            std::mt19937 rng(static_cast<std::uint32_t>(t + 1));
            std::uniform_int_distribution<int> key_dist(0, keys - 1), op_dist(0, 9);
            for (int i = 0; i < ops_per_thread; ++i) {
                const int key = key_dist(rng);
                const std::string name = "key" + std::to_string(key);
                const int op = op_dist(rng);
                if (op < 6) {
                    gets.fetch_add(1, std::memory_order_relaxed);
                    if (const auto got = tier.get(name); got && !belongs_to(*got, key)) foreign.fetch_add(1);
                } else if (op < 9) {
                    (void)tier.put(name, value_for(key, i));
                } else {
                    (void)tier.erase(name);
                }
                if (i % 512 == 0 && tier.bytes() > budget) over_budget.fetch_add(1);
            }
        });
    }
    for (auto& w : workers) w.join();

    const auto stats = tier.stats();
    CHECK(foreign.load() == 0);
    CHECK(over_budget.load() == 0);
    CHECK(stats.bytes <= budget);
    CHECK(stats.hits + stats.misses == gets.load());
    CHECK(stats.evictions > 0);
    CHECK(stats.hits > 0);
}

struct lru_policies : tierguard::memory_defaults {
    using eviction = tierguard::eviction::lru;
};
}  // namespace

TEST_CASE("memory tier: concurrent put/get/erase keep values, budgets and counters consistent") {
    SECTION("s3fifo, whose gets write their hits without the lock") {
        concurrent_put_get_erase<tierguard::memory_defaults>();
    }
    SECTION("lru, whose gets take the lock when it is free") { concurrent_put_get_erase<lru_policies>(); }
}

TEST_CASE("memory tier: more threads than read slots share them safely") {
    // 80 live threads: more than the 64 read slots a tier has at most, so threads share
    // slots and some gets take the locked path.
    constexpr int threads = 80;
    constexpr int ops_per_thread = 2000;
    constexpr int keys = 64;
    tierguard::memory_tier<std::string, std::string> tier({.byte_budget = 2048, .shards = 4});
    std::atomic<std::uint64_t> gets{0}, foreign{0};
    std::atomic<int> ready{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            ready.fetch_add(1);
            while (ready.load() < threads) std::this_thread::yield();  // all alive at once
            for (int i = 0; i < ops_per_thread; ++i) {
                const int key = (i * 7 + t) % keys;
                const std::string name = "key" + std::to_string(key);
                if (i % 4 == 0) {
                    (void)tier.put(name, value_for(key, i));
                } else {
                    gets.fetch_add(1, std::memory_order_relaxed);
                    if (const auto got = tier.get(name); got && !belongs_to(*got, key)) foreign.fetch_add(1);
                }
            }
        });
    }
    for (auto& w : workers) w.join();
    const auto stats = tier.stats();
    CHECK(foreign.load() == 0);
    CHECK(stats.hits + stats.misses == gets.load());
    CHECK(stats.bytes <= 2048);
    CHECK(stats.hits > 0);
}

TEST_CASE("memory tier: clear and set_byte_budget race safely with readers and writers") {
    tierguard::memory_tier<int, std::string> tier({.byte_budget = 1 << 16, .shards = 4});
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        for (int i = 0; !stop.load(); ++i) (void)tier.put(i % 1000, std::to_string(i));
    });
    std::thread reader([&] {
        for (int i = 0; !stop.load(); ++i) (void)tier.get(i % 1000);
    });
    for (int round = 0; round < 200; ++round) {
        if (round % 2 == 0) tier.clear();
        REQUIRE(tier.set_byte_budget(round % 3 == 0 ? 1024 : 1 << 16));
    }
    stop.store(true);
    writer.join();
    reader.join();
    REQUIRE(tier.set_byte_budget(1024));
    CHECK(tier.bytes() <= 1024);
}
