// The event kinds and the stderr_logger listener, driven by a manual clock and writing to
// a tmpfile() that each test reads back: the rate limit is checked at exact instants, and
// no test sleeps.
#include "support/temp_dir.hpp"
#include "support/temp_stream.hpp"
#include "support/test_framework.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/listener/none.hpp>
#include <tierguard/listener/stderr_logger.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::event;
using tierguard::event_kind;
using tierguard::tier;
using manual = tierguard::clock::manual;
using logger = tierguard::listener::stderr_logger<manual>;

static_assert(tierguard::listener_policy<logger>);
static_assert(tierguard::listener_policy<tierguard::listener::stderr_logger<>>);
static_assert(tierguard::listener_policy<tierguard::listener::none>);
static_assert(std::is_same_v<tierguard::listener::stderr_logger<>::clock_type, tierguard::clock::steady>);
static_assert(std::is_nothrow_invocable_v<decltype(&logger::on_event), logger&, const event&>);

namespace {

// A listener whose on_event may throw does not model the concept.
struct throwing_listener {
    void on_event(const event&) {}
};
static_assert(!tierguard::listener_policy<throwing_listener>);

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

event make_event(event_kind kind, std::string_view detail = "blobs/ab/cd", const tierguard::failure* cause = nullptr) {
    return event{kind, tier::disk, detail, cause};
}

void send(logger& l, event_kind kind, int times) {
    for (int i = 0; i < times; ++i) l.on_event(make_event(kind));
}

std::size_t count_kind(const std::vector<std::string>& lines, event_kind kind) {
    const std::string prefix = "tierguard: " + std::string(to_string(kind)) + " in ";
    std::size_t n = 0;
    for (const auto& line : lines) n += starts_with(line, prefix) ? 1 : 0;
    return n;
}

}  // namespace

TEST_CASE("event_kind: every kind has its own name, and event_kind_count covers them all") {
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < tierguard::event_kind_count; ++i) {
        const auto name = to_string(static_cast<event_kind>(i));
        CAPTURE(i);
        CHECK(name != "unknown");
        CHECK(names.insert(name).second);
    }
    CHECK(to_string(static_cast<event_kind>(tierguard::event_kind_count)) == "unknown");
    CHECK(tierguard::event_kind_count == 15);
    CHECK(to_string(event_kind::scrub_done) == "scrub_done");
    CHECK(to_string(event_kind::breaker_state_changed) == "breaker_state_changed");
    CHECK(to_string(event_kind::degraded_entered) == "degraded_entered");
    CHECK(to_string(event_kind::degraded_left) == "degraded_left");
    CHECK(to_string(event_kind::probe_failed) == "probe_failed");
    CHECK(to_string(event_kind::storage_unavailable) == "storage_unavailable");
    CHECK(to_string(event_kind::storage_attached) == "storage_attached");
}

TEST_CASE("stderr_logger: the documented defaults") {
    const logger::config c;
    CHECK(c.burst == 5);
    CHECK(c.interval == 10s);
    CHECK(c.stream == stderr);
    CHECK(logger::validate(c));
    const logger l;
    CHECK(l.settings().stream == stderr);
    CHECK(l.snapshot().total().logged == 0);
    CHECK(l.snapshot().total().suppressed == 0);
}

TEST_CASE("stderr_logger: a burst of 100 events of one kind writes exactly `burst` lines") {
    tierguard_test::temp_stream out;
    manual clock;
    logger l({.burst = 5, .interval = 10s, .stream = out.get()}, clock);
    send(l, event_kind::io_error, 100);

    const auto lines = out.lines();
    CHECK(lines.size() == 5);
    for (const auto& line : lines) {
        CHECK(line == "tierguard: io_error in disk tier: blobs/ab/cd");
        CHECK_FALSE(contains(line, "suppressed"));
    }
    const auto s = l.snapshot();
    CHECK(s.of(event_kind::io_error).logged == 5);
    CHECK(s.of(event_kind::io_error).suppressed == 95);
    CHECK(s.total().logged == 5);
    CHECK(s.total().suppressed == 95);
}

