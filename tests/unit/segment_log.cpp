// segment_log on real directories: recovery, damage, eviction, the disk full path, and the
// cache over it. The behaviour it shares with the other storages is in unit/storage.cpp.

#include "support/blob_text.hpp"
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/detail/segment_format.hpp>
#include <tierguard/detail/segment_index.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using tierguard::durability;
using tierguard::errc;
using tierguard::storage::memory_storage;
using tierguard::storage::segment_log;
using tierguard_test::bytes_of;
using tierguard_test::errc_of;
using tierguard_test::temp_dir;
using tierguard_test::text_of;

namespace {

std::string file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void put_file(const fs::path& p, std::string_view text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

/// The segment files under `root`, oldest first.
std::vector<fs::path> segment_files(const fs::path& root) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(root))
        if (e.path().extension() == ".seg") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

std::uint64_t bytes_on_disk(const fs::path& root) {
    std::uint64_t sum = 0;
    for (const auto& p : segment_files(root)) sum += fs::file_size(p);
    return sum;
}

segment_log::config small(const fs::path& root, durability sync = durability::none) {
    return {.root = root,
            .sync = sync,
            .max_blob_size = std::size_t{1} << 20,
            .segment_size = std::uint64_t{64} << 10,
            .byte_budget = std::uint64_t{64} << 20};
}

segment_log open_log(const segment_log::config& cfg) {
    auto s = segment_log::open(cfg);
    INFO((s ? std::string("ok") : s.error().message()));
    REQUIRE(s);
    return std::move(*s);
}

std::string value_for(int key, int version, std::size_t size = 100) {
    std::string v = "k" + std::to_string(key) + "v" + std::to_string(version) + ":";
    v.resize(size, static_cast<char>('a' + (key + version) % 26));
    return v;
}

std::string name_for(int key) { return "ab/cd/" + std::to_string(key); }

std::size_t record_size(std::string_view name, std::size_t blob) {
    return tierguard::detail::segment::record_size(name.size(), blob);
}

}  // namespace

TEST_CASE("segment_log: blobs round trip, also across a reopen, and list names each once") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    std::map<std::string, std::string> expected;
    {
        auto s = open_log(cfg);
        for (int i = 0; i < 400; ++i) {
            const std::string v = value_for(i, 0, static_cast<std::size_t>(i * 37 % 3000));
            REQUIRE(s.write(name_for(i), bytes_of(v)));
            expected[name_for(i)] = v;
        }
        REQUIRE(s.write("tierguard-meta", bytes_of("secret")));
        expected["tierguard-meta"] = "secret";
        for (const auto& [name, v] : expected) CHECK(text_of(s.read(name).value()) == v);
        CHECK(s.stats().segments > 1);
    }
    auto s = open_log(cfg);
    for (const auto& [name, v] : expected) {
        INFO(name);
        CHECK(text_of(s.read(name).value()) == v);
    }
    const auto listing = s.list().value();
    CHECK(listing.size() == expected.size());
    for (const auto& b : listing) CHECK(b.size == expected.at(b.name).size());
    // Log order: modified never decreases along the listing.
    CHECK(std::is_sorted(listing.begin(), listing.end(),
                         [](const auto& a, const auto& b) { return a.modified < b.modified; }));
    CHECK(s.stats().frames_recovered == expected.size() - 1);  // the pinned blob is kept outside the log
    CHECK(s.stats().torn_tails == 0);
    CHECK(s.stats().bad_frames == 0);
}

TEST_CASE("segment_log: a pinned blob survives a reopen whatever max_blob_size says") {
    // max_blob_size near SIZE_MAX wrapped the bound on a side file's size, so every open
    // lost the pinned hash secret (found by tierguard-cli, which opens with no size limit).
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.max_blob_size = GENERATE(std::size_t{1} << 20, std::numeric_limits<std::size_t>::max());
    const std::string secret(64, 's');  // as large as the disk tier's framed secret
    open_log(cfg).write("tierguard-meta", bytes_of(secret)).value();
    CHECK(text_of(open_log(cfg).read("tierguard-meta").value()) == secret);
}

TEST_CASE("segment_log: a pinned name the log still holds (format 1) is copied out and counted once") {
    // Its log record stayed in the index: held_blobs() counted it as a blob (the disk tier's
    // size() one too many) and list() named it twice (found by fuzz.directory_open).
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    auto in_log = cfg;
    in_log.pinned = {};
    {
        auto s = open_log(in_log);
        s.write("tierguard-meta", bytes_of("secret")).value();
        s.write("a", bytes_of("1")).value();
        s.write("b", bytes_of("2")).value();
    }
    for (int reopen = 0; reopen < 2; ++reopen) {
        INFO("open " << reopen);
        auto s = open_log(cfg);
        CHECK(s.held_blobs().count == 2);
        CHECK(s.held_blobs().bytes == 2);
        const auto listed = s.list().value();
        CHECK(std::count_if(listed.begin(), listed.end(), [](const auto& b) { return b.name == "tierguard-meta"; }) ==
              1);
        CHECK(listed.size() == 3);
        CHECK(text_of(s.read("tierguard-meta").value()) == "secret");
        CHECK(text_of(s.read("a").value()) == "1");
    }
}

TEST_CASE("segment_log: overwrites and removes win across reopens; no phantom comes back (random, against a model)") {
    temp_dir dir;
    const auto sync = GENERATE(durability::none, durability::data);
    const bool in_memory = GENERATE(true, false);
    INFO("keep_active_in_memory " << in_memory);
    auto cfg = small(dir.path() / "cache", sync);
    cfg.segment_size = 16 << 10;  // many segments
    cfg.keep_active_in_memory = in_memory;
    memory_storage model;
    std::mt19937 rng(20261129);
    auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
    auto s = std::make_unique<segment_log>(open_log(cfg));
    const int steps = sync == durability::none ? 4000 : 800;
    for (int step = 0; step < steps; ++step) {
        const std::string name = name_for(pick(60));
        INFO("step " << step << " " << name);
        switch (pick(10)) {
            case 0:
            case 1:
            case 2:
            case 3: {
                const std::string v = value_for(pick(1000), step, static_cast<std::size_t>(pick(600)));
                REQUIRE(errc_of(s->write(name, bytes_of(v))) == errc_of(model.write(name, bytes_of(v))));
                break;
            }
            case 4:
            case 5: CHECK(errc_of(s->remove(name)) == errc_of(model.remove(name))); break;
            case 6:
                if (pick(10) == 0) {  // reopen: the index is rebuilt from the segments
                    s.reset();
                    s = std::make_unique<segment_log>(open_log(cfg));
                }
                break;
            default: {
                const auto got = s->read(name);
                const auto want = model.read(name);
                REQUIRE(errc_of(got) == errc_of(want));
                if (want) CHECK(*got == *want);
            }
        }
    }
    s.reset();
    s = std::make_unique<segment_log>(open_log(cfg));
    std::vector<std::string> listed;
    const auto real_listing = s->list().value();
    for (const auto& b : real_listing) listed.push_back(b.name);
    std::sort(listed.begin(), listed.end());
    std::vector<std::string> modelled;
    const auto model_listing = model.list().value();
    for (const auto& b : model_listing) modelled.push_back(b.name);
    CHECK(listed == modelled);
    for (const auto& name : modelled) CHECK(s->read(name).value() == model.read(name).value());
    CHECK(s->stats().segments_evicted == 0);  // nothing here may vanish on its own
}

TEST_CASE("segment_log: a torn last record, cut at every byte, never yields a value and is counted") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    const std::string torn_value = value_for(99, 1, 150);
    {
        auto s = open_log(cfg);
        for (int i = 0; i < 10; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
        REQUIRE(s.write(name_for(3), bytes_of(value_for(3, 1))));  // an overwrite before the torn record
        REQUIRE(s.remove(name_for(4)));
        REQUIRE(s.write("torn/new", bytes_of(torn_value)));
    }
    const auto files = segment_files(cfg.root);
    REQUIRE(files.size() == 1);
    const std::string pristine = file_bytes(files.front());
    const std::size_t last = pristine.size() - record_size("torn/new", torn_value.size());
    for (std::size_t cut = last; cut <= pristine.size(); ++cut) {
        INFO("cut at " << cut << " of " << pristine.size());
        put_file(files.front(), std::string_view(pristine).substr(0, cut));
        auto s = open_log(cfg);
        const auto r = s.read("torn/new");
        const bool whole = cut >= last + tierguard::detail::segment::record_header_size + 8 + torn_value.size();
        if (whole) {
            CHECK(text_of(r.value()) == torn_value);  // only the padding is missing
        } else {
            CHECK(errc_of(r) == errc::miss);
            CHECK(s.stats().torn_tails == (cut > last ? 1u : 0u));
        }
        CHECK(text_of(s.read(name_for(3)).value()) == value_for(3, 1));
        CHECK(errc_of(s.read(name_for(4))) == errc::miss);
        for (int i : {0, 5, 9}) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0));
        // Appends continue after the last intact record, and survive a reopen.
        REQUIRE(s.write("after/cut", bytes_of("fine")));
        REQUIRE(s.flush());
    }
    auto s = open_log(cfg);
    CHECK(text_of(s.read("after/cut").value()) == "fine");
}

TEST_CASE("segment_log: a bit flip in one record's blob costs only that entry") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    std::size_t start = 0;
    {
        auto s = open_log(cfg);
        for (int i = 0; i < 5; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
        start = static_cast<std::size_t>(s.stats().disk_bytes);
        REQUIRE(s.write(name_for(5), bytes_of(value_for(5, 0))));
        for (int i = 6; i < 10; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
    }
    const fs::path file = segment_files(cfg.root).front();
    const std::string pristine = file_bytes(file);
    const std::size_t body = tierguard::detail::segment::record_header_size + name_for(5).size();
    const std::size_t blob_end = start + body + value_for(5, 0).size();
    for (std::size_t at = start + 16; at < blob_end; ++at) {  // the whole-record CRC, and the blob
        if (at >= start + 20 && at < start + body) continue;  // the name: see the next test
        INFO("flip at " << at);
        std::string damaged = pristine;
        damaged[at] = static_cast<char>(damaged[at] ^ (1 << (at % 8)));
        put_file(file, damaged);
        auto s = open_log(cfg);
        CHECK(errc_of(s.read(name_for(5))) == errc::miss);
        CHECK(s.stats().bad_frames == 1);
        CHECK(s.stats().entries == 9);
        for (int i = 0; i < 10; ++i)
            if (i != 5) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0));
    }
}

