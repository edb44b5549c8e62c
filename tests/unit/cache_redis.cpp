// memory -> posix_directory -> redis through the composed cache, against real redis-server
// processes (issue 15): a stopped server, a killed and restarted one, two servers with one
// down. Time for the breakers and the storage's backoff comes from one manual clock.
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/redis.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using tierguard::breaker_state;
using tierguard::errc;
using tierguard::tier;
using tierguard_test::redis_server;

namespace {

[[maybe_unused]] const bool redis_available = tierguard_test::redis_server_or_exit("unit.cache_redis");

using remote = tierguard::storage::basic_redis<tierguard::clock::manual>;

struct redis_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::tiers<tierguard::storage::posix_directory, remote>;
};
using cache_type = tierguard::cache<std::string, std::string, redis_policies>;

struct harness {
    tierguard::clock::manual clock;
    tierguard_test::temp_dir dir;
    cache_type cache;

    /// `threshold`: the remote breaker's failure_threshold.
    explicit harness(std::vector<std::string> endpoints, std::uint32_t threshold = 1)
        : cache(open(std::move(endpoints), threshold)) {}

    cache_type open(std::vector<std::string> endpoints, std::uint32_t threshold) {
        cache_type::config cfg;
        auto& [disk, rem] = cfg.tiers;
        disk.storage.root = dir.path() / "disk";
        rem.invalidation = false;  // the tiers and breakers alone; unit.cache_invalidation tests invalidation
        rem.breaker.failure_threshold = threshold;
        rem.breaker.recovery_time = 10s;
        rem.breaker.test_requests = 1;
        remote::config rc;
        rc.endpoints = std::move(endpoints);
        rc.connect_timeout = 1000ms;  // far above a loaded machine's round trip
        rc.command_timeout = 400ms;
        auto local = tierguard::storage::posix_directory::open(disk.storage);
        REQUIRE(local);
        auto far = remote::open(rc, clock);
        REQUIRE(far);
        auto c = cache_type::open(cfg, {std::move(*local), std::move(*far)}, clock);
        REQUIRE(c);
        return std::move(*c);
    }

    // Leaves `key` in the remote tier only.
    void remote_only(const std::string& key) {
        cache.memory().erase(key);
        REQUIRE(cache.disk<0>().erase(key));
    }
};

}  // namespace

TEST_CASE("cache over redis: a stopped server costs one command timeout, then memory and disk serve",
          "[cache_redis][redis]") {
    redis_server server;
    harness h({server.unix_url()});
    for (const char* k : {"in-memory", "on-disk", "remote-only"}) REQUIRE(h.cache.put(k, std::string("v-") + k));
    h.cache.memory().erase("on-disk");
    h.remote_only("remote-only");
    CHECK(h.cache.get("remote-only")->from == tier::remote);
    h.remote_only("remote-only");

    server.stop();
    CHECK(h.cache.get("in-memory")->from == tier::memory);
    CHECK(h.cache.get("on-disk")->from == tier::disk);
    auto timed_out = h.cache.get("remote-only");  // the one call that waits for the timeout
    REQUIRE_FALSE(timed_out);
    CHECK(timed_out.error().code() == errc::timeout);
    CHECK(h.cache.breaker<1>().state() == breaker_state::open);
    CHECK(h.cache.degraded());
    auto refused = h.cache.get("remote-only");  // refused at once: no call reaches the server
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code() == errc::circuit_open);
    auto put = h.cache.put("during", "v-during");
    REQUIRE(put);
    CHECK(put->stored_in_tier(0));
    CHECK_FALSE(put->stored_in_tier(1));
    const auto mt = h.cache.metrics();
    CHECK(mt.storage[1].errors_of(errc::timeout) == 1);
    CHECK(mt.storage[1].errors_of(errc::circuit_open) >= 2);
    CHECK(mt.storage[1].pending_erasures == 1);

    server.resume();
    h.clock.advance(11s);                    // past the breaker's recovery time and the endpoint's backoff
    auto back = h.cache.get("remote-only");  // the half-open probe
    REQUIRE(back);
    CHECK(back->value == "v-remote-only");
    CHECK(back->from == tier::remote);
    CHECK(h.cache.breaker<1>().state() == breaker_state::closed);
    CHECK_FALSE(h.cache.degraded());
    CHECK(h.cache.metrics().storage[1].pending_erasures == 0);
}

// Issue 15: after the first timeout the storage backs off (circuit_open without a round
// trip); the cache's breaker must count those calls, or a breaker needing several failures
// never opened while the server stayed stopped.
TEST_CASE("cache over redis: a stopped server opens a breaker of several failures, and it closes by itself",
          "[cache_redis][redis]") {
    redis_server server;
    constexpr std::uint32_t threshold = 4;
    harness h({server.unix_url()}, threshold);
    for (const char* k : {"in-memory", "on-disk", "remote-only"}) REQUIRE(h.cache.put(k, std::string("v-") + k));
    h.cache.memory().erase("on-disk");
    h.remote_only("remote-only");

    server.stop();
    for (std::uint32_t i = 0; i < threshold; ++i) {  // one timeout, then the endpoint's backoff
        auto got = h.cache.get("remote-only");
        REQUIRE_FALSE(got);
        CHECK((i == 0 ? got.error().code() == errc::timeout : got.error().code() == errc::circuit_open));
    }
    CHECK(h.cache.breaker<1>().state() == breaker_state::open);
    CHECK(h.cache.degraded());
    CHECK(h.cache.metrics().storage[1].breaker_opens == 1);
    CHECK(h.cache.get("in-memory")->from == tier::memory);
    CHECK(h.cache.get("on-disk")->from == tier::disk);
    for (int i = 0; i < 3; ++i) CHECK(h.cache.get("remote-only").error().code() == errc::circuit_open);
    CHECK(h.cache.metrics().storage[1].errors_of(errc::timeout) == 1);  // one call waited on the server

    server.resume();
    h.clock.advance(11s);  // past the breaker's recovery time and the endpoint's backoff
    auto back = h.cache.get("remote-only");
    REQUIRE(back);
    CHECK(back->value == "v-remote-only");
    CHECK(back->from == tier::remote);
    CHECK(h.cache.breaker<1>().state() == breaker_state::closed);
    CHECK_FALSE(h.cache.degraded());
}

