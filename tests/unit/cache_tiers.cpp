// The composed cache over several storage tiers (issue 15): memory -> disk -> remote,
// with the remote played by a memory storage (no server) and faults scripted per tier.
#include "support/scripted_storage.hpp"
#include "support/shared_memory_storage.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/degradation/bypass.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using tierguard::breaker_state;
using tierguard::errc;
using tierguard::stored_in;
using tierguard::tier;

namespace {

// A view of a remote store that several caches (processes) share.
class remote_view : public tierguard_test::shared_memory_storage {
public:
    using shared_memory_storage::shared_memory_storage;
    static constexpr bool shared = true;
    remote_view() : shared_memory_storage(std::make_shared<tierguard::storage::memory_storage>()) {}
};

using scripted = tierguard_test::scripted_storage<tierguard::storage::memory_storage>;
using scripted_remote = tierguard_test::scripted_storage<remote_view>;
using script = scripted::script;

// Keeps every event's detail.
struct recording_listener {
    std::shared_ptr<std::vector<std::string>> details = std::make_shared<std::vector<std::string>>();
    void on_event(const tierguard::event& e) noexcept { details->emplace_back(e.detail); }
};

struct tier_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::tiers<scripted, scripted_remote>;
    using listener = recording_listener;
};

struct two_disk_policies : tier_policies {
    using storage = tierguard::tiers<scripted, scripted>;
};

struct bypass_tier_policies : tier_policies {
    using degradation = tierguard::degradation::bypass;
};

template <class Policies = tier_policies>
using cache_of = tierguard::cache<std::string, std::string, Policies>;

static_assert(cache_of<>::tier_count == 2);
static_assert(std::is_same_v<cache_of<>::storage_types, std::tuple<scripted, scripted_remote>>);
static_assert(!cache_of<>::disk_type_at<0>::shared && cache_of<>::disk_type_at<1>::shared);

// Every call of the tier fails with `code` while set.
void fail_all(script& s, errc code) {
    s = [code](tierguard_test::storage_op, std::string_view) -> std::optional<tierguard::failure> {
        return tierguard::failure(code, tier::disk, "injected");
    };
}

template <class Policies = tier_policies>
struct harness {
    tierguard::clock::manual clock;
    std::shared_ptr<script> disk_faults = std::make_shared<script>();
    std::shared_ptr<script> remote_faults = std::make_shared<script>();
    std::shared_ptr<tierguard::storage::memory_storage> remote = std::make_shared<tierguard::storage::memory_storage>();
    recording_listener listener;
    cache_of<Policies> cache;

    harness() : cache(open({})) {}
    // Another process: its own clock, memory and disk, the same remote store.
    explicit harness(const harness& other) : clock(other.clock), remote(other.remote), cache(open({})) {}

    cache_of<Policies> open(const typename cache_of<Policies>::config& cfg) {
        auto c = cache_of<Policies>::open(cfg,
                                          {scripted(tierguard::storage::memory_storage(), disk_faults),
                                           scripted_remote(remote_view(remote), remote_faults)},
                                          clock, listener);
        REQUIRE(c);
        return std::move(*c);
    }

    // The raw bytes the remote storage holds for `key`, if any.
    bool remote_holds(const std::string& key) {
        auto name = cache.template disk<1>().name_for(key);
        REQUIRE(name);
        return cache.template disk<1>().storage().inner().read(*name).has_value();
    }

    // Leaves `key` only in the remote tier.
    void forget_faster(const std::string& key) {
        cache.memory().erase(key);
        REQUIRE(cache.template disk<0>().erase(key));
    }
};

}  // namespace

