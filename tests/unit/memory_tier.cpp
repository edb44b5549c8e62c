#include "support/allocation_counter.hpp"
#include "support/test_framework.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/memory_tier.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using tierguard::errc;

using tierguard_test::allocations;

namespace {

struct manual_policies : tierguard::memory_defaults {
    using clock = tierguard::clock::manual;
};
using string_tier = tierguard::memory_tier<std::string, std::string, manual_policies>;
static_assert(std::is_same_v<string_tier::eviction_type, tierguard::eviction::s3fifo>, "the default policy");

string_tier make_tier(tierguard::memory_config cfg, tierguard::clock::manual clock = tierguard::clock::manual{}) {
    return string_tier(cfg, clock);
}

// For the tests of least-recently-used order.
struct lru_policies : manual_policies {
    using eviction = tierguard::eviction::lru;
};
using lru_tier = tierguard::memory_tier<std::string, std::string, lru_policies>;

struct unit_policies : tierguard::memory_defaults {
    using weigher = tierguard::weigher::unit;
};
using counted_tier = tierguard::memory_tier<std::string, std::string, unit_policies>;

std::string numbered(const char* prefix, int i) { return prefix + std::to_string(i); }

}  // namespace

TEST_CASE("memory tier: put then get returns the value; an absent key is a plain miss") {
    auto tier = make_tier({.byte_budget = 1024, .shards = 1});
    REQUIRE(tier.put("alpha", "one"));
    const auto hit = tier.get("alpha");
    REQUIRE(hit);
    CHECK(*hit == "one");

    const auto miss = tier.get("beta");
    REQUIRE_FALSE(miss);
    CHECK(miss.error().code() == errc::miss);
    CHECK(miss.error().where() == tierguard::tier::memory);

    const auto stats = tier.stats();
    CHECK(stats.hits == 1);
    CHECK(stats.misses == 1);
    CHECK(stats.entries == 1);
    CHECK(stats.bytes == 5 + 3);
}

TEST_CASE("memory tier: put replaces the previous value and its weight") {
    auto tier = make_tier({.byte_budget = 1024, .shards = 1});
    REQUIRE(tier.put("k", "short"));
    REQUIRE(tier.put("k", "a much longer value"));
    CHECK(*tier.get("k") == "a much longer value");
    CHECK(tier.size() == 1);
    CHECK(tier.bytes() == 1 + 19);
}

TEST_CASE("memory tier: lookups by string_view and literal do not allocate") {
    auto tier = make_tier({.byte_budget = 1 << 20, .shards = 4});
    const std::string long_key(100, 'k');  // beyond any small-string buffer
    REQUIRE(tier.put(long_key, "v"));
    const std::string_view view = long_key;
    // A hit appends to the shard's LRU log, which reaches its steady capacity after a
    // few dozen hits; from then on a lookup allocates nothing.
    for (int i = 0; i < 100; ++i) REQUIRE(tier.get_with(view, [](const std::string&) {}));

    const std::size_t before = allocations;
    const bool found = tier.contains(view);
    const bool absent = tier.contains("not-there-at-all-and-longer-than-sso-buffers");
    const bool erased_absent = tier.erase(std::string_view("nope, also longer than any sso buffer"));
    const auto got = tier.get_with(view, [](const std::string& v) { return v.size(); });
    const std::size_t after = allocations;

    CHECK(found);
    CHECK_FALSE(absent);
    CHECK_FALSE(erased_absent);
    REQUIRE(got);
    CHECK(*got == 1);
    CHECK(after == before);
}

TEST_CASE("memory tier: keys of every length up to 40 bytes are found by std::string, string_view and literal") {
    // Short keys are hashed and compared inline in words (issue 18): each length class,
    // and keys that differ in one byte at any position, must stay distinct and findable.
    auto tier = make_tier({.byte_budget = 1 << 20, .shards = 4});
    std::vector<std::string> keys;
    for (std::size_t n = 0; n <= 40; ++n) {
        const std::string base(n, 'k');
        keys.push_back(base);
        for (std::size_t i = 0; i < n; ++i) {
            std::string other = base;
            other[i] = static_cast<char>(i % 2 == 0 ? '\0' : '\xff');
            keys.push_back(other);
        }
    }
    for (std::size_t i = 0; i < keys.size(); ++i) REQUIRE(tier.put(keys[i], std::to_string(i)));
    REQUIRE(tier.size() == keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        CHECK(*tier.get(keys[i]) == std::to_string(i));
        CHECK(*tier.get(std::string_view(keys[i])) == std::to_string(i));
        CHECK(tier.shard_of(keys[i]) == tier.shard_of(std::string_view(keys[i])));
    }
    CHECK(*tier.get("kkkkkkkkkkkk") == *tier.get(std::string(12, 'k')));
    CHECK(tier.get(std::string(41, 'k')).error().code() == errc::miss);
}

