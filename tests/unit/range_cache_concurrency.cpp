// The range cache under concurrent reads (issue 16): threads read random ranges of the same
// few objects, some asking for a newer version now and then, over posix_directory with a
// small byte budget and a memory tier; every read must return the origin's bytes of the
// version it asked for. Built under ThreadSanitizer by the tsan preset (label concurrency).
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/range_cache.hpp>

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

std::byte origin_byte(const std::string& validator, std::uint64_t offset) {
    std::uint64_t x = (offset + 7) * 0x9e3779b97f4a7c15ULL ^ std::hash<std::string>{}(validator);
    x ^= x >> 29;
    return static_cast<std::byte>(x & 0xff);
}

}  // namespace

TEST_CASE("concurrent range reads of changing versions return the origin's bytes of the version asked") {
    tierguard_test::temp_dir dir;
    auto storage =
        tierguard::storage::posix_directory::open({.root = dir.path() / "cache", .sync = tierguard::durability::none});
    REQUIRE(storage);
    constexpr std::uint32_t block = 1024;
    auto cache = tierguard::range_cache<>::open(std::move(*storage), {.block_size = block,
                                                                      .byte_budget = 40 * (block + 100),
                                                                      .memory_budget = 16 * 1024,
                                                                      .memory_shards = 2,
                                                                      .max_request_bytes = 4 * block});
    REQUIRE(cache);
    std::atomic<int> wrong{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
            for (int i = 0; i < 300; ++i) {
                const int object = static_cast<int>(rng() % 3);
                const int version = static_cast<int>(rng() % 10 == 0 ? 1 : 0);
                const std::string validator = "o" + std::to_string(object) + "v" + std::to_string(version);
                const tierguard::range_version v{validator, 20 * block + 300};
                const std::uint64_t offset = rng() % v.size;
                const std::uint64_t length = rng() % (v.size - offset + 1);
                auto fetch = [&](std::uint64_t at, std::span<std::byte> out) -> tierguard::result<void> {
                    for (std::size_t j = 0; j < out.size(); ++j) out[j] = origin_byte(validator, at + j);
                    return {};
                };
                auto got = cache->read("object-" + std::to_string(object), v, offset, length, fetch);
                if (!got) {
                    ++failed;
                    continue;
                }
                for (std::size_t j = 0; j < got->size(); ++j)
                    if ((*got)[j] != origin_byte(validator, offset + j)) {
                        ++wrong;
                        break;
                    }
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
    CHECK(failed == 0);
    const auto m = cache->metrics();
    CHECK(m.reads == 1200);
    CHECK(m.bytes <= 40 * (block + 100));
}
