#include "support/scripted_storage.hpp"
#include "support/shared_memory_storage.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/breaker/rolling_window.hpp>
#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/degradation/bypass.hpp>
#include <tierguard/degradation/fail_fast.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using tierguard::breaker_state;
using tierguard::errc;
using tierguard::stored_in;
using tierguard::tier;

namespace {

struct recording_listener {
    std::shared_ptr<std::vector<tierguard::event_kind>> seen = std::make_shared<std::vector<tierguard::event_kind>>();
    std::shared_ptr<std::vector<std::string>> details = std::make_shared<std::vector<std::string>>();
    void on_event(const tierguard::event& e) noexcept {
        seen->push_back(e.kind);
        details->emplace_back(e.detail);
    }
    [[nodiscard]] std::size_t count(tierguard::event_kind k) const {
        return static_cast<std::size_t>(std::count(seen->begin(), seen->end(), k));
    }
    [[nodiscard]] std::size_t count_detail(std::string_view part) const {
        return static_cast<std::size_t>(std::count_if(
            details->begin(), details->end(), [&](const std::string& d) { return d.find(part) != std::string::npos; }));
    }
};

using scripted = tierguard_test::scripted_storage<tierguard::storage::memory_storage>;
using script = scripted::script;

struct test_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = scripted;
    using listener = recording_listener;
};

struct bypass_policies : test_policies {
    using degradation = tierguard::degradation::bypass;
};

struct fail_fast_policies : test_policies {
    using degradation = tierguard::degradation::fail_fast;
};

struct rolling_policies : test_policies {
    template <class Clock>
    using breaker = tierguard::breaker::rolling_window<Clock>;
};

struct memory_only_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::no_storage;
};

template <class Policies = test_policies>
using cache_of = tierguard::cache<std::string, std::string, Policies>;

// A storage whose faults a test switches on and off: every call fails with `code` while on.
struct fault_switch {
    std::shared_ptr<script> faults = std::make_shared<script>();
    void fail_all(errc code) {
        *faults = [code](tierguard_test::storage_op, std::string_view) -> std::optional<tierguard::failure> {
            return tierguard::failure(code, tier::disk, "injected");
        };
    }
    void heal() { *faults = nullptr; }
};

template <class Policies = test_policies>
struct harness {
    tierguard::clock::manual clock;
    fault_switch faults;
    recording_listener listener;
    cache_of<Policies> cache;

    explicit harness(typename cache_of<Policies>::config cfg = {}) : cache(open(cfg, clock, faults, listener)) {}

    static cache_of<Policies> open(typename cache_of<Policies>::config cfg, tierguard::clock::manual clock,
                                   fault_switch& faults, recording_listener listener) {
        auto c = cache_of<Policies>::open(cfg, scripted(tierguard::storage::memory_storage(), faults.faults), clock,
                                          listener);
        REQUIRE(c);
        return std::move(*c);
    }

    // Fails storage calls until the breaker opens (puts of keys no test reads).
    void trip() {
        faults.fail_all(errc::io_error);
        for (int i = 0; i < 20 && cache.breaker().state() == breaker_state::closed; ++i)
            (void)cache.put("trip-" + std::to_string(i), "t");
        REQUIRE(cache.breaker().state() == breaker_state::open);
    }

    // Heals the storage and passes the open period; the next puts probe and close the
    // breaker (a get of a key the disk never stored does not reach it).
    void recover() {
        faults.heal();
        clock.advance(cache.breaker().snapshot().open_period + 1s);
        for (int i = 0; i < 100 && cache.breaker().state() != breaker_state::closed; ++i)
            (void)cache.put("probe-" + std::to_string(i), "p");
        REQUIRE(cache.breaker().state() == breaker_state::closed);
    }
};

}  // namespace