TEST_CASE("segment_log: a record header damaged in one byte costs only its own name, never an old value") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    std::size_t start = 0;
    {
        auto s = open_log(cfg);
        for (int i = 0; i < 5; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
        REQUIRE(s.write(name_for(1), bytes_of(value_for(1, 1))));
        start = static_cast<std::size_t>(s.stats().disk_bytes);
        REQUIRE(s.remove(name_for(2)));  // the damaged record: a tombstone
        for (int i = 6; i < 10; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
    }
    const fs::path file = segment_files(cfg.root).front();
    const std::string pristine = file_bytes(file);
    const std::size_t head_end = start + tierguard::detail::segment::record_header_size + name_for(2).size();
    for (std::size_t at = start; at < head_end; ++at) {
        if (at >= start + 16 && at < start + 20) continue;  // the whole-record CRC: a blob-class damage
        INFO("flip at " << at);
        std::string damaged = pristine;
        damaged[at] = static_cast<char>(damaged[at] ^ (1 << (at % 8)));
        put_file(file, damaged);
        auto s = open_log(cfg);
        // The removed blob must not come back with its old value; the others stay.
        CHECK(errc_of(s.read(name_for(2))) == errc::miss);
        CHECK(text_of(s.read(name_for(1)).value()) == value_for(1, 1));
        for (const int i : {0, 3, 4, 6, 7, 8, 9}) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0));
        CHECK(s.stats().damaged_regions == 0);
        CHECK(s.stats().bad_frames == 1);
    }
}

TEST_CASE(
    "segment_log: a record header damaged beyond one byte costs what was recorded before it, never an old value") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    std::size_t start = 0;
    {
        auto s = open_log(cfg);
        for (int i = 0; i < 5; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
        start = static_cast<std::size_t>(s.stats().disk_bytes);
        REQUIRE(s.remove(name_for(2)));  // the damaged record: a tombstone
        for (int i = 6; i < 10; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
    }
    const fs::path file = segment_files(cfg.root).front();
    std::string damaged = file_bytes(file);
    damaged[start + 8] = static_cast<char>(damaged[start + 8] ^ 0x40);  // blob_length and name: no single-byte repair
    damaged[start + 21] = static_cast<char>(damaged[start + 21] ^ 0x01);
    put_file(file, damaged);
    auto s = open_log(cfg);
    CHECK(errc_of(s.read(name_for(2))) == errc::miss);
    for (int i = 0; i < 5; ++i) CHECK(errc_of(s.read(name_for(i))) == errc::miss);
    for (int i = 6; i < 10; ++i) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0));
    CHECK(s.stats().damaged_regions == 1);
    CHECK(s.stats().entries_dropped == 5);  // 0 to 4, the tombstone's own name among them
}

namespace {

// Writes six blobs into the active segment, flushes them and damages the first two
// records in the file.
segment_log six_with_two_damaged(segment_log::config cfg) {
    auto s = open_log(cfg);
    for (int i = 0; i < 6; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
    const std::size_t first = tierguard::detail::segment::segment_header_size;
    const std::size_t second = first + record_size(name_for(0), value_for(0, 0).size());
    REQUIRE(s.flush());
    const fs::path file = segment_files(s.root()).front();
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    for (const std::size_t at : {first + 60, second + 70}) {
        f.seekp(static_cast<std::streamoff>(at));
        f.put('#');
    }
    return s;
}

}  // namespace

TEST_CASE("segment_log: the active segment's copy in memory serves reads; scrub still checks its file") {
    temp_dir dir;
    auto s = six_with_two_damaged(small(dir.path() / "cache"));
    for (int i = 0; i < 6; ++i) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0));
    const auto report = s.scrub();
    REQUIRE(report);
    CHECK(report->frames_skipped == 2);
    CHECK(report->entries_dropped == 2);
    for (int i = 0; i < 2; ++i) CHECK(errc_of(s.read(name_for(i))) == errc::miss);
    for (int i = 2; i < 6; ++i) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0));
    CHECK(s.stats().buffered_bytes == 0);
}

TEST_CASE("segment_log: damage found by a read is corrupted; quarantine moves it aside; scrub finds the rest") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.keep_active_in_memory = false;  // reads of the active segment go to its file
    auto s = six_with_two_damaged(cfg);
    const auto r = s.read(name_for(0));
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::corrupted);
    REQUIRE(s.quarantine(name_for(0), "checksum", std::chrono::system_clock::now()));
    CHECK(s.quarantined() == 1);
    CHECK(errc_of(s.read(name_for(0))) == errc::miss);
    const auto report = s.scrub();
    REQUIRE(report);
    CHECK(report->segments_checked == 1);
    CHECK(report->frames_skipped == 2);   // the quarantined one (still in the file) and the second
    CHECK(report->entries_dropped == 1);  // only the second was still indexed
    CHECK(errc_of(s.read(name_for(1))) == errc::miss);
    for (int i = 2; i < 6; ++i) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0));
}

TEST_CASE("segment_log: scrub deletes the oldest segments that hold no live blob") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 8192;
    {
        auto s = open_log(cfg);
        for (int i = 0; i < 60; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 500))));
        REQUIRE(s.stats().segments >= 4);
        for (int i = 0; i < 30; ++i) REQUIRE(s.remove(name_for(i)));
        const auto before = s.stats();
        const auto report = s.scrub();
        REQUIRE(report);
        const auto after = s.stats();
        CHECK(report->segments_checked == before.segments);
        CHECK(report->frames_skipped == 0);
        CHECK(report->segments_removed >= 1);
        CHECK(after.segments == before.segments - report->segments_removed);
        CHECK(report->bytes_reclaimed == before.disk_bytes - after.disk_bytes);
        REQUIRE(s.flush());
        CHECK(bytes_on_disk(s.root()) == after.disk_bytes);
    }
    auto s = open_log(cfg);
    for (int i = 0; i < 30; ++i) CHECK(errc_of(s.read(name_for(i))) == errc::miss);
    for (int i = 30; i < 60; ++i) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0, 500));
}

TEST_CASE("segment_log: a segment with an unreadable header is quarantined whole; newer segments survive") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4096;
    {
        auto s = open_log(cfg);
        for (int i = 0; i < 30; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 900))));
    }
    const auto files = segment_files(cfg.root);
    REQUIRE(files.size() >= 5);
    {
        std::fstream f(files[2], std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(9);
        f.put('\x7f');  // the sequence number and the CRC: two bytes, no single-byte repair
        f.seekp(29);
        f.put('\x7f');
    }
    auto s = open_log(cfg);
    CHECK(s.stats().bad_segments == 1);
    CHECK(s.stats().segments == files.size() - 1);
    CHECK(s.quarantined() == 1);
    CHECK_FALSE(fs::exists(files[2]));
    // Blobs in the segments after it are served; the ones before it are not (it may have
    // held removes of them), and none comes back with a wrong value.
    const int newest = 29;
    CHECK(text_of(s.read(name_for(newest)).value()) == value_for(newest, 0, 900));
    CHECK(errc_of(s.read(name_for(0))) == errc::miss);
}

TEST_CASE("segment_log: FIFO segment eviction keeps the byte budget at all times") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 16 << 10;
    cfg.byte_budget = 64 << 10;  // four segments
    cfg.reinsert_read = false;
    auto s = open_log(cfg);
    for (int i = 0; i < 600; ++i) {
        REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 1000))));
        const auto st = s.stats();
        REQUIRE(st.disk_bytes <= cfg.byte_budget);
        REQUIRE(st.segments <= 4);
        if (i % 25 == 0) {
            REQUIRE(s.flush());
            REQUIRE(bytes_on_disk(s.root()) <= cfg.byte_budget);
        }
    }
    const auto st = s.stats();
    CHECK(st.segments_evicted > 0);
    CHECK(st.entries_evicted + st.entries == 600);
    CHECK(errc_of(s.read(name_for(0))) == errc::miss);  // the oldest went first
    CHECK(text_of(s.read(name_for(599)).value()) == value_for(599, 0, 1000));
    // What is left is a suffix of the writes: FIFO.
    int first_present = -1;
    for (int i = 0; i < 600; ++i)
        if (s.read(name_for(i))) {
            first_present = i;
            break;
        }
    REQUIRE(first_present > 0);
    for (int i = first_present; i < 600; ++i) CHECK(s.read(name_for(i)));
}

TEST_CASE("segment_log: a blob read since it was written survives its segment's eviction; pinned names always do") {
    const bool reinsert = GENERATE(true, false);
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 16 << 10;
    cfg.byte_budget = 64 << 10;
    cfg.reinsert_read = reinsert;
    {
        auto s = open_log(cfg);
        REQUIRE(s.write("tierguard-meta", bytes_of("secret")));
        REQUIRE(s.write("hot", bytes_of(value_for(1, 1, 1000))));
        REQUIRE(s.write("cold", bytes_of(value_for(2, 2, 1000))));
        for (int i = 0; i < 300; ++i) {
            if (i % 10 == 0) {  // read again after each carry
                const bool served = static_cast<bool>(s.read("hot"));
                if (reinsert) REQUIRE(served);
            }
            REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 1000))));
        }
        CHECK(s.stats().segments_evicted >= 10);
        CHECK(errc_of(s.read("cold")) == errc::miss);
        CHECK(text_of(s.read("tierguard-meta").value()) == "secret");
        if (reinsert) {
            CHECK(text_of(s.read("hot").value()) == value_for(1, 1, 1000));
            CHECK(s.stats().entries_reinserted >= 5);  // "hot" once per eviction of its segment
        } else {
            CHECK(errc_of(s.read("hot")) == errc::miss);
        }
    }
    // The carried copies are the ones a reopen finds.
    auto again = open_log(cfg);
    CHECK(text_of(again.read("tierguard-meta").value()) == "secret");
    CHECK(errc_of(again.read("hot")) == (reinsert ? errc{} : errc::miss));
}

TEST_CASE("segment_log: without sync, blobs carried over are written out at once, not left to a crash") {
    // Regression: the carried copies waited in the append buffer while their old segment was
    // already deleted, so a crash before the next write-out lost them (the pinned meta blob,
    // the disk tier's hash secret, with them: every entry orphaned).
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4096;
    cfg.byte_budget = 8192;  // the third segment evicts the first
    const int code = tierguard_test::in_child([&]() -> int {
        auto s = segment_log::open(cfg);
        if (!s || !s->write("tierguard-meta", bytes_of("secret"))) return 10;
        for (int i = 0; s->stats().segments_evicted == 0; ++i)
            if (!s->write(name_for(i), bytes_of(value_for(i, 0, 1000)))) return 11;
        ::_exit(0);  // a crash: the destructor never writes the buffer out
    });
    REQUIRE(code == 0);
    auto s = open_log(cfg);
    CHECK(text_of(s.read("tierguard-meta").value()) == "secret");
}

