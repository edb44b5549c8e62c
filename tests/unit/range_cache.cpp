// Issue 16: the range cache of seed 004 (byte ranges of large objects in blocks), and the
// six failures of seed 004, each a test: corrupted metadata, a missing or damaged block
// file, a full disk, metadata referencing absent blocks, partial writes, orphans.
#include "support/child_process.hpp"
#include "support/killable_child.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/range_cache.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::range_version;
using tierguard_test::temp_dir;
namespace fs = std::filesystem;

namespace {

struct manual_policies : tierguard::range_defaults {
    using clock = tierguard::clock::manual;
};
using posix_cache = tierguard::range_cache<manual_policies>;

using faulty_storage = tierguard::storage::fault_injecting<tierguard::storage::memory_storage>;
struct faulty_policies : manual_policies {
    using storage = faulty_storage;
};
using faulty_cache = tierguard::range_cache<faulty_policies>;

// The origin's byte at `offset` of the object whose validator is `validator`.
std::byte origin_byte(const std::string& validator, std::uint64_t offset) {
    std::uint64_t x = offset * 0x9e3779b97f4a7c15ULL + std::hash<std::string>{}(validator);
    x ^= x >> 29;
    return static_cast<std::byte>(x & 0xff);
}

// An origin that serves origin_byte() and records its requests.
struct origin {
    explicit origin(std::string v) : validator(std::move(v)) {}
    std::string validator;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> requests;  // offset, length
    bool failing = false;
    tierguard::result<void> operator()(std::uint64_t offset, std::span<std::byte> out) {
        requests.emplace_back(offset, out.size());
        if (failing) return tierguard::fail(errc::io_error, tierguard::tier::none, "origin down");
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = origin_byte(validator, offset + i);
        return {};
    }
};

bool matches(const std::vector<std::byte>& bytes, const std::string& validator, std::uint64_t offset) {
    for (std::size_t i = 0; i < bytes.size(); ++i)
        if (bytes[i] != origin_byte(validator, offset + i)) return false;
    return true;
}

constexpr std::uint32_t block = 4096;

tierguard::range_config small_blocks() {
    tierguard::range_config cfg;
    cfg.block_size = block;
    cfg.memory_budget = 0;  // every hit comes from the storage unless a test says otherwise
    return cfg;
}

posix_cache open_posix(const fs::path& root, const tierguard::range_config& cfg = small_blocks(),
                       tierguard::clock::manual clock = tierguard::clock::manual()) {
    auto dir = tierguard::storage::posix_directory::open({.root = root});
    REQUIRE(dir);
    auto cache = posix_cache::open(std::move(*dir), cfg, clock);
    REQUIRE(cache);
    return std::move(*cache);
}

// Opens a cache at `root`, caches the whole of two objects of version "e" (`first_blocks` and
// `second_blocks` blocks long) and closes it; returns their folders.
std::pair<std::string, std::string> cache_two(const fs::path& root, std::string_view first, std::uint64_t first_blocks,
                                              std::string_view second, std::uint64_t second_blocks) {
    auto cache = open_posix(root);
    origin o{"e"};
    REQUIRE(cache.read(first, {"e", first_blocks * block}, 0, first_blocks * block, o));
    REQUIRE(cache.read(second, {"e", second_blocks * block}, 0, second_blocks * block, o));
    return {cache.folder_for(first), cache.folder_for(second)};
}

void write_file(const fs::path& p, std::string_view text) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

TEST_CASE("range cache: a read returns the origin's bytes, then serves them without the origin") {
    temp_dir dir;
    auto cache = open_posix(dir.path() / "cache");
    const range_version v{"etag-1", 10 * block + 100};
    origin o{"etag-1"};
    auto first = cache.read("obj", v, 1000, 3 * block, o);
    REQUIRE(first);
    CHECK(matches(*first, "etag-1", 1000));
    CHECK(o.requests.size() == 1);
    auto again = cache.read("obj", v, 1500, 2 * block, o);
    REQUIRE(again);
    CHECK(matches(*again, "etag-1", 1500));
    CHECK(o.requests.size() == 1);
    // The short last block.
    auto tail = cache.read("obj", v, 10 * block, 100, o);
    REQUIRE(tail);
    CHECK(matches(*tail, "etag-1", 10 * block));
    CHECK(cache.metrics().disk_hits >= 3);
}

TEST_CASE("range cache: a cold read of 16 contiguous missing blocks is one aligned origin request") {
    temp_dir dir;
    auto cache = open_posix(dir.path() / "cache");
    const range_version v{"e", 64 * block};
    origin o{"e"};
    auto bytes = cache.read("obj", v, 8 * block + 17, 16 * block - 40, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 8 * block + 17));
    REQUIRE(o.requests.size() == 1);
    CHECK(o.requests[0] == std::pair<std::uint64_t, std::uint64_t>{8 * block, 16 * block});
    // With blocks 10 and 11 cached, a read of 8..23 makes two requests: 8..9 and 12..23.
    CHECK(cache.erase("obj").value());
    REQUIRE(cache.read("obj", v, 10 * block, 2 * block, o));
    o.requests.clear();
    REQUIRE(cache.read("obj", v, 8 * block, 16 * block, o));
    REQUIRE(o.requests.size() == 2);
    CHECK(o.requests[0] == std::pair<std::uint64_t, std::uint64_t>{8 * block, 2 * block});
    CHECK(o.requests[1] == std::pair<std::uint64_t, std::uint64_t>{12 * block, 12 * block});
}

TEST_CASE("range cache: a new validator never serves the old blocks and removes them") {
    temp_dir dir;
    auto cache = open_posix(dir.path() / "cache");
    origin o1{"v1"};
    REQUIRE(cache.read("obj", {"v1", 4 * block}, 0, 4 * block, o1));
    CHECK(cache.metrics().blocks == 4);
    origin o2{"v2"};
    auto bytes = cache.read("obj", {"v2", 4 * block}, 0, block, o2);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "v2", 0));
    CHECK(cache.metrics().blocks == 1);
    CHECK(cache.metrics().invalidations == 1);
    // A size change is a new version too.
    origin o3{"v2"};
    REQUIRE(cache.read("obj", {"v2", 2 * block}, 0, block, o3));
    CHECK(o3.requests.size() == 1);
}

TEST_CASE("range cache: a failing origin fails the read; nothing partial is returned or kept") {
    temp_dir dir;
    auto cache = open_posix(dir.path() / "cache");
    const range_version v{"e", 8 * block};
    origin good{"e"};
    REQUIRE(cache.read("obj", v, 0, 2 * block, good));
    origin bad{"e"};
    bad.failing = true;
    auto r = cache.read("obj", v, 0, 8 * block, bad);
    REQUIRE(!r);
    CHECK(r.error().code() == errc::loader_failed);
    CHECK(r.error().context().find("origin down") != std::string::npos);
    CHECK(cache.inspect("obj")->blocks.size() == 2);
    auto throwing = [](std::uint64_t, std::span<std::byte>) -> tierguard::result<void> {
        throw std::runtime_error("socket closed");
    };
    auto t = cache.read("obj", v, 0, 8 * block, throwing);
    REQUIRE(!t);
    CHECK(t.error().code() == errc::loader_failed);
    CHECK(t.error().context().find("socket closed") != std::string::npos);
    CHECK(cache.metrics().origin_failures == 2);
}