TEST_CASE("cache: write-through put, then a disk hit promoted into memory") {
    harness h;
    auto stored = h.cache.put("k", "v");
    REQUIRE(stored);
    CHECK(stored->where == stored_in::memory_and_storage);
    CHECK_FALSE(stored->skipped);

    auto first = h.cache.get("k");
    REQUIRE(first);
    CHECK(first->value == "v");
    CHECK(first->from == tier::memory);

    h.cache.memory().clear();
    auto warm = h.cache.get("k");
    REQUIRE(warm);
    CHECK(warm->value == "v");
    CHECK(warm->from == tier::disk);
    auto promoted = h.cache.get("k");
    REQUIRE(promoted);
    CHECK(promoted->from == tier::memory);
    CHECK(h.cache.metrics().promotions == 1);
}

TEST_CASE("cache: promote_after = 3 copies a warm entry into memory on its third disk hit") {
    harness h({.promote_after = 3});
    REQUIRE(h.cache.put("k", "v"));
    h.cache.memory().clear();
    for (int i = 0; i < 3; ++i) {
        auto got = h.cache.get("k");
        REQUIRE(got);
        CHECK(got->from == tier::disk);
    }
    auto got = h.cache.get("k");
    REQUIRE(got);
    CHECK(got->from == tier::memory);
}

TEST_CASE("cache: a promoted copy keeps the disk entry's remaining TTL") {
    harness h;
    REQUIRE(h.cache.put("k", "v", 10s));
    h.cache.memory().clear();
    h.clock.advance(6s);
    REQUIRE(h.cache.get("k"));  // from disk, promoted with 4 s left
    h.clock.advance(5s);
    auto gone = h.cache.get("k");
    REQUIRE_FALSE(gone);
    CHECK(gone.error().is_miss());  // the disk's copy expired too: removed, a miss (issue 17)
    CHECK(h.cache.disk().stats().expirations == 1);
}

TEST_CASE("cache: miss, erase, clear, contains and per-entry TTL") {
    harness h({.default_ttl = 1h});
    auto miss = h.cache.get("nobody");
    REQUIRE_FALSE(miss);
    CHECK(miss.error().is_miss());

    REQUIRE(h.cache.put("a", "1"));
    REQUIRE(h.cache.put("b", "2", 5s));
    CHECK(h.cache.contains("a"));
    h.clock.advance(6s);
    CHECK_FALSE(h.cache.get("b"));
    CHECK_FALSE(h.cache.contains("b"));
    CHECK(h.cache.get("a"));

    auto erased = h.cache.erase("a");
    REQUIRE(erased);
    CHECK(*erased);
    CHECK_FALSE(h.cache.contains("a"));
    auto again = h.cache.erase("a");
    REQUIRE(again);
    CHECK_FALSE(*again);

    REQUIRE(h.cache.put("c", "3"));
    REQUIRE(h.cache.clear());
    CHECK_FALSE(h.cache.get("c"));
    CHECK(h.cache.disk().size() == 0);
}

TEST_CASE("cache: the memory tier works alone") {
    tierguard::clock::manual clock;
    auto c = cache_of<memory_only_policies>::open({.memory = {.byte_budget = 1 << 20, .shards = 4}}, clock);
    REQUIRE(c);
    auto stored = c->put("k", "v", 1s);
    REQUIRE(stored);
    CHECK(stored->where == stored_in::memory);
    auto got = c->get("k");
    REQUIRE(got);
    CHECK(got->from == tier::memory);
    clock.advance(2s);
    auto expired = c->get("k");
    REQUIRE_FALSE(expired);
    CHECK(expired.error().code() == errc::expired);
    CHECK(c->metrics().storage.empty());
    CHECK(c->health().status == tierguard::health_status::healthy);
}

TEST_CASE("cache: a bad configuration is refused naming the setting") {
    using cfg_t = cache_of<>::config;
    auto refused = [](cfg_t cfg, std::string_view names) {
        auto ok = cache_of<>::validate(cfg);
        REQUIRE_FALSE(ok);
        CHECK(ok.error().code() == errc::invalid_argument);
        CHECK_THAT(ok.error().message(), Catch::Matchers::Contains(std::string(names)));
    };
    cfg_t cfg;
    cfg.promote_after = 0;
    refused(cfg, "promote_after");
    cfg = {};
    cfg.stale_grace = -1s;
    refused(cfg, "stale_grace");
    cfg = {};
    cfg.default_ttl = 0s;
    refused(cfg, "default_ttl");
    cfg = {};
    cfg.memory.shards = 0;
    refused(cfg, "memory_config.shards");
    cfg = {};
    cfg.breaker.failure_threshold = 0;
    refused(cfg, "failure_threshold");
    cfg = {};
    cfg.degradation.budget_factor = 0.5;
    refused(cfg, "budget_factor");
    cfg = {};
    cfg.disk.byte_budget = 0;
    refused(cfg, "disk_config.byte_budget");
}