TEST_CASE("segment_log: open finishes a roll a crash interrupted; the pinned name, kept outside the log, survives") {
    // A crash after a roll made the newest segment but before it wrote the copies and
    // deleted the oldest: one segment more than the budget, the pinned blob only in the oldest.
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4096;
    cfg.byte_budget = 8192;
    std::uint64_t next = 0;
    {
        auto s = open_log(cfg);
        REQUIRE(s.write("tierguard-meta", bytes_of("secret")));
        for (int i = 0; s.stats().segments < 2; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 1000))));
        REQUIRE(s.write("last", bytes_of("newest")));
        const auto files = segment_files(s.root());
        REQUIRE(files.size() == 2);
        next = std::stoull(files.back().stem().string(), nullptr, 16) + 1;
    }
    std::array<std::byte, tierguard::detail::segment::segment_header_size> header{};
    tierguard::detail::segment::encode_segment_header({next, 0}, header.data());
    char name[32];
    std::snprintf(name, sizeof name, "%016llx.seg", static_cast<unsigned long long>(next));
    {
        std::ofstream f(dir.path() / "cache" / name, std::ios::binary);
        f.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
    }
    {
        auto s = open_log(cfg);
        CHECK(segment_files(s.root()).size() == 2);
        CHECK(s.stats().segments_evicted == 1);
        CHECK(s.stats().entries_reinserted == 0);  // the pinned name is in its side files, not carried
        CHECK(text_of(s.read("tierguard-meta").value()) == "secret");
        CHECK(text_of(s.read("last").value()) == "newest");
        CHECK(bytes_on_disk(s.root()) <= cfg.byte_budget);
    }
    // The copy is on disk: a second open finds it without the oldest segment.
    auto s = open_log(cfg);
    CHECK(text_of(s.read("tierguard-meta").value()) == "secret");
}

#if defined(__linux__)
TEST_CASE("segment_log: ENOSPC while appending evicts the oldest segment and retries once") {
    enum : int { ok = 0, no_namespaces = 77, open_failed = 10, write_failed, never_full, wrong_value, budget_broken };
    temp_dir mount_point;
    const int code = tierguard_test::in_child([&]() -> int {
        if (!tierguard_test::mount_private_tmpfs(mount_point.path().c_str(), "size=256k,mode=0700"))
            return no_namespaces;
        // A budget far beyond the file system: only ENOSPC can make room.
        auto s = segment_log::open({.root = mount_point.path() / "cache",
                                    .sync = durability::none,
                                    .segment_size = 32 << 10,
                                    .byte_budget = 16 << 20,
                                    .write_buffer = 4096});
        if (!s) return open_failed;
        for (int i = 0; i < 1000; ++i) {
            const std::string v = value_for(i, 0, 900);
            if (!s->write(name_for(i), bytes_of(v))) return write_failed;
            const auto back = s->read(name_for(i));
            if (!back || text_of(*back) != v) return wrong_value;
        }
        if (!s->flush()) return write_failed;
        if (s->stats().disk_full_evictions == 0) return never_full;
        if (s->stats().disk_bytes > (256 << 10)) return budget_broken;
        return ok;
    });
    INFO("child exit code " << code
                            << " (10 open failed, 11 a write failed, 12 never full, 13 wrong value, 14 over the fs)");
    if (code == no_namespaces) {
        WARN("skipped: namespaces unavailable (unshare or mount refused)");
        return;
    }
    CHECK(code == ok);
}
#endif

namespace {

// In a child with a private tmpfs of `fs_size` at `mount_point`: puts of 1000-byte blobs
// (the pinned secret first) until `bytes` were written, a clean close, a reopen. Prints
// and returns in the exit code: 77 no namespaces; 10 open failed; 11 the secret lost;
// 12 a wrong value; 13 the last put not readable; 14 a put failed after the first
// ENOSPC was handled (more than `failures_allowed`); else 0.
int fill_past_enospc(const fs::path& mount_point, const char* fs_size, std::uint64_t segment_size, int puts,
                     int failures_allowed) {
    return tierguard_test::in_child([&]() -> int {
        const std::string options = std::string("size=") + fs_size + ",mode=0700";
        if (!tierguard_test::mount_private_tmpfs(mount_point.c_str(), options.c_str())) return 77;
        const segment_log::config cfg{.root = mount_point / "cache",
                                      .sync = durability::data,
                                      .segment_size = segment_size,
                                      .byte_budget = std::uint64_t{1} << 30};
        std::map<std::string, std::string> model;
        int failed = 0;
        {
            auto s = segment_log::open(cfg);
            if (!s || !s->write("tierguard-meta", bytes_of("secret"))) return 10;
            for (int i = 0; i < puts; ++i) {
                const int k = i % 5000;
                const std::string v = value_for(k, i, 1000);
                if (s->write(name_for(k), bytes_of(v))) {
                    model[name_for(k)] = v;
                } else {
                    ++failed;
                    model.erase(name_for(k));
                }
            }
            std::printf("issue 14 fill (%s tmpfs, %llu KiB segments): %d of %d puts failed, %llu disk-full evictions, ",
                        fs_size, static_cast<unsigned long long>(segment_size >> 10), failed, puts,
                        static_cast<unsigned long long>(s->stats().disk_full_evictions));
        }
        auto s = segment_log::open(cfg);
        if (!s) return 10;
        int readable = 0;
        for (const auto& [name, v] : model) {
            const auto got = s->read(name);
            if (!got) continue;
            if (text_of(*got) != v) return 12;
            ++readable;
        }
        const auto secret = s->read("tierguard-meta");
        std::printf("after reopen %d of %zu acknowledged entries readable, secret %s\n", readable, model.size(),
                    secret ? "kept" : "lost");
        std::fflush(stdout);
        if (!secret || text_of(*secret) != "secret") return 11;
        if (!s->read(name_for((puts - 1) % 5000))) return 13;
        if (failed > failures_allowed) return 14;
        return 0;
    });
}

}  // namespace

#if defined(__linux__)
TEST_CASE(
    "segment_log: issue 14 - filling a real tmpfs past ENOSPC keeps writing and the secret; a reopen finds the "
    "entries") {
    temp_dir mount_point;
    struct fill {
        const char* fs_size;
        std::uint64_t segment_size;
    };
    // 1 MiB segments on 8 MiB; 16 MiB segments on 8 MiB (less room than one segment).
    for (const fill f : {fill{"8m", std::uint64_t{1} << 20}, fill{"8m", std::uint64_t{16} << 20}}) {
        const int code = fill_past_enospc(mount_point.path(), f.fs_size, f.segment_size, 20000, 0);
        INFO("segment_size " << f.segment_size << ": child exit code " << code
                             << " (10 open failed, 11 secret lost, 12 wrong value, 13 last put lost, 14 puts failed)");
        if (code == 77) {
            WARN("skipped: namespaces unavailable (unshare or mount refused)");
            return;
        }
        CHECK(code == 0);
    }
}
#endif

TEST_CASE("segment_log: every durability level round trips and survives a reopen") {
    const auto sync = GENERATE(durability::none, durability::data, durability::full);
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache", sync);
    {
        auto s = open_log(cfg);
        REQUIRE(s.write("ab/k", bytes_of("durable")));
        REQUIRE(s.write("ab/gone", bytes_of("x")));
        REQUIRE(s.remove("ab/gone"));
        CHECK(text_of(s.read("ab/k").value()) == "durable");
        // Only durability::none keeps appends in memory until a flush.
        CHECK((s.stats().buffered_bytes == 0) == (sync != durability::none));
    }
    auto s = open_log(cfg);
    CHECK(text_of(s.read("ab/k").value()) == "durable");
    CHECK(errc_of(s.read("ab/gone")) == errc::miss);
}

TEST_CASE("segment_log: flush writes the buffer; a crash loses only unflushed appends, never tears a value") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    const int code = tierguard_test::in_child([&]() -> int {
        auto s = segment_log::open(cfg);
        if (!s) return 10;
        for (int i = 0; i < 20; ++i)
            if (!s->write(name_for(i), bytes_of(value_for(i, 0)))) return 11;
        if (s->stats().buffered_bytes == 0) return 12;
        if (!s->flush() || s->stats().buffered_bytes != 0) return 13;
        for (int i = 20; i < 30; ++i)
            if (!s->write(name_for(i), bytes_of(value_for(i, 0)))) return 11;
        ::_exit(0);  // a crash: no destructor, the buffer is lost
    });
    REQUIRE(code == 0);
    auto s = open_log(cfg);
    for (int i = 0; i < 20; ++i) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 0));
    for (int i = 20; i < 30; ++i) CHECK(errc_of(s.read(name_for(i))) == errc::miss);
    CHECK(s.stats().bad_frames == 0);
}

TEST_CASE("segment_log: a second open of the same root fails with locked, in this process and another") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    {
        auto first = open_log(cfg);
        const auto second = segment_log::open(cfg);
        REQUIRE_FALSE(second);
        CHECK(second.error().code() == errc::locked);
        CHECK(second.error().context().find("another segment_log has it open") != std::string::npos);
        const int code = tierguard_test::in_child([&] { return static_cast<int>(errc_of(segment_log::open(cfg))); });
        CHECK(code == static_cast<int>(errc::locked));
        REQUIRE(first.write("still", bytes_of("works")));
    }
    auto reopened = open_log(cfg);
    CHECK(text_of(reopened.read("still").value()) == "works");
}

TEST_CASE("segment_log: bad configurations are refused before anything is made") {
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    CHECK(errc_of(segment_log::open({.root = ""})) == errc::invalid_argument);
    CHECK(errc_of(segment_log::open({.root = root, .segment_size = 1000})) == errc::invalid_argument);
    CHECK(errc_of(segment_log::open({.root = root, .segment_size = 1 << 20, .byte_budget = 1 << 20})) ==
          errc::invalid_argument);
    CHECK(errc_of(segment_log::open({.root = root, .segment_size = 4096, .byte_budget = std::uint64_t{1} << 40})) ==
          errc::invalid_argument);
    CHECK(errc_of(segment_log::open({.root = root, .max_reinsert_fraction = 1.0})) == errc::invalid_argument);
    CHECK_FALSE(fs::exists(root));
    // A blob that cannot fit a segment is too large, whatever max_blob_size says.
    auto s = open_log({.root = root, .segment_size = 4096, .byte_budget = 1 << 20});
    CHECK(errc_of(s.write("big", std::vector<std::byte>(4096))) == errc::too_large);
    CHECK(s.write("fits", std::vector<std::byte>(4000)));
}

