// Invalidation of related entries (issue 17): tags stored with entries (the frame's tags
// section), invalidate_tag() and invalidate_prefix() over memory and disk, across restarts.
#include "support/restartable_cache.hpp"
#include "support/scripted_storage.hpp"
#include "support/shared_memory_storage.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::tier;
namespace frame = tierguard::frame;

namespace {

using storage = tierguard_test::scripted_storage<tierguard_test::shared_memory_storage>;
using tierguard_test::storage_op;

struct tag_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = ::storage;
};
using cache_t = tierguard::cache<std::string, std::string, tag_policies>;

std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> out(s.size());
    std::transform(s.begin(), s.end(), out.begin(), [](char c) { return static_cast<std::byte>(c); });
    return out;
}

std::vector<std::byte> from_hex(std::string_view hex) {
    std::vector<std::byte> out;
    for (std::size_t i = 0; i + 1 < hex.size();) {
        if (hex[i] == ' ' || hex[i] == '\n') {
            ++i;
            continue;
        }
        out.push_back(static_cast<std::byte>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
        i += 2;
    }
    return out;
}

using harness = tierguard_test::restartable_cache<cache_t>;

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

}  // namespace

// docs/FORMAT.md's example, written by the encoder before tags existed: still read as it was.
TEST_CASE("frame: a frame without tags section (docs/FORMAT.md's example) still reads") {
    const auto old = from_hex(
        "54 47 46 52 01 00 00 00 01 00 00 00 07 00 00 00"
        "05 00 00 00 05 00 00 00 00 00 00 00 00 00 00 00"
        "75 73 65 72 3a 34 32 68 65 6c 6c 6f 48 23 8f d6");
    const auto d = frame::decode(old);
    REQUIRE(d);
    CHECK(d->key == bytes_of("user:42"));
    CHECK(d->payload == bytes_of("hello"));
    CHECK(d->tags.empty());
    CHECK_FALSE(d->head.tagged());
    std::vector<std::byte> again;
    REQUIRE(frame::encode(bytes_of("user:42"), bytes_of("hello"), 1, 0, 0, again));
    CHECK(again == old);  // no tags: byte for byte the old frame
}

TEST_CASE("frame: the tags section (docs/FORMAT.md's tagged example)") {
    const std::vector<std::string> tags{"user:42", "list"};
    std::vector<std::byte> out;
    REQUIRE(frame::encode(bytes_of("user:42"), bytes_of("hello"), 1, 0, 0, out, frame::limits{}, tags));
    const auto fixture = from_hex(
        "54 47 46 52 01 00 04 00 01 00 00 00 07 00 00 00"
        "05 00 00 00 05 00 00 00 00 00 00 00 00 00 00 00"
        "75 73 65 72 3a 34 32 0f 00 00 00 07 00 75 73 65"
        "72 3a 34 32 04 00 6c 69 73 74 68 65 6c 6c 6f f0"
        "0e 4b 0d");
    CHECK(out == fixture);
    const auto d = frame::decode(fixture);
    REQUIRE(d);
    CHECK(d->tags == tags);
    CHECK(d->payload == bytes_of("hello"));
    CHECK(d->head.total_size() == fixture.size());

    SECTION("compressed payloads keep their tags") {
        const std::string big(1000, 'a');
        REQUIRE(frame::encode(bytes_of("k"), bytes_of(big), 1, 0, 6, out, frame::limits{}, tags));
        const auto z = frame::decode(out);
        REQUIRE(z);
        CHECK(z->head.compressed());
        CHECK(z->tags == tags);
        CHECK(z->payload == bytes_of(big));
    }
    SECTION("a damaged tags section is corrupted, with what was wrong") {
        auto bad = fixture;
        bad[43] = std::byte{0x40};  // the first tag's length: runs past the section
        // Recompute the CRC so that the tags check itself is reached.
        const std::size_t crc_at = bad.size() - 4;
        const auto crc = frame::checksum(std::span(bad).first(crc_at));
        for (int i = 0; i < 4; ++i) bad[crc_at + i] = static_cast<std::byte>(crc >> (8 * i));
        const auto d2 = frame::decode(bad);
        REQUIRE_FALSE(d2);
        CHECK(d2.error().code() == errc::corrupted);
        CHECK(d2.error().context().find("runs past the tags section") != std::string::npos);
    }
    SECTION("a tags length past the end of the frame is corrupted") {
        auto cut = fixture;
        cut[35] = std::byte{0x7f};
        const auto d3 = frame::decode(cut);
        REQUIRE_FALSE(d3);
        CHECK(d3.error().code() == errc::corrupted);
    }
    SECTION("a tags flag with an empty section is corrupted (the encoder never writes one)") {
        auto empty = from_hex(
            "54 47 46 52 01 00 04 00 01 00 00 00 07 00 00 00"
            "05 00 00 00 05 00 00 00 00 00 00 00 00 00 00 00"
            "75 73 65 72 3a 34 32 00 00 00 00 68 65 6c 6c 6f 00 00 00 00");
        const std::size_t crc_at = empty.size() - 4;
        const auto crc = frame::checksum(std::span(empty).first(crc_at));
        for (int i = 0; i < 4; ++i) empty[crc_at + i] = static_cast<std::byte>(crc >> (8 * i));
        const auto d4 = frame::decode(empty);
        REQUIRE_FALSE(d4);
        CHECK(d4.error().context().find("tags section is empty") != std::string::npos);
    }
    SECTION("empty tags are refused at encode") {
        const std::vector<std::string> empty{""};
        const auto e = frame::encode(bytes_of("k"), bytes_of("v"), 1, 0, 0, out, frame::limits{}, empty);
        REQUIRE_FALSE(e);
        CHECK(e.error().code() == errc::invalid_argument);
    }
}