TEST_CASE("cache: I/O errors open the breaker; memory keeps serving; recovery closes it and disk hits return") {
    harness h;
    REQUIRE(h.cache.put("warm", "w"));
    REQUIRE(h.cache.put("hot", "h"));
    h.cache.memory().clear();
    REQUIRE(h.cache.get("hot"));  // promoted back into memory

    h.faults.fail_all(errc::io_error);
    auto failed = h.cache.get("warm");
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code() == errc::io_error);
    CHECK(failed.error().where() == tier::disk);
    h.trip();
    CHECK(h.cache.degraded());
    CHECK(h.listener.count(tierguard::event_kind::degraded_entered) == 1);
    CHECK(h.listener.count(tierguard::event_kind::breaker_state_changed) >= 1);

    auto hot = h.cache.get("hot");
    REQUIRE(hot);
    CHECK(hot->from == tier::memory);
    auto rejected = h.cache.get("warm");
    REQUIRE_FALSE(rejected);
    CHECK(rejected.error().code() == errc::circuit_open);

    auto during = h.cache.put("new", "n");
    REQUIRE(during);
    CHECK(during->where == stored_in::memory);
    REQUIRE(during->skipped);
    CHECK(during->skipped->code() == errc::circuit_open);

    h.recover();
    CHECK_FALSE(h.cache.degraded());
    CHECK(h.listener.count(tierguard::event_kind::degraded_left) == 1);
    h.cache.memory().clear();
    auto back = h.cache.get("warm");
    REQUIRE(back);
    CHECK(back->value == "w");
    CHECK(back->from == tier::disk);

    const auto mt = h.cache.metrics();
    REQUIRE(mt.storage.size() == 1);
    CHECK(mt.storage.front().breaker_opens >= 1);
    CHECK(mt.storage.front().errors_of(errc::io_error) >= 5);
    CHECK(mt.storage.front().errors_of(errc::circuit_open) >= 1);
    CHECK(mt.degraded_entered == 1);
    CHECK(mt.degraded_time > 0s);
}

TEST_CASE("cache: a write during an outage supersedes the disk copy, also after the memory copy is gone") {
    harness h;
    REQUIRE(h.cache.put("k", "old"));
    REQUIRE(h.cache.put("gone", "old"));
    h.trip();
    const auto tripped = h.cache.metrics().pending_erasures;  // the puts that tripped it
    auto during = h.cache.put("k", "new");
    REQUIRE(during);
    CHECK(during->where == stored_in::memory);
    REQUIRE(h.cache.erase("gone"));
    CHECK(h.cache.metrics().pending_erasures == tripped + 2);

    h.cache.memory().clear();  // the new value is evicted before the disk is back
    h.recover();
    CHECK(h.cache.metrics().pending_erasures == 0);
    auto k = h.cache.get("k");
    REQUIRE_FALSE(k);  // a miss, never the old value
    CHECK(k.error().is_miss());
    CHECK_FALSE(h.cache.get("gone"));
}

TEST_CASE("cache: a failed disk write keeps the older disk copy from being served") {
    harness h;
    REQUIRE(h.cache.put("k", "old"));
    *h.faults.faults = [](tierguard_test::storage_op op, std::string_view) -> std::optional<tierguard::failure> {
        if (op == tierguard_test::storage_op::write) return tierguard::failure(errc::disk_full, tier::disk, "injected");
        return std::nullopt;
    };
    auto stored = h.cache.put("k", "new");
    REQUIRE(stored);
    CHECK(stored->where == stored_in::memory);
    REQUIRE(stored->skipped);
    CHECK(stored->skipped->code() == errc::disk_full);
    h.faults.heal();
    h.cache.memory().clear();
    auto got = h.cache.get("k");
    REQUIRE_FALSE(got);
    CHECK(got.error().is_miss());
    CHECK_FALSE(h.cache.disk().contains("k"));  // the stale file was removed on the way
}

