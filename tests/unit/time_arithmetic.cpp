// Issue 14, point 8: time arithmetic at the ends of the clock's range and before the
// epoch. Every tier, storage, breaker and listener runs under a manual clock set to
// min(), the epoch - 1 day, the epoch, a date +/- 10 years and max(); run under UBSan
// (the asan preset), any overflow fails the test.
#include "support/temp_dir.hpp"
#include "support/temp_stream.hpp"
#include "support/test_framework.hpp"

#include <tierguard/breaker/consecutive_failures.hpp>
#include <tierguard/breaker/rolling_window.hpp>
#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/listener/stderr_logger.hpp>
#include <tierguard/memory_tier.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using tierguard::breaker_state;
using tierguard::no_expiry;
using tierguard::detail::add_sat;
using tierguard::detail::sub_sat;
using manual = tierguard::clock::manual;
using time_point = std::chrono::system_clock::time_point;
namespace fs = std::filesystem;

namespace {

const time_point epoch{};
const time_point reference = std::chrono::sys_days(std::chrono::year(2026) / std::chrono::December / 7);

// The instants every test runs at, with a name for the failure message.
struct instant {
    const char* name;
    time_point at;
};
const std::vector<instant> instants{
    {"min", time_point::min()},
    {"epoch - 1 day", epoch - 24h},
    {"epoch", epoch},
    {"2026 - 10 years", reference - std::chrono::years{10}},
    {"2026 + 10 years", reference + std::chrono::years{10}},
    {"max", time_point::max()},
};

struct memory_policies : tierguard::memory_defaults {
    using clock = manual;
};
using memory_tier = tierguard::memory_tier<std::string, std::string, memory_policies>;

struct disk_policies : tierguard::disk_defaults {
    using clock = manual;
};
using posix_tier = tierguard::disk_tier<std::string, std::string, disk_policies>;

struct cache_policies : tierguard::cache_defaults {
    using clock = manual;
    using storage = tierguard::storage::memory_storage;
};
using cache = tierguard::cache<std::string, std::string, cache_policies>;

posix_tier open_posix(const fs::path& root, const manual& clock) {
    auto dir = tierguard::storage::posix_directory::open({.root = root});
    REQUIRE(dir);
    auto tier = posix_tier::open(std::move(*dir), {}, clock);
    REQUIRE(tier);
    return std::move(*tier);
}

template <class Tier>
bool hit(Tier& tier, const std::string& key) {
    const auto got = tier.get(key);
    return got.has_value();
}

// "ttl" (1 h) and "forever" (no_expiry), put at `at`, are both there at `at`; an hour later
// only "forever" is. At max() an hour later saturates to max(), which the clock never passes.
template <class Tier>
void check_an_hour_later(Tier& tier, manual& clock, time_point at) {
    clock.set(at);
    CHECK(hit(tier, "ttl"));
    CHECK(hit(tier, "forever"));
    clock.set(add_sat(at, 1h));
    CHECK(hit(tier, "ttl") == (at == time_point::max()));
    CHECK(hit(tier, "forever"));
}

}  // namespace

TEST_CASE("issue 14: the saturating helpers clamp at both ends instead of overflowing") {
    constexpr auto top = std::numeric_limits<std::int64_t>::max();
    constexpr auto bottom = std::numeric_limits<std::int64_t>::min();
    STATIC_REQUIRE(add_sat(top, std::int64_t{1}) == top);
    STATIC_REQUIRE(add_sat(bottom, std::int64_t{-1}) == bottom);
    STATIC_REQUIRE(sub_sat(bottom, std::int64_t{1}) == bottom);
    STATIC_REQUIRE(sub_sat(top, std::int64_t{-1}) == top);
    STATIC_REQUIRE(sub_sat(std::int64_t{0}, bottom) == top);
    STATIC_REQUIRE(add_sat(std::int64_t{40}, std::int64_t{2}) == 42);

    using tierguard::detail::ceil_sat;
    using ns = std::chrono::nanoseconds;
    CHECK(ceil_sat<ns>(std::chrono::seconds::max()) == ns::max());
    CHECK(ceil_sat<ns>(std::chrono::seconds::min()) == ns::min());
    CHECK(ceil_sat<ns>(std::chrono::seconds{3}) == 3s);
    CHECK(ceil_sat<std::chrono::seconds>(ns{1}) == 1s);
    CHECK(ceil_sat<ns>(std::chrono::duration<std::int32_t>::max()) == std::chrono::seconds{INT32_MAX});
    CHECK(ceil_sat<ns>(std::chrono::duration<std::int32_t, std::ratio<86400>>{300 * 366}) == ns::max());

    CHECK(add_sat(time_point::max(), 1h) == time_point::max());
    CHECK(sub_sat(time_point::min(), std::chrono::seconds::max()) == time_point::min());
    CHECK(sub_sat(time_point::max(), std::chrono::hours{24 * 7}) == time_point::max() - std::chrono::hours{24 * 7});
    CHECK(tierguard::detail::elapsed_sat(time_point::min(), time_point::max()) == ns::max());
    CHECK(tierguard::detail::elapsed_sat(time_point::max(), time_point::min()) == ns::min());

    CHECK(tierguard::detail::expiry_after(epoch - 24h, 1h) == epoch - 23h);
    CHECK(tierguard::detail::expiry_after(time_point::min(), 1h) == time_point::min() + 1h);
    CHECK(tierguard::detail::expiry_after(time_point::max() - 1min, 1h) == time_point::max());
    CHECK_FALSE(tierguard::detail::expired(time_point::max(), time_point::max()));
    CHECK(tierguard::detail::expired(epoch, epoch));
}

