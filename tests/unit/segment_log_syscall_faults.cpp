// segment_log when its system calls fail: this binary replaces unlinkat(), pwrite(),
// fsync() and fdatasync() with versions that fail on request (and otherwise make the real
// system call), so that a roll can meet a failed delete of the oldest segment, an open can
// meet a full disk while it finishes a roll a crash interrupted, and a workload can meet
// syncs that fail with EIO (issue 14), and a write can stop part-way.
#include "support/blob_text.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/storage/segment_log.hpp>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace {

bool fail_segment_unlink = false;  // unlinkat of a *.seg file: EIO
bool disk_full = false;            // every pwrite: ENOSPC
int torn_write = 0;                // 2: the next pwrite writes half its bytes, 1: the next fails with EIO
std::minstd_rand sync_faults{1};   // drawn by every fsync / fdatasync while sync_eio_percent > 0
unsigned sync_eio_percent = 0;     // share of syncs that fail with EIO
std::uint64_t syncs_failed = 0;

bool sync_fails() {
    if (sync_eio_percent == 0 || sync_faults() % 100 >= sync_eio_percent) return false;
    ++syncs_failed;
    errno = EIO;
    return true;
}

}  // namespace

namespace {
int failing_creates = 0;  // the next openat calls with O_CREAT fail with create_errno
int create_errno = EIO;
}  // namespace

extern "C" int openat(int dir, const char* path, int flags, ...) {
    mode_t mode = 0;
    if ((flags & (O_CREAT | O_TMPFILE)) != 0) {
        std::va_list args;
        va_start(args, flags);
        mode = static_cast<mode_t>(va_arg(args, unsigned));
        va_end(args);
    }
    if ((flags & O_CREAT) != 0 && failing_creates > 0) {
        --failing_creates;
        errno = create_errno;
        return -1;
    }
    return static_cast<int>(::syscall(SYS_openat, dir, path, flags, mode));
}

extern "C" int fsync(int fd) {
    if (sync_fails()) return -1;
    return static_cast<int>(::syscall(SYS_fsync, fd));
}

extern "C" int fdatasync(int fd) {
    if (sync_fails()) return -1;
    return static_cast<int>(::syscall(SYS_fdatasync, fd));
}

extern "C" int unlinkat(int dir, const char* name, int flags) noexcept {
    if (fail_segment_unlink && std::strstr(name, ".seg") != nullptr) {
        errno = EIO;
        return -1;
    }
    return static_cast<int>(::syscall(SYS_unlinkat, dir, name, flags));
}

extern "C" ssize_t pwrite(int fd, const void* bytes, std::size_t n, off_t at) {
    if (disk_full) {
        errno = ENOSPC;
        return -1;
    }
    if (torn_write == 1) {
        torn_write = 0;
        errno = EIO;
        return -1;
    }
    if (torn_write == 2 && n > 1) {
        torn_write = 1;
        n /= 2;
    }
    return static_cast<ssize_t>(::syscall(SYS_pwrite64, fd, bytes, n, at));
}

namespace {

using tierguard::errc;
using tierguard::storage::segment_log;
using tierguard_test::bytes_of;
using tierguard_test::temp_dir;
using tierguard_test::text_of;

segment_log::config two_small_segments(const std::filesystem::path& root) {
    return {.root = root,
            .sync = tierguard::durability::none,
            .max_blob_size = std::size_t{1} << 20,
            .segment_size = 4096,
            .byte_budget = 2 * 4096};
}

std::string value_of(int i) { return std::string(900, static_cast<char>('a' + i % 26)); }

}  // namespace

TEST_CASE("segment_log: a segment whose delete fails is deleted by a later roll; writes go on") {
    temp_dir dir;
    auto s = segment_log::open(two_small_segments(dir.path() / "cache")).value();
    int i = 0;
    for (; s.stats().segments < 2; ++i) REQUIRE(s.write("k" + std::to_string(i), bytes_of(value_of(i))));
    fail_segment_unlink = true;
    bool failed = false;
    for (; !failed; ++i) {
        const auto w = s.write("k" + std::to_string(i), bytes_of(value_of(i)));
        if (!w) {
            CHECK(w.error().code() == errc::io_error);
            failed = true;
        }
    }
    CHECK(s.stats().segments == 3);  // the oldest stayed
    fail_segment_unlink = false;
    for (int n = 0; n < 30; ++n, ++i) REQUIRE(s.write("k" + std::to_string(i), bytes_of(value_of(i))));
    CHECK(s.stats().segments == 2);
    for (int k = 0; k < i; ++k) {
        const auto r = s.read("k" + std::to_string(k));
        if (r) {
            CHECK(text_of(*r) == value_of(k));
        } else {
            CHECK(r.error().code() == errc::miss);
        }
    }
    CHECK(text_of(s.read("k" + std::to_string(i - 1)).value()) == value_of(i - 1));
}