TEST_CASE("memory tier (lru): evicts the least recently used entry of a shard") {
    // Each entry weighs 3 bytes (key "kN" 2 + value 1): room for three.
    lru_tier tier({.byte_budget = 9, .shards = 1});
    REQUIRE(tier.put("k1", "a"));
    REQUIRE(tier.put("k2", "b"));
    REQUIRE(tier.put("k3", "c"));
    REQUIRE(tier.get("k1"));     // k1 becomes most recent; k2 is now the LRU
    CHECK(tier.contains("k2"));  // contains does not refresh
    REQUIRE(tier.put("k4", "d"));

    CHECK_FALSE(tier.contains("k2"));
    CHECK(tier.contains("k1"));
    CHECK(tier.contains("k3"));
    CHECK(tier.contains("k4"));
    CHECK(tier.eviction_order(0) == std::vector<std::string>{"k3", "k1", "k4"});
    CHECK(tier.stats().evictions == 1);
    CHECK(tier.bytes() <= 9);
}

TEST_CASE("memory tier (lru): another thread's get reaches the LRU order at once") {
    // Room for four 3-byte entries; k1 is the least recently used.
    lru_tier tier({.byte_budget = 12, .shards = 1});
    for (const char* k : {"k1", "k2", "k3", "k4"}) REQUIRE(tier.put(k, "v"));
    bool found = false;
    std::thread([&] { found = tier.get("k1").has_value(); }).join();
    REQUIRE(found);
    CHECK(tier.eviction_order(0) == std::vector<std::string>{"k2", "k3", "k4", "k1"});
    CHECK(tier.stats().hits == 1);
    REQUIRE(tier.put("k5", "v"));  // evicts k2, not k1
    CHECK(tier.contains("k1"));
    CHECK_FALSE(tier.contains("k2"));
}

TEST_CASE("memory tier (s3fifo): a scan of keys put once does not evict the entries that were read") {
    // Room for 100 entries; 50 hot keys, each read once, then 1000 keys that are only put.
    // LRU would keep the last 100 keys of the scan and lose every hot key.
    counted_tier tier({.byte_budget = 100, .shards = 1});
    for (int i = 0; i < 50; ++i) REQUIRE(tier.put(numbered("hot", i), "v"));
    for (int i = 0; i < 50; ++i) REQUIRE(tier.get(numbered("hot", i)));
    for (int i = 0; i < 1000; ++i) REQUIRE(tier.put(numbered("scan", i), "v"));
    int kept = 0;
    for (int i = 0; i < 50; ++i) kept += tier.contains(numbered("hot", i)) ? 1 : 0;
    CHECK(kept == 50);
    CHECK(tier.size() == 100);
    CHECK(tier.stats().evictions == 950);
}

TEST_CASE("memory tier (s3fifo): a put that replaces a value counts as a use of the key") {
    // As the scan test above, with the hot keys' values replaced instead of read.
    counted_tier tier({.byte_budget = 100, .shards = 1});
    for (int i = 0; i < 50; ++i) REQUIRE(tier.put(numbered("hot", i), "v1"));
    for (int i = 0; i < 50; ++i) REQUIRE(tier.put(numbered("hot", i), "v2"));
    for (int i = 0; i < 1000; ++i) REQUIRE(tier.put(numbered("scan", i), "v"));
    int kept = 0;
    for (int i = 0; i < 50; ++i) kept += tier.get(numbered("hot", i)) == std::string("v2") ? 1 : 0;
    CHECK(kept == 50);
}

