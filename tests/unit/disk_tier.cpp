#include "support/scripted_storage.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace std::chrono_literals;
using tierguard::errc;
namespace fs = std::filesystem;

namespace {

struct recording_listener {
    std::shared_ptr<std::vector<tierguard::event_kind>> seen = std::make_shared<std::vector<tierguard::event_kind>>();
    void on_event(const tierguard::event& e) noexcept { seen->push_back(e.kind); }
    [[nodiscard]] std::size_t count(tierguard::event_kind k) const {
        return static_cast<std::size_t>(std::count(seen->begin(), seen->end(), k));
    }
};

struct posix_policies : tierguard::disk_defaults {
    using clock = tierguard::clock::manual;
    using listener = recording_listener;
};
using posix_tier = tierguard::disk_tier<std::string, std::string, posix_policies>;

struct memory_policies : posix_policies {
    using storage = tierguard::storage::memory_storage;
};
using memory_tier = tierguard::disk_tier<std::string, std::string, memory_policies>;

using scripted = tierguard_test::scripted_storage<tierguard::storage::memory_storage>;
struct scripted_policies : posix_policies {
    using storage = scripted;
};
using scripted_tier = tierguard::disk_tier<std::string, std::string, scripted_policies>;

tierguard::storage::posix_directory open_dir(const fs::path& root) {
    auto dir = tierguard::storage::posix_directory::open({.root = root});
    REQUIRE(dir);
    return std::move(*dir);
}

posix_tier open_posix(const fs::path& root, tierguard::disk_config cfg = {},
                      tierguard::clock::manual clock = tierguard::clock::manual(),
                      recording_listener listener = recording_listener()) {
    auto tier = posix_tier::open(open_dir(root), cfg, clock, listener);
    REQUIRE(tier);
    return std::move(*tier);
}

memory_tier open_memory(tierguard::disk_config cfg = {}, tierguard::clock::manual clock = tierguard::clock::manual()) {
    auto tier = memory_tier::open(tierguard::storage::memory_storage(), cfg, clock);
    REQUIRE(tier);
    return std::move(*tier);
}

}  // namespace

TEST_CASE("disk tier: put and get round-trip through real files; reopen finds them") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    {
        auto tier = open_posix(root);
        REQUIRE(tier.put("user:1", "ada"));
        REQUIRE(tier.put("user:2", "grace"));
        CHECK(*tier.get("user:1") == "ada");
        CHECK(tier.get("user:3").error().code() == errc::miss);
        const auto stats = tier.stats();
        CHECK(stats.writes == 2);
        CHECK(stats.hits == 1);
        CHECK(stats.misses == 1);
        CHECK(stats.entries == 2);
    }
    auto reopened = open_posix(root);
    CHECK(reopened.size() == 2);
    CHECK(*reopened.get("user:2") == "grace");
}

TEST_CASE("disk tier: file names come from a keyed hash, never from the key") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    auto tier = open_posix(root);
    const std::vector<std::string> keys = {"../../etc/passwd",          "/absolute", std::string("nul\0byte", 8),
                                           std::string(64 * 1024, 'k'), "plain",     ""};
    for (const auto& key : keys) REQUIRE(tier.put(key, "v:" + std::to_string(key.size())));
    for (const auto& key : keys) {
        INFO("key of size " << key.size());
        CHECK(*tier.get(key) == "v:" + std::to_string(key.size()));
        const auto name = tier.name_for(key);
        REQUIRE(name);
        CHECK(name->size() == 22);
        CHECK(name->find_first_not_of("0123456789abcdef/") == std::string::npos);
    }
    // Nothing was created outside the cache directory.
    std::set<std::string> outside;
    for (const auto& e : fs::directory_iterator(tmp.path())) outside.insert(e.path().filename().string());
    CHECK(outside == std::set<std::string>{"cache"});
    // Two directories hash the same key differently (the secret is per directory).
    auto other = open_posix(tmp.path() / "other");
    CHECK(*other.name_for("plain") != *tier.name_for("plain"));
}

