// Issue 14, point 7: a run-time fault of the storage at open (a full disk, an I/O error, an
// unreadable folder) gives a cache that runs degraded and attaches the storage when its
// breaker's probe succeeds; a misconfigured storage still fails open.
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/breaker/none.hpp>
#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace std::chrono_literals;
using tierguard::breaker_state;
using tierguard::errc;
using tierguard::event_kind;
using tierguard::failure;
using tierguard::stored_in;
using tierguard::tier;
using tierguard::storage::fault;
using tierguard::storage::fault_mode;
using tierguard::storage::op;
using tierguard_test::temp_dir;
namespace fs = std::filesystem;

namespace {

struct seen_event {
    event_kind kind;
    std::string detail;
    std::optional<errc> cause;
};

struct recording_listener {
    std::shared_ptr<std::vector<seen_event>> seen = std::make_shared<std::vector<seen_event>>();
    void on_event(const tierguard::event& e) noexcept {
        seen->push_back(
            {e.kind, std::string(e.detail), e.cause != nullptr ? std::optional<errc>(e.cause->code()) : std::nullopt});
    }
    [[nodiscard]] std::size_t count(event_kind k) const {
        return static_cast<std::size_t>(
            std::count_if(seen->begin(), seen->end(), [k](const seen_event& e) { return e.kind == k; }));
    }
};

using faulty_dir = tierguard::storage::fault_injecting<tierguard::storage::posix_directory>;

struct faulty_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = faulty_dir;
    using listener = recording_listener;
};

struct faulty_unbroken_policies : faulty_policies {
    template <class Clock>
    using breaker = tierguard::breaker::none;
};

template <class Policies>
using cache_of = tierguard::cache<std::string, std::string, Policies>;

faulty_dir faulty_on(const fs::path& root, tierguard::clock::manual clock) {
    return faulty_dir(
        tierguard::storage::posix_directory::open({.root = root, .sync = tierguard::durability::none}).value(), {},
        std::move(clock));
}

// Hands the open period of the breaker to the clock: the next call is the half-open probe.
template <class Cache>
void pass_open_period(Cache& c, tierguard::clock::manual& clock) {
    const auto snap = c.breaker().snapshot();
    REQUIRE(snap.state == breaker_state::open);
    clock.advance(snap.until_half_open + 1ns);
    REQUIRE(c.breaker().state() == breaker_state::half_open);
}

}  // namespace

TEST_CASE("is_runtime_fault: faults of the running system vs misconfiguration") {
    using tierguard::is_runtime_fault;
    const auto os = [](int err) { return std::error_code(err, std::generic_category()); };
    CHECK(is_runtime_fault(failure(errc::disk_full, tier::disk, "write", os(ENOSPC))));
    CHECK(is_runtime_fault(failure(errc::io_error, tier::disk, "read", os(EIO))));
    CHECK(is_runtime_fault(failure(errc::timeout, tier::disk)));
    CHECK(is_runtime_fault(failure(errc::corrupted, tier::disk)));
    CHECK(is_runtime_fault(failure(errc::permission_denied, tier::disk, "open", os(EACCES))));
    CHECK(is_runtime_fault(failure(errc::permission_denied, tier::disk, "open", os(EROFS))));
    // tierguard's own safety checks carry no OS refusal: a link, another owner, a shared folder
    CHECK_FALSE(is_runtime_fault(failure(errc::permission_denied, tier::disk, "writable by group or others")));
    CHECK_FALSE(is_runtime_fault(failure(errc::permission_denied, tier::disk, "replaced by a link", os(ELOOP))));
    CHECK_FALSE(is_runtime_fault(failure(errc::locked, tier::disk, "in use", os(EWOULDBLOCK))));
    CHECK_FALSE(is_runtime_fault(failure(errc::invalid_argument, tier::disk)));
    CHECK_FALSE(is_runtime_fault(failure(errc::miss, tier::disk)));
    CHECK_FALSE(is_runtime_fault(failure(errc::version_mismatch, tier::disk)));
}