TEST_CASE("memory tier (s3fifo): in the main FIFO, entries read more often stay longer") {
    // Room for 20. Ten keys read while new move to the main FIFO (their counts cleared)
    // when the tier first evicts; then five of them are read three times, five once
    // (last, so LRU would keep those). New keys, each read once, then push through:
    // the main FIFO's oldest entry goes round again while it has reads left.
    counted_tier tier({.byte_budget = 20, .shards = 1});
    for (int i = 0; i < 10; ++i) {
        REQUIRE(tier.put(numbered("a", i), "v"));
        REQUIRE(tier.get(numbered("a", i)));
    }
    for (int i = 0; i < 10; ++i) REQUIRE(tier.put(numbered("b", i), "v"));
    REQUIRE(tier.put("c", "v"));
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 5; ++i) REQUIRE(tier.get(numbered("a", i)));
    }
    for (int i = 5; i < 10; ++i) REQUIRE(tier.get(numbered("a", i)));
    const auto once_left = [&] {
        int n = 0;
        for (int i = 5; i < 10; ++i) n += tier.contains(numbered("a", i)) ? 1 : 0;
        return n;
    };
    int pushed = 0;
    for (; pushed < 1000 && once_left() != 0; ++pushed) {
        REQUIRE(tier.put(numbered("new", pushed), "v"));
        REQUIRE(tier.get(numbered("new", pushed)));
    }
    CHECK(once_left() == 0);
    for (int i = 0; i < 5; ++i) CHECK(tier.contains(numbered("a", i)));
}

TEST_CASE("memory tier (s3fifo): a key put again soon after its eviction is kept like a read one") {
    // Room for 10. "k" is evicted unread by ten newer keys, then put again: the ghost
    // queue remembers it, so it enters the main FIFO, and a scan that follows keeps it.
    counted_tier tier({.byte_budget = 10, .shards = 1});
    REQUIRE(tier.put("k", "v"));
    for (int i = 0; i < 10; ++i) REQUIRE(tier.put(numbered("new", i), "v"));
    REQUIRE_FALSE(tier.contains("k"));
    REQUIRE(tier.put("k", "again"));
    for (int i = 0; i < 100; ++i) REQUIRE(tier.put(numbered("scan", i), "v"));
    CHECK(tier.contains("k"));
    // A key evicted long ago (more evictions than the tier holds entries) is forgotten.
    REQUIRE_FALSE(tier.contains("new0"));
    REQUIRE(tier.put("new0", "v"));
    for (int i = 100; i < 200; ++i) REQUIRE(tier.put(numbered("scan", i), "v"));
    CHECK_FALSE(tier.contains("new0"));
}

TEST_CASE("memory tier: a thread that exits gives its read slot's number back") {
    std::size_t first = 0;
    std::size_t second = 0;
    std::thread([&] { first = tierguard::detail::thread_number(); }).join();
    std::thread([&] { second = tierguard::detail::thread_number(); }).join();
    CHECK(first == second);
    CHECK(first != tierguard::detail::thread_number());
}

TEST_CASE("memory tier: a put evicts as many entries as its weight needs") {
    auto tier = make_tier({.byte_budget = 10, .shards = 1});
    REQUIRE(tier.put("a", "1"));
    REQUIRE(tier.put("b", "2"));
    REQUIRE(tier.put("c", "3"));
    REQUIRE(tier.put("d", "45678901"));  // weighs 9: a, b and c must go
    CHECK(tier.size() == 1);
    CHECK(tier.stats().evictions == 3);
    CHECK(tier.bytes() == 9);
}

TEST_CASE("memory tier: the entry-count limit holds") {
    auto tier = make_tier({.byte_budget = 1 << 20, .max_entries = 3, .shards = 1});
    for (int i = 0; i < 10; ++i) REQUIRE(tier.put("k" + std::to_string(i), "v"));
    CHECK(tier.size() == 3);
    CHECK(tier.eviction_order(0) == std::vector<std::string>{"k7", "k8", "k9"});
    CHECK(tier.stats().evictions == 7);
}

TEST_CASE("memory tier: a value larger than a shard's budget is refused, not dropped silently") {
    auto tier = make_tier({.byte_budget = 64, .shards = 2});  // 32 bytes per shard
    REQUIRE(tier.put("k", "small"));
    const auto refused = tier.put("k", std::string(100, 'x'));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code() == errc::too_large);
    CHECK(refused.error().message().find("101 bytes") != std::string::npos);
    CHECK(*tier.get("k") == "small");  // the previous value survives
    CHECK(tier.stats().rejected == 1);
}

