// get_or_load and its loaders (issue 17, "Loading"): stale-if-error from storage after a
// restart, the loader contract, per-load TTLs, bulk loads, refresh-ahead and the load counters.
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::tier;

namespace {

template <class Storage>
struct policies_on : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = Storage;
};

template <class Storage>
using cache_on = tierguard::cache<std::string, std::string, policies_on<Storage>>;

auto down(const std::string&) -> tierguard::result<std::string> {
    return tierguard::fail(errc::timeout, tier::none, "backend down");
}

}  // namespace

// Issue 17, Loading 2: after a restart with the backend down, the disk's expired entries
// were deleted by the scrub at open (or, with scrub_on_open off, never served), so every
// get_or_load answered loader_failed.
TEMPLATE_TEST_CASE("cache_loading: stale-if-error serves a storage tier's expired entry after a restart", "",
                   tierguard::storage::posix_directory, tierguard::storage::segment_log) {
    using cache_t = cache_on<TestType>;
    const tierguard_test::temp_dir tmp;
    const bool scrub = GENERATE(true, false);
    CAPTURE(scrub);
    typename cache_t::config cfg;
    cfg.storage.root = tmp.path() / "cache";
    cfg.storage.sync = tierguard::durability::none;
    cfg.stale_grace = 60s;
    cfg.disk.scrub_on_open = scrub;
    tierguard::clock::manual clock;
    {
        auto c = cache_t::open(cfg, clock);
        REQUIRE(c);
        REQUIRE(c->put("k", "v1", 10s));
        REQUIRE(c->put("gone", "old", 10s));
    }
    clock.advance(40s);  // expired 30 s ago: within the grace
    {
        auto c = cache_t::open(cfg, clock);
        REQUIRE(c);
        auto plain = c->get("k");  // a get never serves stale values
        REQUIRE_FALSE(plain);
        CHECK((plain.error().code() == errc::miss || plain.error().code() == errc::expired));
        REQUIRE(c->scrub());  // maintenance keeps the entry until the grace ends
        auto stale = c->get_or_load("k", down);
        REQUIRE(stale);
        CHECK(stale->value == "v1");
        CHECK(stale->stale);
        CHECK(stale->from == tier::disk);
        CHECK(c->metrics().stale_served == 1);
        CHECK(c->metrics().load_failures == 1);
    }
    clock.advance(31s);  // past TTL + grace
    {
        auto c = cache_t::open(cfg, clock);
        REQUIRE(c);
        auto failed = c->get_or_load("k", down);
        REQUIRE_FALSE(failed);
        CHECK(failed.error().code() == errc::loader_failed);
        CHECK(c->metrics().stale_served == 0);
        CHECK_FALSE(c->disk().indexed("k"));  // removed once the grace ended
    }
}

TEST_CASE("cache_loading: without a stale grace the disk drops an expired entry as before") {
    using cache_t = cache_on<tierguard::storage::posix_directory>;
    const tierguard_test::temp_dir tmp;
    cache_t::config cfg;
    cfg.storage.root = tmp.path() / "cache";
    cfg.storage.sync = tierguard::durability::none;
    tierguard::clock::manual clock;
    {
        auto c = cache_t::open(cfg, clock);
        REQUIRE(c);
        REQUIRE(c->put("k", "v1", 10s));
    }
    clock.advance(11s);
    auto c = cache_t::open(cfg, clock);
    REQUIRE(c);
    // The default open (scrub_on_open off, issue 18) indexes the listing without reading the
    // entry: the get that meets it drops it.
    CHECK(c->disk().stats().entries == 1);
    auto failed = c->get_or_load("k", down);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code() == errc::loader_failed);
    CHECK(c->disk().stats().entries == 0);
    CHECK(c->disk().stats().expirations == 1);
}

namespace {

// An std::expected look-alike with value() and no operator*, as some result types have.
template <class T, class E>
struct outcome_like {
    std::variant<T, E> held;
    [[nodiscard]] bool has_value() const { return held.index() == 0; }
    [[nodiscard]] T value() && { return std::get<0>(std::move(held)); }
    [[nodiscard]] const E& error() const { return std::get<1>(held); }
};

template <class E>
outcome_like<std::string, E> failed_with(E error) {
    return {std::variant<std::string, E>(std::in_place_index<1>, std::move(error))};
}

using memory_cache = tierguard::cache<std::string, std::string, policies_on<tierguard::no_storage>>;

memory_cache open_memory(tierguard::clock::manual clock, memory_cache::config cfg = {}) {
    auto c = memory_cache::open(cfg, clock);
    REQUIRE(c);
    return std::move(*c);
}

}  // namespace

