// Distributed invalidation through the composed cache (issue 15), against real redis-server
// processes: two caches on one server (memory -> redis, and memory -> posix_directory ->
// redis), a stopped, a killed and restarted server, a restart of a cache whose link was
// down, and two real processes. Waits poll a condition with a generous cap (20 s) and
// never assert how long anything took; breakers and backoff run on a manual clock.
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/redis.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::event_kind;
using tierguard::tier;
using tierguard_test::redis_server;

namespace {

[[maybe_unused]] const bool redis_available = tierguard_test::redis_server_or_exit("unit.cache_invalidation");

using remote = tierguard::storage::basic_redis<tierguard::clock::manual>;

/// Counts events by kind; copies share the counts.
struct counting_listener {
    std::shared_ptr<std::array<std::atomic<int>, tierguard::event_kind_count>> counts =
        std::make_shared<std::array<std::atomic<int>, tierguard::event_kind_count>>();
    void on_event(const tierguard::event& e) noexcept { ++(*counts)[static_cast<std::size_t>(e.kind)]; }
    [[nodiscard]] int of(event_kind k) const { return (*counts)[static_cast<std::size_t>(k)].load(); }
};

struct near_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using listener = counting_listener;
    using storage = tierguard::tiers<remote>;
};
struct disk_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using listener = counting_listener;
    using storage = tierguard::tiers<tierguard::storage::posix_directory, remote>;
};
using near_cache = tierguard::cache<std::string, std::string, near_policies>;
using disk_cache = tierguard::cache<std::string, std::string, disk_policies>;

/// Short keepalive and timeouts, so that a lost link is noticed quickly; far above a loaded
/// machine's round trip all the same.
remote::config fast(const std::string& endpoint) {
    remote::config rc;
    rc.endpoints = {endpoint};
    rc.connect_timeout = 1000ms;
    rc.command_timeout = 300ms;
    rc.backoff_min = 20ms;
    rc.backoff_max = 200ms;
    rc.invalidation_ping_interval = 100ms;
    return rc;
}

template <class Cfg>
void breaker_of_one(Cfg& tc) {
    tc.breaker.failure_threshold = 1;
    tc.breaker.recovery_time = 10s;
    tc.breaker.test_requests = 1;
}

near_cache open_near(const std::string& endpoint, tierguard::clock::manual clock, counting_listener l = {},
                     bool invalidation = true, std::uint32_t failure_threshold = 1) {
    near_cache::config cfg;
    auto& [rem] = cfg.tiers;
    breaker_of_one(rem);
    rem.breaker.failure_threshold = failure_threshold;
    rem.invalidation = invalidation;
    auto far = remote::open(fast(endpoint), clock);
    REQUIRE(far);
    auto c = near_cache::open(cfg, {std::move(*far)}, clock, std::move(l));
    REQUIRE(c);
    return std::move(*c);
}

disk_cache open_disk(const std::string& endpoint, const std::filesystem::path& root, tierguard::clock::manual clock,
                     counting_listener l = {}) {
    disk_cache::config cfg;
    auto& [disk, rem] = cfg.tiers;
    disk.storage.root = root;
    breaker_of_one(rem);
    auto local = tierguard::storage::posix_directory::open(disk.storage);
    REQUIRE(local);
    auto far = remote::open(fast(endpoint), clock);
    REQUIRE(far);
    auto c = disk_cache::open(cfg, {std::move(*local), std::move(*far)}, clock, std::move(l));
    REQUIRE(c);
    return std::move(*c);
}

/// storage::redis counting the calls that reach the server by kind: each is one round trip
/// (a command and its PUBLISH leave in one send: unit.redis_invalidation).
class counting_remote {
public:
    struct counts {
        std::atomic<int> writes{0};               // SET
        std::atomic<int> writes_with_notice{0};   // SET + PUBLISH
        std::atomic<int> removes{0};              // DEL
        std::atomic<int> removes_with_notice{0};  // DEL + PUBLISH
        std::atomic<int> publishes{0};            // PUBLISH alone
    };
    using notice_bytes = remote::notice_bytes;
    using notice_handler = remote::notice_handler;
    using link_handler = remote::link_handler;
    using error_handler = remote::error_handler;
    using subscription = remote::subscription;
    static constexpr bool shared = true;

