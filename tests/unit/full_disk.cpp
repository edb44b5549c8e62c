// Issue 14, points 1, 5 and 6: the disk tier over posix_directory on a real full file
// system (tmpfs by size, tmpfs by inodes, a loop-mounted ext4 image), the bound on
// emergency evictions, and the metrics a full disk moves.
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard_test::temp_dir;
namespace fs = std::filesystem;

namespace {

struct manual_policies : tierguard::disk_defaults {
    using clock = tierguard::clock::manual;
};
using posix_tier = tierguard::disk_tier<std::string, std::string, manual_policies>;

using faulty_storage = tierguard::storage::fault_injecting<tierguard::storage::memory_storage>;
struct faulty_policies : manual_policies {
    using storage = faulty_storage;
};
using faulty_tier = tierguard::disk_tier<std::string, std::string, faulty_policies>;

struct cache_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
};
using posix_cache = tierguard::cache<std::string, std::string, cache_policies>;

// Folders under `root` (the quarantine folder aside) that hold nothing.
std::size_t empty_folders(const fs::path& root) {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        if (it->path().filename() == "quarantine") {
            it.disable_recursion_pending();
            continue;
        }
        if (it->is_directory(ec) && fs::is_empty(it->path(), ec)) ++n;
    }
    return n;
}

// What one fill found; lives in memory shared with the child that ran it.
struct fill_result {
    int status = 125;
    std::uint64_t puts = 0;
    std::uint64_t failed_puts = 0;
    std::uint64_t peak_entries = 0;  // the most entries the tier held during the fill
    std::uint64_t entries = 0;       // after the fill
    std::uint64_t listed = 0;        // blobs the storage lists, the meta blob aside
    std::uint64_t listed_bytes = 0;
    std::uint64_t tier_bytes = 0;
    std::uint64_t readable = 0;  // entries whose value reads back exactly
    std::uint64_t empty_after_fill = 0;
    std::uint64_t empty_after_scrub = 0;
    std::uint64_t entries_after_scrub = 0;
    std::uint64_t disk_full_events = 0;
    std::uint64_t emergency_evictions = 0;
    std::uint64_t evictions = 0;
};

enum : int { ok = 0, no_mount = 77, open_failed = 10, never_full = 11, fill_failed = 12 };

template <class T>
T* shared_block() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    return new (p) T();
}

std::string value_for(int i, std::size_t size) {
    std::string v = std::to_string(i) + ":";
    v.resize(size, static_cast<char>('a' + i % 26));
    return v;
}

// Puts `puts` keys of `value_size` bytes through a disk tier over `root` (whose file
// system is far smaller than the tier's budget, so only ENOSPC makes room), then scrubs.
int fill(const fs::path& root, std::size_t value_size, int puts, fill_result& out) {
    auto dir = tierguard::storage::posix_directory::open({.root = root, .sync = tierguard::durability::none});
    if (!dir) return open_failed;
    tierguard::clock::manual clock;
    auto opened = posix_tier::open(std::move(*dir), {.byte_budget = std::uint64_t{1} << 40}, clock);
    if (!opened) return open_failed;
    auto& tier = *opened;
    for (int i = 0; i < puts; ++i) {
        ++out.puts;
        if (!tier.put("key-" + std::to_string(i), value_for(i, value_size))) ++out.failed_puts;
        out.peak_entries = std::max<std::uint64_t>(out.peak_entries, tier.size());
        clock.advance(10ms);
    }
    const auto stats = tier.stats();
    out.entries = stats.entries;
    out.tier_bytes = stats.bytes;
    out.disk_full_events = stats.disk_full_events;
    out.emergency_evictions = stats.emergency_evictions;
    out.evictions = stats.evictions;
    if (auto listing = tier.storage().list()) {
        for (const auto& blob : *listing) {
            if (blob.name == posix_tier::meta_name) continue;
            ++out.listed;
            out.listed_bytes += blob.size;
        }
    }
    for (int i = 0; i < puts; ++i) {
        const auto got = tier.get("key-" + std::to_string(i));
        if (got && *got == value_for(i, value_size)) ++out.readable;
    }
    out.empty_after_fill = empty_folders(root);
    if (!tier.scrub()) return fill_failed;
    out.empty_after_scrub = empty_folders(root);
    out.entries_after_scrub = tier.size();
    return out.disk_full_events == 0 ? never_full : ok;
}