TEST_CASE("cache: a write the disk refused removes the superseded disk copy at once, so no restart revives it") {
    harness h;
    REQUIRE(h.cache.put("k", "old"));
    auto refuse = [&](bool removes_work) {
        *h.faults.faults = [removes_work](tierguard_test::storage_op op,
                                          std::string_view) -> std::optional<tierguard::failure> {
            if (op == tierguard_test::storage_op::write) return tierguard::failure(errc::disk_full, tier::disk, "full");
            if (op == tierguard_test::storage_op::remove && !removes_work)
                return tierguard::failure(errc::io_error, tier::disk, "injected");
            return std::nullopt;
        };
    };
    auto name = h.cache.disk().name_for("k");
    REQUIRE(name);
    auto on_disk = [&] { return h.cache.disk().storage().inner().read(*name).has_value(); };

    SECTION("a full disk still removes: the old copy is gone before the tier recovers") {
        refuse(true);
        auto stored = h.cache.put("k", "new");
        REQUIRE(stored);
        CHECK(stored->where == stored_in::memory);
        CHECK_FALSE(on_disk());
        CHECK(h.cache.metrics().pending_erasures == 0);
    }
    SECTION("a disk that cannot remove either keeps the key pending until it is back") {
        refuse(false);
        REQUIRE(h.cache.put("k", "new"));
        CHECK(on_disk());
        CHECK(h.cache.metrics().pending_erasures == 1);
        h.faults.heal();
        h.cache.memory().clear();
        CHECK(h.cache.get("k").error().is_miss());  // the pending erasure removes it on the way
        CHECK_FALSE(on_disk());
        CHECK(h.cache.metrics().pending_erasures == 0);
    }
    SECTION("a put of a key the disk never held leaves nothing pending") {
        refuse(true);
        REQUIRE(h.cache.put("fresh", "value"));
        CHECK(h.cache.metrics().pending_erasures == 0);
    }
}