    counting_remote(remote r, std::shared_ptr<counts> c) : m_remote(std::move(r)), m_counts(std::move(c)) {}

    [[nodiscard]] tierguard::result<std::vector<std::byte>> read(std::string_view name) const {
        return m_remote.read(name);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        ++m_counts->writes;
        return m_remote.write(name, bytes);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes,
                                  std::chrono::milliseconds expiry) {
        ++m_counts->writes;
        return m_remote.write(name, bytes, expiry);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes, notice_bytes notice) {
        ++m_counts->writes_with_notice;
        return m_remote.write(name, bytes, notice);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes,
                                  std::chrono::milliseconds expiry, notice_bytes notice) {
        ++m_counts->writes_with_notice;
        return m_remote.write(name, bytes, expiry, notice);
    }
    tierguard::result<void> remove(std::string_view name) {
        ++m_counts->removes;
        return m_remote.remove(name);
    }
    tierguard::result<void> remove(std::string_view name, notice_bytes notice) {
        ++m_counts->removes_with_notice;
        return m_remote.remove(name, notice);
    }
    tierguard::result<void> publish(notice_bytes notice) {
        ++m_counts->publishes;
        return m_remote.publish(notice);
    }
    [[nodiscard]] tierguard::result<std::vector<tierguard::blob_info>> list() const { return m_remote.list(); }
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        return m_remote.quarantine(name, reason, now);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        return m_remote.clean(options);
    }
    [[nodiscard]] tierguard::result<subscription> subscribe(notice_handler n, link_handler l, error_handler e) const {
        return m_remote.subscribe(std::move(n), std::move(l), std::move(e));
    }

private:
    remote m_remote;
    std::shared_ptr<counts> m_counts;
};

struct counting_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::tiers<counting_remote>;
};
using counting_cache = tierguard::cache<std::string, std::string, counting_policies>;
static_assert(counting_cache::has_invalidation && counting_cache::disk_type::carries_notices);

/// Holds every remove() of a gated_storage while closed, until the test opens it.
struct removal_gate {
    std::mutex mutex;
    std::condition_variable cv;
    bool closed = false;
    int waiting = 0;  // removes that reached the closed gate

    void pass() {
        std::unique_lock lock(mutex);
        if (!closed) return;
        ++waiting;
        cv.wait(lock, [&] { return !closed; });
    }
    void set_closed(bool c) {
        {
            const std::lock_guard lock(mutex);
            closed = c;
        }
        cv.notify_all();
    }
    [[nodiscard]] bool reached() {
        const std::lock_guard lock(mutex);
        return waiting > 0;
    }
};

/// memory_storage as a local disk tier whose removals the test can hold (a slow clear of
/// thousands of files, made deterministic).
class gated_storage {
public:
    explicit gated_storage(std::shared_ptr<removal_gate> g) : m_gate(std::move(g)) {}
    [[nodiscard]] tierguard::result<std::vector<std::byte>> read(std::string_view name) const {
        return m_inner->read(name);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return m_inner->write(name, bytes);
    }
    tierguard::result<void> remove(std::string_view name) {
        m_gate->pass();
        return m_inner->remove(name);
    }
    [[nodiscard]] tierguard::result<std::vector<tierguard::blob_info>> list() const { return m_inner->list(); }
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        return m_inner->quarantine(name, reason, now);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        return m_inner->clean(options);
    }

private:
    std::shared_ptr<tierguard::storage::memory_storage> m_inner =
        std::make_shared<tierguard::storage::memory_storage>();
    std::shared_ptr<removal_gate> m_gate;
};