TEST_CASE("cache tiers: a remote hit is promoted into the disk tier and memory with its remaining TTL",
          "[cache_tiers]") {
    harness h;
    auto put = h.cache.put("k", "v1", 100s);
    REQUIRE(put);
    CHECK(put->where == stored_in::memory_and_storage);
    CHECK(put->stored_in_tier(0));
    CHECK(put->stored_in_tier(1));
    CHECK(put->tier_failures.empty());
    h.forget_faster("k");

    h.clock.advance(40s);
    auto got = h.cache.get("k");
    REQUIRE(got);
    CHECK(got->value == "v1");
    CHECK(got->from == tier::remote);
    auto mt = h.cache.metrics();
    REQUIRE(mt.storage.size() == 2);
    CHECK(mt.storage[0].name == "disk");
    CHECK(mt.storage[1].name == "remote");
    CHECK(mt.storage[1].hits == 1);
    CHECK(mt.storage[0].promotions == 1);
    CHECK(mt.memory.promotions == 1);
    CHECK(h.cache.memory().contains("k"));
    auto on_disk = h.cache.disk<0>().find("k");
    REQUIRE(on_disk);
    CHECK(on_disk->value == "v1");

    // Both copies expire when the original does: 100 s after the put, not 100 s after the get.
    h.clock.advance(59s);
    CHECK(h.cache.memory().contains("k"));
    CHECK(h.cache.disk<0>().contains("k"));
    h.clock.advance(2s);
    CHECK_FALSE(h.cache.memory().contains("k"));
    CHECK_FALSE(h.cache.disk<0>().contains("k"));
    CHECK_FALSE(h.cache.get("k"));
}

TEST_CASE("cache tiers: a put the remote tier missed keeps its older copy from being served, and removes it later",
          "[cache_tiers]") {
    harness h;
    REQUIRE(h.cache.put("k", "v1"));
    fail_all(*h.remote_faults, errc::io_error);
    auto put = h.cache.put("k", "v2");
    REQUIRE(put);
    CHECK(put->where == stored_in::memory_and_storage);
    CHECK(put->stored_in_tier(0));
    CHECK_FALSE(put->stored_in_tier(1));
    REQUIRE(put->tier_failures.size() == 1);
    CHECK(put->tier_failures[0].index == 1);
    CHECK(put->tier_failures[0].why.code() == errc::io_error);
    REQUIRE(put->skipped);
    CHECK(put->skipped->code() == errc::io_error);
    CHECK(h.cache.metrics().storage[1].pending_erasures == 1);
    CHECK(h.cache.metrics().storage[0].pending_erasures == 0);

    *h.remote_faults = nullptr;
    CHECK(h.remote_holds("k"));  // v1's bytes: the failed write could not remove them either
    h.forget_faster("k");
    auto got = h.cache.get("k");
    REQUIRE_FALSE(got);  // never v1
    CHECK(got.error().code() == errc::miss);
    CHECK_FALSE(h.remote_holds("k"));
    CHECK(h.cache.metrics().pending_erasures == 0);
}

TEST_CASE("cache tiers: copies superseded while the remote breaker was open are removed when it closes",
          "[cache_tiers]") {
    harness h;
    REQUIRE(h.cache.put("k", "v1"));
    h.cache.breaker<1>().force_open();
    auto put = h.cache.put("k", "v2");
    REQUIRE(put);
    REQUIRE(put->tier_failures.size() == 1);
    CHECK(put->tier_failures[0].why.code() == errc::circuit_open);
    CHECK(h.cache.degraded());
    CHECK(h.remote_holds("k"));
    CHECK(h.cache.metrics().storage[1].pending_erasures == 1);
    const auto& details = *h.listener.details;
    CHECK(std::find(details.begin(), details.end(), "remote: closed -> open") != details.end());

    h.cache.breaker<1>().force_closed();
    (void)h.cache.health();  // follows the breaker out of degraded mode, which flushes
    CHECK_FALSE(h.cache.degraded());
    CHECK_FALSE(h.remote_holds("k"));
    CHECK(h.cache.metrics().storage[1].pending_erasures == 0);
    h.forget_faster("k");
    CHECK_FALSE(h.cache.get("k"));
}