TEST_CASE("segment_log: a full disk while open finishes an interrupted roll keeps the pinned blob") {
    temp_dir dir;
    auto cfg = two_small_segments(dir.path() / "cache");
    cfg.byte_budget = 3 * 4096;
    cfg.pinned = {"pinned"};
    {
        auto s = segment_log::open(cfg).value();
        REQUIRE(s.write("pinned", bytes_of("secret")));
        for (int i = 0; s.stats().segments < 3; ++i) REQUIRE(s.write("k" + std::to_string(i), bytes_of(value_of(i))));
    }
    cfg.byte_budget = 2 * 4096;  // three files: one over the budget, as a crash mid-roll leaves them
    disk_full = true;
    {
        auto s = segment_log::open(cfg);
        REQUIRE(s);  // the pinned blob is in its side files: nothing to copy, the oldest goes
        CHECK(text_of(s->read("pinned").value()) == "secret");
        CHECK(s->stats().segments == 2);
    }
    disk_full = false;
    auto s = segment_log::open(cfg).value();
    CHECK(s.stats().segments == 2);
    CHECK(text_of(s.read("pinned").value()) == "secret");
}

namespace {

// A name's outcomes the calls so far allow: "" is a miss. A write or remove that failed
// adds its outcome to the older ones (either may be on disk); one that succeeded leaves
// only its own.
struct sync_fault_outcome {
    int older = 0;   // a value an earlier put wrote, no longer allowed
    int erased = 0;  // a value back although the name was removed
    int checked = 0;
};

sync_fault_outcome sync_eio_workload(unsigned seed, tierguard::durability sync) {
    temp_dir dir;
    const segment_log::config cfg{.root = dir.path() / "cache",
                                  .sync = sync,
                                  .segment_size = std::uint64_t{64} << 10,
                                  .byte_budget = std::uint64_t{256} << 20};
    constexpr int keys = 300;
    std::map<int, std::set<std::string>> allowed;
    std::map<int, std::set<std::string>> written;  // every value a put tried
    std::mt19937 rng(seed);
    sync_faults.seed(seed);
    {
        auto s = segment_log::open(cfg).value();
        sync_eio_percent = 30;
        for (int op = 0; op < 3000; ++op) {
            const int k = static_cast<int>(rng() % keys);
            const std::string name = "ab/" + std::to_string(k);
            auto& now = allowed.try_emplace(k, std::set<std::string>{""}).first->second;
            if (rng() % 10 < 7) {
                const std::string v =
                    "k" + std::to_string(k) + "#" + std::to_string(op) + std::string(rng() % 200, 'x');
                written[k].insert(v);
                if (s.write(name, bytes_of(v))) {
                    now = {v};
                } else {  // as the cache does: the older copy must go (supersede_stored)
                    now.insert(v);
                    const auto r = s.remove(name);
                    if (r || r.error().code() == errc::miss)
                        now = {""};
                    else
                        now.insert("");
                }
            } else {
                const auto r = s.remove(name);
                if (r || r.error().code() == errc::miss)
                    now = {""};
                else
                    now.insert("");
            }
            if (rng() % 4 == 0) {  // the running log answers as the model allows
                const auto back = s.read(name);
                CHECK((back || back.error().code() == errc::miss));
                INFO("key " << k << " got " << (back ? text_of(*back).substr(0, 12) : std::string("miss"))
                            << " allowed " << now.size() << " first " << now.begin()->substr(0, 12));
                CHECK(now.count(back ? text_of(*back) : std::string()) == 1);
            }
        }
        sync_eio_percent = 0;
    }  // a clean close
    sync_fault_outcome out;
    auto s = segment_log::open(cfg).value();
    for (const auto& [k, now] : allowed) {
        const auto back = s.read("ab/" + std::to_string(k));
        const std::string got = back ? text_of(*back) : std::string();
        ++out.checked;
        if (now.count(got) != 0) continue;
        if (now == std::set<std::string>{""})
            ++out.erased;
        else
            ++out.older;
    }
    return out;
}

}  // namespace

TEST_CASE("segment_log: issue 14 - syncs failing with EIO never bring back an older or erased value after a restart") {
    const auto sync = GENERATE(tierguard::durability::data, tierguard::durability::full);
    for (const unsigned seed : {1u, 2u, 3u, 4u, 5u}) {
        syncs_failed = 0;
        const auto r = sync_eio_workload(seed, sync);
        std::printf("issue 14 sync EIO (%s) seed %u: %llu syncs failed; after reopen %d older, %d erased back of %d\n",
                    sync == tierguard::durability::data ? "data" : "full", seed,
                    static_cast<unsigned long long>(syncs_failed), r.older, r.erased, r.checked);
        INFO("seed " << seed);
        CHECK(syncs_failed > 0);
        CHECK(r.older == 0);
        CHECK(r.erased == 0);
    }
}