struct gated_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::tiers<gated_storage, remote>;
};
using gated_cache = tierguard::cache<std::string, std::string, gated_policies>;

/// Polls `done` until it holds or 20 s pass (a cap for a loaded machine, never asserted on).
template <class F>
bool eventually(F&& done) {
    for (int i = 0; i < 20000; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return done();
}

template <class C>
const tierguard::tier_metrics& shared_tier(const tierguard::cache_metrics& mt) {
    return mt.storage[C::invalidated_tier];
}

template <class C>
bool link_up(const C& c) {
    return shared_tier<C>(c.metrics()).link_up;
}

template <class C>
std::uint64_t applied(const C& c) {
    return shared_tier<C>(c.metrics()).notices_applied;
}

template <class C>
std::string value_of(C& c, const std::string& key) {
    auto got = c.get(key);
    return got ? got->value : "<" + std::string(to_string(got.error().code())) + ">";
}

}  // namespace

TEST_CASE("invalidation: a put or erase in one cache drops the other's memory copy", "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    counting_listener events;
    auto a = open_near(server.unix_url(), clock);
    auto b = open_near(server.unix_url(), clock, events);
    REQUIRE(eventually([&] { return link_up(a) && link_up(b); }));
    CHECK(events.of(event_kind::invalidation_link_up) == 1);

    REQUIRE(a.put("k", "v1"));
    REQUIRE(eventually([&] { return applied(b) >= 1; }));
    REQUIRE(value_of(b, "k") == "v1");  // read from redis, now in b's memory
    CHECK(b.get("k")->from == tier::memory);

    const auto before = applied(b);
    REQUIRE(a.put("k", "v2"));
    REQUIRE(eventually([&] { return applied(b) > before; }));
    auto fresh = b.get("k");
    REQUIRE(fresh);
    CHECK(fresh->value == "v2");
    CHECK(fresh->from == tier::remote);
    CHECK_FALSE(fresh->stale);

    const auto before_erase = applied(b);
    REQUIRE(a.erase("k"));
    REQUIRE(eventually([&] { return applied(b) > before_erase; }));
    auto gone = b.get("k");
    REQUIRE_FALSE(gone);
    CHECK(gone.error().code() == errc::miss);

    // Each cache hears its own notices too (on its subscription's thread, maybe later than
    // b applied them), and ignores them.
    CHECK(eventually([&] { return shared_tier<near_cache>(a.metrics()).notices_ignored_own == 3; }));
    const auto am = shared_tier<near_cache>(a.metrics());
    CHECK(am.notices_published == 3);
    CHECK(am.notices_applied == 0);
    CHECK(am.notices_ignored_undecodable == 0);
    CHECK(a.get("k").error().code() == errc::miss);

    // A clear publishes flush-all: b's memory is emptied.
    REQUIRE(b.put("other", "x"));
    const auto flushes = shared_tier<near_cache>(b.metrics()).invalidation_flushes;
    REQUIRE(a.clear());
    REQUIRE(eventually([&] { return shared_tier<near_cache>(b.metrics()).invalidation_flushes > flushes; }));
    CHECK_FALSE(b.memory().contains("other"));

    // Payloads that are not a cache's notices are counted and ignored.
    auto raw = remote::open(fast(server.unix_url()), clock);
    REQUIRE(raw);
    const std::array<std::byte, 3> junk{std::byte{1}, std::byte{2}, std::byte{3}};
    REQUIRE(raw->publish(junk));
    REQUIRE(eventually([&] { return shared_tier<near_cache>(b.metrics()).notices_ignored_undecodable == 1; }));

    const std::string text = b.to_prometheus();
    CHECK(text.find("tierguard_invalidation_link_up{tier=\"remote\"} 1") != std::string::npos);
    CHECK(text.find("tierguard_invalidations_total{tier=\"remote\",outcome=\"applied\"}") != std::string::npos);
    CHECK(text.find("tierguard_untrusted_served_total 0") != std::string::npos);
}