TEST_CASE("issue 16 trial point 8: a read past the object's end is cut there as pread does, and counted") {
    temp_dir dir;
    auto cache = open_posix(dir.path() / "cache");
    const range_version v{"e", 8 * block};
    origin o{"e"};
    auto tail = cache.read("obj", v, 7 * block + 10, 2 * block, o);  // short read at the end
    REQUIRE(tail);
    CHECK(tail->size() == block - 10);
    CHECK(matches(*tail, "e", 7 * block + 10));
    auto at_end = cache.read("obj", v, 8 * block, 10, o);  // empty from the end on
    REQUIRE(at_end);
    CHECK(at_end->empty());
    auto beyond = cache.read("obj", v, 100 * block, 10, o);
    REQUIRE(beyond);
    CHECK(beyond->empty());
    std::vector<std::byte> span(3 * block);
    auto n = cache.read("obj", v, 6 * block, std::span<std::byte>(span), o);
    REQUIRE(n);
    CHECK(*n == 2 * block);
    span.resize(*n);
    CHECK(matches(span, "e", 6 * block));
    std::uint64_t streamed = 0;
    auto s = cache.read_stream("obj", v, 5 * block, ~std::uint64_t{0}, o,
                               [&](std::span<const std::byte> piece) { streamed += piece.size(); });
    REQUIRE(s);
    CHECK(*s == 3 * block);
    CHECK(streamed == 3 * block);
    CHECK(o.requests.size() == 3);  // blocks 7, 6 and 5, once each; nothing past the end asked for
    for (const auto& [at, length] : o.requests) CHECK(at + length <= v.size);
    auto oversized = cache.read(std::string(posix_cache::max_key_size + 1, 'k'), v, 0, 1, o);
    REQUIRE(!oversized);
    CHECK(oversized.error().code() == errc::invalid_argument);
    // Every call is counted, the failed one also as a failure.
    const auto m = cache.metrics();
    CHECK(m.reads == 6);
    CHECK(m.read_failures == 1);
}

TEST_CASE("range cache: a read larger than a window streams window by window") {
    auto storage = tierguard::storage::memory_storage();
    tierguard::range_config cfg = small_blocks();
    cfg.max_request_bytes = 4 * block;
    auto cache = tierguard::range_cache<faulty_policies>::open(faulty_storage(std::move(storage)), cfg);
    REQUIRE(cache);
    origin o{"e"};
    std::vector<std::size_t> pieces;
    std::vector<std::byte> all;
    auto r = cache->read_stream("obj", {"e", 20 * block}, 10, 20 * block - 20, o, [&](std::span<const std::byte> s) {
        pieces.push_back(s.size());
        all.insert(all.end(), s.begin(), s.end());
    });
    REQUIRE(r);
    CHECK(*r == 20 * block - 20);
    CHECK(matches(all, "e", 10));
    CHECK(all.size() == 20 * block - 20);
    CHECK(pieces.size() == 5);      // issue 16 trial point 14: the sink gets one window at a time
    CHECK(o.requests.size() == 5);  // one per window of 4 blocks
    for (const auto& [offset, length] : o.requests) CHECK(length <= 4 * block);
}

TEST_CASE("range cache: concurrent reads of the same missing blocks fetch them once") {
    temp_dir dir;
    auto cache = open_posix(dir.path() / "cache");
    const range_version v{"e", 32 * block};
    std::atomic<int> calls{0};
    std::latch in_origin(1);
    std::latch others_waiting(1);
    auto slow = [&](std::uint64_t offset, std::span<std::byte> out) -> tierguard::result<void> {
        ++calls;
        in_origin.count_down();
        others_waiting.wait();
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = origin_byte("e", offset + i);
        return {};
    };
    std::vector<std::byte> a, b;
    std::thread first([&] { a = cache.read("obj", v, 0, 8 * block, slow).value(); });
    in_origin.wait();
    std::thread second([&] {
        auto fast = [&](std::uint64_t offset, std::span<std::byte> out) -> tierguard::result<void> {
            ++calls;
            for (std::size_t i = 0; i < out.size(); ++i) out[i] = origin_byte("e", offset + i);
            return {};
        };
        b = cache.read("obj", v, 0, 8 * block, fast).value();
    });
    // The second read finds all 8 blocks in flight; it waits rather than fetching.
    while (cache.metrics().misses < 16) std::this_thread::yield();
    others_waiting.count_down();
    first.join();
    second.join();
    CHECK(calls == 1);
    CHECK(matches(a, "e", 0));
    CHECK(matches(b, "e", 0));
    CHECK(cache.metrics().shared_fetches == 8);
}

TEST_CASE("range cache: a fetch that runs out of memory fails the reads waiting for it instead of hanging them") {
    temp_dir dir;
    auto cache = open_posix(dir.path() / "cache");
    const range_version v{"e", 4 * block};
    std::latch in_origin(1);
    std::latch waiter_queued(1);
    auto exhausted = [&](std::uint64_t, std::span<std::byte>) -> tierguard::result<void> {
        in_origin.count_down();
        waiter_queued.wait();
        throw std::bad_alloc();
    };
    bool threw = false;
    std::thread fetcher([&] {
        try {
            (void)cache.read("obj", v, 0, 4 * block, exhausted);
        } catch (const std::bad_alloc&) {
            threw = true;
        }
    });
    in_origin.wait();
    tierguard::result<std::vector<std::byte>> waited = tierguard::fail(errc::miss, tierguard::tier::none);
    std::thread waiter([&] {
        origin o{"e"};
        waited = cache.read("obj", v, 0, 4 * block, o);
    });
    while (cache.metrics().misses < 8) std::this_thread::yield();
    waiter_queued.count_down();
    fetcher.join();
    waiter.join();
    CHECK(threw);
    REQUIRE(!waited);
    CHECK(waited.error().code() == errc::loader_failed);
    origin o{"e"};
    auto later = cache.read("obj", v, 0, 4 * block, o);  // nothing is left in flight
    REQUIRE(later);
    CHECK(matches(*later, "e", 0));
}

TEST_CASE("range cache: the memory tier serves hot blocks without the storage") {
    auto storage = tierguard::storage::memory_storage();
    tierguard::range_config cfg = small_blocks();
    cfg.memory_budget = 1 << 20;
    cfg.memory_shards = 4;
    faulty_storage faulty(std::move(storage));
    auto ctl = faulty.control();
    auto cache = faulty_cache::open(std::move(faulty), cfg);
    REQUIRE(cache);
    origin o{"e"};
    REQUIRE(cache->read("obj", {"e", 8 * block}, 0, 8 * block, o));
    const auto reads_before = ctl.counters().calls(tierguard::storage::op::read);
    auto again = cache->read("obj", {"e", 8 * block}, 100, 7 * block, o);
    REQUIRE(again);
    CHECK(matches(*again, "e", 100));
    CHECK(ctl.counters().calls(tierguard::storage::op::read) == reads_before);
    CHECK(cache->metrics().memory_hits == 8);
}

