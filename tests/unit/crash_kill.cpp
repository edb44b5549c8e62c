// Crash consistency: a child process puts and overwrites entries in a disk tier until it
// is killed with SIGKILL at a random moment; the parent then reopens the directory and
// checks that it opens, that scrub finds nothing but the interrupted write's temp file,
// and that every entry reads back whole, as one of the values written for its key and
// never older than a put the child had finished.
//
// Half the directories hold a posix_directory, half a segment_log (small segments, so
// that whole segments are evicted as the child writes). segment_log makes no temp files,
// and with durability::none its appends wait in the process's buffer, which a kill loses,
// finished puts and removes alike (its documented refinement): for that pair "finished"
// means written out, which the child cannot see, so only wholeness and authorship are
// checked; with data and full every finished put must survive, as with posix_directory
// (whose none loses nothing to a kill: the rename is in the kernel when put returns).
//
// TIERGUARD_CRASH_KILLS sets the number of kills (default 200, half per storage; raise it
// for a soak). TIERGUARD_CRASH_SEED replays a run's choices (sizes, durability,
// compression, kill points); where exactly a kill lands in the child's work still depends
// on scheduling.

#include "support/killable_child.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/disk_tier.hpp>
#include <tierguard/hash.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using tierguard::durability;
using tierguard::errc;

namespace {

using tierguard::storage::posix_directory;
using tierguard::storage::segment_log;

constexpr std::uint64_t key_count = 24;
// Small enough that the writer evicts as it goes (values reach 16 KiB).
constexpr std::uint64_t byte_budget = std::uint64_t{40} << 10;
constexpr int kills_per_directory = 20;  // then a fresh directory, of the other storage

// How each storage is opened, and what a kill may take from it.
template <class Storage>
struct flavor;

template <>
struct flavor<posix_directory> {
    static constexpr const char* name = "posix_directory";
    static auto open(const fs::path& root, durability sync) {
        return posix_directory::open({.root = root, .sync = sync});
    }
    static bool keeps_finished_puts(durability) { return true; }
    static constexpr std::uint64_t max_temp_files = 1;  // the writer has one write in flight at most
};

template <>
struct flavor<segment_log> {
    static constexpr const char* name = "segment_log";
    // Segments of 32 KiB (a 16 KiB value fits), four kept: the child evicts whole segments.
    static auto open(const fs::path& root, durability sync) {
        return segment_log::open({.root = root,
                                  .sync = sync,
                                  .segment_size = std::uint64_t{32} << 10,
                                  .byte_budget = std::uint64_t{128} << 10,
                                  .write_buffer = std::size_t{4} << 10});
    }
    static bool keeps_finished_puts(durability sync) { return sync != durability::none; }
    static constexpr std::uint64_t max_temp_files = 0;
};

template <class Storage>
struct policies : tierguard::disk_defaults {
    using storage = Storage;
};
template <class Storage>
using tier_type = tierguard::disk_tier<std::string, std::string, policies<Storage>>;

// Everything a put writes is a function of its sequence number, so the parent can tell
// a value the child wrote from anything else without hearing from the child.
std::uint64_t key_of(std::uint64_t seq) { return tierguard::detail::mix(seq) % key_count; }
std::string key_name(std::uint64_t key) { return "key-" + std::to_string(key); }

std::string value_for(std::uint64_t seq) {
    const std::uint64_t h = tierguard::detail::mix(seq ^ 0x9e3779b97f4a7c15ULL);
    std::size_t size = 0;
    switch (h % 10) {
        case 0: size = 4096 + (h >> 8) % 12288; break;  // multi-KiB
        case 1:
        case 2:
        case 3: size = 64 + (h >> 8) % 2048; break;
        default: size = (h >> 8) % 64; break;
    }
    std::string value = std::to_string(seq) + ':';
    // Runs of one letter: compressible, and a torn or shifted copy would not match.
    for (std::size_t i = 0; value.size() < size + 21; ++i)
        value.append(16, static_cast<char>('a' + tierguard::detail::mix(seq + i) % 26));
    value.resize(size + 21);
    return value;
}

// The sequence number of a value value_for() made, or nullopt for anything else.
std::optional<std::uint64_t> seq_of(const std::string& value) {
    const std::size_t colon = value.find(':');
    if (colon == 0 || colon == std::string::npos || colon > 20) return std::nullopt;
    std::uint64_t seq = 0;
    for (std::size_t i = 0; i < colon; ++i) {
        if (value[i] < '0' || value[i] > '9') return std::nullopt;
        seq = seq * 10 + static_cast<std::uint64_t>(value[i] - '0');
    }
    if (value != value_for(seq)) return std::nullopt;
    return seq;
}

struct run_settings {
    durability sync = durability::none;
    int compression_level = 0;
    std::uint64_t first_seq = 0;  // later runs on a directory write larger sequence numbers
};

tierguard::disk_config config_of(const run_settings& run) {
    tierguard::disk_config cfg;
    cfg.byte_budget = byte_budget;
    cfg.compression_level = run.compression_level;
    return cfg;
}

// The child: puts until killed, one progress byte after each completed put. Exits 2 if
// the directory does not open and 3 if a put fails: the parent sees an exit, not SIGKILL.
template <class Storage>
void write_until_killed(const fs::path& root, const run_settings& run,
                        const tierguard_test::killable_child::progress_pipe& progress) {
    auto dir = flavor<Storage>::open(root, run.sync);
    if (!dir) ::_exit(2);
    auto tier = tier_type<Storage>::open(std::move(*dir), config_of(run));
    if (!tier) ::_exit(2);
    for (std::uint64_t seq = run.first_seq;; ++seq) {
        if (!tier->put(key_name(key_of(seq)), value_for(seq))) ::_exit(3);
        progress();
    }
}

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') return fallback;
    return std::strtoull(text, nullptr, 10);
}