TEST_CASE("disk tier: seed 000's corrupted-file procedure") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    recording_listener listener;
    auto tier = open_posix(root, {}, tierguard::clock::manual(), listener);
    REQUIRE(tier.put("report", "quarterly numbers"));
    const fs::path file = root / *tier.name_for("report");
    REQUIRE(fs::exists(file));
    { std::ofstream(file, std::ios::trunc | std::ios::binary) << "corrupted data"; }

    tierguard::result<std::string> got = tierguard::result<std::string>("unset");
    REQUIRE_NOTHROW(got = tier.get("report"));
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::corrupted);
    CHECK(got.error().where() == tierguard::tier::disk);
    CHECK_FALSE(fs::exists(file));
    CHECK(tier.storage().quarantined() == 1);
    const auto stats = tier.stats();
    CHECK(stats.corrupted == 1);
    CHECK(stats.quarantined == 1);
    CHECK(listener.count(tierguard::event_kind::corrupted) == 1);
    CHECK(listener.count(tierguard::event_kind::quarantined) == 1);

    REQUIRE(tier.put("report", "fresh numbers"));
    CHECK(*tier.get("report") == "fresh numbers");
}

namespace {
struct v2_policies : posix_policies {
    static constexpr std::uint32_t schema_version = 2;
};
using v2_tier = tierguard::disk_tier<std::string, std::string, v2_policies>;
}  // namespace

TEST_CASE("disk tier: a bumped schema version turns old entries into counted misses (seed 003)") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    {
        auto v1 = open_posix(root);
        REQUIRE(v1.put("user:1", "old layout"));
        REQUIRE(v1.put("user:2", "old layout"));
    }
    SECTION("met on get") {
        auto v2 = v2_tier::open(open_dir(root), {.scrub_on_open = false});
        REQUIRE(v2);
        const auto got = v2->get("user:1");
        REQUIRE_FALSE(got);
        CHECK(got.error().code() == errc::miss);  // as after the scrub below (issue 17)
        CHECK(v2->stats().version_mismatches == 1);
        CHECK(v2->get("user:1").error().code() == errc::miss);  // removed, not met again
        REQUIRE(v2->put("user:1", "new layout"));
        CHECK(*v2->get("user:1") == "new layout");
    }
    SECTION("met by the scrub at open (scrub_on_open on; off by default)") {
        auto v2 = v2_tier::open(open_dir(root), {.scrub_on_open = true});
        REQUIRE(v2);
        CHECK(v2->stats().version_mismatches == 2);
        CHECK(v2->size() == 0);
        CHECK(v2->get("user:2").error().code() == errc::miss);
    }
}

namespace {
struct any_version_policies : posix_policies {
    static constexpr bool any_schema_version = true;
};
using any_version_tier = tierguard::disk_tier<std::string, std::string, any_version_policies>;
}  // namespace

TEST_CASE("disk tier: with any_schema_version a maintenance tier's scrub keeps every schema version") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    {
        auto v1 = open_posix(root);
        REQUIRE(v1.put("user:1", "old layout"));
    }
    {
        auto v2 = v2_tier::open(open_dir(root), {.scrub_on_open = false});
        REQUIRE(v2);
        REQUIRE(v2->put("user:2", "new layout"));
    }
    STATIC_REQUIRE(any_version_tier::any_schema_version);
    STATIC_REQUIRE_FALSE(posix_tier::any_schema_version);
    auto tool = any_version_tier::open(open_dir(root));
    REQUIRE(tool);
    CHECK(tool->stats().version_mismatches == 0);
    CHECK(tool->size() == 2);
    CHECK(*tool->get("user:1") == "old layout");
    CHECK(*tool->get("user:2") == "new layout");
}

TEST_CASE("disk tier: TTLs expire on the injected clock, also across a reopen") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    {
        auto tier = open_posix(root, {.default_ttl = 1h}, clock);
        REQUIRE(tier.put("short", "s", 10s));
        REQUIRE(tier.put("default", "d"));
        REQUIRE(tier.put("forever", "f", tierguard::no_expiry));
        clock.advance(10s);
        CHECK(tier.get("short").error().code() == errc::miss);  // removed; counted as an expiration
        CHECK_FALSE(tier.contains("short"));
        CHECK(tier.contains("default"));
    }
    clock.advance(2h);
    auto tier = open_posix(root, {.default_ttl = 1h}, clock);
    // The default open indexes the listing (names and sizes, no expiry read): the expired
    // entry is indexed until its first read removes it.
    CHECK(tier.size() == 2);
    CHECK(tier.get("default").error().code() == errc::miss);
    CHECK(tier.stats().expirations == 1);
    CHECK(tier.size() == 1);
    CHECK(*tier.get("forever") == "f");
}