TEST_CASE("cache::open: a storage failing at open gives a degraded cache that attaches it at the probe") {
    temp_dir dir;
    tierguard::clock::manual clock;
    recording_listener listener;
    auto storage = faulty_on(dir.path() / "cache", clock);
    auto ctl = storage.control();
    ctl.script(op::write, 1, fault::disk_full, fault_mode::from_then_on);  // the hash secret cannot be written
    auto opened = cache_of<faulty_policies>::open({}, std::move(storage), clock, listener);
    INFO((opened ? std::string() : opened.error().message()));
    REQUIRE(opened);
    auto& c = *opened;

    // degraded, and it says so everywhere
    CHECK_FALSE(c.attached());
    CHECK(c.degraded());
    CHECK(c.breaker().state() == breaker_state::open);
    REQUIRE(listener.count(event_kind::storage_unavailable) == 1);
    CHECK(listener.seen->front().kind == event_kind::storage_unavailable);
    CHECK(listener.seen->front().cause == errc::disk_full);
    CHECK(listener.count(event_kind::degraded_entered) == 1);
    const auto health = c.health(true);
    CHECK(health.status == tierguard::health_status::degraded);
    REQUIRE(health.tiers.size() == 2);
    CHECK_FALSE(health.tiers[1].attached);
    CHECK(health.tiers[1].breaker == breaker_state::open);
    REQUIRE(health.tiers[1].last_error);
    CHECK(health.tiers[1].last_error->code() == errc::disk_full);
    CHECK(health.tiers[1].last_error->context().find("tierguard-meta") != std::string::npos);
    const auto mt = c.metrics();
    CHECK(mt.degraded);
    REQUIRE(mt.storage.size() == 1);
    CHECK_FALSE(mt.storage.front().attached);
    CHECK(mt.storage.front().errors_of(errc::disk_full) == 1);
    CHECK(mt.storage.front().disk_full == 1);  // where the full-disk alert looks (docs/METRICS.md)
    const std::string text = c.to_prometheus();
    CHECK(text.find("tierguard_storage_attached{tier=\"disk\"} 0") != std::string::npos);
    CHECK(text.find("tierguard_degraded 1") != std::string::npos);

    // serves from memory; no storage call while the breaker is open
    const auto calls = ctl.counters().calls();
    auto put = c.put("k", "v1");
    REQUIRE(put);
    CHECK(put->where == stored_in::memory);
    CHECK(c.get("k").value().value == "v1");
    CHECK_FALSE(c.contains("never"));
    CHECK(ctl.counters().calls() == calls);

    // a probe that meets the fault again: still detached, the breaker open again
    pass_open_period(c, clock);
    CHECK(c.put("k", "v2").value().where == stored_in::memory);
    CHECK_FALSE(c.attached());
    CHECK(c.breaker().state() == breaker_state::open);
    CHECK(listener.count(event_kind::storage_unavailable) == 2);
    CHECK(c.metrics().storage.front().errors_of(errc::disk_full) == 2);
    CHECK(c.metrics().storage.front().disk_full == 2);

    // the disk has room again: the probe opens the tier, and puts reach the disk
    ctl.heal();
    pass_open_period(c, clock);
    auto probe = c.put("k", "v3");
    REQUIRE(probe);
    CHECK(probe->where == stored_in::memory_and_storage);
    CHECK(c.attached());
    CHECK(listener.count(event_kind::storage_attached) == 1);
    for (int i = 0; i < 5 && c.breaker().state() != breaker_state::closed; ++i)
        CHECK(c.put("p" + std::to_string(i), "x").value().where == stored_in::memory_and_storage);
    CHECK(c.breaker().state() == breaker_state::closed);
    CHECK_FALSE(c.degraded());
    CHECK(listener.count(event_kind::degraded_left) == 1);
    CHECK(c.health().status == tierguard::health_status::healthy);
    CHECK(c.metrics().storage.front().attached);
    CHECK(c.to_prometheus().find("tierguard_storage_attached{tier=\"disk\"} 1") != std::string::npos);
    CHECK(c.disk().get("k").value() == "v3");
    CHECK(c.put("later", "disk").value().where == stored_in::memory_and_storage);
    CHECK(c.disk().get("later").value() == "disk");
}