TEST_CASE("segment_log: issue 14 - failed creates of segment files never lose the pinned secret") {
    temp_dir dir;
    auto cfg = two_small_segments(dir.path() / "cache");
    cfg.sync = tierguard::durability::data;
    cfg.byte_budget = 4 * 4096;
    std::map<std::string, std::string> model;
    int failed = 0;
    {
        auto s = segment_log::open(cfg).value();
        REQUIRE(s.write("tierguard-meta", bytes_of("secret")));
        for (int i = 0; i < 200; ++i) {
            if (i % 20 == 5) failing_creates = 1;  // 10 rolls meet a failed create
            const std::string name = "k" + std::to_string(i % 50);
            const std::string v = value_of(i) + std::to_string(i);
            if (s.write(name, bytes_of(v))) {
                model[name] = v;
            } else {
                ++failed;
                model.erase(name);
            }
        }
        failing_creates = 0;
        CHECK(text_of(s.read("tierguard-meta").value()) == "secret");
    }
    CHECK(failed > 0);
    auto s = segment_log::open(cfg).value();
    CHECK(text_of(s.read("tierguard-meta").value()) == "secret");
    for (const auto& [name, v] : model) {
        const auto got = s.read(name);
        if (got) CHECK(text_of(*got) == v);
    }
}

TEST_CASE("segment_log: a segment create that fails (EIO, ENOSPC) uses up no sequence: a reopen finds no gap") {
    for (const int err : {EIO, ENOSPC}) {
        INFO("errno " << err);
        temp_dir dir;
        auto cfg = two_small_segments(dir.path() / "cache");
        cfg.byte_budget = 16 * 4096;
        std::map<std::string, std::string> acknowledged;
        {
            auto s = segment_log::open(cfg).value();
            create_errno = err;
            for (int i = 0; i < 40; ++i) {
                if (i % 10 == 5 && i < 30) failing_creates = 1;  // the next roll's create fails
                const std::string name = "k" + std::to_string(i);
                if (s.write(name, bytes_of(value_of(i)))) acknowledged[name] = value_of(i);
            }
            create_errno = EIO;
            REQUIRE(failing_creates == 0);
            if (err == EIO) CHECK(acknowledged.size() == 37);  // the writes that met the failed creates
        }
        auto s = segment_log::open(cfg).value();
        CHECK(s.stats().lost_segments == 0);
        CHECK(s.stats().entries_dropped == 0);
        for (int i = 30; i < 40; ++i) CHECK(text_of(s.read("k" + std::to_string(i)).value()) == value_of(i));
        for (const auto& [name, value] : acknowledged) {
            INFO(name);
            if (auto got = s.read(name)) CHECK(text_of(*got) == value);
        }
        if (err == EIO) CHECK(s.stats().entries == 37);
    }
}

TEST_CASE("segment_log: a write that stops part-way (a short write, then EIO) costs no entry written before it") {
    temp_dir dir;
    const segment_log::config cfg{.root = dir.path() / "cache",
                                  .sync = tierguard::durability::data,
                                  .segment_size = std::uint64_t{64} << 10,
                                  .byte_budget = std::uint64_t{256} << 20};
    {
        auto s = segment_log::open(cfg).value();
        for (int i = 0; i < 40; ++i) REQUIRE(s.write("ab/" + std::to_string(i), bytes_of(value_of(i))));
        torn_write = 2;
        const auto failed = s.write("ab/failed", bytes_of(value_of(99)));
        REQUIRE(torn_write == 0);
        REQUIRE_FALSE(failed);
        CHECK(failed.error().code() == errc::io_error);
        // The segment the write tore is left for a new one, whose header records where it ends.
        for (int i = 40; i < 60; ++i) REQUIRE(s.write("ab/" + std::to_string(i), bytes_of(value_of(i))));
        CHECK(s.stats().segments == 2);
    }
    for (int open = 0; open < 2; ++open) {
        INFO("open " << open);
        auto s = segment_log::open(cfg).value();
        CHECK(s.stats().damaged_regions == 0);
        CHECK(s.stats().entries_dropped == 0);
        for (int i = 0; i < 60; ++i) {
            INFO("key " << i);
            const auto got = s.read("ab/" + std::to_string(i));
            CHECK((got && text_of(*got) == value_of(i)));
        }
        CHECK_FALSE(s.read("ab/failed"));
    }
}