TEST_CASE("range cache: the byte budget and the per-object limit hold") {
    auto cfg = small_blocks();
    const std::uint64_t frame = block + 200;  // a block's frame is a little larger than the block
    cfg.byte_budget = 10 * frame;
    cfg.max_object_bytes = 6 * frame;
    auto cache = faulty_cache::open(faulty_storage(tierguard::storage::memory_storage()), cfg);
    REQUIRE(cache);
    origin o{"e"};
    REQUIRE(cache->read("a", {"e", 16 * block}, 0, 16 * block, o));
    CHECK(cache->inspect("a")->blocks.size() <= 6);
    CHECK(cache->metrics().blocks_not_stored >= 10);
    REQUIRE(cache->read("b", {"e", 16 * block}, 0, 16 * block, o));
    REQUIRE(cache->read("c", {"e", 16 * block}, 0, 16 * block, o));
    const auto m = cache->metrics();
    CHECK(m.bytes <= cfg.byte_budget);
    CHECK(m.evictions > 0);
}

// --- The six failures of seed 004 ---------------------------------------------------------

TEST_CASE("issue 16 failure 1: corrupted metadata is a miss for that object only, quarantined and counted") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    const std::string damaged_folder = cache_two(root, "damaged", 4, "intact", 4).first;
    const fs::path record = root / posix_cache::metadata_name(damaged_folder);
    REQUIRE(fs::exists(record));
    write_file(record, "{ not a frame");
    auto cache = open_posix(root);
    CHECK(cache.metrics().corruption_metadata == 1);
    CHECK(!fs::exists(record));
    CHECK(!cache.inspect("damaged"));
    // Its blocks were orphans once the record went.
    CHECK(cache.metrics().orphaned_files_cleaned == 4);
    origin o{"e"};
    auto other = cache.read("intact", {"e", 4 * block}, 0, 4 * block, o);
    REQUIRE(other);
    CHECK(o.requests.empty());
    auto again = cache.read("damaged", {"e", 4 * block}, 0, 4 * block, o);
    REQUIRE(again);
    CHECK(matches(*again, "e", 0));
    CHECK(o.requests.size() == 1);
    const std::string text = cache.to_prometheus();
    CHECK(text.find("tierguard_range_corruption_metadata_total 1\n") != std::string::npos);
}

TEST_CASE("issue 16 failure 1: a record damaged while open is found by cleanup()") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    auto cache = open_posix(root);
    origin o{"e"};
    REQUIRE(cache.read("obj", {"e", 3 * block}, 0, 3 * block, o));
    write_file(root / posix_cache::metadata_name(cache.folder_for("obj")), "");
    auto report = cache.cleanup();
    REQUIRE(report);
    CHECK(report->corrupt_metadata == 1);
    CHECK(report->orphaned_files_cleaned == 3);
    CHECK(!cache.inspect("obj"));
    CHECK(cache.metrics().blocks == 0);
}

TEST_CASE("issue 16 failure 2: a missing or damaged block is fetched again and re-stored; the others keep serving") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    const range_version v{"e", 6 * block};
    {
        auto cache = open_posix(root);
        origin o{"e"};
        REQUIRE(cache.read("obj", v, 0, 6 * block, o));
        const std::string folder = cache.folder_for("obj");
        fs::remove(root / posix_cache::block_name(folder, 2));
        {  // one byte of block 4's data changed: its frame CRC no longer matches
            std::fstream f(root / posix_cache::block_name(folder, 4), std::ios::in | std::ios::out | std::ios::binary);
            f.seekg(200);
            const char was = static_cast<char>(f.get());
            f.seekp(200);
            f.put(static_cast<char>(was ^ 0x5a));
        }
        o.requests.clear();
        auto bytes = cache.read("obj", v, 0, 6 * block, o);
        REQUIRE(bytes);
        CHECK(matches(*bytes, "e", 0));
        REQUIRE(o.requests.size() == 2);
        CHECK(o.requests[0] == std::pair<std::uint64_t, std::uint64_t>{2 * block, block});
        CHECK(o.requests[1] == std::pair<std::uint64_t, std::uint64_t>{4 * block, block});
        const auto m = cache.metrics();
        CHECK(m.corruption_missing_range == 2);
        CHECK(m.disk_hits == 4);
        CHECK(cache.inspect("obj")->blocks.size() == 6);
        CHECK(fs::exists(root / posix_cache::block_name(folder, 2)));
    }
    // The record on disk was updated too: a reopen serves all six blocks without the origin.
    auto cache = open_posix(root);
    CHECK(cache.metrics().inconsistency_fixed == 0);
    origin o{"e"};
    auto bytes = cache.read("obj", v, 0, 6 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    CHECK(o.requests.empty());
}