TEST_CASE("disk tier: byte and entry budgets hold by LRU eviction") {
    auto tier = open_memory({.byte_budget = 400});
    const std::string value(50, 'v');  // each frame: 36 + key + 50 bytes
    for (int i = 0; i < 20; ++i) {
        REQUIRE(tier.put("key" + std::to_string(i), value));
        CHECK(tier.bytes() <= 400);
        if (i == 2) REQUIRE(tier.get("key0"));  // key0 becomes recent and survives longer
    }
    CHECK(tier.stats().evictions > 0);
    CHECK(tier.get("key1").error().code() == errc::miss);
    CHECK(*tier.get("key19") == value);

    auto counted = open_memory({.max_entries = 3});
    for (int i = 0; i < 10; ++i) REQUIRE(counted.put("k" + std::to_string(i), "v"));
    CHECK(counted.size() == 3);
    CHECK(counted.stats().evictions == 7);
    CHECK(counted.get("k6").error().code() == errc::miss);
    CHECK(*counted.get("k9") == "v");
}

TEST_CASE("disk tier: an entry larger than the limits is refused, the old value kept") {
    auto tier = open_memory({.byte_budget = 1 << 20, .max_entry_size = 1000});
    REQUIRE(tier.put("k", "small"));
    const auto refused = tier.put("k", std::string(2000, 'x'));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code() == errc::too_large);
    CHECK(refused.error().message().find("max_entry_size") != std::string::npos);
    CHECK(*tier.get("k") == "small");
    CHECK(tier.stats().rejected == 1);
}

TEST_CASE("disk tier: bad configurations are refused naming the setting") {
    struct bad_case {
        tierguard::disk_config cfg;
        std::string mentions;
    };
    const std::vector<bad_case> cases = {
        {{.byte_budget = 0}, "byte_budget"},
        {{.default_ttl = 0s}, "default_ttl"},
        {{.compression_level = 10}, "compression_level"},
        {{.compression_level = -1}, "compression_level"},
        {{.max_entry_size = 10}, "max_entry_size"},
        {{.max_key_size = 0}, "max_key_size"},
        {{.emergency_eviction_fraction = 0.0}, "emergency_eviction_fraction"},
        {{.emergency_eviction_fraction = 1.5}, "emergency_eviction_fraction"},
        {{.quarantine_max_age = -1s}, "quarantine_max_age"},
    };
    for (const auto& c : cases) {
        INFO("expected a complaint about " << c.mentions);
        const auto opened = memory_tier::open(tierguard::storage::memory_storage(), c.cfg);
        REQUIRE_FALSE(opened);
        CHECK(opened.error().code() == errc::invalid_argument);
        CHECK(opened.error().message().find(c.mentions) != std::string::npos);
    }
}

TEST_CASE("disk tier: compressed entries round-trip and shrink") {
    auto plain = open_memory({.compression_level = 0});
    auto packed = open_memory({.compression_level = 6});
    const std::string text(20000, 'a');
    REQUIRE(plain.put("k", text));
    REQUIRE(packed.put("k", text));
    CHECK(*packed.get("k") == text);
    CHECK(packed.bytes() * 10 < plain.bytes());
}

TEST_CASE("disk tier: threads putting and getting compressed entries share the tier's zlib streams safely") {
    tierguard_test::temp_dir dir;
    auto tier = open_posix(dir.path() / "cache", {.compression_level = 6});
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) {
                const std::string key = "k" + std::to_string(i % 8);
                const std::string value(static_cast<std::size_t>(1000 + 100 * t + i), static_cast<char>('a' + t));
                if (!tier.put(key, value)) ++wrong;
                const auto got = tier.get(key);
                // Another thread may have replaced it: any whole value of the right shape will do.
                if (!got || got->empty() || got->find_first_not_of(got->front()) != std::string::npos) ++wrong;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
    CHECK(tier.stats().corrupted == 0);
}