TEST_CASE("cache: erasures the storage refused are applied at close, so a restart serves no superseded value") {
    // Issue 14 (found by realfault.shim.cache.posix_directory.mixed.pending_at_close): an
    // erase whose storage remove failed while the breaker stayed closed was retried only
    // when the breaker next closed after being open, and a clean close dropped it.
    using persistent = tierguard_test::scripted_storage<tierguard_test::shared_memory_storage>;
    struct persistent_policies : test_policies {
        using storage = persistent;
    };
    using persistent_cache = cache_of<persistent_policies>;
    auto backing = std::make_shared<tierguard::storage::memory_storage>();
    tierguard::clock::manual clock;
    fault_switch faults;
    recording_listener listener;
    auto open = [&] {
        return persistent_cache::open({}, persistent(tierguard_test::shared_memory_storage(backing), faults.faults),
                                      clock, listener);
    };
    auto fail_removes = [&] {
        *faults.faults = [](tierguard_test::storage_op op, std::string_view) -> std::optional<tierguard::failure> {
            if (op == tierguard_test::storage_op::remove)
                return tierguard::failure(errc::io_error, tier::disk, "injected");
            return std::nullopt;
        };
    };
    {
        auto c = open();
        REQUIRE(c);
        REQUIRE(c->put("erased", "old"));
        REQUIRE(c->put("kept", "value"));
    }
    auto restart_serves_no_erased_value = [&] {
        auto c = open();
        REQUIRE(c);
        CHECK(c->get("erased").error().is_miss());
        CHECK(c->get("kept")->value == "value");
    };
    SECTION("the storage removes again by the close") {
        {
            auto c = open();
            REQUIRE(c);
            fail_removes();
            REQUIRE(c->erase("erased"));
            REQUIRE(c->breaker().state() == breaker_state::closed);
            REQUIRE(c->metrics().pending_erasures == 1);
            faults.heal();
        }
        restart_serves_no_erased_value();
    }
    SECTION("a tier that was detached all along is opened at close to apply them") {
        {
            *faults.faults = [](tierguard_test::storage_op op, std::string_view) -> std::optional<tierguard::failure> {
                if (op == tierguard_test::storage_op::list)
                    return tierguard::failure(errc::io_error, tier::disk, "injected");
                return std::nullopt;
            };
            auto c = open();
            REQUIRE(c);
            REQUIRE_FALSE(c->attached());
            auto erased = c->erase("erased");
            REQUIRE(erased);
            CHECK_FALSE(*erased);  // only the storage held it
            REQUIRE(c->metrics().pending_erasures == 1);
            faults.heal();
        }
        restart_serves_no_erased_value();
    }
    SECTION("a copy that still cannot be removed at close costs the whole storage tier, never a stale read") {
        auto c = open();
        REQUIRE(c);
        fail_removes();
        REQUIRE(c->erase("erased"));
        auto failing_removes = std::make_shared<int>(1);  // the close's own erase fails, its clear() works
        *faults.faults = [failing_removes](tierguard_test::storage_op op,
                                           std::string_view) -> std::optional<tierguard::failure> {
            if (op == tierguard_test::storage_op::remove && (*failing_removes)-- > 0)
                return tierguard::failure(errc::io_error, tier::disk, "injected");
            return std::nullopt;
        };
        c = open();  // the move-assignment closes the first cache
        REQUIRE(c);
        CHECK(c->get("erased").error().is_miss());
        CHECK(c->get("kept").error().is_miss());
        CHECK(listener.count_detail("at close") == 0);
    }
    SECTION("a storage that can remove nothing at close is reported") {
        {
            auto c = open();
            REQUIRE(c);
            fail_removes();
            REQUIRE(c->erase("erased"));
        }
        CHECK(listener.count_detail("at close: 1 storage copies") == 1);
    }
}

TEST_CASE("cache: one corrupted entry is quarantined without tripping the breaker; a run of them trips it") {
    harness h({.breaker = {.failure_threshold = 2, .corruption_threshold = 3}});
    auto corrupt = [&](const std::string& key) {
        REQUIRE(h.cache.put(key, "value of " + key));
        auto name = h.cache.disk().name_for(key);
        REQUIRE(name);
        const std::string junk = "corrupted data";
        REQUIRE(h.cache.disk().storage().inner().write(*name, std::as_bytes(std::span(junk))));
        h.cache.memory().erase(key);
    };
    corrupt("c1");
    auto bad = h.cache.get("c1");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code() == errc::corrupted);
    CHECK(h.cache.breaker().state() == breaker_state::closed);
    CHECK(h.cache.metrics().storage.front().quarantined == 1);
    REQUIRE(h.cache.put("c1", "fresh"));
    h.cache.memory().clear();
    CHECK(h.cache.get("c1")->value == "fresh");

    for (const char* key : {"r1", "r2", "r3", "r4", "r5", "r6"}) corrupt(key);
    for (const char* key : {"r1", "r2", "r3", "r4"}) (void)h.cache.get(key);
    CHECK(h.cache.breaker().state() == breaker_state::open);
    // The repair runs while the breaker is open (before: refused with circuit_open) and
    // leaves the breaker to its own probes.
    auto scrubbed = h.cache.scrub();
    REQUIRE(scrubbed);
    CHECK(scrubbed->quarantined == 2);  // r5, r6
    CHECK(h.cache.breaker().state() == breaker_state::open);
}

