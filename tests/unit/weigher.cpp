#include "support/allocation_counter.hpp"
#include "support/test_framework.hpp"

#include <tierguard/memory_tier.hpp>
#include <tierguard/serializer/standard.hpp>
#include <tierguard/weigher/concept.hpp>
#include <tierguard/weigher/dynamic_size.hpp>
#include <tierguard/weigher/encoded_size.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using tierguard::errc;
using tierguard::weigher::dynamic_size;
using tierguard::weigher::encoded_size;

namespace {

// An ordinary struct: its payload lives outside the object, where sizeof does not look.
struct document {
    std::uint64_t id = 0;
    std::string body;
    std::vector<std::string> tags;
};

// Says what it weighs itself (say, an image whose pixels are not worth encoding to count).
struct image {
    std::size_t width = 0;
    std::size_t height = 0;
    [[nodiscard]] std::size_t weight() const noexcept { return width * height * 4; }
};

// A codec that fails while encoding.
struct volatile_record {
    std::string text;
};

struct no_encoding {
    std::string text;
};

}  // namespace

template <>
struct tierguard::codec<document> {
    static void encode(const document& d, tierguard::byte_writer& w) { w.write(d.id, d.body, d.tags); }
    static tierguard::result<document> decode(tierguard::byte_reader& r) {
        document d;
        auto ok = r.read_fields(field("id", d.id), field("body", d.body), field("tags", d.tags));
        if (!ok) return tierguard::unexpected(std::move(ok).error());
        return d;
    }
};

template <>
struct tierguard::codec<volatile_record> {
    static void encode(const volatile_record&, tierguard::byte_writer&) { throw std::runtime_error("encode failed"); }
    static tierguard::result<volatile_record> decode(tierguard::byte_reader&) { return volatile_record{}; }
};

static_assert(tierguard::weigher_policy<encoded_size, std::string, document>);
static_assert(tierguard::weigher_policy<encoded_size, std::string, image>);
static_assert(tierguard::weigher_policy<encoded_size, std::uint64_t, std::map<std::string, std::vector<int>>>);
static_assert(tierguard::weigher_policy<encoded_size, std::string, double>);
// Neither a codec, an encoding write() knows, nor a weight(): not weighable, so a memory
// tier with this weigher does not compile for it.
static_assert(!tierguard::weigher_policy<encoded_size, std::string, no_encoding>);

namespace {

struct encoded_policies : tierguard::memory_defaults {
    using weigher = encoded_size;
};

document ten_kib_document(std::uint64_t id) { return document{id, std::string(10 * 1024, 'x'), {"draft"}}; }

}  // namespace

TEST_CASE("weigher::encoded_size: a struct with a 10 KiB string weighs at least 10 KiB") {
    const document doc = ten_kib_document(1);
    const std::string key = "doc:1";
    CHECK(encoded_size{}(key, doc) >= 10 * 1024);
    // What the serializer stores for the same value: the weight is the stored size.
    std::vector<std::byte> stored;
    REQUIRE(tierguard::serializer::standard{}.encode(doc, stored));
    CHECK(encoded_size{}(key, doc) == key.size() + stored.size());
    // dynamic_size counts the struct's sizeof and misses the string's heap bytes.
    CHECK(dynamic_size{}(key, doc) == key.size() + sizeof(document));
    CHECK(dynamic_size{}(key, doc) < 1024);
}

TEST_CASE("weigher::encoded_size: strings, byte vectors and trivially copyable values weigh what standard stores") {
    for (const std::string& text : {std::string(), std::string("abc"), std::string(5000, 'z')}) {
        std::vector<std::byte> stored;
        REQUIRE(tierguard::serializer::standard{}.encode(text, stored));
        CHECK(encoded_size::weight_of(text) == stored.size());
    }
    CHECK(encoded_size::weight_of(std::vector<std::byte>(300)) == 300);
    CHECK(encoded_size::weight_of(2.5) == sizeof(double));
    // Types standard cannot store weigh by their write() encoding: counts and contents.
    CHECK(encoded_size::weight_of(std::vector<std::string>{"ab", "c"}) == 4 + (4 + 2) + (4 + 1));
}

TEST_CASE("weigher::encoded_size: a weight() member wins") {
    CHECK(encoded_size{}(std::string("img"), image{100, 50}) == 3 + 100 * 50 * 4);
}

TEST_CASE("weigher::encoded_size: weighing allocates nothing") {
    const document doc = ten_kib_document(2);
    const std::string key = "doc:2";
    tierguard_test::allocations = 0;
    const std::size_t weight = encoded_size{}(key, doc);
    CHECK(tierguard_test::allocations == 0);
    CHECK(weight > 10 * 1024);
}

TEST_CASE("weigher::encoded_size: the memory tier's byte budget evicts by encoded size") {
    constexpr std::size_t budget = 64 * 1024;
    tierguard::memory_tier<std::string, document, encoded_policies> tier({.byte_budget = budget, .shards = 1});
    for (std::uint64_t i = 0; i < 10; ++i) REQUIRE(tier.put("doc:" + std::to_string(i), ten_kib_document(i)));
    const auto stats = tier.stats();
    // 64 KiB hold six documents of a little over 10 KiB each: the four oldest were evicted.
    CHECK(stats.entries == 6);
    CHECK(stats.evictions == 4);
    CHECK(stats.bytes <= budget);
    CHECK(stats.bytes >= 6 * 10 * 1024);
    CHECK_FALSE(tier.contains("doc:3"));
    CHECK(tier.contains("doc:4"));
    CHECK(tier.contains("doc:9"));

    // With the default weigher the same puts would hold 640 KiB of strings under a 64 KiB budget.
    tierguard::memory_tier<std::string, document> by_sizeof({.byte_budget = budget, .shards = 1});
    for (std::uint64_t i = 0; i < 10; ++i) REQUIRE(by_sizeof.put("doc:" + std::to_string(i), ten_kib_document(i)));
    CHECK(by_sizeof.stats().entries == 10);
    CHECK(by_sizeof.stats().evictions == 0);
}

TEST_CASE("weigher::encoded_size: an entry over a shard's budget is refused as too_large") {
    tierguard::memory_tier<std::string, document, encoded_policies> tier({.byte_budget = 8 * 1024, .shards = 1});
    const auto put = tier.put("doc:1", ten_kib_document(1));
    REQUIRE_FALSE(put);
    CHECK(put.error().code() == errc::too_large);
    CHECK(tier.stats().entries == 0);
}

TEST_CASE("weigher::encoded_size: a codec that throws while weighed makes the entry too large, not free") {
    CHECK(encoded_size{}(std::string("k"), volatile_record{"x"}) == std::numeric_limits<std::size_t>::max());
    struct policies : tierguard::memory_defaults {
        using weigher = encoded_size;
    };
    tierguard::memory_tier<std::string, volatile_record, policies> tier({.byte_budget = 1024, .shards = 1});
    const auto put = tier.put("k", volatile_record{"x"});
    REQUIRE_FALSE(put);
    CHECK(put.error().code() == errc::too_large);
}
