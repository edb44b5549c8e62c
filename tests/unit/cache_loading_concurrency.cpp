// get_or_load under concurrency (issue 17, "Loading"): what concurrent callers sharing one
// load get, and what the load counters count.
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>

#include <atomic>
#include <chrono>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::tier;

namespace {

struct memory_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::no_storage;
};
using memory_cache = tierguard::cache<std::string, std::string, memory_policies>;

}  // namespace

// Issue 17, Loading 6: callers that shared one failed load each got the stale value, but
// stale_served counted the load once (25 answers, 17 counted).
TEST_CASE("cache_loading concurrency: stale_served counts every caller that got a stale value") {
    constexpr int callers = 8;
    tierguard::clock::manual clock;
    auto opened = memory_cache::open({.stale_grace = 1min}, clock);
    REQUIRE(opened);
    memory_cache& c = *opened;
    REQUIRE(c.put("k", "old", 10s));
    clock.advance(15s);
    // The one load fails only once every other caller waits for it.
    auto failing = [&](const std::string&) -> tierguard::result<std::string> {
        while (c.metrics().loads_shared < callers - 1) std::this_thread::yield();
        return tierguard::fail(errc::timeout, tier::none, "backend down");
    };
    std::atomic<int> stale_answers{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i)
        threads.emplace_back([&] {
            auto got = c.get_or_load("k", failing);
            if (got && got->stale && got->value == "old") stale_answers.fetch_add(1);
        });
    for (auto& t : threads) t.join();
    const auto mt = c.metrics();
    CHECK(stale_answers.load() == callers);
    CHECK(mt.loads == 1);
    CHECK(mt.load_failures == 1);
    CHECK(mt.loads_shared == callers - 1);
    CHECK(mt.stale_served == callers);
}

// Issue 17, Loading 5: a bulk load shares the loads under way of single keys.
TEST_CASE("cache_loading concurrency: get_or_load_all does not load a key that get_or_load is loading") {
    tierguard::clock::manual clock;
    auto opened = memory_cache::open({}, clock);
    REQUIRE(opened);
    memory_cache& c = *opened;
    // The single load finishes only once the bulk call waits for it.
    std::string single_value;
    std::thread single([&] {
        auto got = c.get_or_load("a", [&](const std::string&) {
            while (c.metrics().loads_shared < 1) std::this_thread::yield();
            return std::string("from single");
        });
        if (got) single_value = got->value;
    });
    while (c.metrics().loads < 1) std::this_thread::yield();  // the single load has begun
    std::vector<std::string> asked;
    const std::vector<std::string> keys{"a", "b"};
    auto got = c.get_or_load_all(keys, [&](std::span<const std::string> misses) {
        asked.assign(misses.begin(), misses.end());
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& key : misses) out.emplace_back(key, "from bulk");
        return out;
    });
    single.join();
    CHECK(single_value == "from single");
    CHECK(asked == std::vector<std::string>{"b"});
    REQUIRE(got.size() == 2);
    CHECK(got[0]->value == "from single");
    CHECK(got[1]->value == "from bulk");
    const auto mt = c.metrics();
    CHECK(mt.loads == 2);
    CHECK(mt.loads_shared == 1);
}

// Issue 17, Loading 3: callers that hit a due entry together start one reload between
// them, and none of them waits for it.
TEST_CASE("cache_loading concurrency: refresh-ahead runs one reload per key, and no caller waits for it") {
    constexpr int callers = 8;
    tierguard::clock::manual clock;
    auto opened = memory_cache::open({.default_ttl = 1min, .refresh_after = 30s}, clock);
    REQUIRE(opened);
    memory_cache& c = *opened;
    REQUIRE(c.get_or_load("k", [](const std::string&) { return std::string("v1"); }));
    clock.advance(40s);
    std::atomic<int> reloads{0};
    std::atomic<bool> release{false};
    // The reload blocks until every caller has its answer: a caller that waited for it
    // would never return.
    auto reload = [&](const std::string&) {
        reloads.fetch_add(1);
        while (!release.load()) std::this_thread::yield();
        return std::string("v2");
    };
    std::atomic<int> old_answers{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i)
        threads.emplace_back([&] {
            auto got = c.get_or_load("k", reload);
            if (got && got->value == "v1") old_answers.fetch_add(1);
        });
    for (auto& t : threads) t.join();
    release = true;
    while (c.metrics().refreshes < 1) std::this_thread::yield();
    CHECK(old_answers.load() == callers);
    CHECK(reloads.load() == 1);
    CHECK(c.get("k")->value == "v2");
    CHECK(c.metrics().refreshes == 1);
}