TEST_CASE("disk tier: a full disk triggers an emergency eviction and one retry") {
    auto script = std::make_shared<scripted::script>();
    recording_listener listener;
    auto opened = scripted_tier::open(scripted(tierguard::storage::memory_storage(), script), {},
                                      tierguard::clock::manual(), listener);
    REQUIRE(opened);
    auto& tier = *opened;
    for (int i = 0; i < 20; ++i) REQUIRE(tier.put("k" + std::to_string(i), "value"));
    const auto enospc = tierguard::failure(errc::disk_full, tierguard::tier::disk, "injected ENOSPC",
                                           std::make_error_code(std::errc::no_space_on_device));

    SECTION("the retry succeeds") {
        int writes = 0;
        *script = [&](tierguard_test::storage_op op, std::string_view) -> std::optional<tierguard::failure> {
            if (op == tierguard_test::storage_op::write && writes++ == 0) return enospc;
            return std::nullopt;
        };
        REQUIRE(tier.put("new", "value"));
        CHECK(*tier.get("new") == "value");
        const auto stats = tier.stats();
        CHECK(stats.disk_full_events == 1);
        CHECK(stats.emergency_evictions == 2);  // 10% of 20 entries
        CHECK(tier.size() == 19);
        CHECK(tier.get("k0").error().code() == errc::miss);  // the least recently used went first
        CHECK(listener.count(tierguard::event_kind::emergency_eviction) == 1);
        CHECK(listener.count(tierguard::event_kind::disk_full) == 0);
    }
    SECTION("the retry fails too: disk_full, and the old value stays readable") {
        REQUIRE(tier.put("k19", "old"));
        *script = [&](tierguard_test::storage_op op, std::string_view) -> std::optional<tierguard::failure> {
            if (op == tierguard_test::storage_op::write) return enospc;
            return std::nullopt;
        };
        const auto put = tier.put("k19", "new");
        REQUIRE_FALSE(put);
        CHECK(put.error().code() == errc::disk_full);
        CHECK(put.error().os_error() == std::errc::no_space_on_device);
        CHECK(tier.stats().disk_full_events == 2);  // the write and its retry
        CHECK(listener.count(tierguard::event_kind::disk_full) == 1);
        script->operator=(nullptr);
        CHECK(*tier.get("k19") == "old");
    }
}

TEST_CASE("disk tier: an I/O error on read is returned and counted, the entry kept") {
    auto script = std::make_shared<scripted::script>();
    auto opened = scripted_tier::open(scripted(tierguard::storage::memory_storage(), script));
    REQUIRE(opened);
    REQUIRE(opened->put("k", "v"));
    *script = [](tierguard_test::storage_op op, std::string_view) -> std::optional<tierguard::failure> {
        if (op == tierguard_test::storage_op::read)
            return tierguard::failure(errc::io_error, tierguard::tier::disk, "injected EIO",
                                      std::make_error_code(std::errc::io_error));
        return std::nullopt;
    };
    const auto got = opened->get("k");
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::io_error);
    CHECK(opened->stats().io_errors == 1);
    *script = nullptr;
    CHECK(*opened->get("k") == "v");
}