TEST_CASE("cache::open degraded: a write while detached supersedes the storage's older copy") {
    temp_dir dir;
    tierguard::clock::manual clock;
    {
        auto c = cache_of<faulty_policies>::open({}, faulty_on(dir.path() / "cache", clock), clock).value();
        REQUIRE(c.put("k", "old").value().where == stored_in::memory_and_storage);
        REQUIRE(c.put("gone", "old").value().where == stored_in::memory_and_storage);
    }
    auto storage = faulty_on(dir.path() / "cache", clock);
    auto ctl = storage.control();
    ctl.script(op::list, 1, fault::io_error, fault_mode::from_then_on);  // the scrub at open fails
    recording_listener listener;
    auto c = cache_of<faulty_policies>::open({}, std::move(storage), clock, listener).value();
    REQUIRE_FALSE(c.attached());
    CHECK(listener.seen->front().cause == errc::io_error);
    CHECK(c.put("k", "new").value().where == stored_in::memory);
    CHECK(c.erase("gone"));  // memory never held it, and the storage is not asked
    CHECK(c.metrics().pending_erasures == 2);

    ctl.heal();
    pass_open_period(c, clock);
    c.memory().clear();  // what memory held is gone: only the storage could answer now
    CHECK(c.get("k").error().code() == errc::miss);
    CHECK(c.attached());
    CHECK(c.get("gone").error().code() == errc::miss);
    for (int i = 0; i < 5 && c.breaker().state() != breaker_state::closed; ++i)
        (void)c.put("p" + std::to_string(i), "x");
    REQUIRE(c.breaker().state() == breaker_state::closed);
    CHECK(c.metrics().pending_erasures == 0);
    CHECK(c.disk().get("k").error().code() == errc::miss);
    CHECK(c.disk().get("gone").error().code() == errc::miss);
}

TEST_CASE("cache::open degraded: under a breaker that never opens, every call tries to attach") {
    temp_dir dir;
    tierguard::clock::manual clock;
    recording_listener listener;
    auto storage = faulty_on(dir.path() / "cache", clock);
    auto ctl = storage.control();
    ctl.script(op::write, 1, fault::io_error, fault_mode::from_then_on);
    auto c = cache_of<faulty_unbroken_policies>::open({}, std::move(storage), clock, listener).value();
    CHECK_FALSE(c.attached());
    CHECK(c.degraded());
    CHECK(c.health().status == tierguard::health_status::degraded);
    CHECK(c.put("k", "v").value().where == stored_in::memory);
    CHECK(listener.count(event_kind::storage_unavailable) == 2);
    ctl.heal();
    CHECK(c.put("k", "w").value().where == stored_in::memory_and_storage);
    CHECK(c.attached());
    CHECK_FALSE(c.degraded());
    CHECK(listener.count(event_kind::degraded_left) == 1);
}

TEST_CASE("cache::open degraded: threads racing through the probe attach the tier once") {
    temp_dir dir;
    tierguard::clock::manual clock;
    recording_listener listener;
    auto storage = faulty_on(dir.path() / "cache", clock);
    auto ctl = storage.control();
    ctl.script(op::list, 1, fault::io_error, fault_mode::from_then_on);
    auto c = cache_of<faulty_policies>::open({}, std::move(storage), clock, listener).value();
    REQUIRE_FALSE(c.attached());
    ctl.heal();
    pass_open_period(c, clock);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&c, t] {
            for (int i = 0; i < 200; ++i) {
                const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i % 20);
                (void)c.put(key, key + "=" + std::to_string(i));
                (void)c.get("other-" + std::to_string(i));
                (void)c.contains(key);
                (void)c.metrics();
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(c.attached());
    CHECK(listener.count(event_kind::storage_attached) == 1);
    for (int i = 0; i < 5 && c.breaker().state() != breaker_state::closed; ++i) (void)c.put("p", "x");
    CHECK(c.breaker().state() == breaker_state::closed);
    for (int t = 0; t < 4; ++t) {
        for (int k = 0; k < 20; ++k) {
            const std::string key = "t" + std::to_string(t) + "-" + std::to_string(k);
            const auto got = c.get(key);
            INFO(key);
            REQUIRE(got);
            CHECK(got->value == key + "=" + std::to_string(180 + k));  // the last put of the key
        }
    }
}