TEST_CASE("cache: memory_only grows the memory budget while degraded and shrinks it on recovery (seed 001)") {
    harness h({.memory = {.byte_budget = 4096, .shards = 1}, .degradation = {.budget_factor = 2.0}});
    CHECK(h.cache.memory().byte_budget() == 4096);
    h.trip();
    CHECK(h.cache.memory().byte_budget() == 8192);
    const std::string value(100, 'x');
    for (int i = 0; i < 70; ++i) {
        auto stored = h.cache.put("m" + std::to_string(i), value);
        REQUIRE(stored);
        CHECK(stored->where == stored_in::memory);
    }
    CHECK(h.cache.memory().bytes() > 4096);
    CHECK(h.cache.memory().bytes() <= 8192);
    auto hit = h.cache.get("m69");
    REQUIRE(hit);
    CHECK(hit->from == tier::memory);

    h.recover();
    CHECK(h.cache.memory().byte_budget() == 4096);
    CHECK(h.cache.memory().bytes() <= 4096);
    CHECK(h.cache.get("m69"));  // the most recent entries survive the shrink
}

TEST_CASE("cache: bypass answers from no tier while the storage tier is down (seed 002's table)") {
    harness<bypass_policies> h;
    REQUIRE(h.cache.put("k", "v"));
    h.trip();
    CHECK(h.cache.health().status == tierguard::health_status::unhealthy);

    auto got = h.cache.get("k");  // in memory, but the cache steps aside
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::circuit_open);
    auto stored = h.cache.put("k2", "v2");
    REQUIRE(stored);
    CHECK(stored->where == stored_in::nowhere);
    auto erased = h.cache.erase("k");
    REQUIRE(erased);
    CHECK_FALSE(*erased);

    const auto mt = h.cache.metrics();
    CHECK(mt.bypassed_gets == 1);
    CHECK(mt.bypassed_puts == 1);
    CHECK(mt.bypassed_erases == 1);
    CHECK(h.cache.memory().bytes() > 0);

    h.recover();
    CHECK(h.cache.get("k")->value == "v");
    CHECK_FALSE(h.cache.get("k2"));
}

TEST_CASE("cache: fail_fast returns circuit_open and changes nothing while the storage tier is down") {
    harness<fail_fast_policies> h;
    REQUIRE(h.cache.put("k", "v"));
    h.trip();
    auto hit = h.cache.get("k");
    REQUIRE(hit);  // memory hits are still served
    CHECK(hit->from == tier::memory);
    auto miss = h.cache.get("other");
    REQUIRE_FALSE(miss);
    CHECK(miss.error().code() == errc::circuit_open);
    auto stored = h.cache.put("k", "v2");
    REQUIRE_FALSE(stored);
    CHECK(stored.error().code() == errc::circuit_open);
    auto erased = h.cache.erase("k");
    REQUIRE_FALSE(erased);
    CHECK(erased.error().code() == errc::circuit_open);
    CHECK(h.cache.get("k")->value == "v");
}

TEST_CASE("cache: the rolling-window breaker plugs in through the policies") {
    harness<rolling_policies> h;
    REQUIRE(h.cache.put("k", "v"));
    h.trip();
    CHECK(h.cache.degraded());
    h.recover();
    CHECK_FALSE(h.cache.degraded());
}

TEST_CASE("cache: health reports each tier, and a probe finds a storage that cannot write") {
    harness h;
    auto fine = h.cache.health(true);
    CHECK(fine.status == tierguard::health_status::healthy);
    REQUIRE(fine.tiers.size() == 2);
    CHECK(fine.tiers[1].which == tier::disk);
    CHECK(fine.tiers[1].probed);
    CHECK_FALSE(fine.tiers[1].probe_error);
    auto blobs = h.cache.disk().storage().inner().list();
    REQUIRE(blobs);
    CHECK(std::none_of(blobs->begin(), blobs->end(), [](const auto& b) { return b.name == "tierguard-probe"; }));

    h.faults.fail_all(errc::permission_denied);
    (void)h.cache.put("x", "y");
    auto probed = h.cache.health(true);
    CHECK(probed.status == tierguard::health_status::degraded);
    REQUIRE(probed.tiers[1].probe_error);
    CHECK(probed.tiers[1].probe_error->code() == errc::permission_denied);
    REQUIRE(probed.tiers[1].last_error);
    CHECK(probed.tiers[1].last_error->code() == errc::permission_denied);
    CHECK(h.listener.count(tierguard::event_kind::probe_failed) == 1);

    h.trip();
    CHECK(h.cache.health().status == tierguard::health_status::degraded);
}

