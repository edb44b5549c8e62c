// Four threads send events through copies of one stderr_logger. Run under ThreadSanitizer
// in CI: a data race fails the run even where the totals below would not notice it.
#include "support/temp_stream.hpp"
#include "support/test_framework.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/listener/stderr_logger.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using tierguard::event_kind;
using manual = tierguard::clock::manual;
using logger = tierguard::listener::stderr_logger<manual>;

namespace {

constexpr int worker_count = 4;
constexpr int events_per_worker = 20000;

// Each worker sends events_per_worker events through its own copy, cycling through every
// kind; with `tick`, every 500th event moves the shared clock by 1 s.
void run(logger& l, manual clock, bool tick) {
    std::vector<std::thread> workers;
    for (int w = 0; w < worker_count; ++w) {
        workers.emplace_back([copy = l, clock, tick, w]() mutable {
            const tierguard::failure cause(tierguard::errc::io_error, tierguard::tier::disk, "worker failure");
            for (int i = 0; i < events_per_worker; ++i) {
                if (tick && i % 500 == 0) clock.advance(1s);
                const auto kind =
                    static_cast<event_kind>(static_cast<std::size_t>(i + w) % tierguard::event_kind_count);
                copy.on_event(
                    tierguard::event{kind, tierguard::tier::disk, "blobs/ab/cd", i % 2 == 0 ? &cause : nullptr});
            }
        });
    }
    for (auto& t : workers) t.join();
}

// The suppressed count a line reports, or 0.
std::uint64_t reported(std::string_view line) {
    const auto end = line.rfind(" similar events suppressed)");
    if (end == std::string_view::npos) return 0;
    const auto begin = line.rfind('(', end) + 1;
    return std::stoull(std::string(line.substr(begin, end - begin)));
}

}  // namespace

TEST_CASE("concurrency: stderr_logger counts every event as logged or suppressed") {
    constexpr std::uint64_t sent = std::uint64_t{worker_count} * events_per_worker;
    tierguard_test::temp_stream out;
    manual clock;

    SECTION("a still clock: each kind writes exactly burst lines") {
        logger l({.burst = 7, .interval = 10s, .stream = out.get()}, clock);
        run(l, clock, false);
        const auto s = l.snapshot();
        CHECK(s.total().logged + s.total().suppressed == sent);
        CHECK(s.total().logged == 7 * tierguard::event_kind_count);
        for (std::size_t k = 0; k < tierguard::event_kind_count; ++k) {
            CAPTURE(k);
            CHECK(s.per_kind[k].logged == 7);
        }
        const auto lines = out.lines();
        CHECK(lines.size() == s.total().logged);
        for (const auto& line : lines) {
            CHECK(line.rfind("tierguard: ", 0) == 0);
            CHECK(reported(line) == 0);
        }
    }
    SECTION("a moving clock: windows open and close while the threads race") {
        logger l({.burst = 5, .interval = 3s, .stream = out.get()}, clock);
        run(l, clock, true);
        const auto s = l.snapshot();
        CHECK(s.total().logged + s.total().suppressed == sent);
        CHECK(s.total().logged > 5 * tierguard::event_kind_count);  // more than one window
        const auto lines = out.lines();
        CHECK(lines.size() == s.total().logged);
        std::uint64_t reported_total = 0;
        for (const auto& line : lines) {
            CHECK(line.rfind("tierguard: ", 0) == 0);
            reported_total += reported(line);
        }
        CHECK(reported_total > 0);
        CHECK(reported_total <= s.total().suppressed);
    }
}