TEST_CASE("issue 16 failure 3: a full disk evicts blocks, retries once, still answers; caching resumes") {
    tierguard::clock::manual clock;
    faulty_storage faulty(tierguard::storage::memory_storage(), {}, clock);
    auto ctl = faulty.control();
    auto cfg = small_blocks();
    cfg.emergency_eviction_backoff = 1min;
    auto cache = faulty_cache::open(std::move(faulty), cfg, clock);
    REQUIRE(cache);
    origin o{"e"};
    REQUIRE(cache->read("old", {"e", 10 * block}, 0, 10 * block, o));
    using tierguard::storage::fault;
    using tierguard::storage::op;
    // The next write meets ENOSPC; the retry after evicting succeeds.
    ctl.script(op::write, ctl.counters().calls(op::write) + 1, fault::disk_full);
    auto bytes = cache->read("new", {"e", 2 * block}, 0, 2 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    auto m = cache->metrics();
    CHECK(m.disk_full_events == 1);
    CHECK(m.emergency_evictions == 1);  // 10% of 10 blocks
    CHECK(cache->inspect("new")->blocks.size() == 2);
    CHECK(cache->inspect("old")->blocks.size() == 9);
    // A disk that stays full: every write fails; reads are still answered from the origin.
    ctl.script(op::write, ctl.counters().calls(op::write) + 1, fault::disk_full,
               tierguard::storage::fault_mode::from_then_on);
    bytes = cache->read("full", {"e", 3 * block}, 0, 3 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    m = cache->metrics();
    CHECK(m.blocks_not_stored >= 3);
    // Within the backoff no more evictions: the full disk does not empty the cache.
    const auto evicted = m.emergency_evictions;
    REQUIRE(cache->read("full", {"e", 3 * block}, 0, 3 * block, o));
    CHECK(cache->metrics().emergency_evictions == evicted);
    // Space frees: caching resumes.
    ctl.heal();
    clock.advance(2min);
    REQUIRE(cache->read("full", {"e", 3 * block}, 0, 3 * block, o));
    CHECK(cache->inspect("full")->blocks.size() == 3);
    CHECK(cache->to_prometheus().find("tierguard_range_disk_full_events_total " +
                                      std::to_string(cache->metrics().disk_full_events) + "\n") != std::string::npos);
}

TEST_CASE("issue 16 failure 4: a record referencing absent blocks is fixed at open and by cleanup()") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    const auto [partly, wholly] = cache_two(root, "partly", 4, "wholly", 2);
    // A crash during a deletion: block files gone, records still naming them.
    fs::remove(root / posix_cache::block_name(partly, 1));
    fs::remove(root / posix_cache::block_name(partly, 3));
    fs::remove(root / posix_cache::block_name(wholly, 0));
    fs::remove(root / posix_cache::block_name(wholly, 1));
    {
        auto cache = open_posix(root);
        CHECK(cache.metrics().inconsistency_fixed == 4);
        REQUIRE(cache.inspect("partly"));
        CHECK(cache.inspect("partly")->blocks == std::vector<std::uint32_t>{0, 2});
        CHECK(!cache.inspect("wholly"));  // no block left: removed
        CHECK(!fs::exists(root / posix_cache::metadata_name(wholly)));
        origin o{"e"};
        auto bytes = cache.read("partly", {"e", 4 * block}, 0, 4 * block, o);
        REQUIRE(bytes);
        CHECK(matches(*bytes, "e", 0));
        CHECK(o.requests.size() == 2);
        CHECK(cache.metrics().corruption_missing_range == 0);  // found by verification, not by the read
        // While open: cleanup() finds a file deleted behind the cache's back.
        fs::remove(root / posix_cache::block_name(partly, 0));
        auto report = cache.cleanup();
        REQUIRE(report);
        CHECK(report->inconsistencies_fixed == 1);
        CHECK(cache.inspect("partly")->blocks.size() == 3);
    }
    // The fix was written: a reopen finds nothing more to fix.
    auto cache = open_posix(root);
    CHECK(cache.metrics().inconsistency_fixed == 0);
}

TEST_CASE("issue 16 failure 5: a write that dies part-way leaves the old state; leftovers are removed and counted") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    std::string folder;
    {
        auto cache = open_posix(root);
        origin o{"e"};
        REQUIRE(cache.read("obj", {"e", 2 * block}, 0, 2 * block, o));
        folder = cache.folder_for("obj");
    }
    // What a crash mid-write leaves: temp files beside a block and beside the record.
    const fs::path object_dir = root / fs::path(folder);
    write_file(object_dir / ".tmp.99999.1", std::string(1000, 'x'));
    write_file(object_dir / ".tmp.99999.2", "partial rec");
    auto cache = open_posix(root);
    CHECK(cache.metrics().partial_write_cleanup == 2);
    CHECK(!fs::exists(object_dir / ".tmp.99999.1"));
    origin o{"e"};
    auto bytes = cache.read("obj", {"e", 2 * block}, 0, 2 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    CHECK(o.requests.empty());
    CHECK(cache.to_prometheus().find("tierguard_range_partial_write_cleanup_total 2\n") != std::string::npos);
}

TEST_CASE("issue 16 failure 5: a torn block write is never served") {
    tierguard::clock::manual clock;
    faulty_storage faulty(tierguard::storage::memory_storage(), {.torn_writes_visible = true}, clock);
    auto ctl = faulty.control();
    auto cache = faulty_cache::open(std::move(faulty), small_blocks(), clock);
    REQUIRE(cache);
    using tierguard::storage::fault;
    using tierguard::storage::op;
    ctl.script(op::write, ctl.counters().calls(op::write) + 1, fault::torn_write);
    origin o{"e"};
    auto bytes = cache->read("obj", {"e", 2 * block}, 0, 2 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    CHECK(cache->inspect("obj")->blocks == std::vector<std::uint32_t>{1});
    // The torn prefix left under block 0's name is an orphan: no record names it.
    auto report = cache->cleanup();
    REQUIRE(report);
    CHECK(report->orphaned_files_cleaned == 1);
    o.requests.clear();
    REQUIRE(cache->read("obj", {"e", 2 * block}, 0, 2 * block, o));
    CHECK(o.requests.size() == 1);
}

TEST_CASE("issue 16 failure 6: block files without metadata are removed by cleanup() and counted") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    auto cache = open_posix(root);
    origin o{"e"};
    REQUIRE(cache.read("kept", {"e", 2 * block}, 0, 2 * block, o));
    REQUIRE(cache.read("orphaned", {"e", 3 * block}, 0, 3 * block, o));
    const std::string folder = cache.folder_for("orphaned");
    fs::remove(root / posix_cache::metadata_name(folder));  // metadata deleted, blocks left behind
    // A block file of an object that never had a record, as a crash before its first record write leaves.
    fs::create_directories(root / "ab" / "ab00000000000001");
    write_file(root / "ab" / "ab00000000000001" / "00000000", "stray block");
    // The open cache still knows "orphaned": cleanup() writes its record again.
    auto report = cache.cleanup();
    REQUIRE(report);
    CHECK(report->orphaned_files_cleaned == 1);
    CHECK(fs::exists(root / posix_cache::metadata_name(folder)));
    CHECK(!fs::exists(root / "ab" / "ab00000000000001"));
    CHECK(cache.metrics().orphaned_files_cleaned == 1);
    o.requests.clear();
    REQUIRE(cache.read("kept", {"e", 2 * block}, 0, 2 * block, o));
    CHECK(o.requests.empty());
}

TEST_CASE("issue 16 failure 6: block files whose record is gone are orphans at open") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    const std::string folder = cache_two(root, "kept", 2, "orphaned", 3).second;
    fs::remove(root / posix_cache::metadata_name(folder));
    auto cache = open_posix(root);
    CHECK(cache.metrics().orphaned_files_cleaned == 3);
    CHECK(!fs::exists(root / fs::path(folder)));
    origin o{"e"};
    REQUIRE(cache.read("kept", {"e", 2 * block}, 0, 2 * block, o));
    CHECK(o.requests.empty());
}

TEST_CASE("range cache: a deep cleanup reads every block and quarantines a damaged one") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    auto cache = open_posix(root);
    origin o{"e"};
    REQUIRE(cache.read("obj", {"e", 3 * block}, 0, 3 * block, o));
    // Same size as the block file (the shallow check passes it), other bytes.
    const fs::path damaged = root / posix_cache::block_name(cache.folder_for("obj"), 1);
    write_file(damaged, std::string(static_cast<std::size_t>(fs::file_size(damaged)), 'z'));
    auto shallow = cache.cleanup();
    REQUIRE(shallow);
    CHECK(shallow->damaged_blocks == 0);
    auto deep = cache.cleanup(true);
    REQUIRE(deep);
    CHECK(deep->damaged_blocks == 1);
    CHECK(cache.inspect("obj")->blocks == std::vector<std::uint32_t>{0, 2});
    CHECK(std::distance(fs::directory_iterator(root / "quarantine"), fs::directory_iterator()) == 1);
    CHECK(cache.metrics().corruption_missing_range == 1);  // METRICS.md: "when read or deep-cleaned"
}

TEST_CASE("issue 16 trial points 9 and 10: a truncated block is found by open and by cleanup(), counted once") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    const auto [first, second] = cache_two(root, "first", 3, "second", 3);
    fs::resize_file(root / posix_cache::block_name(first, 1), 100);
    {
        auto cache = open_posix(root);  // at open
        const auto m = cache.metrics();
        CHECK(m.inconsistency_fixed == 1);
        CHECK(m.orphaned_files_cleaned == 0);
        CHECK(!fs::exists(root / posix_cache::block_name(first, 1)));
        CHECK(cache.inspect("first")->blocks == std::vector<std::uint32_t>{0, 2});
    }
    auto cache = open_posix(root);  // while running: a plain (not deep) cleanup
    fs::resize_file(root / posix_cache::block_name(second, 2), 100);
    auto report = cache.cleanup();
    REQUIRE(report);
    CHECK(report->inconsistencies_fixed == 1);
    CHECK(report->orphaned_files_cleaned == 0);
    CHECK(cache.metrics().inconsistency_fixed == 1);
    CHECK(cache.metrics().orphaned_files_cleaned == 0);
    CHECK(!fs::exists(root / posix_cache::block_name(second, 2)));
    CHECK(cache.inspect("second")->blocks == std::vector<std::uint32_t>{0, 1});
    origin o{"e"};
    auto bytes = cache.read("second", {"e", 3 * block}, 0, 3 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    CHECK(o.requests.size() == 1);  // the truncated block, fetched again
}