TEST_CASE("cache: invalidate_tag removes the tagged entries from memory and disk, and only them") {
    harness h;
    auto cache = h.open();
    REQUIRE(cache.put("user:42:profile", "p", {.ttl = 1h, .tags = {"user:42", "profiles"}}));
    REQUIRE(cache.put("user:42:roles", "r", {.tags = {"user:42"}}));
    REQUIRE(cache.put("user:7:profile", "q", {.tags = {"user:7", "profiles"}}));
    REQUIRE(cache.put("plain", "x"));

    const auto removed = cache.invalidate_tag("user:42");
    REQUIRE(removed);
    CHECK(*removed == 2);
    CHECK_FALSE(cache.contains("user:42:profile"));
    CHECK_FALSE(cache.contains("user:42:roles"));
    CHECK_FALSE(cache.disk().contains("user:42:roles"));
    CHECK(cache.get("user:7:profile"));
    CHECK(cache.get("plain"));
    CHECK(*cache.invalidate_tag("user:42") == 0);

    CHECK(*cache.invalidate_tag("profiles") == 1);
    CHECK_FALSE(cache.contains("user:7:profile"));
    const auto mt = cache.metrics();
    CHECK(mt.invalidations_by_tag == 3);
    CHECK(mt.invalidated_entries == 3);
    CHECK(cache.to_prometheus().find("tierguard_invalidated_entries_total 3") != std::string::npos);
}

TEST_CASE("cache: a key put again without the tag is not invalidated by it") {
    harness h;
    auto cache = h.open();
    REQUIRE(cache.put("a", "1", {.tags = {"t"}}));
    REQUIRE(cache.put("a", "2"));
    REQUIRE(cache.put("b", "1", {.tags = {"t"}}));
    REQUIRE(cache.put("b", "2", {.tags = {"u"}}));
    CHECK(*cache.invalidate_tag("t") == 0);
    CHECK(cache.get("a")->value == "2");
    CHECK(cache.get("b")->value == "2");
    CHECK(*cache.invalidate_tag("u") == 1);
}

TEST_CASE("cache: tags survive a restart; the disk tier rebuilds its tag index at open") {
    const bool scrub = GENERATE(true, false);
    INFO("scrub_on_open = " << scrub);
    harness h;
    {
        auto cache = h.open();
        REQUIRE(cache.put("user:42:profile", "p", {.tags = {"user:42"}}));
        REQUIRE(cache.put("user:42:orders", "o", {.tags = {"user:42", "orders"}}));
        REQUIRE(cache.put("user:7:profile", "q", {.tags = {"user:7"}}));
    }
    cache_t::config cfg;
    cfg.disk.scrub_on_open = scrub;
    auto cache = h.open(cfg);
    REQUIRE(cache.get("user:42:profile"));  // now also in memory
    CHECK(*cache.invalidate_tag("user:42") == 2);
    CHECK_FALSE(cache.get("user:42:profile"));
    CHECK_FALSE(cache.get("user:42:orders"));
    CHECK(cache.get("user:7:profile"));
    CHECK(*cache.invalidate_tag("orders") == 0);
}

TEST_CASE("cache: invalidate_prefix removes the keys under a prefix from memory and disk") {
    harness h;
    {
        auto cache = h.open();
        for (const char* k : {"user:list:1", "user:list:2", "user:lis", "user:other", "zzz"})
            REQUIRE(cache.put(k, "v"));
    }
    auto cache = h.open();
    REQUIRE(cache.put("user:list:3", "v"));           // memory and disk
    REQUIRE(cache.memory().put("user:list:4", "v"));  // memory only
    const auto removed = cache.invalidate_prefix("user:list:");
    REQUIRE(removed);
    CHECK(*removed == 4);
    for (const char* k : {"user:list:1", "user:list:2", "user:list:3", "user:list:4"}) CHECK_FALSE(cache.contains(k));
    for (const char* k : {"user:lis", "user:other", "zzz"}) CHECK(cache.contains(k));
    CHECK(cache.metrics().invalidations_by_prefix == 1);
    CHECK(*cache.invalidate_prefix("") == 3);
}