TEST_CASE("invalidation: a disk tier above the remote loses its copy too", "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    tierguard_test::temp_dir dir;
    auto a = open_disk(server.unix_url(), dir.path() / "a", clock);
    auto b = open_disk(server.unix_url(), dir.path() / "b", clock);
    REQUIRE(eventually([&] { return link_up(a) && link_up(b); }));
    REQUIRE(b.put("k", "old"));
    REQUIRE(b.disk<0>().contains("k"));

    const auto before = applied(b);
    REQUIRE(a.put("k", "new"));
    REQUIRE(eventually([&] { return applied(b) > before; }));
    CHECK_FALSE(b.memory().contains("k"));
    CHECK_FALSE(b.disk<0>().contains("k"));
    auto got = b.get("k");
    REQUIRE(got);
    CHECK(got->value == "new");
    CHECK(got->from == tier::remote);
}

TEST_CASE(
    "invalidation: a stopped server takes the link down; faster copies are served stale only when the remote "
    "cannot answer",
    "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    counting_listener events;
    auto b = open_near(server.unix_url(), clock, events);
    REQUIRE(eventually([&] { return link_up(b); }));
    REQUIRE(b.put("k", "v"));
    REQUIRE(b.get("k")->from == tier::memory);

    server.stop();
    REQUIRE(eventually([&] { return !link_up(b); }));
    CHECK(events.of(event_kind::invalidation_link_lost) == 1);
    CHECK(shared_tier<near_cache>(b.metrics()).link_losses == 1);
    for (int i = 0; i < 2; ++i) {  // the first waits for the command timeout, the second is refused
        auto got = b.get("k");
        REQUIRE(got);
        CHECK(got->value == "v");
        CHECK(got->from == tier::memory);
        CHECK(got->stale);
    }
    CHECK(b.metrics().untrusted_served == 2);
    CHECK(b.breaker<0>().state() == tierguard::breaker_state::open);

    const auto flushes = shared_tier<near_cache>(b.metrics()).invalidation_flushes;
    server.resume();
    REQUIRE(eventually([&] { return link_up(b); }));
    CHECK(shared_tier<near_cache>(b.metrics()).invalidation_flushes == flushes + 1);
    CHECK(events.of(event_kind::invalidation_link_up) == 2);
    CHECK_FALSE(b.memory().contains("k"));  // flushed before the link was trusted
    clock.advance(11s);                     // past the breaker's recovery time and the endpoint's backoff
    auto back = b.get("k");
    REQUIRE(back);
    CHECK(back->value == "v");
    CHECK(back->from == tier::remote);
    CHECK_FALSE(back->stale);
    auto again = b.get("k");
    REQUIRE(again);
    CHECK(again->from == tier::memory);
    CHECK_FALSE(again->stale);
    CHECK(b.metrics().untrusted_served == 2);
}

// Issue 15: the storage's backoff after the first timeout answers circuit_open without a
// round trip; those calls count, so a breaker that needs several failures opens too.
TEST_CASE("invalidation: a stopped server opens a breaker of several failures; memory serves stale, then it closes",
          "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    constexpr std::uint32_t threshold = 4;
    auto b = open_near(server.unix_url(), clock, {}, true, threshold);
    REQUIRE(eventually([&] { return link_up(b); }));
    REQUIRE(b.put("k", "v"));

    server.stop();
    REQUIRE(eventually([&] { return !link_up(b); }));
    for (std::uint32_t i = 0; i < threshold + 2; ++i) {  // the remote is asked first until its breaker opens
        auto got = b.get("k");
        REQUIRE(got);
        CHECK(got->value == "v");
        CHECK(got->from == tier::memory);
        CHECK(got->stale);
    }
    CHECK(b.breaker<0>().state() == tierguard::breaker_state::open);
    CHECK(b.degraded());
    const auto down = shared_tier<near_cache>(b.metrics());
    CHECK(down.errors_of(errc::timeout) == 1);  // one call waited on the server
    CHECK(down.breaker_opens == 1);

    server.resume();
    REQUIRE(eventually([&] { return link_up(b); }));
    clock.advance(11s);  // past the breaker's recovery time and the endpoint's backoff
    REQUIRE(b.put("k", "v2"));
    auto back = b.get("k");
    REQUIRE(back);
    CHECK(back->value == "v2");
    CHECK_FALSE(back->stale);
    CHECK(b.breaker<0>().state() == tierguard::breaker_state::closed);
    CHECK_FALSE(b.degraded());
}