TEST_CASE("segment_log: the index takes at most 32 bytes per entry") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 1 << 20;
    auto s = open_log(cfg);
    for (int i = 0; i < 30000; ++i) {
        REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 8))));
        if (i >= 100 && i % 97 == 0) {
            const auto st = s.stats();
            INFO(st.entries << " entries, " << st.index_bytes << " bytes");
            REQUIRE(st.index_bytes <= 32 * st.entries);
        }
    }
}

TEST_CASE("segment_log: the hash index finds every entry among colliding hashes after erases (against a multimap)") {
    using tierguard::detail::segment::hash_index;
    using tierguard::detail::segment::location;
    hash_index index;
    std::multimap<std::uint64_t, std::uint64_t> model;
    std::mt19937_64 rng(7);
    std::uint64_t next_loc = 1;
    for (int step = 0; step < 20000; ++step) {
        const std::uint64_t h = rng() % 64 == 0 ? 42 : rng() % 3000;  // many collisions on 42
        if (rng() % 3 != 0) {
            const std::uint64_t loc = location::pack(1, 8 * (next_loc++ % 1000000 + 4), 64);
            index.insert(h, loc);
            model.emplace(h, loc);
        } else {
            const auto range = model.equal_range(h);
            if (range.first == range.second) continue;
            const std::uint64_t loc = range.first->second;
            const auto pos = index.find_if(h, [&](std::size_t p) { return index.at(p).loc == loc; });
            REQUIRE(pos != hash_index::npos);
            index.erase(pos);
            model.erase(range.first);
        }
    }
    REQUIRE(index.size() == model.size());
    for (const auto& entry : model) {
        const std::uint64_t h = entry.first;
        const std::uint64_t loc = entry.second;
        const auto pos = index.find_if(h, [&](std::size_t p) { return index.at(p).loc == loc; });
        CHECK(pos != hash_index::npos);
    }
}

namespace {
struct segment_policies : tierguard::cache_defaults {
    using storage = tierguard::storage::segment_log;
};
}  // namespace

TEST_CASE("segment_log: a cache over it works end to end, across a reopen") {
    using cache_type = tierguard::cache<std::string, std::string, segment_policies>;
    static_assert(std::is_same_v<cache_type::storage_type, segment_log>);
    temp_dir dir;
    cache_type::config cfg;
    cfg.storage = small(dir.path() / "cache");
    {
        auto c = cache_type::open(cfg);
        INFO((c ? std::string("ok") : c.error().message()));
        REQUIRE(c);
        for (int i = 0; i < 200; ++i) REQUIRE(c->put("key" + std::to_string(i), value_for(i, 0)));
        REQUIRE(c->put("key7", "seven"));
        REQUIRE(c->erase("key8").value());
        CHECK(c->get("key7").value().value == "seven");
    }
    auto c = cache_type::open(cfg);
    REQUIRE(c);
    const auto seven = c->get("key7");
    REQUIRE(seven);
    CHECK(seven->value == "seven");
    CHECK(seven->from == tierguard::tier::disk);
    CHECK(errc_of(c->get("key8")) == errc::miss);
    for (int i = 0; i < 200; ++i)
        if (i != 7 && i != 8) CHECK(c->get("key" + std::to_string(i)).value().value == value_for(i, 0));
}

TEST_CASE("segment_log: the disk tier reads a blob its segment eviction took as a plain miss") {
    struct policies : tierguard::disk_defaults {
        using storage = tierguard::storage::segment_log;
    };
    using tier_type = tierguard::disk_tier<std::string, std::string, policies>;
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 16 << 10;
    cfg.byte_budget = 64 << 10;
    cfg.reinsert_read = false;
    auto t = tier_type::open(open_log(cfg));
    REQUIRE(t);
    for (int i = 0; i < 300; ++i) REQUIRE(t->put("k" + std::to_string(i), value_for(i, 0, 1000)));
    REQUIRE(t->storage().stats().segments_evicted > 0);
    const auto gone = t->get("k0");
    REQUIRE_FALSE(gone);
    CHECK(gone.error().code() == errc::miss);
    CHECK(t->stats().corrupted == 0);
    CHECK(t->stats().io_errors == 0);
    CHECK_FALSE(t->indexed("k0"));  // dropped from the tier's index once found missing
    CHECK(t->get("k299").value() == value_for(299, 0, 1000));
    // The hash secret is pinned: a reopen still reads the newest entries.
    auto storage = std::move(t->storage());
    t = tier_type::open(std::move(storage));
    REQUIRE(t);
    CHECK(t->get("k299").value() == value_for(299, 0, 1000));
}

TEST_CASE("segment_log: killed at random points, it reopens with every entry whole; with sync, every acked put") {
    const auto sync = GENERATE(durability::none, durability::data);
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache", sync);
    constexpr int keys = 40;
    // What the parent knows: the last version acknowledged for each key, and the highest
    // version ever started.
    std::vector<int> acked(keys, -1);
    int started = -1;
    std::mt19937 rng(sync == durability::none ? 11 : 12);
    const int rounds = sync == durability::none ? 25 : 8;
    for (int round = 0; round < rounds; ++round) {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        const int first = started + 1;
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(fds[0]);
            auto s = segment_log::open(cfg);
            if (!s) ::_exit(3);
            for (int version = first;; ++version) {
                const int key = version % keys;
                if (!s->write(name_for(key), bytes_of(value_for(key, version, 64 + version % 700)))) ::_exit(4);
                const int ack[2] = {key, version};
                if (::write(fds[1], ack, sizeof ack) != static_cast<ssize_t>(sizeof ack)) ::_exit(5);
            }
        }
        ::close(fds[1]);
        const int wanted = 1 + std::uniform_int_distribution<int>(0, sync == durability::none ? 400 : 30)(rng);
        int seen = 0;
        int ack[2];
        while (seen < wanted && ::read(fds[0], ack, sizeof ack) == static_cast<ssize_t>(sizeof ack)) {
            acked[static_cast<std::size_t>(ack[0])] = ack[1];
            started = std::max(started, ack[1]);
            ++seen;
        }
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        REQUIRE(seen == wanted);
        // Acks the child sent before it died are puts that returned.
        while (::read(fds[0], ack, sizeof ack) == static_cast<ssize_t>(sizeof ack)) {
            acked[static_cast<std::size_t>(ack[0])] = ack[1];
            started = std::max(started, ack[1]);
        }
        ::close(fds[0]);
        started += 1;  // the put in progress may have finished, unacknowledged

        auto s = open_log(cfg);
        INFO("round " << round);
        CHECK(s.stats().bad_frames == 0);
        for (int key = 0; key < keys; ++key) {
            const auto r = s.read(name_for(key));
            if (!r) {
                CHECK(errc_of(r) == errc::miss);
                if (sync != durability::none) CHECK(acked[static_cast<std::size_t>(key)] < 0);
                continue;
            }
            // Whole, this key's, and a version that was written: parse "k<key>v<version>:".
            const std::string text = text_of(*r);
            const auto v = text.find('v');
            const auto colon = text.find(':');
            REQUIRE(v != std::string::npos);
            REQUIRE(colon != std::string::npos);
            CHECK(text.substr(1, v - 1) == std::to_string(key));
            const int version = std::stoi(text.substr(v + 1, colon - v - 1));
            CHECK(text == value_for(key, version, 64 + static_cast<std::size_t>(version % 700)));
            CHECK(version <= started);
            if (sync != durability::none) CHECK(version >= acked[static_cast<std::size_t>(key)]);
        }
    }
}

namespace {

struct flip_outcome {
    int lost = 0;   // entries that read as a miss
    int wrong = 0;  // entries that read as another value, or erased ones that came back
    bool secret = false;
};

// Opens the log at `root` and checks every name of `model` ("" = removed) against it.
flip_outcome check_against(const segment_log::config& cfg, const std::map<std::string, std::string>& model) {
    flip_outcome out;
    auto s = segment_log::open(cfg);
    if (!s) {
        out.wrong = -1;
        return out;
    }
    for (const auto& [name, v] : model) {
        const auto got = s->read(name);
        if (!got) {
            if (!v.empty()) ++out.lost;
            continue;
        }
        if (text_of(*got) != v) ++out.wrong;
    }
    const auto secret = s->read("tierguard-meta");
    out.secret = secret && text_of(*secret) == "secret";
    return out;
}

}  // namespace