const char* name_of(durability d) {
    switch (d) {
        case durability::none: return "none";
        case durability::data: return "data";
        case durability::full: return "full";
    }
    return "?";
}

// What is left on disk that scrub should have taken: temp files, and the quarantine folder.
std::size_t leftovers(const fs::path& root) {
    std::size_t found = 0;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with(".tmp.") || name == "quarantine") ++found;
    }
    return found;
}

// What one storage's kills showed, for the summary line.
struct tally {
    std::uint64_t kills = 0;
    std::uint64_t interrupted_writes = 0;  // temp files (posix_directory), torn tails (segment_log)
    std::uint64_t entries_verified = 0;
};

std::uint64_t interrupted_writes(posix_directory&, const tierguard::scrub_report& report) {
    return report.temp_files_removed;
}

// A kill cuts only the tail of the segment being appended to: nothing else is damaged.
std::uint64_t interrupted_writes(segment_log& log, const tierguard::scrub_report&) {
    const auto st = log.stats();
    CHECK(st.bad_frames == 0);
    CHECK(st.damaged_regions == 0);
    CHECK(st.entries_dropped == 0);
    CHECK(st.bad_segments == 0);
    return st.torn_tails;
}

// One kill: the child writes into `root` until killed; the parent reopens and checks.
template <class Storage>
void kill_and_check(const fs::path& root, const run_settings& run, std::uint64_t acknowledged, useconds_t delay_us,
                    tally& sums) {
    using type = flavor<Storage>;
    INFO(type::name << ", durability " << name_of(run.sync) << ", compression " << run.compression_level << ", killed "
                    << delay_us << " us after put " << acknowledged);
    tierguard_test::killable_child child([&](const tierguard_test::killable_child::progress_pipe& progress) {
        write_until_killed<Storage>(root, run, progress);
    });
    REQUIRE(child.ok());
    REQUIRE(child.wait_for_progress(acknowledged));
    ::usleep(delay_us);  // only picks the moment of the kill; nothing is timed
    REQUIRE(child.kill_and_reap());

    auto dir = type::open(root, durability::data);
    REQUIRE(dir);
    tierguard::disk_config cfg = config_of(run);
    cfg.scrub_on_open = false;  // the scrub below is the one whose report we read
    auto tier = tier_type<Storage>::open(std::move(*dir), cfg);
    REQUIRE(tier);
    const auto report = tier->scrub();
    REQUIRE(report);
    CHECK(report->temp_files_removed <= type::max_temp_files);
    CHECK(report->quarantined == 0);
    // No entry under another secret: the meta blob (pinned in segment_log, carried over
    // before its segment is deleted) survives every kill.
    CHECK(report->orphans_removed == 0);
    CHECK(report->index_dropped == 0);
    CHECK(report->foreign_removed == 0);
    CHECK(report->version_mismatches == 0);
    CHECK(report->expired_removed == 0);
    CHECK(report->io_errors == 0);
    CHECK(leftovers(root) == 0);
    const std::uint64_t interrupted = interrupted_writes(tier->storage(), *report);
    CHECK(interrupted <= 1);  // the writer has one write in flight at most
    sums.interrupted_writes += interrupted;

    // The newest put the child finished for each key: nothing older may come back (where
    // the storage keeps finished puts through a kill; see the file comment).
    const bool keeps_finished = type::keeps_finished_puts(run.sync);
    std::vector<std::optional<std::uint64_t>> newest(key_count);
    for (std::uint64_t seq = run.first_seq; seq < run.first_seq + acknowledged; ++seq) newest[key_of(seq)] = seq;
    std::uint64_t found = 0;
    for (std::uint64_t key = 0; key < key_count; ++key) {
        const auto got = tier->get(key_name(key));
        if (!got) {
            CHECK(got.error().code() == errc::miss);  // never written, or evicted
            continue;
        }
        ++found;
        INFO(key_name(key) << " read back \"" << got->substr(0, 40) << "...\" (" << got->size() << " bytes)");
        const auto seq = seq_of(*got);
        REQUIRE(seq);
        CHECK(key_of(*seq) == key);
        if (keeps_finished && newest[key]) CHECK(*seq >= *newest[key]);
    }
    if (keeps_finished) CHECK(found >= 1);  // the finished puts left at least one entry within the budget
    CHECK(tier->stats().quarantined == 0);
    ++sums.kills;
    sums.entries_verified += found;
}