TEST_CASE("stderr_logger: the first line after the window reports how many were suppressed") {
    tierguard_test::temp_stream out;
    manual clock;
    logger l({.burst = 5, .interval = 10s, .stream = out.get()}, clock);
    send(l, event_kind::io_error, 100);

    clock.advance(10s - 1ns);  // the window is still open
    send(l, event_kind::io_error, 1);
    CHECK(out.lines().size() == 5);
    CHECK(l.snapshot().of(event_kind::io_error).suppressed == 96);

    clock.advance(1ns);  // exactly `interval` after the window opened: a new window
    send(l, event_kind::io_error, 3);
    auto lines = out.lines();
    REQUIRE(lines.size() == 8);
    CHECK(lines[5] == "tierguard: io_error in disk tier: blobs/ab/cd (96 similar events suppressed)");
    CHECK(lines[6] == "tierguard: io_error in disk tier: blobs/ab/cd");  // reported once only
    CHECK(lines[7] == "tierguard: io_error in disk tier: blobs/ab/cd");

    // The new window opened at the first event after the old one: it too writes `burst` lines.
    send(l, event_kind::io_error, 10);
    CHECK(out.lines().size() == 10);
    clock.advance(1h);
    send(l, event_kind::io_error, 1);
    lines = out.lines();
    REQUIRE(lines.size() == 11);
    CHECK(ends_with(lines.back(), ": blobs/ab/cd (8 similar events suppressed)"));
    const auto s = l.snapshot().of(event_kind::io_error);
    CHECK(s.logged == 11);
    CHECK(s.suppressed == 104);
}

TEST_CASE("stderr_logger: a clock stepping back opens a new window rather than silencing the kind") {
    tierguard_test::temp_stream out;
    manual clock;
    logger l({.burst = 2, .interval = 10s, .stream = out.get()}, clock);
    send(l, event_kind::disk_full, 5);
    clock.advance(-1h);
    send(l, event_kind::disk_full, 1);
    const auto lines = out.lines();
    REQUIRE(lines.size() == 3);
    CHECK(ends_with(lines.back(), "(3 similar events suppressed)"));
}

TEST_CASE("stderr_logger: each kind is limited on its own") {
    tierguard_test::temp_stream out;
    manual clock;
    logger l({.burst = 3, .interval = 10s, .stream = out.get()}, clock);
    send(l, event_kind::io_error, 50);
    send(l, event_kind::corrupted, 2);
    send(l, event_kind::breaker_state_changed, 10);
    send(l, event_kind::io_error, 50);

    const auto lines = out.lines();
    CHECK(lines.size() == 3 + 2 + 3);
    CHECK(count_kind(lines, event_kind::io_error) == 3);
    CHECK(count_kind(lines, event_kind::corrupted) == 2);
    CHECK(count_kind(lines, event_kind::breaker_state_changed) == 3);
    const auto s = l.snapshot();
    CHECK(s.of(event_kind::io_error).suppressed == 97);
    CHECK(s.of(event_kind::corrupted).suppressed == 0);
    CHECK(s.of(event_kind::breaker_state_changed).suppressed == 7);
    CHECK(s.of(event_kind::probe_failed).logged == 0);

    // A full io_error window does not hold back the first corrupted event after it.
    clock.advance(5s);
    send(l, event_kind::corrupted, 1);
    CHECK(count_kind(out.lines(), event_kind::corrupted) == 3);
}

TEST_CASE("stderr_logger: copies share one limit and one set of counters") {
    tierguard_test::temp_stream out;
    manual clock;
    logger a({.burst = 5, .interval = 10s, .stream = out.get()}, clock);
    logger b = a;
    logger c({.burst = 1, .interval = 1s, .stream = stderr}, clock);
    c = b;
    logger d = std::move(c);  // a move copies: c keeps working
    send(a, event_kind::probe_failed, 2);
    send(b, event_kind::probe_failed, 2);
    send(c, event_kind::probe_failed, 2);
    send(d, event_kind::probe_failed, 2);
    CHECK(out.lines().size() == 5);
    for (const logger* l : {&a, &b, &c, &d}) {
        const auto s = l->snapshot().of(event_kind::probe_failed);
        CHECK(s.logged == 5);
        CHECK(s.suppressed == 3);
    }

    // An independently built logger has its own limit.
    logger e({.burst = 5, .interval = 10s, .stream = out.get()}, clock);
    send(e, event_kind::probe_failed, 1);
    CHECK(out.lines().size() == 6);
}

