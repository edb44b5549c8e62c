// Issue 18: posix_directory::clean(options, listing) cleans and lists in one walk; what it
// cleans and lists is what clean(options) and then list() do, over twin directories.
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/storage/posix_directory.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using tierguard::storage::posix_directory;

namespace {

void write_file(const fs::path& p, std::string_view text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

std::vector<tierguard::blob_info> sorted(std::vector<tierguard::blob_info> v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return v;
}

}  // namespace

TEST_CASE("posix_directory: clean(options, listing) is clean(options) then list(), in one walk") {
    tierguard_test::temp_dir dir;
    const fs::path one = dir.path() / "one";
    const auto now = std::chrono::system_clock::now();
    {
        auto storage = posix_directory::open({.root = one});
        REQUIRE(storage);
        const std::vector<std::byte> bytes(100, std::byte{7});
        for (const char* name : {"top", "ab/cd/0001", "ab/cd/0002", "ab/ef", "x/y/z/deep"})
            REQUIRE(storage->write(name, std::span<const std::byte>(bytes).first(std::string_view(name).size())));
        REQUIRE(storage->write("gone/soon", bytes));
        REQUIRE(storage->quarantine("gone/soon", "test", now - 30 * 24h));  // purged: older than 7 days
        REQUIRE(storage->write("kept/soon", bytes));
        REQUIRE(storage->quarantine("kept/soon", "test", now));
    }
    write_file(one / "ab" / ".tmp.99999.3", "leftover of a crash");
    write_file(one / "ab" / "bad name", "foreign");
    write_file(one / ".hidden" / "file", "foreign folder");
    fs::create_symlink("top", one / "ab" / "link");
    fs::create_directories(one / "empty" / "folder");
    fs::copy(one, dir.path() / "two", fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    for (const fs::path& root : {one, dir.path() / "two"})  // fs::copy refuses FIFOs
        REQUIRE(::mkfifo((root / "x" / "fifo").c_str(), 0600) == 0);

    const tierguard::clean_options options{now, 7 * 24h};
    auto a = posix_directory::open({.root = one});
    REQUIRE(a);
    std::vector<tierguard::blob_info> listing{{"stale", 1, {}}};  // replaced, not appended to
    auto a_report = a->clean(options, listing);
    REQUIRE(a_report);

    auto b = posix_directory::open({.root = dir.path() / "two"});
    REQUIRE(b);
    auto b_report = b->clean(options);
    REQUIRE(b_report);
    auto b_listing = b->list();
    REQUIRE(b_listing);

    CHECK(a_report->temp_files_removed == 1);
    CHECK(a_report->quarantine_purged == 1);
    CHECK(a_report->temp_files_removed == b_report->temp_files_removed);
    CHECK(a_report->foreign_removed == b_report->foreign_removed);
    CHECK(a_report->quarantine_purged == b_report->quarantine_purged);
    CHECK(a_report->bytes_freed == b_report->bytes_freed);

    const auto got = sorted(listing);
    const auto expected = sorted(*b_listing);
    REQUIRE(got.size() == 5);
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].name == expected[i].name);
        CHECK(got[i].size == expected[i].size);
        CHECK(got[i].size == got[i].name.size());
    }
    // And a list() of the cleaned directory agrees with the listing, modification times included.
    auto again = a->list();
    REQUIRE(again);
    const auto listed = sorted(*again);
    REQUIRE(listed.size() == got.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(listed[i].name == got[i].name);
        CHECK(listed[i].modified == got[i].modified);
    }
}

TEST_CASE("posix_directory: read_into with an identity reports the file read, and a change to it") {
    tierguard_test::temp_dir dir;
    auto storage = posix_directory::open({.root = dir.path() / "cache"});
    REQUIRE(storage);
    const std::vector<std::byte> bytes(64, std::byte{1});
    REQUIRE(storage->write("ab/0001", bytes));
    std::vector<std::byte> out(64);
    const std::span<std::byte> parts[] = {out};
    tierguard::blob_identity first, second;
    REQUIRE(storage->read_into("ab/0001", parts, first).value() == 64);
    REQUIRE(storage->read_into("ab/0001", parts, second).value() == 64);
    CHECK(first == second);
    CHECK(first.size == 64);
    struct stat st {};
    REQUIRE(::stat((dir.path() / "cache" / "ab" / "0001").c_str(), &st) == 0);
    CHECK(first.inode == static_cast<std::uint64_t>(st.st_ino));
    CHECK(first.ctime_ns == std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec);

    REQUIRE(storage->write("ab/0001", bytes));  // a new file renamed over it
    REQUIRE(storage->read_into("ab/0001", parts, second).value() == 64);
    CHECK_FALSE(first == second);

    // Errors as read_into(name, parts): longer than the parts, not a file, absent.
    std::vector<std::byte> small(10);
    const std::span<std::byte> small_parts[] = {small};
    CHECK(storage->read_into("ab/0001", small_parts, second).error().code() == tierguard::errc::too_large);
    REQUIRE(::mkfifo((dir.path() / "cache" / "ab" / "0002").c_str(), 0600) == 0);
    CHECK(storage->read_into("ab/0002", parts, second).error().code() == tierguard::errc::corrupted);
    fs::create_directories(dir.path() / "cache" / "ab" / "0003");
    CHECK(storage->read_into("ab/0003", parts, second).error().code() == tierguard::errc::corrupted);
    CHECK(storage->read_into("ab/0004", parts, second).error().code() == tierguard::errc::miss);
}