void print(const char* storage, const char* interrupted, const tally& t) {
    std::cout << "crash_kill[" << storage << "]: " << t.interrupted_writes << " of " << t.kills << " kills left "
              << interrupted << "; " << t.entries_verified << " entries verified\n";
}

}  // namespace

TEST_CASE("crash: a disk tier killed with SIGKILL mid-write reopens with every entry whole") {
    const std::uint64_t kills = env_or("TIERGUARD_CRASH_KILLS", 200);
    const std::uint64_t seed = env_or("TIERGUARD_CRASH_SEED", std::random_device{}());
    std::cout << "crash_kill: " << kills << " kills, seed " << seed << " (replay with TIERGUARD_CRASH_SEED=" << seed
              << ")\n";
    INFO("seed " << seed << " (replay with TIERGUARD_CRASH_SEED=" << seed << ")");
    std::mt19937_64 rng(seed);

    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tally posix;
    tally segments;
    for (std::uint64_t kill = 0; kill < kills; ++kill) {
        if (kill % kills_per_directory == 0) fs::remove_all(root);
        const run_settings run{
            .sync = static_cast<durability>(rng() % 3),
            .compression_level = static_cast<int>(rng() % 3) * 3,
            .first_seq = kill << 32,
        };
        const std::uint64_t acknowledged = 1 + rng() % 8;  // puts the child finishes before the kill is sent
        const auto delay_us = static_cast<useconds_t>(rng() % 3000);
        INFO("kill " << kill);
        if ((kill / kills_per_directory) % 2 == 0)
            kill_and_check<posix_directory>(root, run, acknowledged, delay_us, posix);
        else
            kill_and_check<segment_log>(root, run, acknowledged, delay_us, segments);
    }
    print("posix_directory", "an interrupted write's temp file", posix);
    print("segment_log", "a torn tail", segments);
}