TEST_CASE(
    "segment_log: issue 14 - one flipped byte anywhere in the segments costs at most one entry, never a wrong one") {
    // 2000 reopens: in memory where /dev/shm is a tmpfs (each open rewrites the lock file,
    // which ext4 flushes).
    std::error_code no_shm;
    const bool shm = fs::is_directory("/dev/shm", no_shm) && ::access("/dev/shm", W_OK) == 0;
    temp_dir dir(shm ? fs::path("/dev/shm") : fs::temp_directory_path());
    auto cfg = small(dir.path() / "cache");
    std::map<std::string, std::string> model;
    const unsigned seed = 14;
    std::mt19937 rng(seed);
    {
        auto s = open_log(cfg);
        REQUIRE(s.write("tierguard-meta", bytes_of("secret")));
        for (int i = 0; i < 1000; ++i) {
            REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 150))));
            model[name_for(i)] = value_for(i, 0, 150);
        }
        for (int j = 0; j < 150; ++j) {
            const int i = static_cast<int>(rng() % 1000);
            REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 1, 150))));
            model[name_for(i)] = value_for(i, 1, 150);
        }
        for (int j = 0; j < 100; ++j) {
            const int i = static_cast<int>(rng() % 1000);
            if (model[name_for(i)].empty()) continue;
            REQUIRE(s.remove(name_for(i)));
            model[name_for(i)] = "";
        }
        REQUIRE(s.flush());
        REQUIRE(s.stats().segments == 4);
    }
    std::vector<std::pair<fs::path, std::string>> files;  // the segments and the pinned blob's side files
    std::vector<std::size_t> segment_starts;              // of each segment in the concatenation
    std::size_t total = 0;
    for (const auto& e : fs::directory_iterator(cfg.root)) {
        if (!e.is_regular_file() || e.path().filename() == ".lock") continue;
        files.emplace_back(e.path(), file_bytes(e.path()));
    }
    std::sort(files.begin(), files.end());
    std::vector<std::size_t> segments;  // indices into files
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (files[i].first.extension() != ".seg") continue;
        segments.push_back(i);
        segment_starts.push_back(total);
        total += files[i].second.size();
    }
    REQUIRE(segments.size() == 4);
    // Rewrites a file in place: a truncating rewrite would make ext4 flush it each time.
    const auto overwrite = [](const fs::path& path, const std::string& bytes) {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        if (!f) f.open(path, std::ios::out | std::ios::binary);
        f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    };
    const auto restore = [&] {
        fs::remove_all(cfg.root / "quarantine");
        for (const auto& [path, bytes] : files) overwrite(path, bytes);
    };
    const flip_outcome clean = check_against(cfg, model);
    REQUIRE(clean.lost == 0);
    REQUIRE(clean.wrong == 0);
    REQUIRE(clean.secret);

    std::map<int, int> lost_histogram;
    int wrong = 0;
    int secret_lost = 0;
    int over_bound = 0;
    const int trials = 2000;
    for (int t = 0; t < trials; ++t) {
        const std::size_t at = rng() % total;
        const auto which = static_cast<std::size_t>(std::upper_bound(segment_starts.begin(), segment_starts.end(), at) -
                                                    segment_starts.begin() - 1);
        std::string& bytes = files[segments[which]].second;
        const std::size_t offset = at - segment_starts[which];
        const char was = bytes[offset];
        bytes[offset] = static_cast<char>(was ^ static_cast<char>(1 + rng() % 255));
        overwrite(files[segments[which]].first, bytes);
        bytes[offset] = was;
        const flip_outcome r = check_against(cfg, model);
        restore();  // the open may have cut a tail or quarantined a segment
        ++lost_histogram[r.lost];
        if (r.wrong != 0) {
            ++wrong;
            UNSCOPED_INFO("trial " << t << ": segment " << which << " offset " << offset << ": " << r.wrong
                                   << " wrong values");
        }
        if (r.lost > 1) ++over_bound;
        if (!r.secret) ++secret_lost;
    }
    std::printf("issue 14 flip sweep (seed %u, %d trials over %zu segment bytes): entries lost -> trials:", seed,
                trials, total);
    for (const auto& [lost, count] : lost_histogram) std::printf(" %d->%d", lost, count);
    std::printf("; wrong %d, secret lost %d\n", wrong, secret_lost);
    CHECK(wrong == 0);
    CHECK(over_bound == 0);
    CHECK(secret_lost == 0);

    // Either side file of the pinned blob may be damaged: the other one serves it.
    for (auto& [path, bytes] : files) {
        if (path.extension() == ".seg") continue;
        for (std::size_t offset = 0; offset < bytes.size(); ++offset) {
            const char was = bytes[offset];
            bytes[offset] = static_cast<char>(was ^ 0x20);
            overwrite(path, bytes);
            bytes[offset] = was;
            INFO(path.filename() << " offset " << offset);
            CHECK(check_against(cfg, {}).secret);
            restore();  // the open rewrote the damaged copy
        }
    }
}

namespace {

struct seglog_tier_policies : tierguard::disk_defaults {
    using storage = segment_log;
    using clock = tierguard::clock::manual;
};
struct faulty_seglog_tier_policies : seglog_tier_policies {
    using storage = tierguard::storage::fault_injecting<segment_log>;
};

// The disk tier's entries and bytes against what the segment_log under it holds (its
// list(), the pinned hash secret aside), and every indexed key reads back its value.
template <class Tier>
void check_tier_follows_log(Tier& tier, segment_log& log, int keys, const std::vector<int>& version) {
    auto listing = log.list();
    REQUIRE(listing);
    std::uint64_t held = 0;
    std::uint64_t held_bytes = 0;
    for (const auto& blob : *listing) {
        if (blob.name == "tierguard-meta") continue;
        ++held;
        held_bytes += blob.size;
    }
    CHECK(log.stats().entries == held + 1);
    CHECK(tier.size() == held);
    CHECK(tier.bytes() == held_bytes);
    std::uint64_t readable = 0;
    for (int i = 0; i < keys; ++i) {
        if (!tier.indexed("key-" + std::to_string(i))) continue;
        auto got = tier.get("key-" + std::to_string(i));
        INFO("key-" << i);
        REQUIRE(got);
        CHECK(*got == value_for(i, version[static_cast<std::size_t>(i)]));
        ++readable;
    }
    CHECK(readable == held);
}

// 4 KiB segments under a 16 KiB budget, written far past it through the tier, with reads
// (carried blobs), overwrites and erases along the way.
template <class Tier>
void fill_past_budget(Tier& tier, int keys, std::vector<int>& version) {
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < keys; ++i) {
            const std::string key = "key-" + std::to_string(i);
            if (i % 7 == 3) (void)tier.get("key-" + std::to_string(i / 2));
            if (i % 11 == 5) {
                REQUIRE(tier.erase(key));
                continue;
            }
            version[static_cast<std::size_t>(i)] = round;
            REQUIRE(tier.put(key, value_for(i, round)));
        }
    }
}

}  // namespace

TEST_CASE("issue 14: over segment_log the disk tier's entries and bytes follow the segments it evicts") {
    // Regression: segment_log evicted whole segments by itself and the disk tier learnt an
    // entry was gone only when a get or scrub met it, so entries and bytes (metrics()
    // and tierguard_entries/bytes{tier="disk"}) ran high: here 300 indexed for about 80 held.
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4 << 10;
    cfg.byte_budget = 16 << 10;
    const int keys = 300;
    std::vector<int> version(keys, 0);
    SECTION("segment_log") {
        auto tier = tierguard::disk_tier<std::string, std::string, seglog_tier_policies>::open(open_log(cfg));
        REQUIRE(tier);
        fill_past_budget(*tier, keys, version);
        CHECK(tier->storage().stats().segments_evicted >= 10);
        CHECK(tier->storage().stats().entries_reinserted > 0);
        check_tier_follows_log(*tier, tier->storage(), keys, version);
    }
    SECTION("fault_injecting<segment_log>: the decorator forwards take_evicted") {
        auto tier = tierguard::disk_tier<std::string, std::string, faulty_seglog_tier_policies>::open(
            tierguard::storage::fault_injecting<segment_log>(open_log(cfg)));
        REQUIRE(tier);
        fill_past_budget(*tier, keys, version);
        check_tier_follows_log(*tier, tier->storage().inner(), keys, version);
    }
    SECTION("blobs that leave unnamed (a segment damaged behind the log's back) make the tier list the storage") {
        auto tier = tierguard::disk_tier<std::string, std::string, seglog_tier_policies>::open(open_log(cfg));
        REQUIRE(tier);
        for (int i = 0; i < 60; ++i) REQUIRE(tier->put("key-" + std::to_string(i), value_for(i, 0)));
        // The oldest segment loses its records: its eviction cannot name the blobs it held.
        const auto oldest = segment_files(dir.path() / "cache").front();
        fs::resize_file(oldest, tierguard::detail::segment::segment_header_size);
        for (int i = 60; i < 120; ++i) REQUIRE(tier->put("key-" + std::to_string(i), value_for(i, 0)));
        version.assign(keys, 0);
        check_tier_follows_log(*tier, tier->storage(), 120, version);
    }
}

TEST_CASE("issue 14: a full disk segment_log returns makes the disk tier retry, not tombstone its entries") {
    // segment_log has evicted segments for room before it returns disk_full (and evicts
    // again on the retry); tombstones free no room in a log, so evicting 10% of the tier's
    // entries (as it did) only lost them. Injected here: one write refused with disk_full.
    temp_dir dir;
    using faulty_log = tierguard::storage::fault_injecting<segment_log>;
    auto tier = tierguard::disk_tier<std::string, std::string, faulty_seglog_tier_policies>::open(
        faulty_log(open_log(small(dir.path() / "cache"))));
    REQUIRE(tier);
    for (int i = 0; i < 50; ++i) REQUIRE(tier->put("key-" + std::to_string(i), value_for(i, 0)));
    auto faults = tier->storage().control();
    faults.script(tierguard::storage::op::write, faults.counters().calls(tierguard::storage::op::write) + 1,
                  tierguard::storage::fault::disk_full);
    REQUIRE(tier->put("key-50", value_for(50, 0)));
    CHECK(tier->stats().disk_full_events == 1);
    CHECK(tier->stats().emergency_evictions == 0);
    CHECK(tier->size() == 51);
    for (int i = 0; i <= 50; ++i) CHECK(tier->get("key-" + std::to_string(i)).value() == value_for(i, 0));
}

TEST_CASE("segment_log: damage the log finds at open counts as corrupted in the disk tier, with one event") {
    struct counting_listener {
        std::shared_ptr<std::vector<std::string>> corrupted = std::make_shared<std::vector<std::string>>();
        void on_event(const tierguard::event& e) noexcept {
            if (e.kind == tierguard::event_kind::corrupted) corrupted->emplace_back(e.cause ? e.cause->message() : "");
        }
    };
    struct policies : tierguard::disk_defaults {
        using storage = tierguard::storage::segment_log;
        using listener = counting_listener;
    };
    using tier_type = tierguard::disk_tier<std::string, std::string, policies>;
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    {
        auto t = tier_type::open(open_log(cfg));
        REQUIRE(t);
        for (int i = 0; i < 10; ++i) REQUIRE(t->put("k" + std::to_string(i), value_for(i, 0, 200)));
    }
    const fs::path file = segment_files(cfg.root).front();
    std::string damaged = file_bytes(file);
    const std::size_t at = damaged.find(value_for(5, 0, 200));
    REQUIRE(at != std::string::npos);
    damaged[at + 100] = static_cast<char>(damaged[at + 100] ^ 0x10);
    put_file(file, damaged);

    counting_listener seen;
    auto t = tier_type::open(open_log(cfg), {}, {}, seen);
    REQUIRE(t);
    CHECK(t->stats().corrupted == 1);
    REQUIRE(seen.corrupted->size() == 1);
    CHECK(seen.corrupted->front().find("found 1 damaged") != std::string::npos);
    CHECK(errc_of(t->get("k5")) == errc::miss);
    REQUIRE(t->scrub());  // nothing new: neither counted nor reported again
    CHECK(t->stats().corrupted == 1);
    CHECK(seen.corrupted->size() == 1);
    CHECK(t->get("k4").value() == value_for(4, 0, 200));
}