TEST_CASE("stderr_logger: a line holds the kind, the tier, the detail and the cause's message") {
    tierguard_test::temp_stream out;
    manual clock;
    logger l({.stream = out.get()}, clock);

    const tierguard::failure eio(errc::io_error, tier::disk, "read of blobs/ab/cd failed",
                                 std::error_code(EIO, std::generic_category()));
    l.on_event(make_event(event_kind::io_error, "blobs/ab/cd", &eio));
    const tierguard::failure probe(errc::corrupted, tier::disk);  // no context: the category's message
    l.on_event(event{event_kind::probe_failed, tier::disk, "probe of blobs/00/01", &probe});
    l.on_event(event{event_kind::breaker_state_changed, tier::disk, "closed -> open", nullptr});
    l.on_event(event{event_kind::degraded_entered, tier::memory, "", nullptr});

    const auto lines = out.lines();
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "tierguard: io_error in disk tier: blobs/ab/cd: " + eio.message());
    CHECK(contains(lines[0], "[tierguard.io_error] disk tier: read of blobs/ab/cd failed ("));
    CHECK(contains(lines[0], std::error_code(EIO, std::generic_category()).message()));
    CHECK(lines[1] == "tierguard: probe_failed in disk tier: probe of blobs/00/01: " + probe.message());
    CHECK(contains(lines[1], "cache entry corrupted"));
    CHECK(lines[2] == "tierguard: breaker_state_changed in disk tier: closed -> open");
    CHECK(lines[3] == "tierguard: degraded_entered in memory tier: ");
}

TEST_CASE("stderr_logger: a long or multi-line detail is cut and kept on one line") {
    tierguard_test::temp_stream out;
    manual clock;
    logger l({.burst = 1, .interval = 10s, .stream = out.get()}, clock);
    const std::string detail = "first line\nsecond line\r\t" + std::string(5000, 'x');
    const tierguard::failure cause(errc::io_error, tier::disk, std::string(5000, 'y') + "\nend");

    send(l, event_kind::io_error, 2);  // one suppressed, reported by the next window's line
    clock.advance(10s);
    l.on_event(make_event(event_kind::io_error, detail, &cause));

    const auto lines = out.lines();
    REQUIRE(lines.size() == 2);
    const std::string& line = lines[1];
    CHECK(line.size() < 1024);
    CHECK(starts_with(line, "tierguard: io_error in disk tier: first line second line  xxx"));
    CHECK(contains(line, "xxx...: [tierguard.io_error] disk tier: yyy"));
    CHECK(ends_with(line, "yyy... (1 similar events suppressed)"));
}

TEST_CASE("stderr_logger: validate refuses bad settings and names them; the constructor throws") {
    using cfg = logger::config;
    const std::vector<std::pair<cfg, std::string>> bad{
        {cfg{.burst = 0}, "config.burst"},
        {cfg{.interval = 0s}, "config.interval"},
        {cfg{.interval = -1s}, "config.interval"},
        {cfg{.stream = nullptr}, "config.stream"},
    };
    for (const auto& [c, name] : bad) {
        CAPTURE(name);
        const auto ok = logger::validate(c);
        REQUIRE_FALSE(ok);
        CHECK(ok.error().code() == errc::invalid_argument);
        CHECK(starts_with(ok.error().message(), "[tierguard.invalid_argument]"));
        CHECK(contains(ok.error().context(), "stderr_logger " + name));
        CHECK_THROWS_AS(logger(c, manual()), std::invalid_argument);
        try {
            logger refused(c, manual());
        } catch (const std::invalid_argument& e) {
            CHECK(contains(e.what(), name));
        }
    }
    CHECK(logger::validate({.burst = 1, .interval = 1ns}));
}

TEST_CASE("stderr_logger: as a disk tier's listener it logs the corrupted-file procedure") {
    struct policies : tierguard::disk_defaults {
        using clock = manual;
        using listener = logger;
    };
    using disk = tierguard::disk_tier<std::string, std::string, policies>;
    static_assert(std::is_same_v<disk::listener_type, logger>);

    tierguard_test::temp_dir tmp;
    tierguard_test::temp_stream out;
    manual clock;
    const logger l({.stream = out.get()}, clock);
    auto dir = tierguard::storage::posix_directory::open({.root = tmp.path() / "cache"});
    REQUIRE(dir);
    auto tier = disk::open(std::move(*dir), {}, clock, l);
    REQUIRE(tier);
    REQUIRE(tier->put("report", "quarterly numbers"));
    const auto name = tier->name_for("report");
    REQUIRE(name);
    { std::ofstream(tmp.path() / "cache" / *name, std::ios::trunc | std::ios::binary) << "corrupted data"; }
    REQUIRE_FALSE(tier->get("report"));

    const auto lines = out.lines();
    REQUIRE(lines.size() == 2);  // the default open reads no entry and logs nothing
    const std::string tail = " in disk tier: " + *name + ": [tierguard.corrupted] disk tier";
    CHECK(starts_with(lines[0], "tierguard: corrupted" + tail));
    CHECK(starts_with(lines[1], "tierguard: quarantined" + tail));
    CHECK(l.snapshot().total().logged == lines.size());  // the tier's copy shares the counters
}