void print(const char* fs_name, const fill_result& r) {
    std::fprintf(stderr,
                 "[full_disk] %s: puts %llu (failed %llu), peak entries %llu, kept %llu (readable %llu, listed %llu), "
                 "bytes %llu (listed %llu), empty folders %llu after the fill, %llu after scrub; disk_full_events "
                 "%llu, emergency_evictions %llu, evictions %llu\n",
                 fs_name, static_cast<unsigned long long>(r.puts), static_cast<unsigned long long>(r.failed_puts),
                 static_cast<unsigned long long>(r.peak_entries), static_cast<unsigned long long>(r.entries),
                 static_cast<unsigned long long>(r.readable), static_cast<unsigned long long>(r.listed),
                 static_cast<unsigned long long>(r.tier_bytes), static_cast<unsigned long long>(r.listed_bytes),
                 static_cast<unsigned long long>(r.empty_after_fill),
                 static_cast<unsigned long long>(r.empty_after_scrub),
                 static_cast<unsigned long long>(r.disk_full_events),
                 static_cast<unsigned long long>(r.emergency_evictions), static_cast<unsigned long long>(r.evictions));
}

// The checks every fill must pass: most of what fits stays, every entry the tier counts
// is on disk and reads back, and no emptied fan-out folder is left.
void check_fill(const char* fs_name, int code, const fill_result& r) {
    INFO(fs_name << ": child exit code " << code << " (10 open failed, 11 never full, 12 scrub failed)");
    REQUIRE(code == ok);
    print(fs_name, r);
    CHECK(r.entries * 2 >= r.peak_entries);
    CHECK(r.entries == r.listed);
    CHECK(r.tier_bytes == r.listed_bytes);
    CHECK(r.readable == r.entries);
    CHECK(r.empty_after_fill == 0);
    CHECK(r.empty_after_scrub == 0);
    CHECK(r.entries_after_scrub == r.entries);
    CHECK(r.evictions >= r.emergency_evictions);
}

}  // namespace

#if defined(__linux__)
// Runs body(mount point) in a child, on a private tmpfs mounted with `options`: the
// child's exit code, or no_mount (after saying why) where namespaces or the mount are refused.
template <class F>
int on_tmpfs(const char* options, F body) {
    temp_dir mount_point;
    const int code = tierguard_test::in_child(
        [&] {
            if (!tierguard_test::mount_private_tmpfs(mount_point.path().c_str(), options)) return +no_mount;
            return body(mount_point.path());
        },
        120);
    if (code == no_mount) WARN("skipped: namespaces unavailable (unshare or mount refused)");
    return code;
}

// Fills a disk tier on a private tmpfs mounted with `options` (see fill) and checks it.
void fill_tmpfs(const char* options, std::size_t value_size, int puts) {
    auto* r = shared_block<fill_result>();
    const int code = on_tmpfs(
        options, [&](const fs::path& mount_point) { return fill(mount_point / "cache", value_size, puts, *r); });
    if (code != no_mount) check_fill(options, code, *r);
}

TEST_CASE("issue 14: a disk tier on a tmpfs full by size keeps most entries and no empty folder") {
    fill_tmpfs("size=8m,mode=0700", 3000, 6000);
}

TEST_CASE("issue 14: a disk tier on a tmpfs out of inodes keeps most entries and no empty folder") {
    fill_tmpfs("nr_inodes=2000,mode=0700", 100, 4000);
}

