// Builds real directories for tests/tools/cli_test.sh with the library, and holds a cache's
// lock while running a command, so that the test can drive tierguard-cli's real command line.
//
//   cli_fixture make ROOT          under ROOT (see make_cache and make_junk for the contents):
//                                  cache, log      the same entries over posix_directory and segment_log
//                                  junk, junklog   20 entries among junk files (and a junk blob in the log)
//                                  fresh, freshlog caches opened once, no entry
//                                  both            junk's posix_directory cache holding a segment file too
//                                  empty (an empty folder), plain (not a cache), file (a regular file)
//                                  range           a range cache: "video.mp4" (blocks 0-2 of 6), "other" (1 block)
//   cli_fixture hold DIR CMD...    opens DIR as a cache does (exclusive lock), runs CMD, exits with its code
#include <tierguard/disk_tier.hpp>
#include <tierguard/range_cache.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using tierguard::storage::posix_directory;
using tierguard::storage::segment_log;

template <class Storage>
struct policies : tierguard::disk_defaults {
    using storage = Storage;
};
template <class Storage>
struct schema_two : policies<Storage> {
    static constexpr std::uint32_t schema_version = 2;
};

posix_directory open_storage(const fs::path& root, const posix_directory*) {
    auto dir = posix_directory::open({.root = root, .sync = tierguard::durability::none});
    if (!dir) throw std::runtime_error(dir.error().message());
    return std::move(*dir);
}

segment_log open_storage(const fs::path& root, const segment_log*) {
    segment_log::config cfg;
    cfg.root = root;
    cfg.sync = tierguard::durability::none;
    cfg.segment_size = std::uint64_t{64} << 10;
    cfg.byte_budget = std::uint64_t{16} << 20;
    auto log = segment_log::open(cfg);
    if (!log) throw std::runtime_error(log.error().message());
    return std::move(*log);
}

// Without a scrub at open, so that a tier of one schema version leaves the other's entries be.
template <class Policies>
auto open_tier(const fs::path& root) {
    using storage = typename Policies::storage;
    auto tier = tierguard::disk_tier<std::string, std::string, Policies>::open(
        open_storage(root, static_cast<const storage*>(nullptr)), {.scrub_on_open = false});
    if (!tier) throw std::runtime_error(tier.error().message());
    return std::move(*tier);
}

void check(const tierguard::result<void>& r) {
    if (!r) throw std::runtime_error(r.error().message());
}

std::vector<std::byte> bytes_of(std::string_view text) {
    std::vector<std::byte> out(text.size());
    std::transform(text.begin(), text.end(), out.begin(), [](char c) { return static_cast<std::byte>(c); });
    return out;
}

// Flips the last byte of the first occurrence of `needle` in a file under `root` (outside the
// quarantine): the value of an entry, whichever storage holds it and however it frames it.
void damage(const fs::path& root, std::string_view needle) {
    for (const auto& item : fs::recursive_directory_iterator(root)) {
        if (!item.is_regular_file() || item.path().parent_path().filename() == "quarantine") continue;
        std::ifstream in(item.path(), std::ios::binary);
        const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto at = content.find(needle);
        if (at == std::string::npos) continue;
        std::fstream out(item.path(), std::ios::in | std::ios::out | std::ios::binary);
        out.seekp(static_cast<std::streamoff>(at + needle.size() - 1));
        out.put('#');
        return;
    }
    throw std::runtime_error("no file holds " + std::string(needle));
}

// The cache the test expects, entry by entry (the same over both storages):
//   intact, schema 1: alpha, beta, delta;  intact, schema 2: omega;  expired: expiring
//   damaged (a flipped byte in its value): gamma;  misplaced (beta's frame under another name): 00/00/0000000000000000
//   quarantined: epsilon (now) and one file stamped 2020-01-01;  a leftover temp file (in alpha's folder
//   for posix_directory, in the root for segment_log)
template <class Storage>
void make_cache(const fs::path& root) {
    std::string alpha_file;
    {
        auto tier = open_tier<policies<Storage>>(root);
        for (const char* key : {"alpha", "beta", "gamma", "delta", "epsilon"})
            check(tier.put(key, std::string("value of ") + key));
        check(tier.put("expiring", "short-lived", std::chrono::nanoseconds(1)));
        alpha_file = tier.name_for("alpha").value();
        check(
            tier.storage().write("00/00/0000000000000000", tier.storage().read(tier.name_for("beta").value()).value()));
        check(tier.storage().write(tier.name_for("epsilon").value(), bytes_of("not a frame")));
        if (tier.get("epsilon").error().code() != tierguard::errc::corrupted)
            throw std::runtime_error("epsilon was not quarantined");
    }
    {
        auto tier = open_tier<schema_two<Storage>>(root);  // as after a deploy that bumped the schema
        check(tier.put("omega", "value of omega"));
    }
    damage(root, "value of gamma");
    std::ofstream(root / "quarantine" / "20200101T000000Z.00_00_0000000000000001.frame") << "old damage";
    const bool log = std::is_same_v<Storage, segment_log>;
    std::ofstream(root / (log ? fs::path() : fs::path(alpha_file).parent_path()) / ".tmp.1.0")
        << "an interrupted write";
}