TEST_CASE("issue 18: the disk tier's scrub does not mark every blob as read, so eviction stays FIFO") {
    // Regression: scrub (run at every open by default) read each blob with read(), which
    // sets the blob's recently-read bit; the next evictions then carried every blob the
    // scrub had seen into the new segment, as if the application had read them all.
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4 << 10;
    cfg.byte_budget = 16 << 10;
    using tier_type = tierguard::disk_tier<std::string, std::string, seglog_tier_policies>;
    {
        auto tier = tier_type::open(open_log(cfg));
        REQUIRE(tier);
        for (int i = 0; i < 40; ++i) REQUIRE(tier->put("old-" + std::to_string(i), value_for(i, 0)));
        REQUIRE(tier->storage().stats().segments_evicted == 0);
    }
    auto tier = tier_type::open(open_log(cfg), {.scrub_on_open = true});  // reads every blob
    REQUIRE(tier);
    REQUIRE(tier->size() == 40);
    SECTION("at open") {}
    SECTION("scrub() on demand") { REQUIRE(tier->scrub()); }
    for (int i = 0; i < 200; ++i) REQUIRE(tier->put("new-" + std::to_string(i), value_for(i, 1)));
    const auto st = tier->storage().stats();
    CHECK(st.segments_evicted >= 2);
    CHECK(st.entries_reinserted == 0);
    // A blob the application reads is still carried.
    REQUIRE(tier->get("new-199"));
    for (int i = 0; i < 200; ++i) REQUIRE(tier->put("more-" + std::to_string(i), value_for(i, 2)));
    CHECK(tier->storage().stats().entries_reinserted >= 1);
}

TEST_CASE("issue 18: segment_log::peek reads a blob without marking it for reinsertion") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4 << 10;
    cfg.byte_budget = 16 << 10;
    auto s = open_log(cfg);
    REQUIRE(s.write("a", bytes_of(value_for(1, 0))));
    auto peeked = s.peek("a");
    REQUIRE(peeked);
    CHECK(text_of(*peeked) == value_for(1, 0));
    CHECK(errc_of(s.peek("absent")) == errc::miss);
    for (int i = 0; i < 200 && s.stats().segments_evicted == 0; ++i)
        REQUIRE(s.write("b" + std::to_string(i), bytes_of(value_for(i, 0))));
    CHECK(s.stats().segments_evicted >= 1);
    CHECK(s.stats().entries_reinserted == 0);
    CHECK(errc_of(s.read("a")) == errc::miss);
}

TEST_CASE(
    "issue 18: over segment_log, a frame damaged under an intact record is caught at read after the default open") {
    // The default open (scrub_on_open off) reads no frame: the log checked its records'
    // CRCs, and each get checks the frame's own CRC. The damage here is written through the
    // log, so that the record's CRCs hold and only the frame's fails.
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    using tier_type = tierguard::disk_tier<std::string, std::string, seglog_tier_policies>;
    {
        auto t = tier_type::open(open_log(cfg));
        REQUIRE(t);
        for (int i = 0; i < 20; ++i) REQUIRE(t->put("k" + std::to_string(i), value_for(i, 0)));
        const std::string name = *t->name_for("k7");
        auto frame = t->storage().read(name);
        REQUIRE(frame);
        (*frame)[frame->size() - 10] ^= std::byte{0x04};  // in the payload
        REQUIRE(t->storage().write(name, *frame));
    }
    auto t = tier_type::open(open_log(cfg));
    REQUIRE(t);
    CHECK(t->stats().corrupted == 0);  // not read at open
    CHECK(t->size() == 20);
    CHECK(errc_of(t->get("k7")) == errc::corrupted);
    CHECK(t->stats().corrupted == 1);
    CHECK(t->stats().quarantined == 1);
    CHECK(errc_of(t->get("k7")) == errc::miss);
    CHECK(t->size() == 19);
    for (int i = 0; i < 20; ++i)
        if (i != 7) CHECK(t->get("k" + std::to_string(i)).value() == value_for(i, 0));
}

TEST_CASE("issue 18: a disk tier over segment_log counts from the log's index, at most 32 bytes per entry") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 1 << 20;
    using tier_type = tierguard::disk_tier<std::string, std::string, seglog_tier_policies>;
    constexpr int n = 20000;
    {
        auto t = tier_type::open(open_log(cfg));
        REQUIRE(t);
        for (int i = 0; i < n; ++i) REQUIRE(t->put("key-" + std::to_string(i), value_for(i, 0, 20 + i % 50)));
        REQUIRE(t->erase("key-3"));
        REQUIRE(t->put("key-4", value_for(4, 1, 300)));  // a larger blob replaces a smaller one
    }
    auto t = tier_type::open(open_log(cfg));
    REQUIRE(t);
    auto listing = t->storage().list();
    REQUIRE(listing);
    std::uint64_t listed_bytes = 0;
    std::size_t listed = 0;
    for (const auto& blob : *listing) {
        if (blob.name == "tierguard-meta") continue;
        ++listed;
        listed_bytes += blob.size;
    }
    CHECK(listed == n - 1);
    CHECK(t->size() == listed);
    CHECK(t->bytes() == listed_bytes);
    CHECK(t->storage().held_blobs().bytes == listed_bytes);
    const auto st = t->storage().stats();
    INFO(st.entries << " entries, " << st.index_bytes << " index bytes");
    CHECK(st.index_bytes <= 32 * listed);
    CHECK(t->indexed("key-4"));
    CHECK_FALSE(t->indexed("key-3"));
    CHECK(t->get("key-4").value() == value_for(4, 1, 300));
}

TEST_CASE("issue 18: keys_tagged and keys_with_prefix over segment_log after a reopen, with the lazy key index") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    using tier_type = tierguard::disk_tier<std::string, std::string, seglog_tier_policies>;
    const std::vector<std::string> a{"a"};
    const std::vector<std::string> b{"b"};
    auto sorted = [](tierguard::result<std::vector<std::string>> keys) {
        REQUIRE(keys);
        std::sort(keys->begin(), keys->end());
        return *keys;
    };
    {
        auto t = tier_type::open(open_log(cfg));
        REQUIRE(t);
        REQUIRE(t->put("user:1", "1", 1h, a));
        REQUIRE(t->put("user:2", "2", 1h, b));
        REQUIRE(t->put("item:1", "3", 1h, a));
        REQUIRE(t->put("user:9", "9"));
    }
    auto t = tier_type::open(open_log(cfg));
    REQUIRE(t);
    REQUIRE(t->put("user:4", "4", 1h, a));  // before the first lookup builds the indexes
    CHECK(sorted(t->keys_tagged("a")) == std::vector<std::string>{"item:1", "user:1", "user:4"});
    CHECK(sorted(t->keys_with_prefix("user:")) == std::vector<std::string>{"user:1", "user:2", "user:4", "user:9"});
    REQUIRE(t->put("user:5", "5", 1h, a));  // after it: kept by put
    REQUIRE(t->erase("user:1"));
    REQUIRE(t->put("item:1", "3", 1h, b));  // retagged
    CHECK(sorted(t->keys_tagged("a")) == std::vector<std::string>{"user:4", "user:5"});
    CHECK(sorted(t->keys_tagged("b")) == std::vector<std::string>{"item:1", "user:2"});
    CHECK(sorted(t->keys_with_prefix("user:")) == std::vector<std::string>{"user:2", "user:4", "user:5", "user:9"});
}

namespace {

std::uint32_t zlib_crc(const std::vector<std::byte>& bytes) {
    return static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

// Flips the low bit of byte `at` of the first copy of `text` in the log's segment files
// (`at` < 0: before it), behind the open log's back.
void flip_in_segments(const fs::path& root, std::string_view text, std::ptrdiff_t at) {
    for (const auto& file : segment_files(root)) {
        std::string bytes = file_bytes(file);
        const auto found = bytes.find(text);
        if (found == std::string::npos) continue;
        const auto pos = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(found) + at);
        bytes[pos] = static_cast<char>(bytes[pos] ^ 1);
        put_file(file, bytes);
        return;
    }
    FAIL("no segment holds " << text);
}

}  // namespace

TEST_CASE("issue 18: segment_log::read_unverified skips the blob's CRC only; read() still finds the damage") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4 << 10;
    auto s = open_log(cfg);
    for (int i = 0; i < 60; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
    REQUIRE(segment_files(cfg.root).size() >= 2);  // name_for(3)'s record is in a sealed segment, on file
    flip_in_segments(cfg.root, value_for(3, 0), 50);
    std::string damaged = value_for(3, 0);
    damaged[50] = static_cast<char>(damaged[50] ^ 1);
    CHECK(text_of(s.read_unverified(name_for(3)).value()) == damaged);  // the caller's own check must catch it
    CHECK(s.stats().bad_frames == 0);
    CHECK(errc_of(s.read(name_for(3))) == errc::corrupted);
    CHECK(s.stats().bad_frames == 1);
    CHECK(text_of(s.read_unverified(name_for(4)).value()) == value_for(4, 0));
    flip_in_segments(cfg.root, name_for(5) + "k5v0:", 2);  // the record's name: the head CRC is still checked
    CHECK_FALSE(s.read_unverified(name_for(5)));
}

TEST_CASE("issue 18: over segment_log a get checks one CRC, and a blob damaged after open is still caught") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4 << 10;
    using tier_type = tierguard::disk_tier<std::string, std::string, seglog_tier_policies>;
    auto tier = tier_type::open(open_log(cfg));
    REQUIRE(tier);
    for (int i = 0; i < 40; ++i) REQUIRE(tier->put("key-" + std::to_string(i), value_for(i, 0)));
    REQUIRE(segment_files(cfg.root).size() >= 2);
    flip_in_segments(cfg.root, value_for(3, 0), 50);  // in the frame's payload
    // The frame's CRC fails; the tier reads the record again with read(): the log counts
    // it as it did when each get checked both CRCs, and the entry is quarantined.
    const auto damaged = tier->get("key-3");
    CHECK(errc_of(damaged) == errc::corrupted);
    // One "[tierguard.corrupted] disk tier: " prefix, not the log's message nested in another.
    CHECK(damaged.error().message().find("[tierguard.", 1) == std::string::npos);
    CHECK(tier->stats().corrupted == 1);
    CHECK(tier->storage().stats().bad_frames == 1);
    CHECK(errc_of(tier->get("key-3")) == errc::miss);
    for (int i = 0; i < 40; ++i)
        if (i != 3) CHECK(tier->get("key-" + std::to_string(i)).value() == value_for(i, 0));
    CHECK(tier->stats().corrupted == 1);
}