// Issue 15: a write to the shared tier and its notice went out as two round trips (SET,
// then PUBLISH); they go in one (storage::redis's write and remove with a notice).
TEST_CASE("invalidation: a put, an erase and a pending erasure reach the shared tier in one round trip each",
          "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    auto counts = std::make_shared<counting_remote::counts>();
    counting_cache::config cfg;
    breaker_of_one(std::get<0>(cfg.tiers));
    auto far = remote::open(fast(server.unix_url()), clock);
    REQUIRE(far);
    auto opened = counting_cache::open(cfg, {counting_remote(std::move(*far), counts)}, clock);
    REQUIRE(opened);
    counting_cache& a = *opened;
    auto b = open_near(server.unix_url(), clock);
    REQUIRE(eventually([&] { return link_up(a) && link_up(b); }));
    REQUIRE(b.put("k", "old"));
    auto calls = [&] {
        return counts->writes + counts->writes_with_notice + counts->removes + counts->removes_with_notice +
               counts->publishes;
    };
    const int before = calls();

    REQUIRE(a.put("k", "new"));  // no TTL: SET + PUBLISH
    CHECK(counts->writes_with_notice == 1);
    REQUIRE(a.put("t", "v", 10s));  // SET ... PX + PUBLISH
    CHECK(counts->writes_with_notice == 2);
    REQUIRE(a.erase("t"));  // DEL + PUBLISH
    CHECK(counts->removes_with_notice == 1);
    CHECK(counts->publishes == 0);
    CHECK(calls() == before + 3);
    CHECK(eventually([&] { return !b.memory().contains("k"); }));  // the notice went out with the SET

    a.breaker<0>().force_open();
    auto kept = a.put("p", "v");  // memory only: the remote copy becomes a pending erasure
    REQUIRE(kept);
    CHECK_FALSE(kept->stored_in_tier(0));
    CHECK(a.metrics().pending_erasures == 1);
    a.breaker<0>().reset();
    CHECK_FALSE(a.get("absent"));  // a call through the closed breaker flushes the pending erasure
    CHECK(a.metrics().pending_erasures == 0);
    CHECK(counts->removes_with_notice == 2);
    CHECK(counts->publishes == 0);
    CHECK(calls() == before + 4);
    CHECK(shared_tier<counting_cache>(a.metrics()).notices_published == 4);
}

TEST_CASE("invalidation: a server killed and restarted empty: link lost and up, flushed, no old value served",
          "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    tierguard_test::temp_dir dir;
    auto b = open_disk(server.unix_url(), dir.path() / "b", clock);
    REQUIRE(eventually([&] { return link_up(b); }));
    REQUIRE(b.put("k", "old"));
    const auto before = shared_tier<disk_cache>(b.metrics());

    server.kill();
    REQUIRE(eventually([&] { return !link_up(b); }));
    server.start();  // empty, on the same socket
    REQUIRE(eventually([&] { return link_up(b); }));
    const auto after = shared_tier<disk_cache>(b.metrics());
    CHECK(after.link_losses == before.link_losses + 1);
    CHECK(after.invalidation_flushes == before.invalidation_flushes + 1);
    CHECK_FALSE(b.memory().contains("k"));
    CHECK_FALSE(b.disk<0>().contains("k"));
    clock.advance(11s);
    auto got = b.get("k");
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::miss);
}