TEST_CASE("cache over redis: a server killed and restarted empty gives misses, never a wrong value",
          "[cache_redis][redis]") {
    redis_server server;
    harness h({server.unix_url()});
    REQUIRE(h.cache.put("k", "v1"));
    h.remote_only("k");
    server.kill();
    server.start();  // empty, on the same socket
    int misses = 0;
    for (int i = 0; i < 6; ++i) {  // the pooled connection broke: a failure or two, then plain misses
        auto got = h.cache.get("k");
        REQUIRE_FALSE(got);
        if (got.error().code() == errc::miss) ++misses;
        h.clock.advance(11s);
    }
    CHECK(misses >= 1);
    REQUIRE(h.cache.put("k", "v2"));
    h.remote_only("k");
    auto got = h.cache.get("k");
    REQUIRE(got);
    CHECK(got->value == "v2");
    CHECK(got->from == tier::remote);
}

TEST_CASE("cache over redis: with two servers, one killed, the other's keys keep hitting", "[cache_redis][redis]") {
    redis_server first;
    redis_server second;
    harness h({first.unix_url(), second.unix_url()});
    REQUIRE(h.cache.breaker_count<1>() == 2);
    auto& storage = h.cache.disk<1>().storage();
    const auto endpoints = storage.endpoints();
    std::vector<std::string> on_first;
    std::vector<std::string> on_second;
    for (int i = 0; i < 40; ++i) {
        const std::string key = "key-" + std::to_string(i);
        REQUIRE(h.cache.put(key, "v-" + key));
        const std::string& id = storage.endpoint_for(*h.cache.disk<1>().name_for(key));
        (id == endpoints[0].id ? on_first : on_second).push_back(key);
    }
    REQUIRE_FALSE(on_first.empty());
    REQUIRE_FALSE(on_second.empty());

    first.kill();
    h.cache.memory().clear();
    REQUIRE(h.cache.disk<0>().clear());
    for (const auto& key : on_first) CHECK_FALSE(h.cache.get(key));
    std::size_t hits = 0;
    for (const auto& key : on_second) {
        auto got = h.cache.get(key);
        if (got && got->value == "v-" + key && got->from == tier::remote) ++hits;
    }
    CHECK(hits == on_second.size());
    CHECK(h.cache.breaker<1>(0).state() == breaker_state::open);
    CHECK(h.cache.breaker<1>(1).state() == breaker_state::closed);
    const auto mt = h.cache.metrics();
    CHECK(mt.storage[1].breaker == breaker_state::half_open);  // some endpoints down, not all
    CHECK(mt.storage[1].breaker_opens == 1);
    CHECK(h.cache.degraded());
}

// Issue 15 (MEDIUM 7): a wrong password or a dead endpoint does not stop open(); health()
// only reports what calls met (a failure below the breaker's threshold leaves it healthy,
// with last_error), and health(true) is the startup connectivity check.
TEST_CASE("cache over redis: health(true) at startup names a wrong password and a dead endpoint",
          "[cache_redis][redis]") {
    redis_server server({.args = {"--requirepass", "right"}, .password = "right"});
    tierguard_test::temp_dir dead;
    for (const bool wrong_password : {true, false}) {
        INFO((wrong_password ? "wrong password" : "dead endpoint"));
        const std::string url = wrong_password ? "unix://:wrong@" + server.unix_url().substr(7)
                                               : "unix://" + (dead.path() / "nobody.sock").string();
        harness h({url}, 3);
        CHECK(h.cache.health().status == tierguard::health_status::healthy);  // nothing tried yet
        auto probed = h.cache.health(true);                                   // the startup check
        CHECK(probed.status == tierguard::health_status::degraded);
        REQUIRE(probed.tiers.size() == 3);
        CHECK(probed.tiers[1].probe_error == std::nullopt);
        REQUIRE(probed.tiers[2].probe_error);
        CHECK(probed.tiers[2].probe_error->code() == (wrong_password ? errc::permission_denied : errc::io_error));

        h.clock.advance(1s);            // past the endpoint's backoff: the next call reaches the server
        CHECK_FALSE(h.cache.get("k"));  // one failure of three: the breaker stays closed
        auto quiet = h.cache.health();
        CHECK(quiet.status == tierguard::health_status::healthy);
        REQUIRE(quiet.tiers[2].last_error);
        CHECK(quiet.tiers[2].last_error->code() == (wrong_password ? errc::permission_denied : errc::io_error));
    }
}