TEST_CASE("cache::open: a misconfigured storage still fails open with its message") {
    temp_dir dir;
    using dir_cache = tierguard::cache<std::string, std::string>;
    const fs::path root = dir.path() / "cache";
    dir_cache::config cfg;
    cfg.storage = {.root = root, .sync = tierguard::durability::none};

    SECTION("another process holds the directory") {
        auto first = dir_cache::open(cfg).value();
        const int code = tierguard_test::in_child([&] {
            auto second = dir_cache::open(cfg);
            return second ? 0 : static_cast<int>(second.error().code());
        });
        CHECK(code == static_cast<int>(errc::locked));
    }
    SECTION("a folder writable by others") {
        fs::create_directories(root);
        ::chmod(root.c_str(), 0777);
        auto opened = dir_cache::open(cfg);
        REQUIRE_FALSE(opened);
        CHECK(opened.error().code() == errc::permission_denied);
        CHECK(opened.error().context().find("writable by group or others") != std::string::npos);
    }
    SECTION("a symbolic link") {
        fs::create_directories(dir.path() / "target");
        fs::create_directory_symlink(dir.path() / "target", root);
        auto opened = dir_cache::open(cfg);
        REQUIRE_FALSE(opened);
        CHECK(opened.error().code() == errc::permission_denied);
        CHECK(opened.error().context().find("symbolic link") != std::string::npos);
    }
    SECTION("owned by someone else") {
        fs::create_directories(root);
        if (::geteuid() != 0) {
            WARN("skipped: not root, so a folder owned by another user cannot be made");
            return;
        }
        REQUIRE(::chown(root.c_str(), 12345, 12345) == 0);
        auto opened = dir_cache::open(cfg);
        REQUIRE_FALSE(opened);
        CHECK(opened.error().code() == errc::permission_denied);
        CHECK(opened.error().context().find("owned by uid 12345") != std::string::npos);
    }
    SECTION("a bad config value") {
        cfg.storage.max_blob_size = 0;
        auto opened = dir_cache::open(cfg);
        REQUIRE_FALSE(opened);
        CHECK(opened.error().code() == errc::invalid_argument);
    }
}

namespace {

struct dir_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using listener = recording_listener;
};
struct log_policies : dir_policies {
    using storage = tierguard::storage::segment_log;
};

template <class Policies>
typename cache_of<Policies>::config config_on(const fs::path& root) {
    typename cache_of<Policies>::config cfg;
    if constexpr (std::is_same_v<typename Policies::storage, tierguard::storage::segment_log>) {
        cfg.storage = {.root = root,
                       .sync = tierguard::durability::none,
                       .segment_size = 16 << 10,
                       .byte_budget = 1 << 20,
                       .write_buffer = 0};
    } else {
        cfg.storage = {.root = root, .sync = tierguard::durability::none};
    }
    return cfg;
}

// Fills the file system under `dir` until a write fails with ENOSPC; true if it did.
bool fill(const fs::path& file) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const std::vector<char> block(4096, 'f');
    bool full = false;
    for (int i = 0; i < 1 << 16 && !full; ++i) full = ::write(fd, block.data(), block.size()) < 0 && errno == ENOSPC;
    for (int i = 0; i < 4096 && full; ++i)  // and the last partial page
        if (::write(fd, block.data(), 1) < 0) break;
    ::close(fd);
    return full;
}

// Child exit codes of the real-file-system cases.
enum outcome : int {
    ok = 0,
    unavailable = 3,     // namespaces, the mount or the unprivileged user refused: skip
    not_full = 10,       // the file system never filled
    open_failed = 11,    // cache::open failed
    not_degraded = 12,   // opened but attached, or not degraded
    memory_failed = 13,  // puts or gets from memory misbehaved while degraded
    not_attached = 14,   // the probe did not attach the storage
    not_on_disk = 15,    // after the attach a put did not reach the disk
    no_events = 16,      // the storage_unavailable / storage_attached events are missing
    wrong_code = 17,     // the failure at open is not the expected one
    lost = 18,           // an entry stored before the fault is gone after the attach
};