TEST_CASE("cache tiers: one tier's breaker open, the other tiers serve", "[cache_tiers]") {
    harness h;
    REQUIRE(h.cache.put("k", "v"));

    SECTION("disk open: the remote answers, the promotion into the disk is skipped and counted") {
        h.cache.breaker<0>().force_open();
        h.cache.memory().erase("k");
        auto got = h.cache.get("k");
        REQUIRE(got);
        CHECK(got->value == "v");
        const auto mt = h.cache.metrics();
        CHECK(mt.storage[0].errors_of(errc::circuit_open) == 1);
        CHECK(mt.storage[0].promotions_skipped == 1);
        CHECK(mt.storage[0].promotions == 0);
        CHECK(mt.storage[1].hits == 1);
        CHECK(mt.memory.promotions == 1);
        CHECK(mt.degraded);
        const auto report = h.cache.health();
        REQUIRE(report.tiers.size() == 3);
        CHECK(report.tiers[1].name == "disk");
        CHECK(report.tiers[1].breaker == breaker_state::open);
        CHECK(report.tiers[2].breaker == breaker_state::closed);
        CHECK(report.status == tierguard::health_status::degraded);
    }
    SECTION("remote failing: the disk answers; a miss everywhere names the remote's failure") {
        fail_all(*h.remote_faults, errc::io_error);
        h.cache.memory().erase("k");
        auto got = h.cache.get("k");
        REQUIRE(got);
        CHECK(got->value == "v");
        REQUIRE(h.cache.erase("k"));  // the remote's copy becomes a pending erasure
        auto missed = h.cache.get("k");
        REQUIRE_FALSE(missed);
        CHECK(missed.error().code() == errc::io_error);  // the first failure other than a miss
    }
}

TEST_CASE("cache tiers: bypass refuses writes while any storage tier is down", "[cache_tiers]") {
    harness<bypass_tier_policies> h;
    h.cache.breaker<1>().force_open();
    auto put = h.cache.put("k", "v");
    REQUIRE(put);
    CHECK(put->where == stored_in::nowhere);
    CHECK(h.cache.metrics().bypassed_puts == 1);
    CHECK_FALSE(h.cache.get("k"));
    CHECK(h.cache.metrics().bypassed_gets == 1);
}

TEST_CASE("cache tiers: every per-tier series carries the tier's name", "[cache_tiers]") {
    harness h;
    REQUIRE(h.cache.put("k", "v"));
    h.forget_faster("k");
    REQUIRE(h.cache.get("k"));
    const std::string text = h.cache.to_prometheus();
    CHECK(text.find("tierguard_hits_total{tier=\"remote\"} 1\n") != std::string::npos);
    CHECK(text.find("tierguard_hits_total{tier=\"disk\"} 0\n") != std::string::npos);
    CHECK(text.find("tierguard_promotions_total{tier=\"disk\"} 1\n") != std::string::npos);
    CHECK(text.find("tierguard_promotions_total{tier=\"memory\"} 1\n") != std::string::npos);
    CHECK(text.find("tierguard_promotions_skipped_total{tier=\"remote\"} 0\n") != std::string::npos);
    CHECK(text.find("tierguard_breaker_state{tier=\"remote\",state=\"closed\"} 1\n") != std::string::npos);
    CHECK(text.find("tierguard_pending_erasures{tier=\"disk\"} 0\n") != std::string::npos);
}

TEST_CASE("cache tiers: two tiers with one name are refused, naming them", "[cache_tiers]") {
    using two_disks = cache_of<two_disk_policies>;
    two_disks::config cfg;  // both tiers default to "disk"
    auto checked = two_disks::validate(cfg);
    REQUIRE_FALSE(checked);
    CHECK(checked.error().code() == errc::invalid_argument);
    CHECK(checked.error().message().find("tiers[0] and tiers[1] are both named \"disk\"") != std::string::npos);

    std::get<0>(cfg.tiers).name = "local";
    std::get<1>(cfg.tiers).name = "local";
    tierguard::clock::manual clock;
    auto opened = two_disks::open(
        cfg, {scripted(tierguard::storage::memory_storage()), scripted(tierguard::storage::memory_storage())}, clock);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().message().find("both named \"local\"") != std::string::npos);

    std::get<1>(cfg.tiers).name = "remote";
    std::get<1>(cfg.tiers).breaker.failure_threshold = 0;
    auto bad = two_disks::validate(cfg);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message().find("tiers[1] (\"remote\")") != std::string::npos);
}

TEST_CASE("cache tiers: a shared remote tier serves what another process put, with its TTL", "[cache_tiers]") {
    harness a;
    harness b(a);
    REQUIRE(a.cache.put("k", "from a", 100s));
    CHECK_FALSE(b.cache.contains("k"));  // the remote tier keeps no index: only a read can tell

    b.clock.advance(30s);
    auto got = b.cache.get("k");
    REQUIRE(got);
    CHECK(got->value == "from a");
    CHECK(got->from == tier::remote);
    auto on_disk = b.cache.disk<0>().find("k");  // promoted into b's own disk tier
    REQUIRE(on_disk);
    CHECK(on_disk->expiry == a.clock.now() - 30s + 100s);

    REQUIRE(a.cache.erase("k"));
    b.cache.memory().erase("k");
    REQUIRE(b.cache.disk<0>().erase("k"));
    CHECK_FALSE(b.cache.get("k"));  // the shared copy is gone for every process

    const auto mt = b.cache.metrics();
    CHECK(mt.storage[1].entries == 0);  // unknown for a shared store: documented as 0
    CHECK(mt.storage[1].which == tier::remote);
}

