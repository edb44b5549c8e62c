// segment_log when the system calls of a segment eviction fail: this binary replaces
// unlinkat() and pwrite() with versions that fail on request (and otherwise make the real
// system call), so that a roll can meet a failed delete of the oldest segment, and an
// open can meet a full disk while it finishes a roll a crash interrupted.
#include "support/blob_text.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/storage/segment_log.hpp>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace {

bool fail_segment_unlink = false;  // unlinkat of a *.seg file: EIO
bool disk_full = false;            // every pwrite: ENOSPC

}  // namespace

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

TEST_CASE("segment_log: a full disk while open finishes an interrupted roll keeps the pinned blob on disk") {
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
        REQUIRE(s);  // the copy waits in memory, the oldest segment stays
        CHECK(text_of(s->read("pinned").value()) == "secret");
        CHECK(s->stats().segments == 3);
    }  // its flush at close fails: the copy is lost, the original is not
    disk_full = false;
    auto s = segment_log::open(cfg).value();
    CHECK(s.stats().segments == 2);
    CHECK(text_of(s.read("pinned").value()) == "secret");
}