TEST_CASE("issue 18: segment_log::read_unverified_into reuses the caller's buffer, from memory, file or pin") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4 << 10;
    cfg.pinned = {"pinned"};
    auto s = open_log(cfg);
    REQUIRE(s.write("pinned", bytes_of("the pin")));
    for (int i = 0; i < 60; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
    REQUIRE(segment_files(cfg.root).size() >= 2);  // name_for(3) is in a sealed segment, read from its file
    std::vector<std::byte> out(4096, std::byte{0x55});
    const std::byte* const buffer = out.data();
    for (const int i : {3, 59, 3}) {  // from the file, from the active segment in memory, again from the file
        const auto crc = s.read_unverified_into(name_for(i), out);
        REQUIRE(crc);
        CHECK(text_of(out) == value_for(i, 0));
        CHECK(*crc == zlib_crc(out));  // the blob's CRC-32, computed as it was copied
        CHECK(out.data() == buffer);   // no allocation: the capacity is reused
    }
    const auto pin = s.read_unverified_into("pinned", out);
    REQUIRE(pin);
    CHECK(text_of(out) == "the pin");
    CHECK(*pin == zlib_crc(out));
    CHECK(errc_of(s.read_unverified_into(name_for(99), out)) == errc::miss);
    // The name is not checked (the disk tier builds its names): one no write() would take reads as a miss.
    CHECK(errc_of(s.read_unverified_into("../x", out)) == errc::miss);
    CHECK(errc_of(s.read("../x")) == errc::invalid_argument);
    // As read_unverified: the blob's CRC is not computed, its head's is.
    flip_in_segments(cfg.root, value_for(3, 0), 50);
    std::string damaged = value_for(3, 0);
    damaged[50] = static_cast<char>(damaged[50] ^ 1);
    REQUIRE(s.read_unverified_into(name_for(3), out));
    CHECK(text_of(out) == damaged);
    CHECK(s.stats().bad_frames == 0);
    flip_in_segments(cfg.root, name_for(5) + "k5v0:", 2);
    CHECK_FALSE(s.read_unverified_into(name_for(5), out));
}

TEST_CASE("issue 18: segment_log::read_unverified_into returns the CRC-32 of blobs longer and shorter than the last") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 8 << 10;
    auto s = open_log(cfg);
    for (int i = 0; i < 60; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 40 + 37 * i))));
    std::vector<std::byte> out;
    for (const int i : {3, 59, 20, 3, 58}) {  // grows, shrinks, grows: one copy each, into what `out` holds
        const auto crc = s.read_unverified_into(name_for(i), out);
        REQUIRE(crc);
        CHECK(text_of(out) == value_for(i, 0, 40 + 37 * i));
        CHECK(*crc == zlib_crc(out));
    }
}

TEST_CASE(
    "issue 18: segment_log::read_unverified compares a record's name, flags and lengths; its head CRC field alone "
    "is left to read() and scrub") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4 << 10;
    auto s = open_log(cfg);
    for (int i = 0; i < 60; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0))));
    REQUIRE(segment_files(cfg.root).size() >= 2);
    // The record: magic (4 bytes), flags (2), name length (2), blob length (4), head CRC (4),
    // record CRC (4), the name, the blob. Offsets below are from the name's first byte.
    flip_in_segments(cfg.root, name_for(5) + "k5v0:", -8);  // the head CRC field: the blob is intact
    std::vector<std::byte> out;
    REQUIRE(s.read_unverified_into(name_for(5), out));
    CHECK(text_of(out) == value_for(5, 0));
    CHECK(text_of(s.read_unverified(name_for(5)).value()) == value_for(5, 0));
    CHECK(errc_of(s.read(name_for(5))) == errc::corrupted);  // read() checks every CRC
    CHECK(s.stats().bad_frames == 1);
    flip_in_segments(cfg.root, name_for(6) + "k6v0:", -16);  // the flags
    CHECK(errc_of(s.read_unverified_into(name_for(6), out)) == errc::corrupted);
    flip_in_segments(cfg.root, name_for(7) + "k7v0:", -14);  // the name's length
    CHECK(errc_of(s.read_unverified_into(name_for(7), out)) == errc::corrupted);
    flip_in_segments(cfg.root, name_for(8) + "k8v0:", -12);  // the blob's length
    CHECK(errc_of(s.read_unverified_into(name_for(8), out)) == errc::corrupted);
    flip_in_segments(cfg.root, name_for(9) + "k9v0:", -20);  // the magic
    CHECK(errc_of(s.read_unverified_into(name_for(9), out)) == errc::corrupted);
    CHECK(s.stats().bad_frames == 5);
    CHECK(text_of(s.read(name_for(4)).value()) == value_for(4, 0));
}

TEST_CASE("issue 18: a pinned name as long as the log's names, and one of another length, each read their own blob") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.pinned = {"pi/nn/7", "pinned-too"};
    auto s = open_log(cfg);
    REQUIRE(s.write("pi/nn/7", bytes_of("pin 1")));
    REQUIRE(s.write("pinned-too", bytes_of("pin 2")));
    REQUIRE(s.write(name_for(7), bytes_of("logged")));  // "ab/cd/7": as long as the first pin
    std::vector<std::byte> out;
    REQUIRE(s.read_unverified_into("pi/nn/7", out));
    CHECK(text_of(out) == "pin 1");
    REQUIRE(s.read_unverified_into("pinned-too", out));
    CHECK(text_of(out) == "pin 2");
    REQUIRE(s.read_unverified_into(name_for(7), out));
    CHECK(text_of(out) == "logged");
    CHECK(text_of(s.read("pi/nn/7").value()) == "pin 1");
}

namespace {

// clock::manual that counts its reads.
struct counting_clock {
    using time_point = tierguard::clock::manual::time_point;
    using duration = tierguard::clock::manual::duration;
    tierguard::clock::manual inner;
    std::shared_ptr<std::atomic<int>> reads = std::make_shared<std::atomic<int>>(0);
    [[nodiscard]] time_point now() const noexcept {
        ++*reads;
        return inner.now();
    }
};

struct counted_seglog_policies : tierguard::disk_defaults {
    using storage = segment_log;
    using clock = counting_clock;
};

}  // namespace

TEST_CASE("issue 18: a get over segment_log reads the clock only for an entry with an expiry, which still expires") {
    temp_dir dir;
    using tier_type = tierguard::disk_tier<std::string, std::string, counted_seglog_policies>;
    counting_clock clock;
    auto t = tier_type::open(open_log(small(dir.path() / "cache")), tierguard::disk_config{}, clock);
    REQUIRE(t);
    REQUIRE(t->put("forever", "a"));
    REQUIRE(t->put("brief", "b", 10s));
    const int before = *clock.reads;
    CHECK(t->get("forever").value() == "a");
    CHECK(*clock.reads == before);
    CHECK(t->get("brief").value() == "b");
    CHECK(*clock.reads == before + 1);
    clock.inner.advance(11s);
    CHECK(errc_of(t->get("brief")) == errc::miss);
    CHECK(t->stats().expirations == 1);
    CHECK(t->get("forever").value() == "a");
    // A clock at time_point::min(), the value the tier uses for "not read yet", works as any other.
    clock.inner.set(counting_clock::time_point::min());
    REQUIRE(t->put("early", "c", 1h));
    CHECK(t->get("early").value() == "c");
    clock.inner.advance(2h);
    CHECK(errc_of(t->get("early")) == errc::miss);
    CHECK(t->get("forever").value() == "a");
}

namespace {

// Writes names 0..19, then, in a segment of their own, new values of names 0..2 and
// removes of names 3 and 4, then names 20 .. 20 + later - 1. That segment's file.
fs::path overwrite_in_one_segment(const segment_log::config& cfg, int later) {
    auto s = open_log(cfg);
    for (int i = 0; i < 20; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 900))));
    const std::size_t before = s.stats().segments;
    while (s.stats().segments == before) REQUIRE(s.write("filler", bytes_of(value_for(99, 0, 900))));
    for (int i = 0; i < 3; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 1, 900))));
    for (int i = 3; i < 5; ++i) REQUIRE(s.remove(name_for(i)));
    REQUIRE(s.stats().segments == before + 1);
    const fs::path overwrites = segment_files(cfg.root).back();
    for (int i = 20; i < 20 + later; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 900))));
    return overwrites;
}

// Names 0..2 read as their new value or a miss, names 3 and 4 as a miss: never the older ones.
void check_nothing_superseded(segment_log& s) {
    for (int i = 0; i < 3; ++i) {
        INFO("name " << i);
        const auto got = s.read(name_for(i));
        if (got)
            CHECK(text_of(*got) == value_for(i, 1, 900));
        else
            CHECK(errc_of(got) == errc::miss);
    }
    for (int i = 3; i < 5; ++i) CHECK(errc_of(s.read(name_for(i))) == errc::miss);
}

}  // namespace

TEST_CASE("segment_log: a lost segment (deleted, unreadable, a copy of another) never brings back what it replaced") {
    temp_dir dir;
    auto cfg = small(dir.path() / "pristine");
    cfg.segment_size = 4096;
    const fs::path overwrites = overwrite_in_one_segment(cfg, 12);
    const auto files = segment_files(cfg.root);
    REQUIRE(overwrites != files.back());
    for (const std::string damage : {"deleted", "unreadable header", "copy of another"}) {
        INFO(damage);
        const fs::path root = dir.path() / (damage.substr(0, 4) + "-cache");
        fs::copy(cfg.root, root, fs::copy_options::recursive);
        const fs::path lost = root / overwrites.filename();
        if (damage == "deleted") {
            fs::remove(lost);
        } else if (damage == "unreadable header") {
            std::fstream f(lost, std::ios::in | std::ios::out | std::ios::binary);
            f.seekp(9);
            f.put('\x7f');  // the sequence number and the CRC: no single-byte repair
            f.seekp(29);
            f.put('\x7f');
        } else {
            fs::copy_file(root / files.back().filename(), lost, fs::copy_options::overwrite_existing);
        }
        auto opened = cfg;
        opened.root = root;
        for (int open = 0; open < 2; ++open) {  // the second open no longer has the file to tell
            INFO("open " << open);
            auto s = open_log(opened);
            check_nothing_superseded(s);
            const auto st = s.stats();
            CHECK(st.lost_segments + st.bad_segments == 1);
            CHECK(st.entries_dropped >= 20);  // names 5..19 and the filler, recorded before it
            CHECK(text_of(s.read(name_for(31)).value()) == value_for(31, 0, 900));
        }
    }
}