TEST_CASE("invalidation: a restarted cache trusts no local disk copy until its link is up",
          "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    tierguard_test::temp_dir dir;
    {
        auto b = open_disk(server.unix_url(), dir.path() / "b", clock);
        REQUIRE(eventually([&] { return link_up(b); }));
        REQUIRE(b.put("k", "old"));
    }
    // While b is closed, another cache writes a new value: b never hears of it.
    {
        auto a = open_disk(server.unix_url(), dir.path() / "a", clock);
        REQUIRE(a.put("k", "new"));
    }
    auto b = open_disk(server.unix_url(), dir.path() / "b", clock);
    if (!link_up(b)) {  // opened with the link down: the remote answers first
        auto got = b.get("k");
        REQUIRE(got);
        CHECK(got->value == "new");
    }
    REQUIRE(eventually([&] { return link_up(b); }));
    CHECK(shared_tier<disk_cache>(b.metrics()).invalidation_flushes >= 1);
    CHECK(value_of(b, "k") == "new");
    b.memory().erase("k");
    // The disk tier holds "new" (promoted) or nothing, never the superseded "old".
    auto from_disk = b.disk<0>().get("k");
    CHECK((!from_disk || *from_disk == "new"));
}

TEST_CASE("invalidation: off by the tier's flag, nothing is published or heard", "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    auto a = open_near(server.unix_url(), clock, {}, false);
    REQUIRE(a.put("k", "v"));
    const auto mt = a.metrics();
    CHECK_FALSE(mt.storage[0].invalidation);
    CHECK(mt.storage[0].notices_published == 0);
    CHECK(a.get("k")->from == tier::memory);  // trusted without a link
    CHECK(a.to_prometheus().find("tierguard_invalidation_link_up") == std::string::npos);
}

// Process A (a child) puts v1..vN; process B (this one) polls get() and never sees a value
// older than one it has seen, and eventually sees vN.
TEST_CASE("invalidation: two processes, B never goes back to an older value", "[cache_invalidation][redis]") {
    redis_server server;
    constexpr int rounds = 200;
    int go[2];
    REQUIRE(::pipe(go) == 0);
    // Forked before this process starts any thread (no cache is open yet).
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(go[1]);
        char c = 0;
        if (::read(go[0], &c, 1) != 1) ::_exit(2);
        tierguard::clock::manual clock;
        auto opened = near_cache::open(near_cache::config{}, {*remote::open(fast(server.unix_url()), clock)}, clock);
        if (!opened) ::_exit(3);
        for (int i = 1; i <= rounds; ++i)
            if (!opened->put("k", "v" + std::to_string(i))) ::_exit(4);
        ::_exit(0);
    }
    ::close(go[0]);
    tierguard::clock::manual clock;
    auto b = open_near(server.unix_url(), clock);
    REQUIRE(eventually([&] { return link_up(b); }));
    REQUIRE(::write(go[1], "g", 1) == 1);
    ::close(go[1]);
    int newest = 0;
    int regressions = 0;
    int polls = 0;
    eventually([&] {
        for (int i = 0; i < 100; ++i, ++polls) {
            auto got = b.get("k");
            if (!got) continue;
            const int seen = std::stoi(got->value.substr(1));
            if (seen < newest) ++regressions;
            newest = std::max(newest, seen);
        }
        return newest == rounds;
    });
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    INFO("polls: " << polls);
    CHECK(regressions == 0);
    CHECK(newest == rounds);
}