TEST_CASE("disk tier: scrub cleans each category on a real directory") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    auto tier = open_posix(root, {}, clock);
    for (int i = 0; i < 5; ++i) REQUIRE(tier.put("k" + std::to_string(i), "value" + std::to_string(i)));
    const fs::path k0 = root / *tier.name_for("k0");
    const fs::path k1 = root / *tier.name_for("k1");
    const fs::path k2 = root / *tier.name_for("k2");

    // A leftover temp file, an orphan outside the layout, an entry stored under another
    // key's name, a damaged frame, and a file deleted behind the tier's back.
    { std::ofstream(k0.parent_path() / ".tmp.999.1") << "partial"; }
    fs::create_directories(root / "zz");
    { std::ofstream(root / "zz" / "stray-file") << "not ours"; }
    fs::copy_file(k1, k2, fs::copy_options::overwrite_existing);
    {
        std::fstream f(k0, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(40);
        f.put('X');
    }
    fs::remove(root / *tier.name_for("k3"));

    const auto report = tier.scrub();
    REQUIRE(report);
    CHECK(report->temp_files_removed == 1);
    CHECK(report->orphans_removed == 2);  // the stray file and k2's file holding k1's entry
    CHECK(report->quarantined == 1);
    CHECK(report->index_dropped == 3);  // k0 (quarantined), k2 (orphan), k3 (deleted)
    CHECK(report->entries_checked == 2);
    CHECK(tier.size() == 2);
    CHECK(*tier.get("k1") == "value1");
    CHECK(*tier.get("k4") == "value4");
    CHECK(tier.get("k2").error().code() == errc::miss);

    // The quarantined file is purged once older than 7 days.
    CHECK(tier.storage().quarantined() == 1);
    clock.advance(24h * 7 + 1s);
    const auto later = tier.scrub();
    REQUIRE(later);
    CHECK(later->quarantine_purged == 1);
    CHECK(tier.storage().quarantined() == 0);
}

TEST_CASE("disk tier: a symlink planted where an entry belongs is not followed") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    auto tier = open_posix(root);
    REQUIRE(tier.put("k", "mine"));
    const fs::path entry = root / *tier.name_for("k");
    const fs::path target = tmp.path() / "secret";
    { std::ofstream(target) << "do not read me"; }
    fs::remove(entry);
    fs::create_symlink(target, entry);

    const auto got = tier.get("k");
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::corrupted);
    REQUIRE(tier.put("k", "rewritten"));
    CHECK(*tier.get("k") == "rewritten");
    std::ifstream in(target);
    std::string content;
    std::getline(in, content);
    CHECK(content == "do not read me");
}

TEST_CASE("disk tier: a link or FIFO where the meta file belongs is set aside, and the directory opens") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    const fs::path target = tmp.path() / "secret";
    { std::ofstream(target) << "do not read me"; }
    { REQUIRE(open_posix(root).put("k", "old secret")); }
    const fs::path meta = root / std::string(posix_tier::meta_name);
    fs::remove(meta);
    SECTION("a symbolic link") { fs::create_symlink(target, meta); }
    SECTION("a FIFO") { REQUIRE(::mkfifo(meta.c_str(), 0600) == 0); }

    recording_listener listener;
    auto tier = posix_tier::open(open_dir(root), {}, tierguard::clock::manual(), listener);
    REQUIRE(tier);
    CHECK(listener.count(tierguard::event_kind::corrupted) == 1);
    CHECK(fs::is_regular_file(fs::symlink_status(meta)));  // a fresh secret
    // The entry written under the old secret is an orphan: the open scrubs it away even
    // without scrub_on_open, and counts the damaged meta file.
    CHECK(tier->size() == 0);
    CHECK(tier->stats().corrupted == 1);
    CHECK(tier->stats().quarantined == 1);
    CHECK(tier->open_report().orphans_removed == 1);
    CHECK(tier->get("k").error().code() == errc::miss);  // written under the old one
    REQUIRE(tier->put("k", "new secret"));
    CHECK(*tier->get("k") == "new secret");
    std::ifstream in(target);
    std::string content;
    std::getline(in, content);
    CHECK(content == "do not read me");
}

// A writer killed with SIGKILL mid-write: tests/unit/crash_kill.cpp.

TEST_CASE("disk tier: a file holding another key's entry is a miss, never that key's value") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    std::string k2_name;
    {
        auto tier = open_posix(root);
        REQUIRE(tier.put("k1", "value of k1"));
        REQUIRE(tier.put("k2", "value of k2"));
        k2_name = *tier.name_for("k2");
        fs::copy_file(root / *tier.name_for("k1"), root / k2_name, fs::copy_options::overwrite_existing);
    }
    // Without the scrub at open the index still lists k2's file; the stored key tells.
    auto tier = open_posix(root, {.scrub_on_open = false});
    const auto got = tier.get("k2");
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::miss);
    CHECK(*tier.get("k1") == "value of k1");
}