TEST_CASE("issue 14: a disk tier on a 16 MiB ext4 image keeps most entries and no empty folder") {
    if (::geteuid() != 0) {
        WARN("skipped: mounting a loop device needs root");
        return;
    }
    if (std::system("command -v mkfs.ext4 >/dev/null 2>&1") != 0) {
        WARN("skipped: mkfs.ext4 not found (Debian: e2fsprogs)");
        return;
    }
    temp_dir work;
    const fs::path image = work.path() / "ext4.img";
    const fs::path mount_point = work.path() / "mnt";
    fs::create_directory(mount_point);
    const std::string mkfs = "truncate -s 16M '" + image.string() + "' && mkfs.ext4 -q -F '" + image.string() + "'";
    if (std::system(mkfs.c_str()) != 0) {
        WARN("skipped: mkfs.ext4 failed on " << image);
        return;
    }
    auto* r = shared_block<fill_result>();
    const int code = tierguard_test::in_child(
        [&] {
            if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
                return +no_mount;
            const std::string mount =
                "mount -o loop '" + image.string() + "' '" + mount_point.string() + "' 2>/dev/null";
            if (std::system(mount.c_str()) != 0) return +no_mount;
            const int result = fill(mount_point / "cache", 2000, 6000, *r);
            (void)std::system(("umount '" + mount_point.string() + "'").c_str());
            return result;
        },
        300);
    if (code == no_mount) {
        WARN("skipped: mount -o loop refused (no loop devices, or no mount namespace)");
        return;
    }
    check_fill("ext4 16 MiB", code, *r);
}

TEST_CASE("issue 14: a cache on a full tmpfs shows every ENOSPC in tierguard_disk_full_total, once per eviction") {
    struct cache_result {
        int status = 125;
        std::uint64_t disk_full_events = 0;
        std::uint64_t evictions = 0;
        std::uint64_t metric_evictions = 0;
        std::uint64_t metric_entries = 0;
        std::uint64_t metric_bytes = 0;
        std::uint64_t listed = 0;
        std::uint64_t listed_bytes = 0;
        std::uint64_t errors_disk_full = 0;
        long long prometheus_disk_full = -1;
        long long prometheus_evictions = -1;
    };
    auto* r = shared_block<cache_result>();
    const int code = on_tmpfs("size=2m,mode=0700", [&](const fs::path& mount_point) {
        posix_cache::config cfg;
        cfg.storage.root = mount_point / "cache";
        cfg.storage.sync = tierguard::durability::none;
        cfg.memory.byte_budget = 64 << 10;
        cfg.memory.shards = 1;
        cfg.disk.byte_budget = std::uint64_t{1} << 40;
        auto c = posix_cache::open(cfg, tierguard::clock::manual());
        if (!c) return +open_failed;
        for (int i = 0; i < 1500; ++i) (void)c->put("key-" + std::to_string(i), value_for(i, 3000));
        const auto ds = c->disk().stats();
        const auto m = c->metrics();
        r->disk_full_events = ds.disk_full_events;
        r->evictions = ds.evictions;
        r->metric_evictions = m.storage.front().evictions;
        r->metric_entries = m.storage.front().entries;
        r->metric_bytes = m.storage.front().bytes;
        r->errors_disk_full = m.storage.front().errors_of(errc::disk_full);
        if (auto listing = c->disk().storage().list()) {
            for (const auto& blob : *listing) {
                if (blob.name == posix_tier::meta_name) continue;
                ++r->listed;
                r->listed_bytes += blob.size;
            }
        }
        const std::string text = c->to_prometheus();
        auto sample = [&](const std::string& series) -> long long {
            const auto at = text.find("\n" + series + " ");
            if (at == std::string::npos) return -1;
            return std::atoll(text.c_str() + at + series.size() + 2);
        };
        r->prometheus_disk_full = sample("tierguard_disk_full_total{tier=\"disk\"}");
        r->prometheus_evictions = sample("tierguard_evictions_total{tier=\"disk\"}");
        return ds.disk_full_events == 0 ? +never_full : +ok;
    });
    if (code == no_mount) return;
    INFO("child exit code " << code << " (10 open failed, 11 never full)");
    REQUIRE(code == ok);
    std::fprintf(stderr,
                 "[full_disk] cache on tmpfs size=2m: disk_full_events %llu, tierguard_disk_full_total %lld, "
                 "errors_total{code=disk_full} %llu, evictions %llu (metric %llu, exposition %lld), entries %llu "
                 "(listed %llu), bytes %llu (listed %llu)\n",
                 static_cast<unsigned long long>(r->disk_full_events), r->prometheus_disk_full,
                 static_cast<unsigned long long>(r->errors_disk_full), static_cast<unsigned long long>(r->evictions),
                 static_cast<unsigned long long>(r->metric_evictions), r->prometheus_evictions,
                 static_cast<unsigned long long>(r->metric_entries), static_cast<unsigned long long>(r->listed),
                 static_cast<unsigned long long>(r->metric_bytes), static_cast<unsigned long long>(r->listed_bytes));
    CHECK(r->prometheus_disk_full == static_cast<long long>(r->disk_full_events));
    CHECK(r->metric_evictions == r->evictions);
    CHECK(r->prometheus_evictions == static_cast<long long>(r->evictions));
    CHECK(r->metric_entries == r->listed);
    CHECK(r->metric_bytes == r->listed_bytes);
}