TEST_CASE("issue 14: quarantine stamps outside the clock's range parse clamped") {
    CHECK(tierguard::detail::parse_utc_stamp("99991231T235959Z") == time_point::max());
    CHECK(tierguard::detail::parse_utc_stamp("00000101T000000Z") == time_point::min());
    CHECK(tierguard::detail::parse_utc_stamp("20261207T000000Z") == reference);
}

TEST_CASE("issue 14: the memory tier expires a TTL entry an hour later and keeps no_expiry, at every instant") {
    for (const instant& when : instants) {
        INFO("clock at " << when.name);
        manual clock(when.at);
        memory_tier tier({.byte_budget = 1 << 16, .shards = 1}, clock);
        REQUIRE(tier.put("ttl", "v", 1h));
        REQUIRE(tier.put("forever", "v", no_expiry));
        check_an_hour_later(tier, clock, when.at);
        clock.set(time_point::max());
        CHECK(hit(tier, "forever"));
    }
}

TEST_CASE("issue 14: the disk tier keeps expiries before, at and after the epoch across a reopen") {
    for (const instant& when : instants) {
        INFO("clock at " << when.name);
        tierguard_test::temp_dir tmp;
        manual clock(when.at);
        {
            auto tier = open_posix(tmp.path() / "cache", clock);
            REQUIRE(tier.put("ttl", "v", 1h));
            REQUIRE(tier.put("forever", "v", no_expiry));
            CHECK(hit(tier, "ttl"));
            CHECK(hit(tier, "forever"));
        }
        {  // the expiry comes back from the frame
            auto tier = open_posix(tmp.path() / "cache", clock);
            check_an_hour_later(tier, clock, when.at);
        }
        clock.set(time_point::max());
        auto tier = open_posix(tmp.path() / "cache", clock);
        CHECK(hit(tier, "ttl") == (when.at == time_point::max()));
        CHECK(hit(tier, "forever"));
    }
}

TEST_CASE("issue 14: an entry put a day before the epoch with a 1 h TTL is not served years later") {
    tierguard_test::temp_dir tmp;
    manual clock(epoch - 24h);
    {
        auto tier = open_posix(tmp.path() / "cache", clock);
        REQUIRE(tier.put("k", "v", 1h));
        clock.set(reference);
        CHECK_FALSE(hit(tier, "k"));
    }
    clock.set(epoch - 24h);
    {
        auto tier = open_posix(tmp.path() / "cache", clock);
        REQUIRE(tier.put("k", "v", 1h));
    }
    clock.set(reference);
    auto tier = open_posix(tmp.path() / "cache", clock);
    CHECK_FALSE(hit(tier, "k"));
}

TEST_CASE("issue 14: an expiry at the epoch itself is not written as expiry_ns 0 (never)") {
    tierguard_test::temp_dir tmp;
    manual clock(epoch - 1h);
    {
        auto tier = open_posix(tmp.path() / "cache", clock);
        REQUIRE(tier.put("k", "v", 1h));  // expires at the epoch, to the nanosecond
    }
    clock.set(epoch - 1s);
    {
        auto tier = open_posix(tmp.path() / "cache", clock);
        CHECK(hit(tier, "k"));
    }
    clock.set(epoch);
    auto tier = open_posix(tmp.path() / "cache", clock);
    CHECK_FALSE(hit(tier, "k"));
}

TEST_CASE("issue 14: the cache serves and promotes disk entries at every instant") {
    for (const instant& when : instants) {
        INFO("clock at " << when.name);
        manual clock(when.at);
        auto opened = cache::open({}, tierguard::storage::memory_storage(), clock);
        REQUIRE(opened);
        cache& c = *opened;
        REQUIRE(c.put("forever", "v"));
        REQUIRE(c.put("ttl", "v", 1h));
        c.memory().clear();
        for (const char* key : {"forever", "ttl"}) {
            INFO(key);
            auto warm = c.get(key);
            REQUIRE(warm);
            CHECK(warm->from == tierguard::tier::disk);
            auto promoted = c.get(key);
            REQUIRE(promoted);
            CHECK(promoted->from == tierguard::tier::memory);
        }
        clock.set(add_sat(when.at, 1h));
        CHECK(c.get("ttl").has_value() == (when.at == time_point::max()));
        CHECK(c.get("forever").has_value());
        const auto m = c.metrics();
        CHECK(m.promotions == 2);
    }
}