// Issue 17, Loading 1: a loaded value reported from == tier::none, failures read
// "[tierguard.loader_failed] none tier: loader: [tierguard.timeout] none tier: ...", and a
// loader could only fail through a result<T> whose error was a failure or had message().
TEST_CASE("cache_loading: a loaded value comes from tier::loader, and each way to fail reads well") {
    tierguard::clock::manual clock;
    auto c = open_memory(clock);
    CHECK(tierguard::to_string(tier::loader) == "loader");
    auto got = c.get_or_load("k", [](const std::string& key) { return "v of " + key; });
    REQUIRE(got);
    CHECK(got->from == tier::loader);
    CHECK(got->value == "v of k");

    auto fails_with = [&](auto loader) {
        auto r = c.get_or_load("missing", loader);
        REQUIRE_FALSE(r);
        CHECK(r.error().code() == errc::loader_failed);
        CHECK(r.error().where() == tier::loader);
        return r.error();
    };
    CHECK(fails_with(down).message() == "[tierguard.loader_failed] loader: timeout: backend down");
    CHECK(fails_with([](const std::string&) -> outcome_like<std::string, std::string> {
              return failed_with(std::string("no such user"));
          }).message() == "[tierguard.loader_failed] loader: no such user");
    CHECK(fails_with([](const std::string&) -> outcome_like<std::string, const char*> {
              return failed_with<const char*>("refused");
          }).message() == "[tierguard.loader_failed] loader: refused");
    const auto refused = std::make_error_code(std::errc::connection_refused);
    const auto by_code = fails_with(
        [&](const std::string&) -> outcome_like<std::string, std::error_code> { return failed_with(refused); });
    CHECK(by_code.os_error() == refused);
    CHECK_THAT(by_code.message(), Catch::Matchers::StartsWith("[tierguard.loader_failed] loader: generic error"));
    CHECK_THAT(by_code.message(), Catch::Matchers::EndsWith("(" + refused.message() + ")"));
    CHECK(fails_with([](const std::string&) -> outcome_like<std::string, std::errc> {
              return failed_with(std::errc::timed_out);
          }).os_error() == std::errc::timed_out);
    CHECK(fails_with([](const std::string&) -> std::string {
              throw std::runtime_error("connection reset");
          }).message() == "[tierguard.loader_failed] loader: exception: connection reset");
    CHECK(fails_with([](const std::string&) -> outcome_like<std::string, std::exception_ptr> {
              return failed_with(std::make_exception_ptr(std::out_of_range("id 7")));
          }).message() == "[tierguard.loader_failed] loader: exception: id 7");
    CHECK(fails_with([](const std::string&) -> std::string { throw 42; }).message() ==
          "[tierguard.loader_failed] loader: an exception not derived from std::exception");
    CHECK(c.metrics().load_failures == 8);
}

// Issue 17, Loading 4: the loader could not say how long its value lives.
TEST_CASE("cache_loading: a loader's loaded<Value> sets the entry's TTL; a TTL <= 0 serves it unstored") {
    tierguard::clock::manual clock;
    auto c = open_memory(clock, {.default_ttl = 1h});
    auto short_lived =
        c.get_or_load("k", [](const std::string&) { return tierguard::loaded<std::string>{.value = "v", .ttl = 10s}; });
    REQUIRE(short_lived);
    CHECK(short_lived->value == "v");
    CHECK(short_lived->from == tier::loader);
    auto as_result = c.get_or_load("r", [](const std::string&) -> tierguard::result<tierguard::loaded<std::string>> {
        return tierguard::loaded<std::string>{.value = "w", .ttl = 20s};
    });
    REQUIRE(as_result);
    auto defaulted = c.get_or_load("d", [](const std::string&) { return tierguard::loaded<std::string>{"x"}; });
    REQUIRE(defaulted);
    auto unstored =
        c.get_or_load("u", [](const std::string&) { return tierguard::loaded<std::string>{.value = "y", .ttl = 0s}; });
    REQUIRE(unstored);
    CHECK(unstored->value == "y");
    CHECK_FALSE(c.contains("u"));
    clock.advance(15s);
    CHECK_FALSE(c.contains("k"));
    CHECK(c.contains("r"));
    CHECK(c.contains("d"));
    clock.advance(10s);
    CHECK_FALSE(c.contains("r"));
    clock.advance(1h);
    CHECK_FALSE(c.contains("d"));
}