template <class Policies>
int degraded_then_attached(const typename cache_of<Policies>::config& cfg, errc expected, auto&& make_room,
                           const std::string& kept = {}) {
    tierguard::clock::manual clock;
    recording_listener listener;
    auto opened = cache_of<Policies>::open(cfg, clock, listener);
    if (!opened) return open_failed;
    auto& c = *opened;
    if (c.attached() || !c.degraded() || c.breaker().state() != breaker_state::open) return not_degraded;
    if (listener.count(event_kind::storage_unavailable) != 1) return no_events;
    if (listener.seen->front().cause != expected) return wrong_code;
    for (int i = 0; i < 50; ++i) {
        auto put = c.put("k" + std::to_string(i), std::string(100, 'a'));
        if (!put || put->where != stored_in::memory) return memory_failed;
    }
    for (int i = 0; i < 50; ++i) {
        auto got = c.get("k" + std::to_string(i));
        if (!got || got->value != std::string(100, 'a') || got->from != tier::memory) return memory_failed;
    }
    make_room();
    clock.advance(c.breaker().snapshot().until_half_open + 1ns);
    for (int i = 0; i < 5 && c.breaker().state() != breaker_state::closed; ++i)
        (void)c.put("p" + std::to_string(i), "x");
    if (!c.attached() || c.degraded()) return not_attached;
    if (listener.count(event_kind::storage_attached) != 1) return no_events;
    auto later = c.put("later", "on disk");
    if (!later || later->where != stored_in::memory_and_storage) return not_on_disk;
    auto back = c.disk().get("later");
    if (!back || *back != "on disk") return not_on_disk;
    if (!kept.empty() && c.get(kept).value_or(tierguard::hit<std::string>{}).value != "from before") return lost;
    return ok;
}

template <class Policies>
void full_tmpfs_case(const char* name) {
    INFO(name);
    temp_dir dir;
    const fs::path mount_point = dir.path() / "fs";
    fs::create_directories(mount_point);
    const int code = tierguard_test::in_child([&]() -> int {
        if (!tierguard_test::mount_private_tmpfs(mount_point.c_str(), "size=256k,mode=0700")) return unavailable;
        const fs::path filler = mount_point / "filler";
        if (!fill(filler)) return not_full;
        return degraded_then_attached<Policies>(config_on<Policies>(mount_point / "cache"), errc::disk_full,
                                                [&] { fs::remove(filler); });
    });
    INFO("child exit code " << code);
    if (code == unavailable) {
        WARN("skipped: namespaces or a tmpfs mount unavailable (unshare or mount refused)");
        return;
    }
    CHECK(code == ok);
}

template <class Policies>
void unreadable_folder_case(const char* name) {
    INFO(name);
    temp_dir dir;
    const fs::path root = dir.path() / "cache";
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    if (uid == 0) {
        const passwd* pw = ::getpwnam("nobody");
        if (pw == nullptr || pw->pw_uid == 0) {
            WARN("skipped: running as root with no unprivileged user \"nobody\" (permission bits do not bind root)");
            return;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        REQUIRE(::chown(dir.path().c_str(), uid, gid) == 0);
    }
    const int code = tierguard_test::in_child([&]() -> int {
        if (::geteuid() != uid &&
            (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0 || ::setuid(0) == 0))
            return unavailable;
        {
            auto first = cache_of<Policies>::open(config_on<Policies>(root));
            if (!first || !first->put("kept", "from before")) return open_failed;
        }
        if (::chmod(root.c_str(), 0) != 0) return unavailable;
        return degraded_then_attached<Policies>(
            config_on<Policies>(root), errc::permission_denied, [&] { ::chmod(root.c_str(), 0700); }, "kept");
    });
    INFO("child exit code " << code);
    if (code == unavailable) {
        WARN("skipped: could not drop privileges to an unprivileged user");
        return;
    }
    CHECK(code == ok);
}

}  // namespace

TEST_CASE("cache::open on a real full tmpfs: degraded, then the disk attaches once there is room") {
    full_tmpfs_case<dir_policies>("posix_directory");
    full_tmpfs_case<log_policies>("segment_log");
}

TEST_CASE("cache::open on an unreadable folder (EACCES): degraded, then attached once it is readable") {
    unreadable_folder_case<dir_policies>("posix_directory");
    unreadable_folder_case<log_policies>("segment_log");
}