namespace {

// A shared store whose read runs a hook after it has read the bytes and before it returns
// them: the hook's put lands while the get's old value is on its way to the faster tiers.
class racing_remote {
public:
    static constexpr bool shared = true;
    std::shared_ptr<tierguard::storage::memory_storage> inner = std::make_shared<tierguard::storage::memory_storage>();
    std::shared_ptr<std::function<void()>> after_read = std::make_shared<std::function<void()>>();

    tierguard::result<std::vector<std::byte>> read(std::string_view name) {
        auto bytes = inner->read(name);
        if (auto hook = std::exchange(*after_read, nullptr)) hook();
        return bytes;
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return inner->write(name, bytes);
    }
    tierguard::result<void> remove(std::string_view name) { return inner->remove(name); }
    tierguard::result<std::vector<tierguard::blob_info>> list() { return inner->list(); }
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        return inner->quarantine(name, reason, now);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        return inner->clean(options);
    }
};

struct racing_policies : tier_policies {
    using storage = tierguard::tiers<tierguard::storage::memory_storage, racing_remote>;
};

}  // namespace

TEST_CASE("cache tiers: a promotion into a faster storage tier never outlives a put that raced with it",
          "[cache_tiers]") {
    using racing_cache = cache_of<racing_policies>;
    tierguard::clock::manual clock;
    racing_remote remote;
    auto opened = racing_cache::open({}, {tierguard::storage::memory_storage(), remote}, clock);
    REQUIRE(opened);
    racing_cache& c = *opened;
    REQUIRE(c.put("k", "old"));
    c.memory().erase("k");
    REQUIRE(c.disk<0>().erase("k"));

    *remote.after_read = [&] { REQUIRE(c.put("k", "new")); };
    auto got = c.get("k");  // read "old" from the remote, then the put of "new" completed
    REQUIRE(got);
    CHECK(got->value == "old");  // the get is ordered before the put

    auto in_memory = c.memory().get("k");
    REQUIRE(in_memory);
    CHECK(*in_memory == "new");
    auto on_disk = c.disk<0>().find("k");  // the promoted "old" was removed again, or never written
    CHECK((!on_disk || on_disk->value == "new"));
    c.memory().erase("k");
    auto later = c.get("k");
    REQUIRE(later);
    CHECK(later->value == "new");
}

TEST_CASE("cache tiers: a half-open breaker with pending erasures gets its trial though every get hits memory",
          "[cache_tiers]") {
    for (const bool by_health : {false, true}) {
        INFO("trial from " << (by_health ? "health()" : "a get that hits memory"));
        harness h;
        REQUIRE(h.cache.put("k", "v1"));
        auto& b = h.cache.breaker<1>();
        fail_all(*h.remote_faults, errc::io_error);
        for (int i = 0; i < 20 && b.state() != breaker_state::open; ++i)  // gets that reach the remote fail
            CHECK_FALSE(h.cache.get("absent-" + std::to_string(i)));
        REQUIRE(b.state() == breaker_state::open);
        *h.remote_faults = nullptr;
        REQUIRE(h.cache.put("k", "v2"));  // memory and disk; the remote keeps v1, pending
        REQUIRE(h.cache.metrics().storage[1].pending_erasures == 1);
        h.clock.advance(61s);  // past the default recovery time: half-open
        REQUIRE(b.state() == breaker_state::half_open);

        if (by_health) {
            CHECK(h.cache.health().status == tierguard::health_status::healthy);
        } else {
            auto got = h.cache.get("k");
            REQUIRE(got);
            CHECK(got->value == "v2");
            CHECK(got->from == tier::memory);
            CHECK(h.cache.health().status == tierguard::health_status::healthy);
        }
        CHECK(h.cache.metrics().pending_erasures == 0);
        CHECK(b.state() == breaker_state::closed);
        CHECK_FALSE(h.remote_holds("k"));
    }
}