TEST_CASE("disk tier: prefix and tag lookups are answered from the index, without reading the storage") {
    harness h;
    auto cache = h.open();
    for (int i = 0; i < 50; ++i)
        REQUIRE(cache.put("k:" + std::to_string(i), "v", {.tags = {i % 2 == 0 ? "even" : "odd"}}));
    std::size_t reads = 0;
    *h.faults = [&](storage_op op, std::string_view) -> std::optional<tierguard::failure> {
        if (op == storage_op::read || op == storage_op::list) ++reads;
        return std::nullopt;
    };
    const auto by_prefix = cache.disk().keys_with_prefix("k:1");
    REQUIRE(by_prefix);
    CHECK(sorted(*by_prefix) ==
          sorted({"k:1", "k:10", "k:11", "k:12", "k:13", "k:14", "k:15", "k:16", "k:17", "k:18", "k:19"}));
    const auto even = cache.disk().keys_tagged("even");
    REQUIRE(even);
    CHECK(even->size() == 25);
    CHECK(reads == 0);
}

TEST_CASE("disk tier: without a scrub at open, the first lookup reads every entry once") {
    harness h;
    {
        auto cache = h.open();
        for (int i = 0; i < 10; ++i) REQUIRE(cache.put("k:" + std::to_string(i), "v", {.tags = {"t"}}));
    }
    cache_t::config cfg;
    cfg.disk.scrub_on_open = false;
    auto cache = h.open(cfg);
    std::size_t reads = 0;
    *h.faults = [&](storage_op op, std::string_view) -> std::optional<tierguard::failure> {
        if (op == storage_op::read) ++reads;
        return std::nullopt;
    };
    REQUIRE(cache.disk().keys_tagged("t")->size() == 10);
    CHECK(reads == 10);
    REQUIRE(cache.disk().keys_with_prefix("k:")->size() == 10);
    CHECK(reads == 10);
}

TEST_CASE("cache: a failing index read is reported; the keys found elsewhere are removed") {
    harness h;
    {
        auto cache = h.open();
        REQUIRE(cache.put("a", "v", {.tags = {"t"}}));
    }
    cache_t::config cfg;
    cfg.disk.scrub_on_open = false;
    auto cache = h.open(cfg);
    REQUIRE(cache.memory().put("b", "v"));
    REQUIRE(cache.put("c", "v", {.tags = {"t"}}));
    *h.faults = [](storage_op op, std::string_view) -> std::optional<tierguard::failure> {
        if (op == storage_op::read) return tierguard::failure(errc::io_error, tier::disk, "injected");
        return std::nullopt;
    };
    const auto removed = cache.invalidate_tag("t");
    REQUIRE_FALSE(removed);
    CHECK(removed.error().code() == errc::io_error);
    CHECK_FALSE(cache.memory().contains("c"));  // known to the cache's own tag index
    *h.faults = nullptr;
    CHECK(*cache.invalidate_tag("t") == 1);  // the index is read now that the storage answers
    CHECK_FALSE(cache.contains("a"));
}

namespace {
struct two_tier_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = tierguard::tiers<::storage, ::storage>;
};
using two_tiers = tierguard::cache<std::string, std::string, two_tier_policies>;
}  // namespace

TEST_CASE("cache: a copy from a slower storage tier into a faster one keeps its tags") {
    tierguard::clock::manual clock;
    auto slow = std::make_shared<tierguard::storage::memory_storage>();
    auto open = [&] {
        two_tiers::config cfg;
        std::get<0>(cfg.tiers).name = "near";
        std::get<1>(cfg.tiers).name = "far";
        auto c = two_tiers::open(
            cfg,
            {storage(tierguard_test::shared_memory_storage(std::make_shared<tierguard::storage::memory_storage>())),
             storage(tierguard_test::shared_memory_storage(slow))},
            clock);
        REQUIRE(c);
        return std::move(*c);
    };
    {
        auto cache = open();
        REQUIRE(cache.put("user:42", "p", {.tags = {"user:42"}}));
    }
    auto cache = open();  // a fresh near tier: only the far one holds the entry
    REQUIRE(cache.get("user:42")->from == tier::disk);
    const auto near = cache.disk<0>().keys_tagged("user:42");
    REQUIRE(near);
    CHECK(*near == std::vector<std::string>{"user:42"});
    CHECK(*cache.invalidate_tag("user:42") == 1);
    CHECK_FALSE(cache.disk<1>().contains("user:42"));
}
