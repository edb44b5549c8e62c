// Warming (issue 17, seed 003 §3): warm(keys, loader, options) and config::warm_on_open.
#include "support/restartable_cache.hpp"
#include "support/scripted_storage.hpp"
#include "support/shared_memory_storage.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using tierguard::breaker_state;
using tierguard::errc;
using tierguard::tier;

namespace {

using storage = tierguard_test::scripted_storage<tierguard_test::shared_memory_storage>;

struct warm_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = ::storage;
};
using cache_t = tierguard::cache<std::string, std::string, warm_policies>;

using harness = tierguard_test::restartable_cache<cache_t>;

std::vector<std::string> keys(int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back("k" + std::to_string(i));
    return out;
}

}  // namespace

TEST_CASE("warm: loads the keys no tier holds, skips the others, counts a failing loader apart from serving") {
    harness h;
    auto cache = h.open();
    REQUIRE(cache.put("k0", "cached"));
    REQUIRE(cache.put("k1", "cached"));
    const auto all = keys(20);
    std::atomic<int> calls{0};
    // Fails for every key ending in 3 or 7: by exception, and by an error result.
    auto loader = [&](const std::string& key) -> tierguard::result<std::string> {
        ++calls;
        if (key.back() == '3') throw std::runtime_error("backend down");
        if (key.back() == '7') return tierguard::fail(errc::timeout, tier::none, "backend slow");
        return "loaded " + key;
    };
    std::vector<tierguard::warm_progress> seen;
    tierguard::warm_options opts;
    opts.threads = GENERATE(1, 3);
    opts.on_progress = [&](const tierguard::warm_progress& p) { seen.push_back(p); };
    opts.put.tags = {"warmed"};
    const auto report = cache.warm(all, loader, opts);

    CHECK(report.total == 20);
    CHECK(report.skipped == 2);
    CHECK(report.failed == 4);  // k3 k7 k13 k17
    CHECK(report.warmed == 14);
    CHECK_FALSE(report.stopped);
    CHECK(calls == 18);
    REQUIRE(seen.size() == 20);
    CHECK(seen.back().warmed + seen.back().skipped + seen.back().failed == 20);
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i].warmed + seen[i].skipped + seen[i].failed == i + 1);
    CHECK(cache.get("k0")->value == "cached");
    CHECK(cache.get("k5")->value == "loaded k5");
    CHECK(cache.disk().contains("k5"));
    CHECK_FALSE(cache.contains("k3"));

    const auto mt = cache.metrics();
    CHECK(mt.warmed == 14);
    CHECK(mt.warm_skipped == 2);
    CHECK(mt.warm_failed == 4);
    // The loader is not the storage: its failures open no breaker and count no tier error.
    CHECK(cache.breaker().state() == breaker_state::closed);
    CHECK(mt.storage.at(0).errors_of(errc::timeout) == 0);
    CHECK(mt.storage.at(0).errors_of(errc::loader_failed) == 0);
    CHECK(mt.load_failures == 0);                  // get_or_load's counters are the serving path's
    CHECK(*cache.invalidate_tag("warmed") == 14);  // opts.put's tags went with the values
}

TEST_CASE("warm: stops early on request") {
    harness h;
    auto cache = h.open();
    std::stop_source stop;
    tierguard::warm_options opts;
    opts.threads = 1;
    opts.stop = stop.get_token();
    opts.on_progress = [&](const tierguard::warm_progress& p) {
        if (p.warmed == 5) stop.request_stop();
    };
    const auto report = cache.warm(
        keys(100), [](const std::string& k) { return k; }, opts);
    CHECK(report.stopped);
    CHECK(report.warmed == 5);
    CHECK(cache.contains("k4"));
    CHECK_FALSE(cache.contains("k5"));
}

TEST_CASE("warm: runs its tasks on a caller-supplied executor") {
    harness h;
    auto cache = h.open();
    std::mutex m;
    std::vector<std::thread> threads;
    std::atomic<int> tasks{0};
    tierguard::warm_options opts;
    opts.threads = 2;
    opts.executor = [&](std::function<void()> task) {
        ++tasks;
        std::lock_guard lock(m);
        threads.emplace_back(std::move(task));
    };
    const auto report = cache.warm(
        keys(30), [](const std::string& k) { return k; }, opts);
    for (auto& t : threads) t.join();
    CHECK(tasks == 2);
    CHECK(report.warmed == 30);
    CHECK(cache.get("k29")->value == "k29");
}

TEST_CASE("warm: nothing to do") {
    harness h;
    auto cache = h.open();
    const auto report = cache.warm(std::vector<std::string>{}, [](const std::string& k) { return k; });
    CHECK(report.total == 0);
    CHECK(report.warmed == 0);
}

TEST_CASE("warm_on_open: the disk tier's most recently used entries are copied into memory at open") {
    harness h;
    {
        auto cache = h.open();
        for (const auto& k : keys(10)) REQUIRE(cache.put(k, "v" + k));
        REQUIRE(cache.put("short", "v", 1min));
        REQUIRE(cache.get("k0"));  // a disk hit would make it recent; here memory answers
    }
    h.clock.advance(2min);  // "short" expires: not copied
    cache_t::config cfg;
    cfg.warm_on_open = 4;
    cfg.disk.scrub_on_open = GENERATE(true, false);
    auto cache = h.open(cfg);
    const auto mt = cache.metrics();
    // The scrub removes the expired entry; without it, the index lists it and the copy skips it.
    CHECK(mt.warmed_at_open == (cfg.disk.scrub_on_open ? 4U : 3U));
    CHECK(cache.memory().contains("k9"));
    CHECK(cache.memory().contains("k8"));
    CHECK_FALSE(cache.memory().contains("k0"));
    CHECK(cache.get("k9")->from == tier::memory);
    CHECK(cache.to_prometheus().find("tierguard_warm_at_open_seconds") != std::string::npos);
}

TEST_CASE("warm_on_open: off by default") {
    harness h;
    {
        auto cache = h.open();
        REQUIRE(cache.put("a", "v"));
    }
    auto cache = h.open();
    CHECK(cache.metrics().warmed_at_open == 0);
    CHECK_FALSE(cache.memory().contains("a"));
}

// Issue 17, trial 11: after close(), warm() loaded nothing and reported every key failed,
// without saying the cache was closed.
TEST_CASE("warm: after close() returns at once, closed set and nothing counted") {
    harness h;
    auto cache = h.open();
    cache.close();
    int calls = 0;
    const auto report = cache.warm(keys(3), [&](const std::string& k) {
        ++calls;
        return k;
    });
    CHECK(report.closed);
    CHECK(report.total == 3);
    CHECK(report.failed == 0);
    CHECK(report.warmed + report.skipped == 0);
    CHECK(calls == 0);
    CHECK(cache.metrics().warm_failed == 0);
}