TEST_CASE("issue 14: the full disks segment_log handles itself count in disk_full_events; entries and bytes match") {
    struct seglog_policies : manual_policies {
        using storage = tierguard::storage::segment_log;
    };
    using seglog_tier = tierguard::disk_tier<std::string, std::string, seglog_policies>;
    struct seglog_result {
        std::uint64_t storage_disk_full = 0;
        std::uint64_t disk_full_events = 0;
        std::uint64_t tier_entries = 0;
        std::uint64_t storage_entries = 0;  // the pinned hash secret aside
        std::uint64_t tier_bytes = 0;
        std::uint64_t listed = 0;
        std::uint64_t listed_bytes = 0;
        std::uint64_t readable = 0;  // indexed entries whose value reads back exactly
    };
    auto* r = shared_block<seglog_result>();
    const int code = on_tmpfs("size=1m,mode=0700", [&](const fs::path& mount_point) {
        // Segments far beyond the file system: only ENOSPC makes segment_log evict.
        auto log = tierguard::storage::segment_log::open({.root = mount_point / "cache",
                                                          .sync = tierguard::durability::none,
                                                          .segment_size = 64 << 10,
                                                          .byte_budget = 64 << 20,
                                                          .write_buffer = 4096});
        if (!log) return +open_failed;
        auto tier = seglog_tier::open(std::move(*log), {.byte_budget = std::uint64_t{1} << 40});
        if (!tier) return +open_failed;
        for (int i = 0; i < 1000; ++i) (void)tier->put("key-" + std::to_string(i), value_for(i, 3000));
        r->storage_disk_full = tier->storage().stats().disk_full_evictions;
        r->disk_full_events = tier->stats().disk_full_events;
        r->tier_entries = tier->stats().entries;
        r->tier_bytes = tier->stats().bytes;
        r->storage_entries = tier->storage().stats().entries - 1;
        auto listing = tier->storage().list();
        if (!listing) return +open_failed;
        for (const auto& blob : *listing) {
            if (blob.name == seglog_tier::meta_name) continue;
            ++r->listed;
            r->listed_bytes += blob.size;
        }
        for (int i = 0; i < 1000; ++i) {
            const std::string key = "key-" + std::to_string(i);
            if (!tier->indexed(key)) continue;
            if (auto got = tier->get(key); got && *got == value_for(i, 3000)) ++r->readable;
        }
        return r->storage_disk_full == 0 ? +never_full : +ok;
    });
    if (code == no_mount) return;
    INFO("child exit code " << code << " (10 open failed, 11 never full)");
    REQUIRE(code == ok);
    std::fprintf(stderr,
                 "[full_disk] segment_log on tmpfs size=1m: disk_full_evictions %llu, disk_full_events %llu, tier "
                 "entries %llu, storage entries %llu (listed %llu), tier bytes %llu (listed %llu), readable %llu\n",
                 static_cast<unsigned long long>(r->storage_disk_full),
                 static_cast<unsigned long long>(r->disk_full_events), static_cast<unsigned long long>(r->tier_entries),
                 static_cast<unsigned long long>(r->storage_entries), static_cast<unsigned long long>(r->listed),
                 static_cast<unsigned long long>(r->tier_bytes), static_cast<unsigned long long>(r->listed_bytes),
                 static_cast<unsigned long long>(r->readable));
    CHECK(r->disk_full_events >= r->storage_disk_full);
    // segment_log names the blobs it evicts (take_evicted), so the tier's index follows it
    // (before: 1000 indexed for 328 held).
    CHECK(r->tier_entries == r->storage_entries);
    CHECK(r->tier_entries == r->listed);
    CHECK(r->tier_bytes == r->listed_bytes);
    CHECK(r->readable == r->listed);
}
#endif

