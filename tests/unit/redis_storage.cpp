#include "support/blob_text.hpp"
#include "support/child_process.hpp"
#include "support/fake_redis_server.hpp"
#include "support/redis_server.hpp"
#include "support/storage_helpers.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/detail/redis_url.hpp>
#include <tierguard/storage/redis.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using tierguard::clean_options;
using tierguard::errc;
using tierguard::storage::redis;
using tierguard_test::bytes_of;
using tierguard_test::errc_of;
using tierguard_test::fake_server;
using tierguard_test::names_of;
using tierguard_test::redis_server;
using tierguard_test::t0;
using tierguard_test::text_of;
using tierguard_test::why;
using sys_time = std::chrono::system_clock::time_point;
using manual_redis = tierguard::storage::basic_redis<tierguard::clock::manual>;

namespace {

[[maybe_unused]] const bool redis_available = tierguard_test::redis_server_or_exit("unit.redis_storage");

template <class S>
struct harness;

template <>
struct harness<redis> {
    static constexpr tierguard::tier where = tierguard::tier::remote;
    explicit harness(std::size_t max_blob_size = std::size_t{64} << 20)
        : storage(redis::open({.endpoints = {server.unix_url()}, .max_blob_size = max_blob_size}).value()) {}
    redis_server server;
    redis storage;
};

/// Short timeouts, yet far above a loaded CI machine's round trip: a test that expects a timeout waits them.
manual_redis::config config_for(std::vector<std::string> endpoints) {
    manual_redis::config cfg;
    cfg.endpoints = std::move(endpoints);
    cfg.connect_timeout = 1000ms;
    cfg.command_timeout = 400ms;
    return cfg;
}

}  // namespace

#define TIERGUARD_CONTRACT_STORAGES redis
#include "support/storage_contract.inc"

// ---------------------------------------------------------------------------------------
// Configuration

TEST_CASE("redis: endpoint URLs are parsed, and a bad one says what is wrong without showing the password") {
    using tierguard::detail::parse_redis_url;
    auto a = parse_redis_url("redis://alice:s%40cret@cache.example:6380/3").value();
    CHECK_FALSE(a.unix_socket);
    CHECK(a.host == "cache.example");
    CHECK(a.port == 6380);
    CHECK(a.user == "alice");
    CHECK(a.password == "s@cret");
    CHECK(a.db == 3);
    CHECK(a.id == "tcp:cache.example:6380/3");

    a = parse_redis_url("redis://10.0.0.1").value();
    CHECK((a.port == 6379 && a.db == 0 && a.password.empty() && a.id == "tcp:10.0.0.1:6379/0"));
    a = parse_redis_url("redis://:pw@[::1]:7000").value();
    CHECK((a.host == "::1" && a.port == 7000 && a.user.empty() && a.password == "pw"));
    a = parse_redis_url("unix:///run/redis/r.sock?db=2").value();
    CHECK((a.unix_socket && a.path == "/run/redis/r.sock" && a.db == 2 && a.id == "unix:/run/redis/r.sock/2"));
    a = parse_redis_url("unix://bob:pw@/run/r@b.sock").value();
    CHECK((a.user == "bob" && a.password == "pw" && a.path == "/run/r@b.sock"));

    const std::vector<std::pair<std::string, std::string>> bad = {
        {"http://host", "must start with redis:// or unix://"},
        {"rediss://host:6380", "TLS is not supported"},
        {"redis://", "the host is empty"},
        {"redis://host:0", "port must be a number from 1 to 65535"},
        {"redis://host:65536", "port must be a number from 1 to 65535"},
        {"redis://host:http", "port must be a number"},
        {"redis://host:", "the port after ':' is empty"},
        {"redis://host/zero", "must be a database number"},
        {"redis://secretword@host", "credentials must read user:password@"},
        {"redis://u:@host", "the password after ':' is empty"},
        {"redis://u:secret%zz@host", "%XX escape"},
        {"redis://[::1", "needs its ']'"},
        {"unix://relative.sock", "absolute path"},
        {"unix:///tmp/x.sock?database=1", "the only query is ?db=N"},
        {"unix:///" + std::string(200, 'p'), "longer than a unix socket address holds"},
    };
    for (const auto& [url, problem] : bad) {
        INFO(url);
        const auto r = parse_redis_url(url);
        REQUIRE_FALSE(r);
        CHECK(r.error().code() == errc::invalid_argument);
        CHECK(r.error().where() == tierguard::tier::remote);
        INFO(r.error().message());
        CHECK(r.error().message().find(problem) != std::string::npos);
        CHECK(r.error().message().find("secret") == std::string::npos);
    }
}