TEST_CASE("issue 16 trial point 12: a record deleted while running is written again by cleanup(), and reported") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    auto cache = open_posix(root);
    origin o{"e"};
    REQUIRE(cache.read("obj", {"e", 2 * block}, 0, 2 * block, o));
    const fs::path record = root / posix_cache::metadata_name(cache.folder_for("obj"));
    REQUIRE(fs::remove(record));
    auto report = cache.cleanup();
    REQUIRE(report);
    CHECK(report->records_restored == 1);
    CHECK(report->objects_checked == 1);
    CHECK(report->blocks_checked == 2);
    CHECK(fs::exists(record));
    REQUIRE(cache.read("obj", {"e", 2 * block}, 0, 2 * block, o));
    CHECK(o.requests.size() == 1);
}

TEST_CASE("range cache: segment_log works as the storage for small blocks") {
    temp_dir dir;
    struct log_policies : manual_policies {
        using storage = tierguard::storage::segment_log;
    };
    auto open_log = [&] {
        auto log = tierguard::storage::segment_log::open(
            {.root = dir.path() / "log", .pinned = {std::string(tierguard::range_cache<log_policies>::secret_name)}});
        REQUIRE(log);
        auto cache = tierguard::range_cache<log_policies>::open(std::move(*log), small_blocks());
        REQUIRE(cache);
        return std::move(*cache);
    };
    {
        auto cache = open_log();
        origin o{"e"};
        REQUIRE(cache.read("obj", {"e", 8 * block}, 0, 8 * block, o));
    }
    auto cache = open_log();
    origin o{"e"};
    auto bytes = cache.read("obj", {"e", 8 * block}, 0, 8 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    CHECK(o.requests.empty());
}

TEST_CASE("range cache: blocks segment_log evicts by itself leave the index, and are not counted as damage") {
    temp_dir dir;
    struct log_policies : manual_policies {
        using storage = tierguard::storage::segment_log;
    };
    auto log = tierguard::storage::segment_log::open(
        {.root = dir.path() / "log",
         .segment_size = 64 * 1024,
         .byte_budget = 4 * 64 * 1024,  // far below what the reads below offer
         .pinned = {std::string(tierguard::range_cache<log_policies>::secret_name)}});
    REQUIRE(log);
    auto cache = tierguard::range_cache<log_policies>::open(std::move(*log), small_blocks());
    REQUIRE(cache);
    origin o{"e"};
    for (int i = 0; i < 8; ++i) {
        auto bytes = cache->read("obj" + std::to_string(i), {"e", 32 * block}, 0, 32 * block, o);
        REQUIRE(bytes);
        CHECK(matches(*bytes, "e", 0));
    }
    const auto m = cache->metrics();
    CHECK(m.evictions > 0);
    CHECK(m.bytes <= 4 * 64 * 1024);
    for (int i = 0; i < 8; ++i) REQUIRE(cache->read("obj" + std::to_string(i), {"e", 32 * block}, 0, 32 * block, o));
    CHECK(cache->metrics().corruption_missing_range == 0);
}

TEST_CASE("range cache: open refuses a bad configuration, naming the setting") {
    auto cfg = small_blocks();
    cfg.block_size = 0;
    auto r = faulty_cache::open(faulty_storage(tierguard::storage::memory_storage()), cfg);
    REQUIRE(!r);
    CHECK(r.error().code() == errc::invalid_argument);
    CHECK(r.error().context().find("range_config.block_size") != std::string::npos);
    // Issue 16 trial point 15: a log line that names the range cache, not a tier.
    CHECK(faulty_cache::describe(r.error()).rfind("[tierguard.invalid_argument] range cache: range_config.block_size",
                                                  0) == 0);
}

TEST_CASE("issue 16 trial point 13: open refuses a block larger than a memory shard holds") {
    auto cfg = small_blocks();
    cfg.block_size = 1 << 20;
    cfg.memory_budget = 4 << 20;
    cfg.memory_shards = 8;  // 512 KiB a shard
    auto r = faulty_cache::open(faulty_storage(tierguard::storage::memory_storage()), cfg);
    REQUIRE(!r);
    CHECK(r.error().code() == errc::invalid_argument);
    CHECK(r.error().context().find("memory shard") != std::string::npos);
    cfg.memory_shards = 4;  // 1 MiB a shard: a block fits
    CHECK(faulty_cache::open(faulty_storage(tierguard::storage::memory_storage()), cfg));
    cfg.memory_budget = 0;  // no memory tier: any block size
    cfg.memory_shards = 8;
    CHECK(faulty_cache::open(faulty_storage(tierguard::storage::memory_storage()), cfg));
}

TEST_CASE("range cache: an I/O error that detaches the cache at open counts once") {
    tierguard::clock::manual clock;
    faulty_storage faulty(tierguard::storage::memory_storage(), {}, clock);
    auto ctl = faulty.control();
    ctl.script(tierguard::storage::op::list, 1, tierguard::storage::fault::io_error);
    auto cache = faulty_cache::open(std::move(faulty), small_blocks(), clock);
    REQUIRE(cache);
    CHECK(!cache->attached());
    CHECK(cache->metrics().io_errors == 1);
    CHECK(ctl.counters().injected() == 1);
}

TEST_CASE("issue 16 trial point 2: open on a full disk runs detached; reads go to the origin; caching starts later") {
    tierguard::clock::manual clock;
    faulty_storage faulty(tierguard::storage::memory_storage(), {}, clock);
    auto ctl = faulty.control();
    using tierguard::storage::fault;
    using tierguard::storage::op;
    ctl.script(op::write, 1, fault::disk_full, tierguard::storage::fault_mode::from_then_on);
    auto cfg = small_blocks();
    cfg.max_request_bytes = 2 * block;
    auto cache = faulty_cache::open(std::move(faulty), cfg, clock);
    REQUIRE(cache);
    CHECK(!cache->attached());
    CHECK(cache->metrics().disk_full_events == 1);
    origin o{"e"};
    const range_version v{"e", 4 * block};
    auto bytes = cache->read("obj", v, 10, 4 * block, o);
    REQUIRE(bytes);
    CHECK(bytes->size() == 4 * block - 10);
    CHECK(matches(*bytes, "e", 10));
    CHECK(o.requests.size() == 2);  // block-aligned windows, as ever
    CHECK(o.requests[0] == std::pair<std::uint64_t, std::uint64_t>{0, 2 * block});
    CHECK(!cache->attached());
    auto m = cache->metrics();
    CHECK(m.degraded_reads == 1);
    CHECK(m.reads == 1);
    CHECK(m.read_failures == 0);
    CHECK(m.blocks == 0);
    // Space frees: within attach_interval of the last try reads still go to the origin
    // alone; the next read after it writes the secret, attaches the storage, and caches.
    ctl.heal();
    REQUIRE(cache->read("obj", v, 0, block, o));
    CHECK(!cache->attached());
    clock.advance(faulty_cache::attach_interval);
    REQUIRE(cache->read("obj", v, 0, 4 * block, o));
    CHECK(cache->attached());
    CHECK(cache->inspect("obj")->blocks.size() == 4);
    const auto asked = o.requests.size();
    auto again = cache->read("obj", v, 0, 4 * block, o);
    REQUIRE(again);
    CHECK(matches(*again, "e", 0));
    CHECK(o.requests.size() == asked);  // served from the storage
    CHECK(cache->metrics().degraded_reads == 2);
}

#if defined(__linux__)
TEST_CASE("issue 16 failure 3: on a real full tmpfs reads are answered, blocks evicted, and caching resumes") {
    // The child reports through its exit code: 0 checked, 77 no namespaces, else the number of the failed check.
    temp_dir mount_point;
    const int code = tierguard_test::in_child(
        [&]() -> int {
            if (!tierguard_test::mount_private_tmpfs(mount_point.path().c_str(), "size=1m,mode=0700")) return 77;
            tierguard::clock::manual clock;
            auto cfg = small_blocks();
            cfg.block_size = 16 * 1024;
            cfg.byte_budget = std::uint64_t{64} << 20;  // far more than the file system holds
            auto cache = open_posix(mount_point.path() / "cache", cfg, clock);
            const range_version v{"e", 512 * 1024};
            for (int i = 0; i < 8; ++i) {  // 4 MiB offered to a 1 MiB file system
                origin o{"e"};
                auto bytes = cache.read("obj" + std::to_string(i), v, 0, v.size, o);
                if (!bytes || !matches(*bytes, "e", 0)) return 1;
            }
            const auto m = cache.metrics();
            if (m.disk_full_events == 0 || m.emergency_evictions == 0 || m.blocks == 0) return 2;
            if (m.bytes > (std::uint64_t{1} << 20)) return 3;
            // Space frees (the other objects go) and the backoff passes: caching resumes.
            for (int i = 0; i < 8; ++i) (void)cache.erase("obj" + std::to_string(i));
            clock.advance(2min);
            origin o{"e"};
            if (!cache.read("after", v, 0, v.size, o)) return 4;
            if (cache.inspect("after")->blocks.size() != v.size / cfg.block_size) return 5;
            return 0;
        },
        120);
    if (code == 77) {
        WARN("skipped: namespaces unavailable (unshare or mount refused)");
        return;
    }
    INFO("the child failed its check number "
         << code << " (1: a read, 2: no full disk met, 3: over the file system, 4-5: caching did not resume)");
    CHECK(code == 0);
}

TEST_CASE("issue 16 trial point 2: open on a fresh directory of a real full tmpfs runs detached until space frees") {
    temp_dir mount_point;
    const int code = tierguard_test::in_child(
        [&]() -> int {
            if (!tierguard_test::mount_private_tmpfs(mount_point.path().c_str(), "size=256k,mode=0700")) return 77;
            const fs::path filler = mount_point.path() / "filler";
            {
                std::ofstream out(filler, std::ios::binary);
                const std::string chunk(4096, 'f');
                for (int i = 0; i < 1024 && out.write(chunk.data(), static_cast<std::streamsize>(chunk.size())).flush();
                     ++i) {}
            }
            tierguard::clock::manual clock;
            auto dir = tierguard::storage::posix_directory::open({.root = mount_point.path() / "cache"});
            if (!dir) return 1;
            auto cache = posix_cache::open(std::move(*dir), small_blocks(), clock);
            if (!cache) return 2;
            if (cache->attached() || cache->metrics().disk_full_events != 1) return 3;
            const range_version v{"e", 4 * block};
            origin o{"e"};
            auto bytes = cache->read("obj", v, 0, v.size, o);
            if (!bytes || !matches(*bytes, "e", 0) || cache->metrics().degraded_reads != 1) return 4;
            fs::remove(filler);  // space frees
            clock.advance(posix_cache::attach_interval);
            if (!cache->read("obj", v, 0, v.size, o) || !cache->attached()) return 5;
            if (cache->inspect("obj")->blocks.size() != 4) return 6;
            return 0;
        },
        120);
    if (code == 77) {
        WARN("skipped: namespaces unavailable (unshare or mount refused)");
        return;
    }
    INFO("the child failed its check number " << code
                                              << " (1: the directory, 2: open failed, 3: not detached, 4: a degraded "
                                                 "read, 5: did not attach, 6: caching did not start)");
    CHECK(code == 0);
}
#endif

// Crash consistency (DESIGN.md invariant 5): a child reads random ranges of changing versions
// until it is killed with SIGKILL at a random moment; the parent reopens the directory and
// checks that it opens, that no record or block is damaged, and that every block it still
// holds is the origin's bytes for the version its record names.
TEST_CASE("issue 16: a range cache killed at any moment reopens with every held block intact") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    auto cfg = small_blocks();
    cfg.byte_budget = 30 * (block + 100);  // evictions (block files removed before the record) happen all along
    std::mt19937_64 choices(16);
    std::uint64_t fixed = 0;
    for (int kill = 0; kill < 20; ++kill) {
        const std::uint64_t seed = choices();
        tierguard_test::killable_child child([&](const tierguard_test::killable_child::progress_pipe& progress) {
            auto cache = open_posix(root, cfg);
            std::mt19937_64 rng(seed);
            for (;;) {
                const int k = static_cast<int>(rng() % 4);
                const std::string validator = "k" + std::to_string(k) + "v" + std::to_string(rng() % 3);
                const range_version v{validator, 12 * block + 77};
                const std::uint64_t offset = rng() % v.size;
                origin o{validator};
                (void)cache.read("object-" + std::to_string(k), v, offset, rng() % (v.size - offset) + 1, o);
                progress();
            }
        });
        REQUIRE(child.ok());
        REQUIRE(child.wait_for_progress(1 + choices() % 20));
        ::usleep(static_cast<useconds_t>(choices() % 2000));  // only picks the moment of the kill; nothing is timed
        REQUIRE(child.kill_and_reap());

        auto cache = open_posix(root, cfg);
        const auto at_open = cache.metrics();
        CHECK(at_open.corruption_metadata == 0);
        fixed += at_open.inconsistency_fixed;
        auto deep = cache.cleanup(true);
        REQUIRE(deep);
        CHECK(deep->damaged_blocks == 0);
        CHECK(deep->corrupt_metadata == 0);
        CHECK(deep->io_errors == 0);
        for (const auto& info : cache.objects()) {
            for (const std::uint32_t b : info.blocks) {
                origin down{info.version.validator};
                down.failing = true;
                const std::uint64_t at = std::uint64_t{b} * block;
                auto bytes = cache.read(info.key, info.version, at,
                                        std::min<std::uint64_t>(block, info.version.size - at), down);
                REQUIRE(bytes);
                CHECK(matches(*bytes, info.version.validator, at));
                CHECK(down.requests.empty());
            }
        }
    }
    std::printf("[range_cache crash] 20 kills; references to evicted blocks fixed at open: %llu\n",
                static_cast<unsigned long long>(fixed));
}