TEST_CASE("issue 14: an emergency eviction whose retry still meets a full disk is not repeated on every put") {
    tierguard::clock::manual clock;
    faulty_storage storage{tierguard::storage::memory_storage()};
    auto faults = storage.control();
    auto opened = faulty_tier::open(std::move(storage), {}, clock);  // backoff: the default, 1 min
    REQUIRE(opened);
    auto& tier = *opened;
    for (int i = 0; i < 100; ++i) REQUIRE(tier.put("k" + std::to_string(i), "value"));
    const auto writes_before = faults.counters().calls(tierguard::storage::op::write);
    // Something else fills the disk: every write fails from now on.
    faults.script(tierguard::storage::op::write, writes_before + 1, tierguard::storage::fault::disk_full,
                  tierguard::storage::fault_mode::from_then_on);

    for (int i = 0; i < 50; ++i) {
        const auto put = tier.put("new" + std::to_string(i), "value");
        REQUIRE_FALSE(put);
        CHECK(put.error().code() == errc::disk_full);
        clock.advance(100ms);  // 5 s in all: within the backoff
    }
    auto stats = tier.stats();
    CHECK(stats.emergency_evictions == 10);  // one eviction of 10% for the first put only
    CHECK(tier.size() == 90);
    CHECK(stats.disk_full_events == 51);  // every ENOSPC: the first put's two writes, one for each later put

    clock.advance(2min);  // the backoff has passed: one more emergency eviction is allowed
    REQUIRE_FALSE(tier.put("after-backoff", "value"));
    CHECK(tier.stats().emergency_evictions == 19);
    CHECK(tier.size() == 81);

    faults.heal();  // the disk has room again: puts succeed at once
    REQUIRE(tier.put("healed", "value"));
    CHECK(*tier.get("healed") == "value");
    CHECK(tier.size() == 82);
}

TEST_CASE("issue 14: an emergency eviction whose retry succeeds does not hold off the next one") {
    tierguard::clock::manual clock;
    faulty_storage storage{tierguard::storage::memory_storage()};
    auto faults = storage.control();
    auto opened = faulty_tier::open(std::move(storage), {}, clock);
    REQUIRE(opened);
    auto& tier = *opened;
    for (int i = 0; i < 100; ++i) REQUIRE(tier.put("k" + std::to_string(i), "value"));
    for (int round = 0; round < 3; ++round) {
        const auto next = faults.counters().calls(tierguard::storage::op::write) + 1;
        faults.script(tierguard::storage::op::write, next, tierguard::storage::fault::disk_full);
        REQUIRE(tier.put("r" + std::to_string(round), "value"));
    }
    const auto stats = tier.stats();
    CHECK(stats.disk_full_events == 3);
    CHECK(stats.emergency_evictions == 10 + 9 + 8);
}

TEST_CASE("issue 14: metrics() counts each disk eviction once, emergency ones included") {
    struct policies : tierguard::cache_defaults {
        using clock = tierguard::clock::manual;
        using storage = faulty_storage;
    };
    using faulty_cache = tierguard::cache<std::string, std::string, policies>;
    faulty_storage storage{tierguard::storage::memory_storage()};
    auto faults = storage.control();
    auto opened = faulty_cache::open({}, std::move(storage), tierguard::clock::manual());
    REQUIRE(opened);
    auto& c = *opened;
    for (int i = 0; i < 100; ++i) REQUIRE(c.put("k" + std::to_string(i), "value"));
    faults.script(tierguard::storage::op::write, faults.counters().calls(tierguard::storage::op::write) + 1,
                  tierguard::storage::fault::disk_full);
    REQUIRE(c.put("full", "value"));
    const auto ds = c.disk().stats();
    REQUIRE(ds.emergency_evictions == 10);
    CHECK(ds.evictions == 10);
    CHECK(c.metrics().storage.front().evictions == 10);
    CHECK(c.to_prometheus().find("\ntierguard_evictions_total{tier=\"disk\"} 10\n") != std::string::npos);
}