TEST_CASE("disk tier: an entry file deleted behind the tier's back is a miss and leaves the index") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    auto tier = open_posix(root);
    REQUIRE(tier.put("k", "v"));
    fs::remove(root / *tier.name_for("k"));
    CHECK(tier.contains("k"));  // the index has not looked yet
    const auto got = tier.get("k");
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::miss);
    CHECK_FALSE(tier.contains("k"));
    CHECK(tier.size() == 0);
    CHECK(tier.stats().misses == 1);
}

TEST_CASE("disk tier: erase removes the file; erasing an absent key is not an error") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    auto tier = open_posix(root);
    REQUIRE(tier.put("k", "v"));
    const fs::path file = root / *tier.name_for("k");
    REQUIRE(fs::exists(file));
    CHECK(*tier.erase("k"));
    CHECK_FALSE(fs::exists(file));
    CHECK_FALSE(*tier.erase("k"));
    CHECK(tier.get("k").error().code() == errc::miss);
    REQUIRE(tier.put("a", "1"));
    REQUIRE(tier.put("b", "2"));
    REQUIRE(tier.clear());
    CHECK(tier.size() == 0);
    CHECK(tier.get("a").error().code() == errc::miss);
}

namespace {
struct versioned_record {
    int id;
    double score;
};
}  // namespace

template <>
struct tierguard::value_traits<versioned_record> {
    static constexpr std::uint32_t schema_version = 7;
};

TEST_CASE("disk tier: the schema version comes from value_traits, or from the policy when it sets one") {
    using from_traits = tierguard::disk_tier<std::string, versioned_record, memory_policies>;
    using from_policy = tierguard::disk_tier<std::string, std::string, v2_policies>;
    STATIC_REQUIRE(from_traits::schema_version == 7);
    STATIC_REQUIRE(from_policy::schema_version == 2);
    STATIC_REQUIRE(posix_tier::schema_version == 1);

    auto opened = from_traits::open(tierguard::storage::memory_storage());
    REQUIRE(opened);
    REQUIRE(opened->put("r", versioned_record{42, 0.5}));
    const auto got = opened->get("r");
    REQUIRE(got);
    CHECK(got->id == 42);
    CHECK(got->score == 0.5);
}

TEST_CASE("disk tier: an invalidation notice over a storage that carries none is refused, nothing written") {
    tierguard_test::temp_dir tmp;
    auto tier = open_posix(tmp.path() / "cache");
    STATIC_REQUIRE_FALSE(decltype(tier)::carries_notices);
    const std::array<std::byte, 2> notice{std::byte{1}, std::byte{2}};
    auto put = tier.put("k", "v", std::chrono::seconds(10), {}, std::span<const std::byte>(notice));
    REQUIRE_FALSE(put);
    CHECK(put.error().code() == errc::invalid_argument);
    CHECK(put.error().message().find("disk_tier::put: a notice was given") != std::string::npos);
    CHECK(tier.get("k").error().code() == errc::miss);
    REQUIRE(tier.put("k", "v"));
    auto erased = tier.erase("k", std::span<const std::byte>(notice));
    REQUIRE_FALSE(erased);
    CHECK(erased.error().code() == errc::invalid_argument);
    CHECK(*tier.get("k") == "v");
}

TEST_CASE("disk tier: close() releases the directory lock; the closed tier answers errc::closed (issue 17)") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    auto tier = open_posix(root);
    REQUIRE(tier.put("k", "v"));
    const auto name = tier.name_for("k");
    REQUIRE(name);

    tier.close();
    tier.close();  // idempotent
    auto second = open_posix(root);
    CHECK(*second.get("k") == "v");

    auto closed = [](const auto& r) { return !r && r.error().code() == errc::closed; };
    CHECK(closed(tier.get("k")));
    CHECK(closed(tier.find("k")));
    CHECK(closed(tier.put("k", "w")));
    CHECK(closed(tier.erase("k")));
    CHECK(closed(tier.clear()));
    CHECK(closed(tier.scrub()));
    CHECK_FALSE(tier.contains("k"));
    CHECK_FALSE(tier.indexed("k"));
    CHECK(tier.size() == 0);
    CHECK(tier.name_for("k") == name);
    CHECK(*second.get("k") == "v");  // nothing the closed tier was asked did reach the directory
}