TEST_CASE("invalidation: a flush of a large disk tier blocks no get, put or metrics(), and serves no old copy",
          "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    auto gate = std::make_shared<removal_gate>();
    gated_cache::config cfg;
    auto& [disk, rem] = cfg.tiers;
    breaker_of_one(rem);
    auto far = remote::open(fast(server.unix_url()), clock);
    REQUIRE(far);
    auto opened = gated_cache::open(cfg, {gated_storage(gate), std::move(*far)}, clock);
    REQUIRE(opened);
    gated_cache& b = *opened;
    REQUIRE(eventually([&] { return link_up(b); }));
    constexpr int entries = 300;
    for (int i = 0; i < entries; ++i) REQUIRE(b.put("k" + std::to_string(i), "old"));
    REQUIRE(b.disk<0>().stats().entries == entries);

    // Another cache clears the shared tier and writes "k0" again: b flushes its faster
    // tiers, and its first removal is held by the gate.
    auto a = open_near(server.unix_url(), clock);
    gate->set_closed(true);
    REQUIRE(a.clear());
    REQUIRE(eventually([&] { return gate->reached(); }));
    REQUIRE(a.put("k0", "new"));

    // Meanwhile, on another thread (the flush never ends while the test waits for them):
    auto calls = std::async(std::launch::async, [&] {
        auto got = b.get("k0");
        auto gone = b.get("k1");
        auto mt = b.metrics();
        auto put = b.put("k2", "mine");
        return std::tuple(std::move(got), std::move(gone), mt.storage.size(), std::move(put));
    });
    const bool finished = calls.wait_for(20s) == std::future_status::ready;
    CHECK(finished);  // before the fix: every call waited for the disk tier's lock
    CHECK(gate->reached());
    gate->set_closed(false);
    auto [got, gone, tiers, put] = calls.get();
    REQUIRE(got);
    CHECK(got->value == "new");  // from the shared tier, never the disk's superseded "old"
    CHECK(got->from == tier::remote);
    CHECK_FALSE(gone);  // cleared from the shared tier: its disk copy is not served
    CHECK(tiers == 2);
    CHECK(put);

    REQUIRE(eventually([&] { return shared_tier<gated_cache>(b.metrics()).invalidation_flushes >= 2; }));
    CHECK(value_of(b, "k2") == "mine");
    b.memory().clear();
    CHECK(value_of(b, "k1") == "<miss>");
    CHECK(value_of(b, "k2") == "mine");  // put during the flush: kept
    CHECK(b.disk<0>().stats().entries <= 2);
}

TEST_CASE(
    "invalidation: after SIGCONT, puts made while the breaker was open are erased from the server by gets "
    "that all hit memory",
    "[cache_invalidation][redis]") {
    redis_server server;
    tierguard::clock::manual clock;
    auto b = open_near(server.unix_url(), clock);
    REQUIRE(eventually([&] { return link_up(b); }));
    REQUIRE(b.put("k", "v1"));

    server.stop();
    (void)b.put("k", "v2");  // times out: the breaker opens
    REQUIRE(b.breaker<0>().state() == tierguard::breaker_state::open);
    REQUIRE(eventually([&] { return !link_up(b); }));
    server.resume();
    REQUIRE(eventually([&] { return link_up(b); }));  // memory was flushed; the breaker is still open

    // A reload while the breaker is open: memory only, the server's v1 awaits erasure.
    REQUIRE(b.put("k", "v3"));
    CHECK(b.metrics().pending_erasures == 1);
    clock.advance(10s);  // the breaker's recovery time: half-open
    REQUIRE(b.breaker<0>().state() == tierguard::breaker_state::half_open);
    for (int i = 0; i < 3; ++i) {
        auto got = b.get("k");
        REQUIRE(got);
        CHECK(got->value == "v3");
        CHECK(got->from == tier::memory);
    }
    CHECK(b.metrics().pending_erasures == 0);
    CHECK(b.breaker<0>().state() == tierguard::breaker_state::closed);
    CHECK(b.health().status == tierguard::health_status::healthy);
    b.memory().clear();
    CHECK(value_of(b, "k") == "<miss>");  // v1 left the server; v3 never reached it
}