// Issue 17, Loading 5: there was no bulk read; n misses made n loader calls.
TEST_CASE("cache_loading: get_all answers each key; get_or_load_all makes one loader call for the misses") {
    tierguard::clock::manual clock;
    auto c = open_memory(clock, {.stale_grace = 1min});
    REQUIRE(c.put("held", "h"));
    const std::vector<std::string> keys{"held", "a", "b", "absent"};

    auto got = c.get_all(keys);
    REQUIRE(got.size() == 4);
    CHECK(got[0]->value == "h");
    CHECK(got[1].error().is_miss());

    std::vector<std::vector<std::string>> calls;
    auto bulk = [&](std::span<const std::string> misses) {
        calls.emplace_back(misses.begin(), misses.end());
        std::map<std::string, std::string> found;
        for (const auto& key : misses)
            if (key != "absent") found.emplace(key, "v" + key);
        return found;
    };
    auto loaded = c.get_or_load_all(keys, bulk);
    REQUIRE(calls.size() == 1);
    CHECK(calls[0] == std::vector<std::string>{"a", "b", "absent"});
    REQUIRE(loaded.size() == 4);
    CHECK(loaded[0]->from == tier::memory);
    CHECK(loaded[1]->value == "va");
    CHECK(loaded[1]->from == tier::loader);
    CHECK(loaded[2]->value == "vb");
    REQUIRE_FALSE(loaded[3]);
    CHECK(loaded[3].error().code() == errc::miss);
    CHECK(loaded[3].error().where() == tier::loader);
    CHECK(c.contains("a"));
    CHECK(c.metrics().loads == 1);

    auto again = c.get_or_load_all(keys, bulk);  // only "absent" is missing now
    REQUIRE(calls.size() == 2);
    CHECK(calls[1] == std::vector<std::string>{"absent"});
    CHECK(again[1]->from == tier::memory);

    SECTION("a failed bulk load serves each key stale within the grace, and fails the rest") {
        REQUIRE(c.put("old", "o", 10s));
        clock.advance(15s);
        const std::vector<std::string> two{"old", "new"};
        auto failed = c.get_or_load_all(
            two,
            [](std::span<const std::string>) -> tierguard::result<std::vector<std::pair<std::string, std::string>>> {
                return tierguard::fail(errc::timeout, tier::none, "backend down");
            });
        REQUIRE(failed[0]);
        CHECK(failed[0]->stale);
        CHECK(failed[0]->value == "o");
        REQUIRE_FALSE(failed[1]);
        CHECK(failed[1].error().message() == "[tierguard.loader_failed] loader: timeout: backend down");
        const auto mt = c.metrics();
        CHECK(mt.load_failures == 1);
        CHECK(mt.stale_served == 1);
    }
    SECTION("values may carry their own TTL") {
        const std::vector<std::string> one{"t"};
        auto with_ttl = c.get_or_load_all(one, [](std::span<const std::string> misses) {
            std::vector<std::pair<std::string, tierguard::loaded<std::string>>> out;
            for (const auto& key : misses)
                out.emplace_back(key, tierguard::loaded<std::string>{.value = "x", .ttl = 5s});
            return out;
        });
        REQUIRE(with_ttl[0]);
        clock.advance(6s);
        CHECK_FALSE(c.contains("t"));
    }
}

namespace {

// Waits, without a clock, for the refresh thread to have finished `n` reloads.
void await_refreshes(const memory_cache& c, std::uint64_t n) {
    while (c.metrics().refreshes < n) std::this_thread::yield();
}

}  // namespace

// Issue 17, Loading 3: every expiry made one caller wait for the backend; there was no
// refresh-ahead.
TEST_CASE(
    "cache_loading: refresh_after answers at once and reloads in the background; a failed reload keeps the entry") {
    tierguard::clock::manual clock;
    auto c = open_memory(clock, {.default_ttl = 1min, .refresh_after = 30s});
    std::atomic<int> calls{0};
    std::atomic<bool> backend_up{true};
    auto loader = [&](const std::string& key) -> tierguard::result<std::string> {
        const int n = ++calls;
        if (!backend_up) return tierguard::fail(errc::timeout, tier::none, "backend down");
        return key + " v" + std::to_string(n);
    };
    REQUIRE(c.get_or_load("k", loader)->value == "k v1");
    clock.advance(20s);  // not due yet
    CHECK(c.get_or_load("k", loader)->value == "k v1");
    CHECK(c.metrics().refreshes == 0);

    clock.advance(15s);  // 35 s old: due
    auto answered = c.get_or_load("k", loader);
    REQUIRE(answered);
    CHECK(answered->value == "k v1");  // the old value, at once
    CHECK(answered->from == tier::memory);
    await_refreshes(c, 1);
    CHECK(c.get("k")->value == "k v2");
    CHECK(calls == 2);
    CHECK(c.metrics().loads == 1);  // the refresh is no load

    clock.advance(35s);  // due again, and the backend fails
    backend_up = false;
    CHECK(c.get_or_load("k", loader)->value == "k v2");
    await_refreshes(c, 2);
    const auto mt = c.metrics();
    CHECK(mt.refresh_failures == 1);
    CHECK(c.get("k")->value == "k v2");  // kept
    CHECK_THAT(c.to_prometheus(), Catch::Matchers::Contains("tierguard_refresh_failures_total 1"));
}