// Issue 15: a clear of thousands of files held the tier's lock throughout, so every get,
// put and stats() of other threads waited seconds (the cache clears its local disk tier
// at every invalidation link up). The first removal here lets another thread call the tier
// and waits for it (a 20 s cap for a deadlock, not a timing).
TEST_CASE("disk tier: clear() removes files without holding the tier's lock; an entry put meanwhile stays") {
    tierguard::clock::manual clock;
    auto faults = std::make_shared<scripted::script>();
    auto opened = scripted_tier::open(scripted(tierguard::storage::memory_storage(), faults), {}, clock);
    REQUIRE(opened);
    scripted_tier& tier = *opened;
    for (int i = 0; i < 100; ++i) REQUIRE(tier.put("k" + std::to_string(i), "old"));
    std::future<bool> others;  // outlives the clear: its destructor would wait for the lock
    bool answered = false;
    std::string again;  // a key put again during the clear: not the one being removed
    *faults = [&](tierguard_test::storage_op op, std::string_view name) -> std::optional<tierguard::failure> {
        if (op != tierguard_test::storage_op::remove || others.valid()) return std::nullopt;
        again = tier.name_for("k7").value() == name ? "k8" : "k7";
        others = std::async(std::launch::async, [&] {
            const bool missed = !tier.get("k5");  // the index was emptied first
            const bool counted = tier.stats().entries == 0;
            const bool put = tier.put(again, "new").has_value();
            return missed && counted && put;
        });
        answered = others.wait_for(20s) == std::future_status::ready;
        return std::nullopt;
    };
    REQUIRE(tier.clear());
    REQUIRE(others.valid());
    CHECK(answered);  // before: the get waited for the whole clear
    CHECK(others.get());
    auto kept = tier.get(again);
    REQUIRE(kept);
    CHECK(*kept == "new");
    CHECK(tier.stats().entries == 1);
    CHECK_FALSE(tier.get("k5"));
}

TEST_CASE("disk tier: the default open removes temp files an interrupted write left, without a scrub") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    fs::path temp;
    {
        auto tier = open_posix(root);
        REQUIRE(tier.put("a", "alpha"));
        temp = (root / *tier.name_for("a")).parent_path() / ".tmp.999.1";
    }
    { std::ofstream(temp) << "partial"; }
    { std::ofstream(root / "README.txt") << "a stray file, not an entry name"; }
    auto tier = open_posix(root);
    CHECK_FALSE(fs::exists(temp));
    CHECK_FALSE(fs::exists(root / "README.txt"));
    CHECK(tier.open_report().temp_files_removed == 1);
    CHECK(tier.open_report().orphans_removed == 1);  // as scrub counts it (before: removed, not counted)
    CHECK(tier.open_report().entries_checked == 0);
    CHECK(tier.size() == 1);
    CHECK(*tier.get("a") == "alpha");
}

TEST_CASE("disk tier: the default open reads no entry file; a damaged one is caught at its read (issue 18)") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    std::string name;
    {
        auto tier = open_posix(root);
        REQUIRE(tier.put("a", "alpha"));
        REQUIRE(tier.put("b", "beta"));
        name = *tier.name_for("a");
    }
    {
        std::fstream f(root / name, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-3, std::ios::end);
        f.put('#');
    }
    recording_listener listener;
    auto tier = open_posix(root, {}, tierguard::clock::manual(), listener);
    CHECK(tier.stats().corrupted == 0);  // names and sizes only: the damage is not seen yet
    CHECK(tier.size() == 2);
    CHECK(tier.get("a").error().code() == errc::corrupted);
    CHECK(tier.stats().corrupted == 1);
    CHECK(tier.stats().quarantined == 1);
    CHECK(*tier.get("b") == "beta");
    auto report = tier.scrub();  // full verification on demand: nothing left to find
    REQUIRE(report);
    CHECK(report->entries_checked == 1);
    CHECK(report->quarantined == 0);
}