TEST_CASE("issue 14: clean() at min() and max() purges by the quarantine's age without overflow") {
    tierguard_test::temp_dir tmp;
    auto dir = tierguard::storage::posix_directory::open({.root = tmp.path() / "cache"});
    REQUIRE(dir);
    tierguard::storage::memory_storage mem;
    auto quarantine_one = [&](auto& storage, time_point at) {
        const std::vector<std::byte> blob(8, std::byte{1});
        REQUIRE(storage.write("ab/cd/one", blob));
        REQUIRE(storage.quarantine("ab/cd/one", "test", at));
    };
    auto purged = [](auto& storage, time_point now, std::chrono::seconds max_age) {
        auto report = storage.clean({.now = now, .quarantine_max_age = max_age});
        REQUIRE(report);
        return report->quarantine_purged;
    };
    for (const instant& when : instants) {
        INFO("quarantined at " << when.name);
        quarantine_one(*dir, when.at);
        quarantine_one(mem, when.at);
        CHECK(purged(*dir, time_point::min(), 7 * 24h) == 0);
        CHECK(purged(mem, time_point::min(), 7 * 24h) == 0);
        CHECK(purged(*dir, time_point::min(), std::chrono::seconds::max()) == 0);
        CHECK(purged(mem, time_point::min(), std::chrono::seconds::max()) == 0);
        // max() - seconds::max() saturates to the epoch; everything but a stamp at max() is
        // older than max() - 7 days.
        const std::uint64_t before_epoch = when.at < epoch ? 1 : 0;
        CHECK(purged(*dir, time_point::max(), std::chrono::seconds::max()) == before_epoch);
        CHECK(purged(mem, time_point::max(), std::chrono::seconds::max()) == before_epoch);
        const std::uint64_t rest = when.at < epoch || when.at == time_point::max() ? 0 : 1;
        CHECK(purged(*dir, time_point::max(), 7 * 24h) == rest);
        CHECK(purged(mem, time_point::max(), 7 * 24h) == rest);
    }
}

TEMPLATE_TEST_CASE("issue 14: breakers open and recover at every instant", "",
                   tierguard::breaker::consecutive_failures<manual>, tierguard::breaker::rolling_window<manual>) {
    for (const instant& when : instants) {
        INFO("clock at " << when.name);
        manual clock(when.at);
        TestType b(typename TestType::config{}, clock);
        for (int i = 0; i < 1000 && b.state() == breaker_state::closed; ++i) {
            REQUIRE(b.allow());
            b.on_failure(tierguard::errc::io_error);
        }
        const auto opened = b.snapshot();
        CHECK(opened.time_in_state >= 0ns);
        CHECK(opened.until_half_open >= 0ns);
        if (when.at != time_point::max()) CHECK(opened.state == breaker_state::open);
        clock.set(add_sat(when.at, 1h));
        CHECK(b.state() == breaker_state::half_open);
        clock.set(time_point::max());
        const auto later = b.snapshot();
        CHECK(later.time_in_state >= 0ns);
        clock.set(time_point::min());  // a clock stepped back by the whole range
        CHECK(b.snapshot().until_half_open >= 0ns);
        (void)b.allow();
    }
}

TEST_CASE("issue 14: a rolling window of 1 ns buckets counts at both ends of the clock") {
    using rolling = tierguard::breaker::rolling_window<manual>;
    manual clock(time_point::min());
    rolling b({.minimum_calls = 4, .window = 4ns, .bucket = 1ns}, clock);
    for (const time_point at :
         {time_point::min(), time_point::min() + 1ns, time_point::max() - 1ns, time_point::max()}) {
        clock.set(at);
        b.reset();
        for (int i = 0; i < 3; ++i) {
            REQUIRE(b.allow());
            b.on_failure(tierguard::errc::io_error);
        }
        CHECK(b.snapshot().failures == 3);
        REQUIRE(b.allow());
        b.on_failure(tierguard::errc::io_error);  // the fourth call in the window trips it
        CHECK(b.state() != breaker_state::closed);
    }
}

TEST_CASE("issue 14: the stderr logger's rate window spans the whole clock range") {
    tierguard_test::temp_stream out;
    manual clock(time_point::min());
    tierguard::listener::stderr_logger<manual> log({.burst = 1, .interval = 10s, .stream = out.get()}, clock);
    const tierguard::event e{tierguard::event_kind::io_error, tierguard::tier::disk, "x", nullptr};
    log.on_event(e);
    log.on_event(e);  // suppressed: same window
    clock.set(time_point::max());
    log.on_event(e);
    CHECK(out.lines().size() == 2);
}
