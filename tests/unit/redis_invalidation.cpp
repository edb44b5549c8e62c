// storage::redis's invalidation transport against real redis-server processes: notices
// sent with a write or a remove (one round trip), publish(), and subscribe()'s link
// callbacks through stopped, killed, garbage-answering and password-protected servers.
#include "support/blob_text.hpp"
#include "support/fake_redis_server.hpp"
#include "support/redis_server.hpp"
#include "support/storage_helpers.hpp"
#include "support/test_framework.hpp"

#include <tierguard/storage/redis.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::storage::redis;
using tierguard_test::bytes_of;
using tierguard_test::errc_of;
using tierguard_test::fake_server;
using tierguard_test::redis_server;
using tierguard_test::text_of;
using tierguard_test::why;

namespace {

[[maybe_unused]] const bool redis_available = tierguard_test::redis_server_or_exit("unit.redis_invalidation");

/// Short keepalive and timeouts, so that a lost link is noticed quickly; far above a loaded
/// machine's round trip all the same. Nothing asserts how long anything took.
redis::config fast(std::vector<std::string> endpoints) {
    redis::config cfg;
    cfg.endpoints = std::move(endpoints);
    cfg.connect_timeout = 1000ms;
    cfg.command_timeout = 1000ms;
    cfg.backoff_min = 20ms;
    cfg.backoff_max = 200ms;
    cfg.invalidation_ping_interval = 100ms;
    return cfg;
}

/// What a subscription's callbacks saw, and a wait (bounded at 20 s, never asserted on) for
/// a condition on it.
class recorder {
public:
    struct seen {
        std::vector<std::string> notices;
        std::vector<bool> links;  ///< on_link's arguments, in order
        std::vector<tierguard::failure> errors;
    };

    [[nodiscard]] tierguard::result<redis::subscription> subscribe(const redis& s) {
        return s.subscribe(
            [this](redis::notice_bytes n) {
                const std::string text(reinterpret_cast<const char*>(n.data()), n.size());
                record([&](seen& x) { x.notices.push_back(text); });
                if (text == throw_on) throw std::runtime_error("on_notice threw on " + text);
            },
            [this](bool up) { record([&](seen& x) { x.links.push_back(up); }); },
            [this](const tierguard::failure& f) { record([&](seen& x) { x.errors.push_back(f); }); });
    }

    /// A notice on which on_notice throws, after recording it.
    std::string throw_on = "(none)";

    /// Waits until pred(seen) holds; false if it did not within 20 s.
    template <class Pred>
    bool wait(Pred pred) {
        std::unique_lock lock(m_mutex);
        return m_changed.wait_for(lock, 20s, [&] { return pred(m_seen); });
    }
    bool wait_notice(std::string_view text) {
        return wait([&](const seen& x) {
            for (const auto& n : x.notices)
                if (n == text) return true;
            return false;
        });
    }
    bool wait_links(std::size_t count) {
        return wait([&](const seen& x) { return x.links.size() >= count; });
    }
    /// Whether on_link's calls come to be exactly `expected`.
    bool links_become(const std::vector<bool>& expected) {
        return wait_links(expected.size()) && snapshot().links == expected;
    }
    bool wait_errors(std::size_t count) {
        return wait([&](const seen& x) { return x.errors.size() >= count; });
    }
    [[nodiscard]] seen snapshot() const {
        std::lock_guard lock(m_mutex);
        return m_seen;
    }

private:
    template <class F>
    void record(F f) {
        {
            std::lock_guard lock(m_mutex);
            f(m_seen);
        }
        m_changed.notify_all();
    }

    mutable std::mutex m_mutex;
    std::condition_variable m_changed;
    seen m_seen;
};

/// A name of `s` whose endpoint is `id`.
std::string name_on(const redis& s, const std::string& id) {
    for (int i = 0;; ++i) {
        std::string name = "k/" + std::to_string(i);
        if (s.endpoint_for(name) == id) return name;
    }
}

}  // namespace