TEST_CASE("segment_log: a lost newest segment never brings back what it replaced; writing goes on") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4096;
    const fs::path overwrites = overwrite_in_one_segment(cfg, 0);
    REQUIRE(overwrites == segment_files(cfg.root).back());
    fs::remove(overwrites);
    for (int open = 0; open < 2; ++open) {
        INFO("open " << open);
        auto s = open_log(cfg);
        check_nothing_superseded(s);
        CHECK(s.stats().lost_segments == 1);
        CHECK(s.stats().entries_dropped >= 20);
        if (open == 1) REQUIRE(s.write(name_for(7), bytes_of(value_for(7, 2, 900))));
    }
    auto s = open_log(cfg);  // the new segment follows the lost one: everything older is still dropped
    check_nothing_superseded(s);
    CHECK(text_of(s.read(name_for(7)).value()) == value_for(7, 2, 900));
    CHECK(errc_of(s.read(name_for(8))) == errc::miss);
}

TEST_CASE("segment_log: the open's own removals (a torn newest segment, segments over the budget) lose no entry") {
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = 4096;
    {
        auto s = open_log(cfg);
        for (int i = 0; i < 30; ++i) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 0, 900))));
    }
    // A crash while the newest segment was made: its file holds no whole header (here the
    // marker names it, as when the folder kept the marker's rename and not the header).
    fs::resize_file(segment_files(cfg.root).back(), 0);
    std::vector<int> kept;  // names recorded before the torn segment
    {
        auto s = open_log(cfg);
        CHECK(s.stats().torn_tails == 1);
        for (int i = 0; i < 30; ++i)
            if (s.read(name_for(i))) kept.push_back(i);
        REQUIRE(kept.size() >= 20);
    }
    for (int open = 0; open < 2; ++open) {
        INFO("open " << open);
        auto s = open_log(cfg);
        CHECK(s.stats().lost_segments == 0);
        CHECK(s.stats().entries_dropped == 0);
        for (const int i : kept) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, open, 900));
        if (open == 0)
            for (const int i : kept) REQUIRE(s.write(name_for(i), bytes_of(value_for(i, 1, 900))));
    }
    // A stray empty file named like a far newer segment is no lost segment either.
    put_file(cfg.root / "0000000000000099.seg", "");
    for (int open = 0; open < 2; ++open) {
        INFO("stray, open " << open);
        auto s = open_log(cfg);
        CHECK(s.stats().lost_segments == 0);
        CHECK(s.stats().entries_dropped == 0);
        for (const int i : kept) CHECK(text_of(s.read(name_for(i)).value()) == value_for(i, 1, 900));
        if (open == 0) REQUIRE(s.write(name_for(100), bytes_of("x")));
    }
    // A budget of three segments: the open deletes the oldest ones; no gap follows.
    cfg.byte_budget = 3 * 4096;
    {
        auto s = open_log(cfg);
        CHECK(s.stats().lost_segments == 0);
        CHECK(s.stats().entries_dropped == 0);
        CHECK(s.stats().segments <= 4);
    }
    auto s = open_log(cfg);
    CHECK(s.stats().lost_segments == 0);
    CHECK(s.stats().entries_dropped == 0);
    CHECK(text_of(s.read(name_for(kept.back())).value()) == value_for(kept.back(), 1, 900));
}

TEST_CASE("segment_log: reading whole segments (open, scrub, list) leaves none of them in malloc's free memory") {
#if defined(__GLIBC__)
    if (::mallinfo2().arena == 0) {
        WARN("skipped: malloc reports no arena (a sanitizer's allocator), nothing to measure");
        return;
    }
    temp_dir dir;
    auto cfg = small(dir.path() / "cache");
    cfg.segment_size = std::uint64_t{4} << 20;
    cfg.max_blob_size = std::size_t{64} << 10;
    const std::string blob(60 << 10, 'b');
    {
        // Two full segments and a smaller third: a buffer freed after a larger one is
        // where glibc keeps memory (its mmap threshold rose to the larger one's size).
        auto s = open_log(cfg);
        for (int i = 0; i < 170; ++i) REQUIRE(s.write(name_for(i), bytes_of(blob)));
        REQUIRE(s.stats().segments == 3);
    }
    const auto free_in_heap = [] { return ::mallinfo2().fordblks; };
    const std::size_t before = free_in_heap();
    auto s = open_log(cfg);
    REQUIRE(s.scrub());
    REQUIRE(s.list().value().size() == 170);
    const std::size_t after = free_in_heap();
    INFO("malloc's free bytes before " << before << ", after " << after);
    CHECK(after < before + (std::size_t{1} << 20));
#else
    WARN("skipped: measures glibc's malloc");
#endif
}

TEST_CASE(
    "segment_log: bytes past a sealed segment's recorded length (a write that failed) cost no entry, and are cut") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    {
        auto s = open_log(cfg);
        for (int key = 0; key < 600; ++key) REQUIRE(s.write(name_for(key), bytes_of(value_for(key, 0))));
        REQUIRE(s.stats().segments == 2);
    }
    // What a write that failed part-way leaves: the head of a record and half its blob.
    const fs::path sealed = segment_files(cfg.root).at(0);
    const auto size = fs::file_size(sealed);
    {
        std::vector<std::byte> torn;
        tierguard::detail::segment::append_record(torn, name_for(7), bytes_of(value_for(7, 9)), 0);
        torn.resize(torn.size() / 2);
        std::ofstream f(sealed, std::ios::binary | std::ios::app);
        f.write(reinterpret_cast<const char*>(torn.data()), static_cast<std::streamsize>(torn.size()));
    }
    for (int open = 0; open < 2; ++open) {
        INFO("open " << open);
        auto s = open_log(cfg);
        CHECK(s.stats().damaged_regions == 0);
        CHECK(s.stats().entries_dropped == 0);
        CHECK(s.stats().torn_tails == (open == 0 ? 1 : 0));  // cut by the first open, as a crash's
        CHECK(fs::file_size(sealed) == size);
        for (int key = 0; key < 600; ++key) {
            INFO("key " << key);
            CHECK(text_of(s.read(name_for(key)).value()) == value_for(key, 0));
        }
    }
}

TEST_CASE("segment_log: segments whose headers record no previous length (tierguard 0.1) open as before") {
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");
    {
        auto s = open_log(cfg);
        for (int key = 0; key < 1200; ++key) REQUIRE(s.write(name_for(key), bytes_of(value_for(key, 0))));
        REQUIRE(s.stats().segments == 3);
    }
    for (const auto& file : segment_files(cfg.root)) {  // as 0.1 wrote them: the field 0, the CRC over it
        std::string bytes = file_bytes(file);
        auto head = tierguard::detail::segment::decode_segment_header(std::as_bytes(std::span(bytes)));
        REQUIRE(head);
        head->previous_length = 0;
        std::array<std::byte, tierguard::detail::segment::segment_header_size> out{};
        tierguard::detail::segment::encode_segment_header(*head, out.data());
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    }
    auto s = open_log(cfg);
    CHECK(s.stats().damaged_regions == 0);
    CHECK(s.stats().torn_tails == 0);
    CHECK(s.stats().bad_frames == 0);
    for (int key = 0; key < 1200; ++key) {
        INFO("key " << key);
        CHECK(text_of(s.read(name_for(key)).value()) == value_for(key, 0));
    }
}

// Where the first record at or after `from` starts in a segment file.
std::size_t record_start_after(const fs::path& file, std::size_t from) {
    const std::string bytes = file_bytes(file);
    struct starts {
        std::vector<std::size_t> at;
        void record(std::size_t off, const tierguard::detail::segment::record_view&) { at.push_back(off); }
        void damaged_record(std::size_t off, const tierguard::detail::segment::record_view&) { at.push_back(off); }
        void unreadable(std::size_t, std::size_t) {}
        void torn(std::size_t, std::size_t) {}
    } v;
    tierguard::detail::segment::scan_records(std::as_bytes(std::span(bytes)), v);
    const auto it = std::lower_bound(v.at.begin(), v.at.end(), from);
    REQUIRE(it != v.at.end());
    return *it;
}

TEST_CASE("segment_log: a sealed segment's lost tail (cut, zeroed) never brings back what it replaced, at any open") {
    enum class loss { cut_in_record, cut_at_record, zeroed };
    const loss how = GENERATE(loss::cut_in_record, loss::cut_at_record, loss::zeroed);
    INFO((how == loss::zeroed          ? "the last 4 KiB zeroed"
          : how == loss::cut_at_record ? "cut where a record starts (nothing but the next header's length shows it)"
                                       : "cut in half"));
    temp_dir dir;
    const auto cfg = small(dir.path() / "cache");  // 64 KiB segments: 128-byte records, 512 each
    {
        auto s = open_log(cfg);
        for (int key = 0; key < 600; ++key) REQUIRE(s.write(name_for(key), bytes_of(value_for(key, 0))));
        for (int key = 0; key < 400; ++key) REQUIRE(s.write(name_for(key), bytes_of(value_for(key, 1))));
        for (int key = 1000; key < 1100; ++key) REQUIRE(s.write(name_for(key), bytes_of(value_for(key, 0))));
        REQUIRE(s.stats().segments == 3);
    }
    // The second segment ends with the overwrites (version 1) of names the first holds.
    const fs::path sealed = segment_files(cfg.root).at(1);
    const auto size = fs::file_size(sealed);
    const auto cut = how == loss::cut_at_record ? record_start_after(sealed, size / 2) : size / 2 + 3;
    if (how == loss::zeroed) {
        std::fstream f(sealed, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size - 4096));
        const std::string zeros(4096, '\0');
        f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    } else {
        fs::resize_file(sealed, cut);
    }
    for (int open = 0; open < 2; ++open) {
        INFO("open " << open);
        auto s = open_log(cfg);
        CHECK(s.stats().damaged_regions == 1);
        CHECK(s.stats().torn_tails == 0);
        CHECK(s.stats().entries_dropped > 0);
        for (int key = 0; key < 600; ++key) {
            auto got = s.read(name_for(key));
            INFO("key " << key);
            if (got) CHECK(text_of(*got) == value_for(key, 1));  // never version 0: all older than the loss
            if (!got) CHECK(got.error().code() == errc::miss);
        }
        int served = 0;
        for (int key = 1000; key < 1100; ++key) {
            auto got = s.read(name_for(key));
            if (!got) continue;
            CHECK(text_of(*got) == value_for(key, 0));
            ++served;
        }
        CHECK(served > 0);  // the third segment, newer than the loss, is kept
        CHECK(fs::file_size(sealed) == (how == loss::zeroed ? size : cut));  // left as found: the next open sees it
        const std::string name = "after-" + std::to_string(open);
        REQUIRE(s.write(name, bytes_of("new")));
        CHECK(text_of(s.read(name).value()) == "new");
    }
    CHECK(text_of(open_log(cfg).read("after-0").value()) == "new");
}