TEST_CASE("issue 14: writes racing with removes and clean() that empty their folders never fail") {
    temp_dir dir;
    auto opened = tierguard::storage::posix_directory::open({.root = dir.path() / "cache"});
    REQUIRE(opened);
    auto& s = *opened;
    constexpr int rounds = 600;
    std::atomic<int> failures{0};
    std::atomic<bool> writing{true};
    // Each writer empties its folders again and again; the other writer and clean()
    // remove them whenever they find them empty.
    auto writer = [&](int id) {
        for (int i = 0; i < rounds; ++i) {
            const std::string name = "f" + std::to_string(i % 3) + "/g/w" + std::to_string(id);
            const std::string value = std::to_string(id) + ":" + std::to_string(i);
            const std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(value.data()),
                                               reinterpret_cast<const std::byte*>(value.data() + value.size()));
            const auto back = s.write(name, bytes).and_then([&] { return s.read(name); });
            const auto removed = back ? s.remove(name) : tierguard::result<void>{};
            if (!back || *back != bytes || !removed) {
                ++failures;
                WARN((!back      ? back.error().message()
                      : !removed ? removed.error().message()
                                 : std::string("other value")));
            }
        }
    };
    std::thread cleaner([&] {
        for (int i = 0; i < 100000 && writing.load(); ++i) (void)s.clean({.now = std::chrono::system_clock::now()});
    });
    std::thread a(writer, 1);
    std::thread b(writer, 2);
    a.join();
    b.join();
    writing = false;
    cleaner.join();
    CHECK(failures.load() == 0);
    REQUIRE(s.clean({.now = std::chrono::system_clock::now()}));
    CHECK(empty_folders(s.root()) == 0);
}

TEST_CASE("issue 14: a negative emergency_eviction_backoff is refused, naming the setting") {
    const auto bad = faulty_tier::validate({.emergency_eviction_backoff = -1s});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code() == errc::invalid_argument);
    CHECK(bad.error().context().find("emergency_eviction_backoff") != std::string::npos);
    CHECK(faulty_tier::validate({.emergency_eviction_backoff = 0s}));
}

TEST_CASE("issue 14: scrub leaves no empty fan-out folder: emptied ones, and those of quarantined and orphan files") {
    temp_dir dir;
    auto opened = tierguard::storage::posix_directory::open({.root = dir.path() / "cache"});
    REQUIRE(opened);
    const fs::path root = opened->root();
    auto tier = posix_tier::open(std::move(*opened), {}, tierguard::clock::manual());
    REQUIRE(tier);
    REQUIRE(tier->put("damaged", "value"));
    REQUIRE(tier->put("kept", "value"));
    const auto damaged = tier->name_for("damaged");
    REQUIRE(damaged);
    {
        std::FILE* f = std::fopen((root / *damaged).c_str(), "r+b");
        REQUIRE(f != nullptr);
        std::fputs("garbage", f);
        std::fclose(f);
    }
    fs::create_directories(root / "0a" / "1b");  // left empty by an older version
    fs::create_directories(root / "0c" / "2d");
    std::FILE* orphan = std::fopen((root / "0c" / "2d" / "0123456789abcdef").c_str(), "wb");  // not under its hash
    REQUIRE(orphan != nullptr);
    std::fclose(orphan);
    REQUIRE(empty_folders(root) == 1);

    const auto report = tier->scrub();
    REQUIRE(report);
    CHECK(report->quarantined == 1);
    CHECK(report->orphans_removed == 1);
    CHECK(empty_folders(root) == 0);
    CHECK(*tier->get("kept") == "value");
}