TEST_CASE("memory tier: default TTL, per-entry TTL and no_expiry, on an injected clock") {
    tierguard::clock::manual clock;
    auto tier = make_tier({.byte_budget = 1024, .shards = 2, .default_ttl = 10s}, clock);
    REQUIRE(tier.put("default", "d"));
    REQUIRE(tier.put("short", "s", 1s));
    REQUIRE(tier.put("forever", "f", tierguard::no_expiry));

    clock.advance(999ms);
    CHECK(tier.get("short"));
    clock.advance(1ms);  // exactly at expiry: expired
    const auto gone = tier.get("short");
    REQUIRE_FALSE(gone);
    CHECK(gone.error().code() == errc::expired);
    CHECK_FALSE(tier.contains("short"));

    clock.advance(9s);
    CHECK(tier.get("default").error().code() == errc::expired);
    clock.advance(std::chrono::hours(24 * 365 * 100));
    CHECK(*tier.get("forever") == "f");

    const auto stats = tier.stats();
    CHECK(stats.expirations == 2);
    CHECK(stats.misses == 2);
    CHECK(tier.size() == 1);
}

TEST_CASE("memory tier: contains reports an expired entry as absent before it is dropped") {
    tierguard::clock::manual clock;
    auto tier = make_tier({.byte_budget = 1024, .shards = 1}, clock);
    REQUIRE(tier.put("k", "v", 5s));
    clock.advance(5s);
    CHECK_FALSE(tier.contains("k"));
    CHECK(tier.size() == 1);           // dropped lazily ...
    CHECK(tier.purge_expired() == 1);  // ... or by a purge
    CHECK(tier.size() == 0);
    CHECK(tier.stats().expirations == 1);
}

TEST_CASE("memory tier: within the stale grace only get_with_stale sees an expired entry, marked stale") {
    tierguard::clock::manual clock;
    auto tier = make_tier({.byte_budget = 1024, .shards = 1, .stale_grace = 10s}, clock);
    REQUIRE(tier.put("k", "v", 5s));
    auto read = [&] {
        return tier.get_with_stale("k", [](const std::string& v, bool stale) {
            return tierguard::result<std::string>(v + (stale ? "/stale" : "/fresh"));
        });
    };
    CHECK(*read() == "v/fresh");
    clock.advance(5s);  // the TTL just passed: stale for the next 10 s
    CHECK(*read() == "v/stale");
    CHECK(tier.get("k").error().code() == errc::expired);
    CHECK(tier.get_with("k", [](const std::string&) {}).error().code() == errc::expired);
    CHECK_FALSE(tier.contains("k"));
    CHECK(tier.purge_expired() == 0);
    CHECK(tier.size() == 1);  // kept: a get of a stale entry does not drop it
    clock.advance(9s);
    CHECK(*read() == "v/stale");
    clock.advance(1s);  // TTL + grace passed: gone for every read
    CHECK(read().error().code() == errc::expired);
    CHECK(tier.size() == 0);

    const auto stats = tier.stats();
    CHECK(stats.hits == 1);    // the first read; a stale one is no hit (issue 17, trial 2)
    CHECK(stats.misses == 5);  // every read after the TTL passed, stale answers included
    CHECK(stats.expirations == 1);

    REQUIRE(tier.put("p", "v", 1s));
    clock.advance(11s);
    CHECK(tier.purge_expired() == 1);
}