TEST_CASE("redis: open checks the config, connects to nothing, and builds the default prefix from the schema") {
    auto refused = [](redis::config cfg, std::string_view problem) {
        const auto r = redis::open(std::move(cfg));
        INFO(why(r));
        REQUIRE_FALSE(r);
        CHECK(r.error().code() == errc::invalid_argument);
        CHECK(r.error().message().find(problem) != std::string::npos);
    };
    refused({}, "config.endpoints is empty");
    refused({.endpoints = {"unix:///a.sock", "unix:///a.sock"}}, "twice");
    refused({.endpoints = {"unix:///a.sock"}, .key_prefix = "has space"}, "key_prefix");
    refused({.endpoints = {"unix:///a.sock"}, .command_timeout = 0ms}, "command_timeout");
    refused({.endpoints = {"unix:///a.sock"}, .pool_size = 0}, "pool_size");
    refused({.endpoints = {"unix:///a.sock"}, .backoff_min = 10ms, .backoff_max = 5ms}, "backoff_min");

    // Nothing listens there: open succeeds all the same (a cache starts while Redis is down).
    const auto s = redis::open({.endpoints = {"unix:///nonexistent/dir/r.sock"}, .schema_version = 7});
    REQUIRE(s);
    CHECK(s->settings().key_prefix == "tg:v7:");
    CHECK(s->key_of("ab/cd") == "tg:v7:ab/cd");
    const auto down = s->read("ab/cd");
    REQUIRE_FALSE(down);
    CHECK(down.error().code() == errc::io_error);  // ENOENT of the socket, never a miss
    CHECK(down.error().os_error() == std::error_code(ENOENT, std::generic_category()));
}