// 20 entries "key0".."key19" and, beside them, junk: 7 foreign things and a temp file.
//   both:            README.txt, .DS_Store, a symbolic link "latest", a FIFO "pipe"
//   posix_directory: notes.txt in an entry's folder, 00/00/ffffffffffffffff (not under its own prefix),
//                    backup/old.frame (in a folder of its own);  .tmp.99.0 in an entry's folder
//   segment_log:     0000000000000001.seg.bak (a copy of a segment), blobs "notes" and "ab/cd/notes"
//                    written into the log;  .tmp.99.0 in the root
template <class Storage>
void make_junk(const fs::path& root) {
    std::string entry_file;
    {
        auto tier = open_tier<policies<Storage>>(root);
        for (int i = 0; i < 20; ++i) check(tier.put("key" + std::to_string(i), "value " + std::to_string(i)));
        entry_file = tier.name_for("key0").value();
        if constexpr (std::is_same_v<Storage, segment_log>) {
            check(tier.storage().write("notes", bytes_of("a blob that is no entry")));
            check(tier.storage().write("ab/cd/notes", bytes_of("another")));
        }
    }
    std::ofstream(root / "README.txt") << "what this folder is";
    std::ofstream(root / ".DS_Store") << "junk";
    if (::mkfifo((root / "pipe").c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
    if constexpr (std::is_same_v<Storage, segment_log>) {
        fs::path segment;
        for (const auto& item : fs::directory_iterator(root))
            if (item.path().extension() == ".seg") segment = item.path();
        fs::create_symlink(segment.filename(), root / "latest");
        fs::copy_file(segment, root / "0000000000000001.seg.bak");
        std::ofstream(root / ".tmp.99.0") << "an interrupted write";
    } else {
        const fs::path folder = root / fs::path(entry_file).parent_path();
        fs::create_symlink(fs::path(entry_file).filename(), folder / "latest");
        fs::rename(folder / "latest", root / "latest");
        std::ofstream(folder / "notes.txt") << "notes";
        fs::create_directories(root / "00/00");
        std::ofstream(root / "00/00/ffffffffffffffff") << "not under its prefix";
        fs::create_directories(root / "backup");
        std::ofstream(root / "backup/old.frame") << "a backup";
        std::ofstream(folder / ".tmp.99.0") << "an interrupted write";
    }
}

template <class Storage>
void make_fresh(const fs::path& root) {
    (void)open_tier<policies<Storage>>(root);
}

int hold(const char* dir, char** command) {
    // The lock (DIR/.lock) is the same for both storages; posix_directory takes it without reading anything.
    auto lock = posix_directory::open({.root = dir});
    if (!lock) {
        std::fprintf(stderr, "cli_fixture: %s\n", lock.error().message().c_str());
        return 100;
    }
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child == 0) {
        ::execv(command[0], command);
        std::perror("cli_fixture: execv");
        ::_exit(101);
    }
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) != child) return 102;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 103;
}

// A range cache of 4 KiB blocks: "video.mp4" (20490 bytes, blocks 0 to 2 read) and "other"
// (4096 bytes, its one block); each byte is its offset modulo 256.
void make_range(const fs::path& dir) {
    auto storage = posix_directory::open({.root = dir});
    if (!storage) throw std::runtime_error(storage.error().message());
    auto cache = tierguard::range_cache<>::open(std::move(*storage), {.block_size = 4096, .memory_budget = 0});
    if (!cache) throw std::runtime_error(cache.error().message());
    auto fetch = [](std::uint64_t offset, std::span<std::byte> out) -> tierguard::result<void> {
        for (auto& b : out) b = static_cast<std::byte>(offset++ & 0xff);
        return {};
    };
    if (!cache->read("video.mp4", {"etag-1", 20490}, 0, 3 * 4096, fetch) ||
        !cache->read("other", {"v7", 4096}, 0, 4096, fetch))
        throw std::runtime_error("range cache reads failed");
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 2 ? argv[1] : "";
        if (mode == "make" && argc == 3) {
            const fs::path root = argv[2];
            fs::remove_all(root);
            make_cache<posix_directory>(root / "cache");
            make_cache<segment_log>(root / "log");
            make_junk<posix_directory>(root / "junk");
            make_junk<segment_log>(root / "junklog");
            make_fresh<posix_directory>(root / "fresh");
            make_fresh<segment_log>(root / "freshlog");
            make_junk<posix_directory>(root / "both");
            for (const auto& item : fs::directory_iterator(root / "log"))
                if (item.path().extension() == ".seg")
                    fs::copy_file(item.path(), root / "both" / item.path().filename());
            fs::create_directories(root / "empty");
            fs::permissions(root / "empty", fs::perms::owner_all);
            fs::create_directories(root / "plain");
            std::ofstream(root / "plain" / "notes.txt") << "not a cache";
            std::ofstream(root / "file") << "a file";
            make_range(root / "range");
            return 0;
        }
        if (mode == "hold" && argc > 3) return hold(argv[2], argv + 3);
        std::fprintf(stderr, "usage: cli_fixture make ROOT | cli_fixture hold DIR CMD...\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cli_fixture: %s\n", e.what());
        return 1;
    }
}