namespace {

// posix_directory, counting the reads the cache makes each way.
struct counting_directory {
    tierguard::storage::posix_directory inner;
    std::shared_ptr<std::atomic<int>> reads = std::make_shared<std::atomic<int>>(0);
    std::shared_ptr<std::atomic<int>> reads_into = std::make_shared<std::atomic<int>>(0);
    tierguard::result<std::vector<std::byte>> read(std::string_view name) const {
        ++*reads;
        return inner.read(name);
    }
    tierguard::result<std::size_t> read_into(std::string_view name, std::span<const std::span<std::byte>> parts) const {
        ++*reads_into;
        return inner.read_into(name, parts);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return inner.write(name, bytes);
    }
    tierguard::result<void> remove(std::string_view name) { return inner.remove(name); }
    tierguard::result<std::vector<tierguard::blob_info>> list() const { return inner.list(); }
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        return inner.quarantine(name, reason, now);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        return inner.clean(options);
    }
};
struct counting_policies : manual_policies {
    using storage = counting_directory;
};
using counting_cache = tierguard::range_cache<counting_policies>;

}  // namespace

TEST_CASE("issue 16: a disk hit wholly inside the caller's span is read into it in place, and still checked") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    auto opened = tierguard::storage::posix_directory::open({.root = root});
    REQUIRE(opened);
    counting_directory storage{std::move(*opened)};
    const auto reads = storage.reads;
    const auto reads_into = storage.reads_into;
    auto cache = counting_cache::open(std::move(storage), small_blocks());
    REQUIRE(cache);
    const range_version v{"e", 8 * block};
    origin o{"e"};
    REQUIRE(cache->read("obj", v, 0, 8 * block, o));
    o.requests.clear();
    *reads = 0;

    // Blocks 1..3 whole, the edges of 0 and 4 partial: three reads into the span, two of a frame.
    auto bytes = cache->read("obj", v, block - 10, 3 * block + 20, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", block - 10));
    CHECK(*reads_into == 3);
    CHECK(*reads == 2);
    CHECK(o.requests.empty());

    // Damage the in-place path must catch: one payload byte changed, block 6's file under
    // block 5's name (same size, another index), block 7 cut short. Each is fetched again.
    const std::string folder = cache->folder_for("obj");
    {
        std::fstream f(root / posix_cache::block_name(folder, 2), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(300);
        f.put('\x7f');
    }
    fs::copy_file(root / posix_cache::block_name(folder, 6), root / posix_cache::block_name(folder, 5),
                  fs::copy_options::overwrite_existing);
    fs::resize_file(root / posix_cache::block_name(folder, 7), block / 2);
    *reads_into = 0;
    bytes = cache->read("obj", v, 0, 8 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    CHECK(*reads_into == 8);
    REQUIRE(o.requests.size() == 3);
    CHECK(o.requests[0] == std::pair<std::uint64_t, std::uint64_t>{2 * block, block});
    CHECK(o.requests[1] == std::pair<std::uint64_t, std::uint64_t>{5 * block, block});
    CHECK(o.requests[2] == std::pair<std::uint64_t, std::uint64_t>{7 * block, block});
    CHECK(cache->metrics().corruption_missing_range == 3);
    CHECK(std::distance(fs::directory_iterator(root / "quarantine"), fs::directory_iterator()) == 3);
    // Fetched again and re-stored: the next read is all hits.
    o.requests.clear();
    bytes = cache->read("obj", v, 0, 8 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    CHECK(o.requests.empty());
}

namespace {

tierguard::range_config verify_once() {
    tierguard::range_config cfg = small_blocks();
    cfg.verify_reads = tierguard::range_verify::once_per_file_change;
    return cfg;
}

// A manual clock far enough past the real time that every file written now has settled
// (range_cache::verify_settle).
tierguard::clock::manual settled_clock() { return tierguard::clock::manual(std::chrono::system_clock::now() + 1h); }

std::int64_t ctime_ns(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
}

// Overwrites one byte of `p` in place, through the file system, again until its ctime has
// moved (a write in the same tick of the file system's clock leaves it as it was; the
// cache's verify_settle covers that for real time, which this test fakes with a manual clock).
void damage_in_place(const fs::path& p, std::streamoff at) {
    const std::int64_t before = ctime_ns(p);
    for (int attempt = 0; attempt < 1'000'000 && ctime_ns(p) == before; ++attempt) {
        std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(at);
        f.put('\x7f');
    }
    REQUIRE(ctime_ns(p) != before);
}

}  // namespace

TEST_CASE(
    "range cache: under verify_reads once_per_file_change a re-read of an unchanged block file is not checked again") {
    temp_dir dir;
    for (const auto mode : {tierguard::range_verify::always, tierguard::range_verify::once_per_file_change}) {
        CAPTURE(static_cast<int>(mode));
        tierguard::range_config cfg = small_blocks();
        cfg.verify_reads = mode;
        auto cache = open_posix(dir.path() / ("cache" + std::to_string(static_cast<int>(mode))), cfg, settled_clock());
        const range_version v{"e", 8 * block};
        origin o{"e"};
        REQUIRE(cache.read("obj", v, 0, 8 * block, o));  // fetched and stored
        for (int round = 1; round <= 3; ++round) {
            auto bytes = cache.read("obj", v, 0, 8 * block, o);
            REQUIRE(bytes);
            CHECK(matches(*bytes, "e", 0));
            // always: every block each round; once: the first round only.
            CHECK(cache.metrics().blocks_verified ==
                  (mode == tierguard::range_verify::always ? 8u * static_cast<unsigned>(round) : 8u));
        }
        CHECK(cache.metrics().disk_hits == 24);
        CHECK(o.requests.size() == 1);
    }
}

TEST_CASE("range cache: under verify_reads once_per_file_change damage written through the file system is caught") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    auto cache = open_posix(root, verify_once(), settled_clock());
    const range_version v{"e", 8 * block};
    origin o{"e"};
    REQUIRE(cache.read("obj", v, 0, 8 * block, o));
    REQUIRE(cache.read("obj", v, 0, 8 * block, o));  // checked once: each identity recorded
    REQUIRE(cache.read("obj", v, 0, 8 * block, o));
    REQUIRE(cache.metrics().blocks_verified == 8);
    CHECK(cache.to_prometheus().find("tierguard_range_blocks_verified_total 8\n") != std::string::npos);
    o.requests.clear();

    // A byte of block 2 changed in place (same inode, same size); block 6's file copied over
    // block 5's (a new file, same size); block 7 truncated and then grown back to its size.
    const std::string folder = cache.folder_for("obj");
    damage_in_place(root / posix_cache::block_name(folder, 2), 300);
    fs::copy_file(root / posix_cache::block_name(folder, 6), root / posix_cache::block_name(folder, 5),
                  fs::copy_options::overwrite_existing);
    const auto size7 = fs::file_size(root / posix_cache::block_name(folder, 7));
    fs::resize_file(root / posix_cache::block_name(folder, 7), size7 / 2);
    fs::resize_file(root / posix_cache::block_name(folder, 7), size7);
    auto bytes = cache.read("obj", v, 0, 8 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    REQUIRE(o.requests.size() == 3);
    CHECK(o.requests[0] == std::pair<std::uint64_t, std::uint64_t>{2 * block, block});
    CHECK(o.requests[1] == std::pair<std::uint64_t, std::uint64_t>{5 * block, block});
    CHECK(o.requests[2] == std::pair<std::uint64_t, std::uint64_t>{7 * block, block});
    CHECK(cache.metrics().corruption_missing_range == 3);
    // Re-stored blocks are new files: checked once again, then trusted as the others.
    o.requests.clear();
    REQUIRE(cache.read("obj", v, 0, 8 * block, o));
    REQUIRE(cache.read("obj", v, 0, 8 * block, o));
    CHECK(o.requests.empty());
    CHECK(cache.metrics().blocks_verified == 8 + 3);
}

TEST_CASE(
    "range cache: under verify_reads once_per_file_change a file changed within verify_settle is checked every time") {
    temp_dir dir;
    // The clock at the real time: every block file was written less than verify_settle ago.
    auto cache =
        open_posix(dir.path() / "cache", verify_once(), tierguard::clock::manual(std::chrono::system_clock::now()));
    const range_version v{"e", 4 * block};
    origin o{"e"};
    REQUIRE(cache.read("obj", v, 0, 4 * block, o));
    REQUIRE(cache.read("obj", v, 0, 4 * block, o));
    REQUIRE(cache.read("obj", v, 0, 4 * block, o));
    CHECK(cache.metrics().blocks_verified == 8);
}

TEST_CASE("range cache: open refuses a verify_reads value that is not a range_verify, naming it") {
    temp_dir dir;
    auto storage = tierguard::storage::posix_directory::open({.root = dir.path() / "cache"});
    REQUIRE(storage);
    tierguard::range_config cfg = small_blocks();
    cfg.verify_reads = static_cast<tierguard::range_verify>(7);
    auto cache = posix_cache::open(std::move(*storage), cfg);
    REQUIRE_FALSE(cache);
    CHECK(cache.error().code() == errc::invalid_argument);
    CHECK(cache.error().context() ==
          "range_config.verify_reads is 7; it must be range_verify::always or range_verify::once_per_file_change");
}

namespace {

// posix_directory, counting its walks; with `one_walk` false it lacks clean(options, listing)
// (as a storage without it), so a cache over it cleans and then lists.
template <bool one_walk>
struct walk_counting_directory {
    tierguard::storage::posix_directory inner;
    std::shared_ptr<std::atomic<int>> walks = std::make_shared<std::atomic<int>>(0);
    tierguard::result<std::vector<std::byte>> read(std::string_view name) const { return inner.read(name); }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return inner.write(name, bytes);
    }
    tierguard::result<void> remove(std::string_view name) { return inner.remove(name); }
    tierguard::result<std::vector<tierguard::blob_info>> list() const {
        ++*walks;
        return inner.list();
    }
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        return inner.quarantine(name, reason, now);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        ++*walks;
        return inner.clean(options);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options,
                                                     std::vector<tierguard::blob_info>& listing) requires one_walk {
        ++*walks;
        return inner.clean(options, listing);
    }
};
template <bool one_walk>
struct walk_counting_policies : manual_policies {
    using storage = walk_counting_directory<one_walk>;
};

template <bool one_walk>
std::pair<tierguard::range_cleanup_report, int> open_counting_walks(const fs::path& root,
                                                                    tierguard::range_metrics& metrics) {
    auto opened = tierguard::storage::posix_directory::open({.root = root});
    REQUIRE(opened);
    walk_counting_directory<one_walk> storage{std::move(*opened)};
    const auto walks = storage.walks;
    auto cache = tierguard::range_cache<walk_counting_policies<one_walk>>::open(std::move(storage), small_blocks());
    REQUIRE(cache);
    const int at_open = walks->load();
    auto report = cache->cleanup();
    REQUIRE(report);
    metrics = cache->metrics();
    return {*report, at_open};
}

}  // namespace

TEST_CASE("issue 18: open walks the directory once where the storage cleans and lists in one walk; same outcome") {
    temp_dir dir;
    const fs::path root = dir.path() / "one";
    const auto [a, b] = cache_two(root, "a", 6, "b", 3);
    // What open must clean and fix: a temp file, a foreign file, an orphan block, a block
    // the record names gone.
    write_file(root / a.substr(0, 2) / ".tmp.99999.1", "leftover");
    write_file(root / "stray file", "x");
    fs::copy_file(root / posix_cache::block_name(b, 0), root / posix_cache::block_name(b, 7));
    fs::remove(root / posix_cache::block_name(a, 4));
    fs::copy(root, dir.path() / "two", fs::copy_options::recursive);

    tierguard::range_metrics one_metrics, two_metrics;
    const auto [one_report, one_walks] = open_counting_walks<true>(root, one_metrics);
    const auto [two_report, two_walks] = open_counting_walks<false>(dir.path() / "two", two_metrics);
    CHECK(one_walks == 1);
    CHECK(two_walks == 2);
    // The cleanup() after open finds nothing left to fix either way.
    CHECK(one_report.temp_files_cleaned == 0);
    CHECK(one_report.orphaned_files_cleaned == 0);
    CHECK(one_report.inconsistencies_fixed == 0);
    CHECK(one_report.blocks_checked == two_report.blocks_checked);
    CHECK(one_report.objects_checked == two_report.objects_checked);
    // What open found and fixed: the same counts.
    CHECK(one_metrics.partial_write_cleanup == 1);
    CHECK(one_metrics.orphaned_files_cleaned == 2);
    CHECK(one_metrics.inconsistency_fixed == 1);
    CHECK(one_metrics.blocks == 8);
    CHECK(two_metrics.partial_write_cleanup == one_metrics.partial_write_cleanup);
    CHECK(two_metrics.orphaned_files_cleaned == one_metrics.orphaned_files_cleaned);
    CHECK(two_metrics.inconsistency_fixed == one_metrics.inconsistency_fixed);
    CHECK(two_metrics.blocks == one_metrics.blocks);
    CHECK(two_metrics.bytes == one_metrics.bytes);
}

TEST_CASE("issue 16: a read-only storage under a cache without read_only fails open, naming both settings") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    (void)cache_two(root, "a", 2, "b", 1);
    {
        auto storage = tierguard::storage::posix_directory::open({.root = root, .read_only = true});
        REQUIRE(storage);
        auto cache = posix_cache::open(std::move(*storage), small_blocks());
        REQUIRE_FALSE(cache);
        CHECK(cache.error().code() == errc::invalid_argument);
        CHECK(posix_cache::describe(cache.error()) ==
              "[tierguard.invalid_argument] range cache: the storage was opened read-only (its config::read_only) but "
              "range_config.read_only is false; set both to serve from a read-only cache directory");
    }
    // Both set: the cached blocks are served from the directory, nothing written.
    auto storage = tierguard::storage::posix_directory::open({.root = root, .read_only = true});
    REQUIRE(storage);
    tierguard::range_config cfg = small_blocks();
    cfg.read_only = true;
    auto cache = posix_cache::open(std::move(*storage), cfg);
    REQUIRE(cache);
    CHECK(cache->attached());
    origin o{"e"};
    auto bytes = cache->read("a", {"e", 2 * block}, 0, 2 * block, o);
    REQUIRE(bytes);
    CHECK(matches(*bytes, "e", 0));
    CHECK(o.requests.empty());
    CHECK(cache->metrics().disk_hits == 2);
    CHECK(cache->metrics().io_errors == 0);
}
