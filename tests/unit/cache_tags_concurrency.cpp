// Puts racing invalidate_tag() / invalidate_prefix() (issue 17): what docs/RELIABILITY.md
// promises. Per key: a put that returned before the invalidation was called is removed; a
// put called after the invalidation returned survives, in memory and on disk; an
// overlapping one may be kept or removed, in each tier (a get then answers its value or a miss).
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace {

struct race_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::storage::memory_storage;
};
using cache_t = tierguard::cache<std::string, std::string, race_policies>;

constexpr int writers = 3;
constexpr int puts_each = 600;

std::string key_of(int round, int w, int i) {
    return "r" + std::to_string(round) + ":w" + std::to_string(w) + ":" + std::to_string(i);
}

}  // namespace

TEST_CASE("concurrency: puts racing an invalidation by tag or prefix") {
    const bool by_tag = GENERATE(true, false);
    INFO((by_tag ? "invalidate_tag" : "invalidate_prefix"));
    auto opened = cache_t::open({}, tierguard::storage::memory_storage(), tierguard::clock::manual());
    REQUIRE(opened);
    cache_t& cache = *opened;

    for (int round = 0; round < 4; ++round) {
        INFO("round " << round);
        std::array<std::atomic<int>, writers> completed{};
        std::array<std::vector<char>, writers> after(
            {std::vector<char>(puts_each), std::vector<char>(puts_each), std::vector<char>(puts_each)});
        std::atomic<bool> done{false};
        std::vector<std::thread> threads;
        for (int w = 0; w < writers; ++w) {
            threads.emplace_back([&, w] {
                for (int i = 0; i < puts_each; ++i) {
                    after[w][i] = done.load(std::memory_order_acquire) ? 1 : 0;
                    (void)cache.put(key_of(round, w, i), "v",
                                    {.ttl = std::nullopt, .tags = {"t" + std::to_string(round)}});
                    completed[w].store(i + 1, std::memory_order_release);
                }
            });
        }
        std::array<int, writers> before{};
        threads.emplace_back([&] {
            for (int w = 0; w < writers; ++w)
                while (completed[w].load(std::memory_order_acquire) < puts_each / 4) std::this_thread::yield();
            for (int w = 0; w < writers; ++w) before[w] = completed[w].load(std::memory_order_acquire);
            const auto removed = by_tag ? cache.invalidate_tag("t" + std::to_string(round))
                                        : cache.invalidate_prefix("r" + std::to_string(round) + ":");
            CHECK(removed);
            done.store(true, std::memory_order_release);
        });
        for (auto& t : threads) t.join();

        int survivors = 0;
        for (int w = 0; w < writers; ++w) {
            for (int i = 0; i < puts_each; ++i) {
                const std::string key = key_of(round, w, i);
                const bool in_memory = cache.memory().contains(key);
                const bool on_disk = cache.disk().contains(key);
                INFO(key);
                if (i < before[w]) {
                    CHECK_FALSE(in_memory);
                    CHECK_FALSE(on_disk);
                }
                if (after[w][i] != 0) {
                    CHECK(in_memory);
                    CHECK(on_disk);
                }
                if (in_memory || on_disk) CHECK(cache.get(key)->value == "v");
                survivors += on_disk ? 1 : 0;
            }
        }
        CHECK(survivors <= writers * puts_each - (before[0] + before[1] + before[2]));
    }
}