TEST_CASE("memory tier: an expired entry's expiration is counted once, whichever way it leaves") {
    tierguard::clock::manual clock;
    // LRU, so that the entry read first is the one evicted first.
    lru_tier tier({.byte_budget = 1024, .max_entries = 2, .shards = 1, .stale_grace = 10s}, clock);
    auto stale_read = [&](const char* key) {
        return tier.get_with_stale(key, [](const std::string&, bool stale) { return tierguard::result<bool>(stale); });
    };
    auto expirations = [&] { return tier.stats().expirations; };

    // Read several times within the grace, dropped by a read after it.
    REQUIRE(tier.put("read", "v", 1s));
    clock.advance(2s);
    for (int i = 0; i < 3; ++i) {
        CHECK(*stale_read("read"));
        CHECK(tier.get("read").error().code() == errc::expired);
    }
    CHECK(expirations() == 0);
    clock.advance(10s);
    CHECK(tier.get("read").error().code() == errc::expired);
    CHECK(expirations() == 1);

    // Read within the grace, then evicted to make room: one expiration, no eviction.
    REQUIRE(tier.put("evicted", "v", 1s));
    clock.advance(2s);
    CHECK(*stale_read("evicted"));
    REQUIRE(tier.put("a", "v"));
    REQUIRE(tier.put("b", "v"));
    CHECK_FALSE(tier.contains("evicted"));
    CHECK(tier.size() == 2);
    CHECK(expirations() == 2);
    CHECK(tier.stats().evictions == 0);

    // Read within the grace, then replaced by a put: one expiration.
    REQUIRE(tier.erase("b"));
    REQUIRE(tier.put("replaced", "old", 1s));
    clock.advance(2s);
    CHECK(*stale_read("replaced"));
    REQUIRE(tier.put("replaced", "new"));
    CHECK(expirations() == 3);
    CHECK(*tier.get("replaced") == "new");

    // A fresh entry evicted is an eviction; erase and purge of nothing count nothing.
    REQUIRE(tier.put("c", "v"));
    CHECK(tier.purge_expired() == 0);
    const auto stats = tier.stats();
    CHECK(stats.evictions == 1);
    CHECK(stats.expirations == 3);
}

TEST_CASE("memory tier: a TTL of zero or less is refused; a huge TTL saturates instead of overflowing") {
    tierguard::clock::manual clock;
    auto tier = make_tier({.byte_budget = 1024, .shards = 1}, clock);
    const auto zero = tier.put("k", "v", 0s);
    REQUIRE_FALSE(zero);
    CHECK(zero.error().code() == errc::invalid_argument);
    CHECK(zero.error().message().find("no_expiry") != std::string::npos);
    CHECK(tier.put("k", "v", -1s).error().code() == errc::invalid_argument);
    CHECK_FALSE(tier.contains("k"));

    REQUIRE(tier.put("k", "v", std::chrono::nanoseconds::max() - 1ns));
    clock.advance(std::chrono::hours(24 * 365 * 200));
    CHECK(tier.contains("k"));
}

TEST_CASE("memory tier: bad configurations are refused with a message naming the setting") {
    using tierguard::memory_config;
    struct bad_case {
        memory_config cfg;
        std::string mentions;
    };
    const std::vector<bad_case> cases = {
        {{.byte_budget = 0}, "byte_budget"},
        {{.shards = 0}, "shards"},
        {{.shards = (1U << 16) + 1}, "shards"},
        {{.byte_budget = 8, .shards = 16}, "byte_budget"},
        {{.max_entries = 3, .shards = 4}, "max_entries"},
        {{.default_ttl = 0s}, "default_ttl"},
        {{.default_ttl = -5s}, "default_ttl"},
        {{.stale_grace = -1s}, "stale_grace"},
    };
    for (const auto& c : cases) {
        INFO("expected a complaint about " << c.mentions);
        const auto created = string_tier::create(c.cfg);
        REQUIRE_FALSE(created);
        CHECK(created.error().code() == errc::invalid_argument);
        CHECK(created.error().message().find(c.mentions) != std::string::npos);
        CHECK(created.error().message().rfind("[tierguard.invalid_argument]", 0) == 0);
        REQUIRE_THROWS_AS(string_tier(c.cfg), tierguard::bad_config);
    }
    CHECK(string_tier::create({.byte_budget = 16, .max_entries = 16, .shards = 16}));
}

TEST_CASE("memory tier: move-only values are stored, read through get_with and taken out") {
    tierguard::memory_tier<int, std::unique_ptr<int>> tier({.byte_budget = 1024, .shards = 2});
    REQUIRE(tier.put(1, std::make_unique<int>(41)));
    const auto read = tier.get_with(1, [](const std::unique_ptr<int>& p) { return *p + 1; });
    REQUIRE(read);
    CHECK(*read == 42);

    auto taken = tier.take(1);
    REQUIRE(taken);
    REQUIRE(*taken);
    CHECK(**taken == 41);
    CHECK_FALSE(tier.contains(1));
    CHECK(tier.take(1).error().code() == errc::miss);
}

namespace {
struct no_default {
    explicit no_default(int v) : value(v) {}
    int value;
};
}  // namespace

TEST_CASE("memory tier: values without a default constructor work") {
    tierguard::memory_tier<int, no_default> tier({.byte_budget = 1024, .shards = 1});
    REQUIRE(tier.put(7, no_default(70)));
    CHECK(tier.get(7)->value == 70);
    CHECK(tier.bytes() == sizeof(int) + sizeof(no_default));
}