TEST_CASE("redis: replies and errno are classified into the taxonomy") {
    using namespace tierguard::storage::redis_detail;
    CHECK(reply_errc("OOM command not allowed when used memory > 'maxmemory'.") == errc::disk_full);
    CHECK(reply_errc("NOAUTH Authentication required.") == errc::permission_denied);
    CHECK(reply_errc("WRONGPASS invalid username-password pair or user is disabled.") == errc::permission_denied);
    CHECK(reply_errc("ERR invalid password") == errc::permission_denied);
    CHECK(reply_errc("NOPERM this user has no permissions") == errc::permission_denied);
    CHECK(reply_errc("WRONGTYPE Operation against a key holding the wrong kind of value") == errc::corrupted);
    CHECK(reply_errc("LOADING Redis is loading the dataset in memory") == errc::io_error);
    CHECK(connection_errc(EAGAIN) == errc::timeout);
    CHECK(connection_errc(ETIMEDOUT) == errc::timeout);
    CHECK(connection_errc(ECONNREFUSED) == errc::io_error);
    CHECK(connection_errc(ECONNRESET) == errc::io_error);
    CHECK(connection_errc(EPIPE) == errc::io_error);
    CHECK(glob_escaped("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\");
}

// ---------------------------------------------------------------------------------------
// With a real server

TEST_CASE("redis: over TCP, a database of the URL holds the blobs, apart from the others") {
    redis_server server({.tcp = true});
    auto db3 = redis::open({.endpoints = {server.tcp_url(3)}}).value();
    auto db0 = redis::open({.endpoints = {server.tcp_url(0)}}).value();
    REQUIRE(db3.write("ab/k", bytes_of("in db 3")));
    CHECK(text_of(db3.read("ab/k").value()) == "in db 3");
    CHECK(errc_of(db0.read("ab/k")) == errc::miss);
    CHECK(names_of(db3.list().value()) == std::vector<std::string>{"ab/k"});
    CHECK(db0.list().value().empty());
}

TEST_CASE("redis: keys carry the schema's prefix; another schema never reads them") {
    redis_server server;
    auto v7 = redis::open({.endpoints = {server.unix_url()}, .schema_version = 7}).value();
    auto v8 = redis::open({.endpoints = {server.unix_url()}, .schema_version = 8}).value();
    REQUIRE(v7.write("ab/k", bytes_of("schema 7 bytes")));
    CHECK(server.command({"GET", "tg:v7:ab/k"}) == "schema 7 bytes");
    CHECK(errc_of(v8.read("ab/k")) == errc::miss);
    CHECK(v8.list().value().empty());

    // Glob characters in a prefix are matched literally by list's SCAN.
    auto star = redis::open({.endpoints = {server.unix_url()}, .key_prefix = "p*:"}).value();
    REQUIRE(server.command({"SET", "px:other", "not ours"}) == "OK");
    REQUIRE(star.write("mine", bytes_of("1")));
    CHECK(names_of(star.list().value()) == std::vector<std::string>{"mine"});

    // A key under the prefix that is no blob name, or no string, is not listed; reading a
    // non-string is corrupted.
    REQUIRE(server.command({"SET", "tg:v7:bad name", "x"}) == "OK");
    REQUIRE(server.command({"HSET", "tg:v7:ahash", "f", "v"}) == "1");
    CHECK(names_of(v7.list().value()) == std::vector<std::string>{"ab/k"});
    CHECK(errc_of(v7.read("ahash")) == errc::corrupted);
}

TEST_CASE("redis: a write with an expiry sets it in Redis (SET PX); quarantine sets the 7-day one") {
    redis_server server;
    auto s = redis::open({.endpoints = {server.unix_url()}}).value();
    REQUIRE(s.write("ttl/k", bytes_of("v"), std::chrono::milliseconds(60'000)));
    const long long pttl = std::stoll(server.command({"PTTL", "tg:v1:ttl/k"}));
    CHECK(pttl > 0);
    CHECK(pttl <= 60'000);
    REQUIRE(s.write("ttl/k", bytes_of("v2")));  // a plain write keeps no expiry
    CHECK(server.command({"PTTL", "tg:v1:ttl/k"}) == "-1");
    CHECK(errc_of(s.write("ttl/k", bytes_of("v"), 0ms)) == errc::invalid_argument);

    REQUIRE(s.quarantine("ttl/k", "bad checksum", t0));
    const std::string qkey = "tg:v1:quarantine/" + tierguard::detail::quarantine_name("ttl/k", "bad checksum", t0);
    CHECK(server.command({"GET", qkey}) == "v2");
    const long long qttl = std::stoll(server.command({"PTTL", qkey}));
    CHECK(qttl > 0);
    CHECK(qttl <= 7LL * 24 * 3600 * 1000);
}

TEST_CASE("redis: a stopped server times out within the command timeout, and serves again after SIGCONT") {
    redis_server server;
    tierguard::clock::manual clock;
    auto s = manual_redis::open(config_for({server.unix_url()}), clock).value();
    REQUIRE(s.write("k", bytes_of("before")));

    server.stop();
    const auto stalled = s.read("k");
    INFO(why(stalled));
    REQUIRE_FALSE(stalled);
    CHECK(stalled.error().code() == errc::timeout);
    CHECK(stalled.error().where() == tierguard::tier::remote);
    // Issue 15 (LOW 9): every timeout reads alike, without EAGAIN's "Resource temporarily unavailable".
    CHECK(stalled.error().message().find("read reply: no answer within config.command_timeout (") != std::string::npos);
    CHECK(stalled.error().message().find("temporarily") == std::string::npos);
    // The endpoint backs off: calls fail fast until the backoff has passed on the clock.
    CHECK(errc_of(s.read("k")) == errc::circuit_open);
    CHECK(errc_of(s.write("k", bytes_of("x"))) == errc::circuit_open);
    CHECK(s.endpoints().front().backing_off);
    clock.advance(100ms);
    CHECK(errc_of(s.read("k")) == errc::timeout);  // a new connection: its command times out too
    CHECK(s.endpoints().front().consecutive_failures == 2);
    clock.advance(150ms);
    CHECK(errc_of(s.read("k")) == errc::circuit_open);  // the second backoff is twice the first
    clock.advance(50ms);

    // A write larger than the socket buffers blocks in send: it times out as well.
    clock.advance(400ms);
    const auto big = s.write("big", std::vector<std::byte>(std::size_t{8} << 20, std::byte{1}));
    INFO(why(big));
    REQUIRE_FALSE(big);
    CHECK(big.error().code() == errc::timeout);
    clock.advance(800ms);

    server.resume();
    const auto back = s.read("k");
    INFO(why(back));
    REQUIRE(back);
    CHECK(text_of(*back) == "before");
    CHECK(s.endpoints().front().consecutive_failures == 0);
    CHECK_FALSE(s.endpoints().front().backing_off);
}

TEST_CASE("redis: a server killed and restarted empty: errors, then misses, never the old value") {
    redis_server server;
    tierguard::clock::manual clock;
    auto s = manual_redis::open(config_for({server.unix_url()}), clock).value();
    REQUIRE(s.write("k", bytes_of("old")));
    REQUIRE(s.write("j", bytes_of("old j")));

    server.kill();
    const auto down = s.read("k");
    INFO(why(down));
    REQUIRE_FALSE(down);
    CHECK(down.error().code() == errc::io_error);
    CHECK(errc_of(s.read("k")) == errc::circuit_open);

    server.start();
    clock.advance(1s);
    CHECK(errc_of(s.read("k")) == errc::miss);
    CHECK(errc_of(s.read("j")) == errc::miss);
    REQUIRE(s.write("k", bytes_of("new")));
    CHECK(text_of(s.read("k").value()) == "new");
}

TEST_CASE("redis: an idle pooled connection the server closed is replaced without a failure") {
    redis_server server;
    tierguard::clock::manual clock;
    auto s = manual_redis::open(config_for({server.unix_url()}), clock).value();
    REQUIRE(s.write("k", bytes_of("v")));
    REQUIRE(server.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}) != "0");
    const auto r = s.read("k");
    INFO(why(r));
    REQUIRE(r);
    CHECK(text_of(*r) == "v");
    CHECK(s.endpoints().front().consecutive_failures == 0);
}

TEST_CASE("redis: maxmemory reached is disk_full (OOM), and what was stored stays readable") {
    redis_server server;
    auto s = redis::open({.endpoints = {server.unix_url()}}).value();
    REQUIRE(s.write("first", bytes_of("kept")));
    const std::string info = server.command({"INFO", "memory"});
    const auto at = info.find("used_memory:");
    REQUIRE(at != std::string::npos);
    const long long used = std::stoll(info.substr(at + 12));
    REQUIRE(server.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"}) == "OK");
    REQUIRE(server.command({"CONFIG", "SET", "maxmemory", std::to_string(used + 256 * 1024)}) == "OK");

    const std::vector<std::byte> blob(64 * 1024, std::byte{7});
    tierguard::result<void> last;
    int written = 0;
    for (int i = 0; i < 64 && last; ++i) {
        last = s.write("fill/" + std::to_string(i), blob);
        if (last) ++written;
    }
    INFO(written << " blobs written; " << why(last));
    REQUIRE_FALSE(last);
    CHECK(last.error().code() == errc::disk_full);
    CHECK(last.error().message().find("OOM") != std::string::npos);
    CHECK(text_of(s.read("first").value()) == "kept");
    CHECK(s.remove("fill/0"));                               // DEL is allowed when full
    CHECK(s.endpoints().front().consecutive_failures == 0);  // a full server is no broken link
}

TEST_CASE("redis: a wrong or missing password is permission_denied; the right one works") {
    redis_server server({.args = {"--requirepass", "right-pw"}, .password = "right-pw"});
    const std::string path = server.socket_path();
    auto wrong = redis::open({.endpoints = {"unix://:wrong-pw@" + path}}).value();
    const auto w = wrong.read("k");
    INFO(why(w));
    REQUIRE_FALSE(w);
    CHECK(w.error().code() == errc::permission_denied);
    CHECK(w.error().message().find("wrong-pw") == std::string::npos);

    auto none = redis::open({.endpoints = {server.unix_url()}}).value();
    CHECK(errc_of(none.read("k")) == errc::permission_denied);

    auto right = redis::open({.endpoints = {"unix://:right-pw@" + path + "?db=1"}}).value();
    REQUIRE(right.write("k", bytes_of("v")));
    CHECK(text_of(right.read("k").value()) == "v");
    auto user = redis::open({.endpoints = {"unix://default:right-pw@" + path + "?db=1"}}).value();
    CHECK(text_of(user.read("k").value()) == "v");
}

TEST_CASE("redis: a server that answers garbage is an io_error or a timeout, never a crash or a value") {
    SECTION("not the protocol") {
        fake_server fake("hello, this is not redis\r\n", false);
        auto s = redis::open({.endpoints = {fake.url()}, .command_timeout = 1000ms}).value();
        const auto r = s.read("k");
        INFO(why(r));
        REQUIRE_FALSE(r);
        CHECK(r.error().code() == errc::io_error);
        CHECK(r.error().message().find("not the Redis protocol") != std::string::npos);
        CHECK(r.error().message().find("\\x22") == std::string::npos);  // hiredis's quotes shown as quotes
    }
    SECTION("a reply of the wrong type") {
        fake_server fake("+OK\r\n", false);
        auto s = redis::open({.endpoints = {fake.url()}, .command_timeout = 1000ms, .backoff_min = 0ms}).value();
        const auto r = s.read("k");
        INFO(why(r));
        REQUIRE_FALSE(r);
        CHECK(r.error().code() == errc::io_error);
        CHECK(r.error().message().find("unexpected type") != std::string::npos);
        CHECK(errc_of(s.remove("k")) == errc::io_error);  // nor is a status DEL's integer
    }
    SECTION("a truncated bulk string, then silence") {
        fake_server fake("$10\r\nabc", false);
        auto s = redis::open({.endpoints = {fake.url()}, .command_timeout = 100ms}).value();
        CHECK(errc_of(s.read("k")) == errc::timeout);
    }
    SECTION("a connection closed at once") {
        fake_server fake("", true, true);
        auto s = redis::open({.endpoints = {fake.url()}, .command_timeout = 1000ms}).value();
        const auto r = s.read("k");
        INFO(why(r));
        REQUIRE_FALSE(r);
        CHECK(r.error().code() == errc::io_error);
    }
}

TEST_CASE("redis: a write to a connection the server closed raises no SIGPIPE") {
    fake_server fake("", true, true);
    const std::string url = fake.url();
    // In a child with SIGPIPE's default disposition, which kills the process.
    const int status = tierguard_test::in_child(
        [&] {
            std::signal(SIGPIPE, SIG_DFL);
            auto s = redis::open({.endpoints = {url}, .command_timeout = 1000ms, .backoff_min = 0ms}).value();
            const std::vector<std::byte> big(std::size_t{8} << 20, std::byte{1});
            for (int i = 0; i < 3; ++i) {
                const auto w = s.write("k", big);
                if (w || (w.error().code() != errc::io_error && w.error().code() != errc::timeout)) return 2;
            }
            return 0;
        },
        30);
    CHECK(status != -SIGPIPE);
    CHECK(status == 0);
}

TEST_CASE("redis: two endpoints, one down: the other's keys keep working; placement is by rendezvous") {
    redis_server a;
    redis_server b;
    tierguard::clock::manual clock;
    auto s = manual_redis::open(config_for({a.unix_url(), b.unix_url()}), clock).value();
    auto reversed = manual_redis::open(config_for({b.unix_url(), a.unix_url()}), clock).value();
    std::vector<std::string> on_a;
    std::vector<std::string> on_b;
    for (int i = 0; i < 64; ++i) {
        const std::string name = "k/" + std::to_string(i);
        CHECK(s.endpoint_for(name) == reversed.endpoint_for(name));  // the order of the list does not matter
        (s.endpoint_for(name) == s.endpoints()[0].id ? on_a : on_b).push_back(name);
        REQUIRE(s.write(name, bytes_of("value of " + name)));
    }
    INFO(on_a.size() << " on a, " << on_b.size() << " on b");
    REQUIRE(on_a.size() >= 10);  // 64 keys: fewer than 10 on one side happens once in 10^8 runs
    REQUIRE(on_b.size() >= 10);
    CHECK(names_of(s.list().value()).size() == 64);
    CHECK(std::stoll(a.command({"DBSIZE"})) == static_cast<long long>(on_a.size()));

    b.kill();
    for (const auto& name : on_a) CHECK(text_of(s.read(name).value()) == "value of " + name);
    for (const auto& name : on_b) {
        const auto r = s.read(name);
        REQUIRE_FALSE(r);
        CHECK((r.error().code() == errc::io_error || r.error().code() == errc::circuit_open));
    }
    CHECK(errc_of(s.list()) != errc{});  // a listing needs every endpoint
    CHECK_FALSE(s.endpoints()[0].backing_off);
    CHECK(s.endpoints()[1].backing_off);

    b.start();
    clock.advance(10s);
    for (const auto& name : on_b) CHECK(errc_of(s.read(name)) == errc::miss);  // restarted empty
    for (const auto& name : on_a) CHECK(text_of(s.read(name).value()) == "value of " + name);
}

TEST_CASE("redis: threads share a bounded pool; every value read is one that was written") {
    redis_server server;
    auto s = redis::open({.endpoints = {server.unix_url()}, .command_timeout = 2000ms, .pool_size = 2}).value();
    std::atomic<int> wrong{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                const std::string name = "t" + std::to_string(t) + "/" + std::to_string(i % 8);
                const std::string value = name + "=" + std::to_string(i);
                if (!s.write(name, bytes_of(value))) ++failed;
                const auto r = s.read(name);
                if (!r) {
                    ++failed;
                } else if (text_of(*r) != value) {
                    ++wrong;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(wrong == 0);
    CHECK(failed == 0);
    CHECK(s.endpoints().front().open_connections <= 2);
    CHECK(std::stoll(server.command({"DBSIZE"})) == 32);
}

TEST_CASE("redis: a stored value over max_blob_size is refused by read with too_large") {
    redis_server server;
    auto s = redis::open({.endpoints = {server.unix_url()}, .max_blob_size = 4096}).value();
    REQUIRE(server.command({"SET", "tg:v1:big", std::string(4097, 'x')}) == "OK");
    const auto r = s.read("big");
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::too_large);
    CHECK(s.endpoints().front().consecutive_failures == 0);
}

TEST_CASE("redis: list reports sizes and last access, also under an LFU policy that keeps no idle time") {
    redis_server server;
    auto s = redis::open({.endpoints = {server.unix_url()}}).value();
    REQUIRE(s.write("ab/one", bytes_of("1")));
    REQUIRE(s.write("ab/three", bytes_of("333")));
    const auto before = std::chrono::system_clock::now() - 1h;
    auto blobs = s.list().value();
    REQUIRE(blobs.size() == 2);
    for (const auto& b : blobs) {
        CHECK(b.size == (b.name == "ab/one" ? 1u : 3u));
        CHECK(b.modified > before);
    }
    REQUIRE(server.command({"CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"}) == "OK");
    blobs = s.list().value();
    REQUIRE(blobs.size() == 2);
    CHECK(blobs[0].modified == sys_time{});
}

TEST_CASE("redis: list is bounded by list_limit") {
    redis_server server;
    auto s = redis::open({.endpoints = {server.unix_url()}, .list_limit = 5, .scan_count = 2}).value();
    for (int i = 0; i < 5; ++i) REQUIRE(s.write("k" + std::to_string(i), bytes_of("v")));
    CHECK(s.list().value().size() == 5);
    REQUIRE(s.write("k5", bytes_of("v")));
    const auto over = s.list();
    REQUIRE_FALSE(over);
    CHECK(over.error().code() == errc::too_large);
    CHECK(over.error().message().find("list_limit") != std::string::npos);
}