TEST_CASE("cache: get_or_load calls the loader on a miss only, and stores what it returns") {
    harness h;
    int calls = 0;
    auto loader = [&](const std::string& key) {
        ++calls;
        return "loaded " + key;
    };
    auto first = h.cache.get_or_load("k", loader);
    REQUIRE(first);
    CHECK(first->value == "loaded k");
    CHECK(first->from == tier::loader);
    auto second = h.cache.get_or_load("k", loader);
    REQUIRE(second);
    CHECK(second->from == tier::memory);
    CHECK(calls == 1);
    CHECK(h.cache.disk().contains("k"));
    CHECK(h.cache.metrics().loads == 1);
}

TEST_CASE("cache: a loader's error or exception comes back as loader_failed carrying it") {
    harness h;
    auto from_result = h.cache.get_or_load("k", [](const std::string&) -> tierguard::result<std::string> {
        return tierguard::fail(errc::timeout, tier::none, "database did not answer");
    });
    REQUIRE_FALSE(from_result);
    CHECK(from_result.error().code() == errc::loader_failed);
    CHECK_THAT(from_result.error().message(), Catch::Matchers::Contains("database did not answer"));

    auto thrown = h.cache.get_or_load(
        "k", [](const std::string&) -> std::string { throw std::runtime_error("connection reset"); });
    REQUIRE_FALSE(thrown);
    CHECK(thrown.error().code() == errc::loader_failed);
    CHECK_THAT(thrown.error().message(), Catch::Matchers::Contains("connection reset"));
    CHECK(h.cache.metrics().load_failures == 2);
    CHECK_FALSE(h.cache.get("k"));
}

TEST_CASE("cache: stale-if-error serves an expired value within the grace period only") {
    harness h({.stale_grace = 30s});
    REQUIRE(h.cache.put("k", "v1", 10s));
    auto failing = [](const std::string&) -> tierguard::result<std::string> {
        return tierguard::fail(errc::io_error, tier::none, "backend down");
    };
    h.clock.advance(15s);           // expired 5 s ago
    CHECK_FALSE(h.cache.get("k"));  // a plain get never serves stale values
    auto stale = h.cache.get_or_load("k", failing);
    REQUIRE(stale);
    CHECK(stale->value == "v1");
    CHECK(stale->stale);
    CHECK(h.cache.metrics().stale_served == 1);

    auto refreshed = h.cache.get_or_load("k", [](const std::string&) { return std::string("v2"); });
    REQUIRE(refreshed);
    CHECK(refreshed->value == "v2");
    CHECK_FALSE(refreshed->stale);

    REQUIRE(h.cache.put("old", "x", 10s));
    h.clock.advance(41s);  // past TTL + grace
    auto too_old = h.cache.get_or_load("old", failing);
    REQUIRE_FALSE(too_old);
    CHECK(too_old.error().code() == errc::loader_failed);
}

// cache::contains promises an unexpired entry; memory used to count one kept only for
// stale-if-error.
TEST_CASE("cache: contains does not count an expired entry kept for stale-if-error") {
    harness h({.stale_grace = 30s});
    REQUIRE(h.cache.put("k", "v", 10s));
    CHECK(h.cache.contains("k"));
    h.clock.advance(15s);
    CHECK_FALSE(h.cache.contains("k"));
    auto stale = h.cache.get_or_load("k", [](const std::string&) -> tierguard::result<std::string> {
        return tierguard::fail(errc::io_error, tier::none, "backend down");
    });
    REQUIRE(stale);
    CHECK(stale->stale);
}