TEST_CASE("redis invalidation: a notice sent with a write or a remove reaches every subscription, the sender's too") {
    redis_server server;
    auto a = redis::open(fast({server.unix_url()})).value();
    auto b = redis::open(fast({server.unix_url()})).value();
    auto other_schema = redis::open([&] {
                            auto cfg = fast({server.unix_url()});
                            cfg.schema_version = 2;
                            return cfg;
                        }())
                            .value();
    CHECK(a.invalidation_channel() == "tg:v1:invalidate");
    recorder at_a;
    recorder at_b;
    recorder at_v2;
    auto sub_a = at_a.subscribe(a).value();
    auto sub_b = at_b.subscribe(b).value();
    auto sub_v2 = at_v2.subscribe(other_schema).value();
    REQUIRE(at_a.wait_links(1));
    REQUIRE(at_b.wait_links(1));
    REQUIRE(at_v2.wait_links(1));
    CHECK(at_b.snapshot().links == std::vector<bool>{true});  // the link starts down: the first call is true
    CHECK(sub_b.up());

    REQUIRE(a.write("ab/k", bytes_of("value"), bytes_of("put ab/k")));
    CHECK(server.command({"GET", "tg:v1:ab/k"}) == "value");
    CHECK(server.command({"PTTL", "tg:v1:ab/k"}) == "-1");  // no expiry asked, none set
    REQUIRE(a.write("ab/t", bytes_of("ttl"), 60s, bytes_of("put ab/t")));
    const long long pttl = std::stoll(server.command({"PTTL", "tg:v1:ab/t"}));
    CHECK((pttl > 0 && pttl <= 60'000));
    REQUIRE(a.remove("ab/k", bytes_of("erase ab/k")));
    CHECK(server.command({"EXISTS", "tg:v1:ab/k"}) == "0");
    // A remove of an absent blob is a miss, and still tells the others (they may hold a copy).
    CHECK(errc_of(a.remove("ab/none", bytes_of("erase ab/none"))) == errc::miss);
    REQUIRE(a.publish(bytes_of("clear")));

    const std::vector<std::string> expected{"put ab/k", "put ab/t", "erase ab/k", "erase ab/none", "clear"};
    for (auto* r : {&at_a, &at_b}) {
        REQUIRE(r->wait([&](const recorder::seen& x) { return x.notices.size() >= expected.size(); }));
        CHECK(r->snapshot().notices == expected);
    }
    CHECK(sub_b.notices() == expected.size());

    // Bytes of any value go through unchanged, a NUL and an empty notice among them.
    const std::string binary("\0\r\n$3\xff", 6);
    REQUIRE(a.publish(bytes_of(binary)));
    REQUIRE(a.publish(bytes_of("")));
    REQUIRE(at_b.wait([&](const recorder::seen& x) { return x.notices.size() == expected.size() + 2; }));
    CHECK(at_b.snapshot().notices[expected.size()] == binary);
    CHECK(at_b.snapshot().notices.back().empty());

    // Another schema's channel heard none of it: its own notice is the first it gets.
    REQUIRE(other_schema.publish(bytes_of("v2 only")));
    REQUIRE(at_v2.wait_notice("v2 only"));
    CHECK(at_v2.snapshot().notices == std::vector<std::string>{"v2 only"});
    CHECK(sub_b.link_losses() == 0);
    CHECK_FALSE(sub_b.last_error());
}

TEST_CASE("redis invalidation: the command and its PUBLISH leave in one send, before any reply is read") {
    // A fake server that reads once, then answers: had the client waited for the SET's reply
    // before sending the PUBLISH, that one read would hold the SET alone.
    const std::string notice = "notice-bytes";
    SECTION("write") {
        fake_server fake("+OK\r\n:1\r\n", false);
        auto s = redis::open(fast({fake.url()})).value();
        const auto w = s.write("ab/k", bytes_of("value"), 60s, bytes_of(notice));
        INFO(why(w));
        REQUIRE(w);
        REQUIRE(fake.first_reads().size() == 1);
        const std::string sent = fake.first_reads().front();
        INFO(sent);
        const auto set = sent.find("SET");
        const auto publish = sent.find("PUBLISH");
        CHECK((set != std::string::npos && publish != std::string::npos && set < publish));
        CHECK(sent.find("tg:v1:invalidate") != std::string::npos);
        CHECK(sent.find(notice) != std::string::npos);
        CHECK(sent.find("PX") != std::string::npos);
    }
    SECTION("remove") {
        fake_server fake(":1\r\n:1\r\n", false);
        auto s = redis::open(fast({fake.url()})).value();
        REQUIRE(s.remove("ab/k", bytes_of(notice)));
        REQUIRE(fake.first_reads().size() == 1);
        const std::string sent = fake.first_reads().front();
        CHECK((sent.find("DEL") != std::string::npos && sent.find("PUBLISH") != std::string::npos));
    }
}

TEST_CASE("redis invalidation: with two endpoints, notices for keys of either arrive") {
    redis_server one;
    redis_server two;
    auto s = redis::open(fast({one.unix_url(), two.unix_url()})).value();
    const std::string on_one = name_on(s, s.endpoints()[0].id);
    const std::string on_two = name_on(s, s.endpoints()[1].id);
    recorder r;
    auto sub = r.subscribe(s).value();
    REQUIRE(r.wait_links(1));
    REQUIRE(s.write(on_one, bytes_of("1"), bytes_of("put " + on_one)));
    REQUIRE(s.write(on_two, bytes_of("2"), bytes_of("put " + on_two)));
    REQUIRE(r.wait_notice("put " + on_one));
    REQUIRE(r.wait_notice("put " + on_two));
    CHECK(one.command({"GET", "tg:v1:" + on_one}) == "1");
    CHECK(two.command({"GET", "tg:v1:" + on_two}) == "2");
    CHECK(r.snapshot().notices.size() == 2);

    // One endpoint down: the link is down; publish() still gets through on the other.
    two.kill();
    REQUIRE(r.links_become({true, false}));
    REQUIRE(s.publish(bytes_of("clear while two is down")));
    two.start();
    REQUIRE(r.links_become({true, false, true}));
    REQUIRE(s.write(on_two, bytes_of("again"), bytes_of("put again")));
    REQUIRE(r.wait_notice("put again"));
}

TEST_CASE(
    "redis invalidation: a server stopped, or killed and restarted: the link goes down, comes back, notices flow") {
    redis_server server;
    auto s = redis::open(fast({server.unix_url()})).value();
    recorder r;
    auto sub = r.subscribe(s).value();
    REQUIRE(r.wait_links(1));
    REQUIRE(s.publish(bytes_of("before")));
    REQUIRE(r.wait_notice("before"));

    SECTION("SIGSTOP, then SIGCONT") {
        server.stop();
        // Found by the keepalive: no PONG within command_timeout.
        REQUIRE(r.links_become({true, false}));
        CHECK_FALSE(sub.up());
        const auto lost = sub.last_error();
        REQUIRE(lost);
        INFO(lost->message());
        CHECK(lost->code() == errc::timeout);
        CHECK(lost->message().find("no answer to PING") != std::string::npos);
        server.resume();
    }
    SECTION("SIGKILL, then a new server on the same socket") {
        server.kill();
        REQUIRE(r.links_become({true, false}));
        REQUIRE(r.wait_errors(1));
        INFO(r.snapshot().errors.front().message());
        CHECK(r.snapshot().errors.front().code() == errc::io_error);  // the server closed the connection
        server.start();
    }
    REQUIRE(r.links_become({true, false, true}));
    CHECK(sub.up());
    CHECK(sub.link_losses() == 1);
    CHECK(sub.reconnects() == 1);
    REQUIRE(s.write("k", bytes_of("v"), bytes_of("after")));
    REQUIRE(r.wait_notice("after"));
}

TEST_CASE("redis invalidation: a server that answers garbage never brings the link up, and crashes nothing") {
    const auto never_up = [](const fake_server& fake, std::string_view problem) {
        auto s = redis::open(fast({fake.url()})).value();
        recorder r;
        auto sub = r.subscribe(s).value();
        REQUIRE(r.wait_errors(2));  // tried, failed, tried again after the backoff
        const auto seen = r.snapshot();
        CHECK(seen.links.empty());
        CHECK_FALSE(sub.up());
        for (const auto& e : seen.errors) {
            INFO(e.message());
            CHECK(e.code() == errc::io_error);
            CHECK(e.where() == tierguard::tier::remote);
            CHECK(e.message().find(problem) != std::string::npos);
        }
    };
    SECTION("not the protocol") {
        fake_server fake("hello, this is not redis\r\n", false);
        never_up(fake, "not the Redis protocol");
    }
    SECTION("a reply that is no pub/sub message") {
        fake_server fake("+OK\r\n", false);
        never_up(fake, "no pub/sub message");
    }
    SECTION("a connection closed at once") {
        fake_server fake("", true, true);
        never_up(fake, "subscribe: redis unix:");
    }
}

TEST_CASE("redis invalidation: a wrong password keeps the link down and says why; an ACL without the channel too") {
    redis_server server({.args = {"--requirepass", "right-pw"}, .password = "right-pw"});
    const std::string path = server.socket_path();
    auto wrong = redis::open(fast({"unix://:wrong-pw@" + path})).value();
    recorder r;
    auto sub = r.subscribe(wrong).value();
    REQUIRE(r.wait_errors(2));
    CHECK(r.snapshot().links.empty());
    const auto why_down = sub.last_error();
    REQUIRE(why_down);
    INFO(why_down->message());
    CHECK(why_down->code() == errc::permission_denied);
    CHECK(why_down->message().find("wrong-pw") == std::string::npos);

    // A user that may SET but not use the channel (Redis 7: no channels unless granted):
    // SUBSCRIBE is refused, and a write's PUBLISH fails the write though the SET was done.
    REQUIRE(server.command({"ACL", "SETUSER", "writer", "on", ">w-pw", "~*", "+@all"}) == "OK");
    auto writer = redis::open(fast({"unix://writer:w-pw@" + path})).value();
    recorder w;
    auto writer_sub = w.subscribe(writer).value();
    REQUIRE(w.wait_errors(1));
    CHECK(w.snapshot().links.empty());
    CHECK(w.snapshot().errors.front().code() == errc::permission_denied);
    const auto written = writer.write("k", bytes_of("stored"), bytes_of("notice"));
    INFO(why(written));
    REQUIRE_FALSE(written);
    CHECK(written.error().code() == errc::permission_denied);
    CHECK(written.error().message().find("SET succeeded, but PUBLISH") != std::string::npos);
    CHECK(server.command({"GET", "tg:v1:k"}) == "stored");
    CHECK(errc_of(writer.publish(bytes_of("n"))) == errc::permission_denied);
    CHECK(writer.endpoints().front().consecutive_failures == 0);  // an error reply is no broken link
}

TEST_CASE("redis invalidation: a write with a notice to a stopped server times out; the pair lands together or not") {
    redis_server server;
    auto cfg = fast({server.unix_url()});
    auto s = redis::open(cfg).value();
    // A listener that does not notice the stop (its keepalive is an hour): it hears whatever
    // the server does once resumed.
    cfg.invalidation_ping_interval = std::chrono::hours(1);
    auto listener_side = redis::open(cfg).value();
    recorder r;
    auto sub = r.subscribe(listener_side).value();
    REQUIRE(r.wait_links(1));
    REQUIRE(s.write("k", bytes_of("old"), bytes_of("put old")));
    REQUIRE(r.wait_notice("put old"));

    server.stop();
    const auto stalled = s.write("k", bytes_of("new"), bytes_of("put new"));
    INFO(why(stalled));
    REQUIRE_FALSE(stalled);
    CHECK(stalled.error().code() == errc::timeout);
    // Backing off now: nothing more is even sent.
    CHECK(errc_of(s.write("k", bytes_of("newer"), bytes_of("put newer"))) == errc::circuit_open);
    CHECK(errc_of(s.publish(bytes_of("clear"))) == errc::circuit_open);
    CHECK(r.snapshot().notices == std::vector<std::string>{"put old"});

    // Resumed, Redis may still run the timed-out pair it had received: both commands or
    // neither, never the SET without the PUBLISH. The marker is published after the GET, so
    // it arrives after the late notice, if there is one.
    server.resume();
    const std::string value = server.command({"GET", "tg:v1:k"});
    REQUIRE(listener_side.publish(bytes_of("marker")));
    REQUIRE(r.wait_notice("marker"));
    const auto notices = r.snapshot().notices;
    INFO("value after resume: " << value);
    if (value == "new") {
        CHECK(notices == std::vector<std::string>{"put old", "put new", "marker"});
    } else {
        CHECK(value == "old");
        CHECK(notices == std::vector<std::string>{"put old", "marker"});
    }
    CHECK(std::find(notices.begin(), notices.end(), "put newer") == notices.end());
}

TEST_CASE("redis invalidation: destroying a subscription while the server is stopped returns, callbacks stop") {
    redis_server server;
    auto s = redis::open(fast({server.unix_url()})).value();
    SECTION("up, then stopped") {
        recorder r;
        auto sub = r.subscribe(s).value();
        REQUIRE(r.wait_links(1));
        CHECK(sub.up());
        server.stop();
        sub.stop();
        const auto seen = r.snapshot();
        sub.stop();  // twice is nothing
        CHECK(r.snapshot().links.size() == seen.links.size());
        CHECK_FALSE(sub.up());  // the counters stay readable; a stopped subscription is down
        CHECK(sub.notices() == 0);
        CHECK(sub.link_losses() == seen.links.size() - 1);
    }
    SECTION("stopped from the start, moved, then destroyed") {
        server.stop();
        recorder r;
        std::optional<redis::subscription> held;
        {
            auto sub = r.subscribe(s).value();
            held.emplace(std::move(sub));
        }                           // the moved-from handle's destructor stops nothing
        REQUIRE(r.wait_errors(1));  // SUBSCRIBE unanswered
        CHECK(r.snapshot().errors.front().code() == errc::timeout);
        held.reset();
        CHECK(r.snapshot().links.empty());
    }
    server.resume();
}

TEST_CASE("redis invalidation: a callback that throws takes the link down and up again; notices flow after") {
    redis_server server;
    auto s = redis::open(fast({server.unix_url()})).value();
    recorder r;
    r.throw_on = "boom";
    auto sub = r.subscribe(s).value();
    REQUIRE(r.wait_links(1));
    REQUIRE(s.publish(bytes_of("boom")));
    // The notice may have gone unhandled: every subscription starts again, the cache flushes.
    REQUIRE(r.links_become({true, false, true}));
    REQUIRE(r.wait_errors(1));
    INFO(r.snapshot().errors.front().message());
    CHECK(r.snapshot().errors.front().message().find("on_notice threw on boom") != std::string::npos);
    REQUIRE(s.publish(bytes_of("after")));
    REQUIRE(r.wait_notice("after"));
    CHECK(sub.link_losses() == 1);
}

TEST_CASE("redis invalidation: the settings and handlers are checked") {
    auto cfg = fast({"unix:///nonexistent/r.sock"});
    cfg.invalidation_ping_interval = 0ms;
    const auto bad = redis::open(cfg);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code() == errc::invalid_argument);
    CHECK(bad.error().message().find("invalidation_ping_interval") != std::string::npos);

    auto s = redis::open(fast({"unix:///nonexistent/r.sock"})).value();
    const auto no_handler = s.subscribe({}, [](bool) {});
    REQUIRE_FALSE(no_handler);
    CHECK(no_handler.error().code() == errc::invalid_argument);
    CHECK(errc_of(s.write("k", bytes_of("v"), 0ms, bytes_of("n"))) == errc::invalid_argument);
    CHECK(errc_of(s.write("bad name", bytes_of("v"), bytes_of("n"))) == errc::invalid_argument);
}