namespace {
// A value whose move constructor may throw (it never does): stored out of line.
struct throwing_move {
    explicit throwing_move(int v) : value(v) {}
    throwing_move(const throwing_move&) = default;
    throwing_move(throwing_move&& other) noexcept(false) : value(other.value) {}
    int value;
};
}  // namespace

TEST_CASE("memory tier (lru): values whose moves may throw are stored, found, evicted and taken out") {
    struct lru_unit_policies : unit_policies {
        using eviction = tierguard::eviction::lru;
    };
    tierguard::memory_tier<int, throwing_move, lru_unit_policies> tier({.byte_budget = 300, .shards = 1});
    for (int i = 0; i < 1000; ++i) REQUIRE(tier.put(i, throwing_move(i)));  // grows, then evicts
    CHECK(tier.size() == 300);
    CHECK(tier.stats().evictions == 700);
    CHECK_FALSE(tier.contains(699));
    for (int i = 700; i < 1000; i += 2) REQUIRE(tier.get(i)->value == i);
    auto taken = tier.take(800);
    REQUIRE(taken);
    CHECK(taken->value == 800);
    CHECK(tier.erase(900));
    const auto order = tier.eviction_order(0);
    REQUIRE(order.size() == 298);
    CHECK(order.front() == 701);  // never read since it was put
    CHECK(order.back() == 998);   // the last one read
}

TEST_CASE("memory tier: the unit weigher turns the byte budget into an entry budget") {
    counted_tier tier({.byte_budget = 2, .shards = 1});
    REQUIRE(tier.put("a", std::string(1000, 'x')));
    REQUIRE(tier.put("b", std::string(1000, 'y')));
    REQUIRE(tier.put("c", "z"));
    CHECK(tier.size() == 2);
    CHECK_FALSE(tier.contains("a"));
}

TEST_CASE("memory tier: erase and clear") {
    auto tier = make_tier({.byte_budget = 1024, .shards = 4});
    for (int i = 0; i < 20; ++i) REQUIRE(tier.put("k" + std::to_string(i), "v"));
    CHECK(tier.erase("k3"));
    CHECK_FALSE(tier.erase("k3"));
    CHECK(tier.size() == 19);
    tier.clear();
    CHECK(tier.size() == 0);
    CHECK(tier.bytes() == 0);
    REQUIRE(tier.put("k3", "again"));
    CHECK(*tier.get("k3") == "again");
}

TEST_CASE("memory tier: shrinking the byte budget evicts until it holds; growing allows more") {
    auto tier = make_tier({.byte_budget = 100, .shards = 1});
    for (int i = 0; i < 10; ++i) REQUIRE(tier.put("k" + std::to_string(i), "vvvvvvvv"));  // 10 bytes each
    CHECK(tier.size() == 10);
    REQUIRE(tier.set_byte_budget(50));
    CHECK(tier.bytes() <= 50);
    CHECK(tier.size() == 5);
    CHECK(tier.eviction_order(0).front() == "k5");  // the oldest were evicted
    REQUIRE(tier.set_byte_budget(200));
    for (int i = 10; i < 20; ++i) REQUIRE(tier.put("k" + std::to_string(i), "vvvvvvvv"));  // 11 bytes each
    CHECK(tier.size() == 15);
    CHECK(tier.stats().evictions == 5);
    CHECK(tier.set_byte_budget(0).error().code() == errc::invalid_argument);
}

TEST_CASE("memory tier: many inserts and erases keep every key reachable (index growth and deletion)") {
    auto tier = make_tier({.byte_budget = 1 << 24, .shards = 3});
    for (int i = 0; i < 5000; ++i) REQUIRE(tier.put("key" + std::to_string(i), std::to_string(i)));
    for (int i = 0; i < 5000; i += 3) REQUIRE(tier.erase("key" + std::to_string(i)));
    for (int i = 0; i < 5000; ++i) {
        const auto got = tier.get("key" + std::to_string(i));
        if (i % 3 == 0) {
            REQUIRE_FALSE(got);
        } else {
            REQUIRE(got);
            REQUIRE(*got == std::to_string(i));
        }
    }
    CHECK(tier.size() == 5000 - 1667);
}