TEST_CASE("cache: metrics render as Prometheus text with HELP, TYPE, _total counters and histograms") {
    harness h;
    REQUIRE(h.cache.put("k", "v"));
    REQUIRE(h.cache.get("k"));
    (void)h.cache.get("missing");
    const std::string text = h.cache.to_prometheus();
    CHECK_THAT(text, Catch::Matchers::Contains("# TYPE tierguard_hits_total counter"));
    CHECK_THAT(text, Catch::Matchers::Contains("tierguard_hits_total{tier=\"memory\"} 1"));
    CHECK_THAT(text, Catch::Matchers::Contains("tierguard_misses_total{tier=\"disk\"} 1"));
    CHECK_THAT(text, Catch::Matchers::Contains("tierguard_breaker_state{tier=\"disk\",state=\"closed\"} 1"));
    CHECK_THAT(text, Catch::Matchers::Contains("# TYPE tierguard_put_latency_seconds histogram"));
    CHECK_THAT(text, Catch::Matchers::Contains("tierguard_put_latency_seconds_count 1"));
}

// Issue 18: a call on a closed cache fails before any tier is asked (tier::none), so no
// tier's errors_total has a code="closed" series (it stayed 0 for ever).
TEST_CASE("cache: errors_total has no code=\"closed\" series, before or after close()") {
    harness h;
    REQUIRE(h.cache.put("k", "v"));
    const std::string open_text = h.cache.to_prometheus();
    CHECK_THAT(open_text, Catch::Matchers::Contains("tierguard_errors_total{tier=\"disk\",code=\"circuit_open\"} 0"));
    CHECK_THAT(open_text, !Catch::Matchers::Contains("code=\"closed\""));
    h.cache.close();
    auto got = h.cache.get("k");
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::closed);
    CHECK(got.error().where() == tier::none);
    CHECK_THAT(h.cache.to_prometheus(), !Catch::Matchers::Contains("code=\"closed\""));
}

TEST_CASE("cache: one get_or_load miss counts one miss per tier, as a get does, and the loader's store no hit") {
    harness h;
    (void)h.cache.get("g");
    auto after_get = h.cache.metrics();
    CHECK(after_get.memory.misses == 1);
    REQUIRE(after_get.storage.size() == 1);
    CHECK(after_get.storage.front().misses == 1);
    for (int i = 0; i < 3; ++i)
        REQUIRE(h.cache.get_or_load("k" + std::to_string(i), [](const std::string&) { return std::string("v"); }));
    auto after_loads = h.cache.metrics();
    CHECK(after_loads.memory.misses == 4);
    CHECK(after_loads.storage.front().misses == 4);
    CHECK(after_loads.memory.hits == 0);
    CHECK(after_loads.loads == 3);
}

TEST_CASE("cache: get latency records every lookup a memory hit did not answer") {
    harness h;
    for (int i = 0; i < 10; ++i) (void)h.cache.get("miss-" + std::to_string(i));
    CHECK(h.cache.metrics().get_latency.count == 10);
    for (int i = 0; i < 10; ++i)
        REQUIRE(h.cache.get_or_load("load-" + std::to_string(i), [](const std::string&) { return std::string("v"); }));
    CHECK(h.cache.metrics().get_latency.count == 20);
    REQUIRE(h.cache.put("d", "v"));
    h.cache.memory().clear();
    REQUIRE(h.cache.get("d"));  // a disk hit
    CHECK(h.cache.metrics().get_latency.count == 21);

    tierguard::clock::manual clock;
    auto alone = cache_of<memory_only_policies>::open({.memory = {.byte_budget = 1 << 20, .shards = 4}}, clock);
    REQUIRE(alone);
    for (int i = 0; i < 5; ++i) (void)alone->get("miss-" + std::to_string(i));
    CHECK(alone->metrics().get_latency.count == 5);
}

TEST_CASE("cache: a probe's write that meets a full disk counts in disk_full") {
    harness h;
    const auto before = h.cache.metrics().storage.front().disk_full;
    h.faults.fail_all(errc::disk_full);
    auto probed = h.cache.health(true);
    CHECK(probed.status == tierguard::health_status::degraded);
    REQUIRE(probed.tiers[1].probe_error);
    CHECK(probed.tiers[1].probe_error->code() == errc::disk_full);
    CHECK(h.cache.metrics().storage.front().disk_full == before + 1);
}