TEST_CASE("cache_loading: a negative refresh_after is refused") {
    auto refused = memory_cache::open({.refresh_after = -1s});
    REQUIRE_FALSE(refused);
    CHECK_THAT(refused.error().message(), Catch::Matchers::Contains("refresh_after"));
}

// Issue 17, trial 4: while warm() stored keys, a failed concurrent get_or_load answered the
// live value just stored in the disk tier marked stale (and counted it in stale_served).
TEST_CASE("cache_loading: a failed load answers a live storage entry stored meanwhile as fresh") {
    using cache_t = cache_on<tierguard::storage::posix_directory>;
    const tierguard_test::temp_dir tmp;
    cache_t::config cfg;
    cfg.storage.root = tmp.path() / "cache";
    cfg.storage.sync = tierguard::durability::none;
    cfg.stale_grace = 60s;
    tierguard::clock::manual clock;
    auto c = cache_t::open(cfg, clock);
    REQUIRE(c);
    auto stored_then_down = [&](const std::string& key) -> tierguard::result<std::string> {
        REQUIRE(c->disk().put(key, "fresh", 10min));  // as a concurrent warm() would
        return down(key);
    };
    auto got = c->get_or_load("k", stored_then_down);
    REQUIRE(got);
    CHECK(got->value == "fresh");
    CHECK(got->from == tier::disk);
    CHECK_FALSE(got->stale);
    CHECK(c->metrics().stale_served == 0);
}

// Issue 17, trial 2: with stale_grace > 0 a get of an expired memory entry counted a hit
// (and no miss); without a grace it counted a miss. The expiration is counted once, when
// the entry is dropped: at once without a grace, when the grace has passed with one.
TEST_CASE("cache_loading: an expired memory entry counts a miss, with or without a grace") {
    const auto grace = GENERATE(as<std::chrono::nanoseconds>{}, 0s, 1min);
    CAPTURE(grace.count());
    tierguard::clock::manual clock;
    auto c = open_memory(clock, {.stale_grace = grace});
    REQUIRE(c.put("k", "v", 10s));
    REQUIRE(c.get("k"));
    clock.advance(20s);
    auto expired = c.get("k");
    REQUIRE_FALSE(expired);
    auto after_get = c.metrics().memory;
    CHECK(after_get.hits == 1);
    CHECK(after_get.misses == 1);
    CHECK(after_get.expirations == (grace > 0s ? 0U : 1U));
    auto loaded = c.get_or_load("k", down);
    CHECK(loaded.has_value() == (grace > 0s));  // stale-if-error still has the entry
    if (loaded) CHECK(loaded->stale);
    CHECK(c.metrics().memory.hits == 1);
    CHECK(c.metrics().memory.misses == 2);
    clock.advance(2min);  // past any grace: dropped by the next read, counted once
    REQUIRE_FALSE(c.get("k"));
    CHECK(c.metrics().memory.expirations == 1);
}

// Issue 17, trial 5: a refresh_after not below the TTL was accepted, so entries expired
// before they were refreshed.
TEST_CASE("cache_loading: a refresh_after not below default_ttl is refused, naming both") {
    const auto refresh = GENERATE(as<std::chrono::nanoseconds>{}, 1min, 2min);
    auto refused = memory_cache::open({.default_ttl = 1min, .refresh_after = refresh});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code() == errc::invalid_argument);
    CHECK_THAT(refused.error().message(),
               Catch::Matchers::Contains("refresh_after (" + std::to_string(refresh.count()) + " ns)") &&
                   Catch::Matchers::Contains("default_ttl (60000000000 ns)"));
    CHECK(memory_cache::open({.default_ttl = 1min, .refresh_after = 30s}));
}
