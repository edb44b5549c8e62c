// The seeds' own procedures run against the composed cache on a real posix_directory:
// seed 000's circuit-breaker test (chmod 000 on the cache directory) and corrupted-file
// test, seed 003's cache versioning, and reopening a directory.

#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/serializer/codec.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using tierguard::breaker_state;
using tierguard::errc;
using tierguard::stored_in;
using tierguard::tier;

// Catch2 3.3+ reports a skipped test; Catch2 2.13 has no SKIP, so the test warns and
// returns (and passes).
#if defined(SKIP)
#define SEEDS_SKIP(message) SKIP(message)
#else
#define SEEDS_SKIP(message) \
    do {                    \
        WARN(message);      \
        return;             \
    } while (false)
#endif

namespace {

// ---------------------------------------------------------------------------------------
// Running a procedure in a forked child. Catch's assertions do not work there: a failed
// CHILD_CHECK writes its text down a pipe and the child exits 1; the parent REQUIREs
// exit 0 and prints the text.

constexpr int child_skipped = 77;  // the child could not run the procedure as asked

class child_check {
public:
    explicit child_check(int fd) noexcept : m_fd(fd) {}

    [[noreturn]] void fail(int line, const char* expression, const std::string& detail) const {
        std::string text = "cache_seeds.cpp:" + std::to_string(line) + ": CHILD_CHECK(" + expression + ") failed";
        if (!detail.empty()) text += "; " + detail;
        exit_with(1, text);
    }

    [[noreturn]] void exit_with(int code, const std::string& text) const {
        for (std::size_t done = 0; done < text.size();) {
            const ssize_t n = ::write(m_fd, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        ::_exit(code);
    }

private:
    int m_fd;
};

// `detail` is evaluated only when the check fails (it may read a result's error).
#define CHILD_CHECK_MSG(cond, detail)                       \
    do {                                                    \
        if (!(cond)) check.fail(__LINE__, #cond, (detail)); \
    } while (false)
#define CHILD_CHECK(cond) CHILD_CHECK_MSG(cond, std::string())

// Who the child runs as: itself, or `uid`/`gid` after dropping root's privileges.
struct run_as {
    bool drop = false;
    uid_t uid = 0;
    gid_t gid = 0;
};

struct child_outcome {
    int code = -1;     // the exit status, or 128 + the signal that ended the child
    std::string text;  // what the child wrote: the failed check, or why it skipped
};

// Forks; the child drops to `as` (if given), runs body(check) and exits 0, or exits 1
// at the first failed check. Killed by SIGALRM after two minutes.
template <class Body>
child_outcome run_in_child(const run_as& as, Body body) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        const child_check check(fds[1]);
        ::alarm(120);
        if (as.drop) {
            if (::setgroups(0, nullptr) != 0 || ::setgid(as.gid) != 0 || ::setuid(as.uid) != 0)
                check.exit_with(child_skipped, "could not drop privileges to uid " + std::to_string(as.uid) + ": " +
                                                   std::strerror(errno));
            if (::geteuid() != as.uid || ::getegid() != as.gid || ::setuid(0) == 0)
                check.exit_with(child_skipped, "privileges were not dropped to uid " + std::to_string(as.uid));
        }
        try {
            body(check);
        } catch (const std::exception& e) {
            check.exit_with(1, std::string("the procedure threw: ") + e.what());
        } catch (...) {
            check.exit_with(1, "the procedure threw something not derived from std::exception");
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    child_outcome outcome;
    char buffer[512];
    for (;;) {
        const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        outcome.text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status)) {
        outcome.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        outcome.code = 128 + WTERMSIG(status);
        outcome.text += " (the child was killed by signal " + std::to_string(WTERMSIG(status)) +
                        (WTERMSIG(status) == SIGALRM ? ": it timed out)" : ")");
    }
    return outcome;
}

// As root, permission bits do not bind: the child drops to "nobody", after `home` is
// given to it. Not root: the child runs as we are. False, with `why`, if it cannot drop.
bool plan_unprivileged(const fs::path& home, run_as& plan, std::string& why) {
    plan = run_as{};
    if (::geteuid() != 0) return true;
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr || pw->pw_uid == 0) {
        why =
            "running as root, and there is no unprivileged user \"nobody\" to drop to (permission bits do not "
            "bind root)";
        return false;
    }
    plan = run_as{true, pw->pw_uid, pw->pw_gid};
    if (::chown(home.c_str(), plan.uid, plan.gid) != 0) {
        why = "could not chown " + home.string() + " to nobody: " + std::strerror(errno);
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------
// Caches on a real directory with a manual clock.

struct seed_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
};
using seed_cache = tierguard::cache<std::string, std::string, seed_policies>;

seed_cache::config config_on(const fs::path& root) {
    seed_cache::config cfg;
    cfg.storage = {.root = root, .sync = tierguard::durability::none};
    return cfg;
}

template <class Cache>
Cache open_cache(const typename Cache::config& cfg, tierguard::clock::manual clock) {
    auto opened = Cache::open(cfg, clock);
    INFO((opened ? std::string() : opened.error().message()));
    REQUIRE(opened);
    return std::move(*opened);
}

std::vector<std::string> files_in(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        out.push_back(it->path().filename().string());
    return out;
}

std::string flat(std::string name) {
    for (char& c : name)
        if (c == '/') c = '_';
    return name;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// (a) Seed 000, "Circuit Breaker Testing": chmod 000 the cache directory, make requests
// until the breaker opens, check the memory tier keeps serving, restore the permissions,
// wait out the recovery time, and see the disk come back.

namespace {

void seed000_breaker_procedure(const fs::path& root, const child_check& check) {
    tierguard::clock::manual clock;
    seed_cache::config cfg = config_on(root);
    // Seed 000's DefensiveIntelligentCache: failure_threshold=3, recovery_time=30, test_requests=2.
    cfg.breaker = {.failure_threshold = 3, .recovery_time = 30s, .test_requests = 2};
    auto opened = seed_cache::open(cfg, clock);
    CHILD_CHECK_MSG(opened, opened.error().message());
    seed_cache& cache = *opened;

    // Keys on disk but not in memory, and one key in both.
    const std::vector<std::string> warm = {"warm-0", "warm-1", "warm-2", "warm-3", "warm-4"};
    for (const auto& key : warm) {
        auto stored = cache.put(key, "value of " + key);
        CHILD_CHECK_MSG(stored, stored.error().message());
        CHILD_CHECK(stored->where == stored_in::memory_and_storage);
    }
    cache.memory().clear();
    auto hot = cache.put("hot", "in memory");
    CHILD_CHECK(hot && hot->where == stored_in::memory_and_storage);

    // chmod 000 ai-assistant/backend/cache/warm/
    CHILD_CHECK(::chmod(root.c_str(), 0) == 0);
    {
        const int probe = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (probe >= 0) {
            ::close(probe);
            ::chmod(root.c_str(), 0700);
            check.exit_with(child_skipped, "permission bits do not bind uid " + std::to_string(::geteuid()) +
                                               " (it can open a directory chmod 000)");
        }
    }

    // Requests until the breaker opens: gets of keys on disk, and puts.
    std::uint32_t failed_calls = 0;
    for (int i = 0; i < 20 && cache.breaker().state() == breaker_state::closed; ++i) {
        if (i % 2 == 0) {
            auto got = cache.get(warm[static_cast<std::size_t>(i / 2) % warm.size()]);
            CHILD_CHECK_MSG(!got, "got " + got->value);
            CHILD_CHECK_MSG(got.error().code() == errc::permission_denied, got.error().message());
            CHILD_CHECK(got.error().where() == tier::disk);
        } else {
            auto stored = cache.put("outage-" + std::to_string(i), "o" + std::to_string(i));
            CHILD_CHECK_MSG(stored, stored.error().message());
            CHILD_CHECK(stored->where == stored_in::memory);
            CHILD_CHECK(stored->skipped && stored->skipped->code() == errc::permission_denied);
        }
        ++failed_calls;
    }
    CHILD_CHECK(cache.breaker().state() == breaker_state::open);
    CHILD_CHECK_MSG(failed_calls == cfg.breaker.failure_threshold, "failed calls: " + std::to_string(failed_calls));
    CHILD_CHECK(cache.degraded());

    // The memory tier keeps serving: a key put before the outage, and one put during it.
    auto before = cache.get("hot");
    CHILD_CHECK_MSG(before, before.error().message());
    CHILD_CHECK(before->value == "in memory" && before->from == tier::memory);
    auto during = cache.put("during", "put while the disk was down");
    CHILD_CHECK_MSG(during, during.error().message());
    CHILD_CHECK(during->where == stored_in::memory);
    CHILD_CHECK(during->skipped && during->skipped->code() == errc::circuit_open);
    auto during_hit = cache.get("during");
    CHILD_CHECK_MSG(during_hit, during_hit.error().message());
    CHILD_CHECK(during_hit->value == "put while the disk was down" && during_hit->from == tier::memory);
    auto tripping_put = cache.get("outage-1");
    CHILD_CHECK_MSG(tripping_put, tripping_put.error().message());
    CHILD_CHECK(tripping_put->value == "o1" && tripping_put->from == tier::memory);
    // A key only on disk is a miss caused by the breaker, not a disk call.
    auto rejected = cache.get("warm-3");
    CHILD_CHECK(!rejected && rejected.error().code() == errc::circuit_open);
    CHILD_CHECK(cache.health().status == tierguard::health_status::degraded);
    {
        const auto mt = cache.metrics();
        CHILD_CHECK(mt.storage.size() == 1 && mt.storage.front().breaker == breaker_state::open);
        CHILD_CHECK(mt.storage.front().breaker_opens == 1);
        CHILD_CHECK(mt.storage.front().errors_of(errc::permission_denied) == cfg.breaker.failure_threshold);
        CHILD_CHECK(mt.degraded && mt.degraded_entered == 1);
    }

    // chmod 755 ...; the breaker stays open until the recovery time has passed.
    CHILD_CHECK(::chmod(root.c_str(), 0700) == 0);
    CHILD_CHECK(cache.breaker().state() == breaker_state::open);
    auto still_open = cache.get("warm-3");
    CHILD_CHECK(!still_open && still_open.error().code() == errc::circuit_open);

    // sleep 35: past the recovery time, the breaker goes half-open.
    clock.advance(cfg.breaker.recovery_time + 5s);
    CHILD_CHECK(cache.breaker().state() == breaker_state::half_open);

    // test_requests probes, each a disk hit, close it.
    for (std::uint32_t probe = 0; probe < cfg.breaker.test_requests; ++probe) {
        CHILD_CHECK(cache.breaker().state() == breaker_state::half_open);
        const std::string& key = warm[probe];
        auto got = cache.get(key);
        CHILD_CHECK_MSG(got, key + ": " + got.error().message());
        CHILD_CHECK(got->value == "value of " + key);
        CHILD_CHECK(got->from == tier::disk);
    }
    CHILD_CHECK(cache.breaker().state() == breaker_state::closed);
    CHILD_CHECK(!cache.degraded());
    CHILD_CHECK(cache.health(true).status == tierguard::health_status::healthy);

    // Disk hits are back.
    cache.memory().clear();
    for (const auto& key : warm) {
        auto got = cache.get(key);
        CHILD_CHECK_MSG(got, key + ": " + got.error().message());
        CHILD_CHECK(got->value == "value of " + key);
        CHILD_CHECK(got->from == tier::disk);
    }
    // What was written during the outage lived in memory only; the disk never serves an
    // older copy of it (there was none, and the pending erasures were flushed).
    auto after = cache.get("during");
    CHILD_CHECK(!after && after.error().is_miss());
    auto stored = cache.put("after", "a");
    CHILD_CHECK(stored && stored->where == stored_in::memory_and_storage);
    const auto mt = cache.metrics();
    CHILD_CHECK(mt.storage.front().breaker == breaker_state::closed);
    CHILD_CHECK(mt.pending_erasures == 0);
    CHILD_CHECK(mt.degraded_entered == 1);
    CHILD_CHECK(mt.degraded_time >= cfg.breaker.recovery_time);
}

}  // namespace

TEST_CASE("cache seeds: seed 000's circuit-breaker test on a real directory made unreadable (chmod 000)") {
    tierguard_test::temp_dir tmp;
    run_as as;
    std::string why;
    if (!plan_unprivileged(tmp.path(), as, why)) SEEDS_SKIP("skipped: " << why);
    const fs::path root = tmp.path() / "cache";
    const child_outcome outcome =
        run_in_child(as, [&](const child_check& check) { seed000_breaker_procedure(root, check); });
    if (outcome.code == child_skipped) SEEDS_SKIP("skipped: " << outcome.text);
    INFO("child (uid " << (as.drop ? as.uid : ::geteuid()) << ") exited " << outcome.code << ": " << outcome.text);
    REQUIRE(outcome.code == 0);
}

// ---------------------------------------------------------------------------------------
// Regression tests: a lookup the disk tier answers from its index (a key it never
// stored) touches no storage, so it must not reach the breaker. Otherwise:
//  - half-open, test_requests lookups of absent keys would close the breaker while the
//    directory is still unreadable (probes that probed nothing);
//  - closed, absent-key lookups between failing reads would end the failure run, so a
//    dead directory under a mixed workload would never open the breaker.
// Seed 000 checks `key in warm_index` before it consults its breaker.

namespace {

seed_cache open_with_warm_keys(const fs::path& root, tierguard::clock::manual clock, const child_check& check) {
    seed_cache::config cfg = config_on(root);
    cfg.breaker = {.failure_threshold = 3, .recovery_time = 30s, .test_requests = 2};
    auto opened = seed_cache::open(cfg, clock);
    CHILD_CHECK_MSG(opened, opened.error().message());
    for (int i = 0; i < 5; ++i) CHILD_CHECK(opened->put("warm-" + std::to_string(i), "w"));
    opened->memory().clear();
    CHILD_CHECK(::chmod(root.c_str(), 0) == 0);
    const int probe = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (probe >= 0) {
        ::close(probe);
        ::chmod(root.c_str(), 0700);
        check.exit_with(child_skipped, "permission bits do not bind uid " + std::to_string(::geteuid()));
    }
    return std::move(*opened);
}

template <class Procedure>
void run_unprivileged(Procedure procedure) {
    tierguard_test::temp_dir tmp;
    run_as as;
    std::string why;
    if (!plan_unprivileged(tmp.path(), as, why)) SEEDS_SKIP("skipped: " << why);
    const fs::path root = tmp.path() / "cache";
    const child_outcome outcome = run_in_child(as, [&](const child_check& check) { procedure(root, check); });
    if (outcome.code == child_skipped) SEEDS_SKIP("skipped: " << outcome.text);
    INFO("child (uid " << (as.drop ? as.uid : ::geteuid()) << ") exited " << outcome.code << ": " << outcome.text);
    REQUIRE(outcome.code == 0);
}

}  // namespace

TEST_CASE("cache seeds: half-open, lookups of absent keys close the breaker of an unreadable directory",
          "[regression]") {
    run_unprivileged([](const fs::path& root, const child_check& check) {
        tierguard::clock::manual clock;
        seed_cache cache = open_with_warm_keys(root, clock, check);
        for (int i = 0; i < 3; ++i) CHILD_CHECK(!cache.get("warm-" + std::to_string(i)));
        CHILD_CHECK(cache.breaker().state() == breaker_state::open);
        clock.advance(35s);
        CHILD_CHECK(cache.breaker().state() == breaker_state::half_open);
        // The directory is still chmod 000. Two gets of keys the cache never stored:
        for (const char* absent : {"never-stored-1", "never-stored-2"}) {
            auto got = cache.get(absent);
            CHILD_CHECK(!got);
        }
        CHILD_CHECK_MSG(cache.breaker().state() != breaker_state::closed,
                        "the breaker closed on two probes that never touched the unreadable directory");
    });
}

TEST_CASE("cache seeds: closed, lookups of absent keys keep an unreadable directory from opening the breaker",
          "[regression]") {
    run_unprivileged([](const fs::path& root, const child_check& check) {
        tierguard::clock::manual clock;
        seed_cache cache = open_with_warm_keys(root, clock, check);
        int failed_reads = 0;
        for (int i = 0; i < 10 && cache.breaker().state() == breaker_state::closed; ++i) {
            auto warm = cache.get("warm-" + std::to_string(i % 5));
            CHILD_CHECK(!warm);
            if (warm.error().code() == errc::permission_denied) ++failed_reads;
            (void)cache.get("cold-" + std::to_string(i));  // a plain miss: the key was never stored
        }
        CHILD_CHECK_MSG(cache.breaker().state() == breaker_state::open,
                        std::to_string(failed_reads) +
                            " failed reads of the unreadable directory (failure_threshold 3) left the breaker closed");
    });
}

// ---------------------------------------------------------------------------------------
// (b) Seed 003, "No Cache Versioning": after a schema change, entries of the old format
// must become misses, be removed, be counted, and never be decoded as the new format.

namespace {

struct v2_policies : seed_policies {
    static constexpr std::uint32_t schema_version = 2;
};
using v2_cache = tierguard::cache<std::string, std::string, v2_policies>;
static_assert(seed_cache::disk_type::schema_version == 1);
static_assert(v2_cache::disk_type::schema_version == 2);

constexpr int old_entries = 8;  // more than the breaker's failure_threshold (5)

void write_old_entries(const fs::path& root, tierguard::clock::manual clock) {
    auto v1 = open_cache<seed_cache>(config_on(root), clock);
    for (int i = 0; i < old_entries; ++i) {
        const std::string key = "user:" + std::to_string(i);
        auto stored = v1.put(key, "v1 format of " + key);
        REQUIRE(stored);
        REQUIRE(stored->where == stored_in::memory_and_storage);
    }
    REQUIRE(v1.disk().size() == static_cast<std::size_t>(old_entries));
}

}  // namespace

TEST_CASE("cache seeds: seed 003, a bumped Policies::schema_version turns the old entries into removed misses") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    write_old_entries(root, clock);

    SECTION("without scrub at open, the get path meets them one by one") {
        auto cfg = v2_cache::config();
        cfg.storage = {.root = root, .sync = tierguard::durability::none};
        cfg.disk.scrub_on_open = false;
        auto v2 = open_cache<v2_cache>(cfg, clock);
        CHECK(v2.disk().stats().version_mismatches == 0);
        for (int i = 0; i < old_entries; ++i) {
            const std::string key = "user:" + std::to_string(i);
            INFO(key);
            const auto name = v2.disk().name_for(key);
            REQUIRE(name);
            const fs::path file = root / *name;
            CHECK(fs::exists(file));  // not touched until met

            auto got = v2.get(key);
            REQUIRE_FALSE(got);
            CHECK(got.error().is_miss());  // as after a scrub (issue 17); counted below
            CHECK_THAT(got.error().context(), Catch::Matchers::Contains("version_mismatch"));
            CHECK(got.error().where() == tier::disk);
            CHECK_FALSE(fs::exists(file));  // removed as it was met
            CHECK(v2.metrics().storage.front().version_mismatches == static_cast<std::uint64_t>(i + 1));
            CHECK(v2.disk().stats().version_mismatches == static_cast<std::uint64_t>(i + 1));

            auto again = v2.get(key);
            REQUIRE_FALSE(again);
            CHECK(again.error().is_miss());
        }
        // Not a storage fault: the breaker stays closed and nothing is quarantined.
        CHECK(v2.breaker().state() == breaker_state::closed);
        CHECK_FALSE(v2.degraded());
        const auto mt = v2.metrics();
        CHECK(mt.storage.front().version_mismatches == static_cast<std::uint64_t>(old_entries));
        CHECK(mt.storage.front().quarantined == 0);
        CHECK(mt.storage.front().corrupted == 0);
        CHECK(mt.storage.front().hits == 0);
        CHECK(mt.storage.front().errors_of(errc::version_mismatch) == 0);  // a miss, not an error
        CHECK(v2.disk().size() == 0);
        CHECK(v2.disk().storage().quarantined() == 0);
    }

    SECTION("with the scrub at open (scrub_on_open on; off by default since issue 18), open removes and counts them") {
        auto cfg = v2_cache::config();
        cfg.storage = {.root = root, .sync = tierguard::durability::none};
        cfg.disk.scrub_on_open = true;
        auto v2 = open_cache<v2_cache>(cfg, clock);
        const auto ds = v2.disk().stats();
        CHECK(ds.version_mismatches == static_cast<std::uint64_t>(old_entries));
        CHECK(ds.entries == 0);
        CHECK(ds.quarantined == 0);
        CHECK(v2.metrics().storage.front().version_mismatches == static_cast<std::uint64_t>(old_entries));
        for (int i = 0; i < old_entries; ++i) {
            const std::string key = "user:" + std::to_string(i);
            INFO(key);
            CHECK_FALSE(fs::exists(root / *v2.disk().name_for(key)));
            CHECK_FALSE(v2.contains(key));
            auto got = v2.get(key);
            REQUIRE_FALSE(got);
            CHECK(got.error().is_miss());
        }
        CHECK(v2.metrics().storage.front().version_mismatches == static_cast<std::uint64_t>(old_entries));
        CHECK(v2.breaker().state() == breaker_state::closed);
    }

    SECTION("the new version's own entries are served, also after a reopen") {
        {
            auto cfg = v2_cache::config();
            cfg.storage = {.root = root, .sync = tierguard::durability::none};
            auto v2 = open_cache<v2_cache>(cfg, clock);
            REQUIRE(v2.put("user:0", "v2 format"));
        }
        auto cfg = v2_cache::config();
        cfg.storage = {.root = root, .sync = tierguard::durability::none};
        auto v2 = open_cache<v2_cache>(cfg, clock);
        CHECK(v2.metrics().storage.front().version_mismatches == 0);
        auto got = v2.get("user:0");
        REQUIRE(got);
        CHECK(got->value == "v2 format");
        CHECK(got->from == tier::disk);
    }
}

// Seed 003's UserResponse: version 1 was cached with the fields in another order (its
// `__dict__` bug); version 2 is the fixed record. The wire shapes happen to match, so
// version 2's codec *can* decode a version-1 entry: into the wrong fields. Only the
// schema version keeps that value from being served.
namespace seed003 {

template <std::uint32_t Version>
struct user_response {
    std::uint64_t id = 0;
    std::string email;
    std::string first_name;
    std::string last_name;
    std::string role;  // "admin", "manager", ... (the seed's role/enum confusion)
    std::optional<std::string> phone_number;
    bool email_verified = false;
    std::int64_t created_at = 0;  // seconds since the epoch
    std::optional<std::int64_t> last_login_at;

    friend bool operator==(const user_response&, const user_response&) = default;
};

using user_v1 = user_response<1>;
using user_v2 = user_response<2>;

user_v1 ada_v1() {
    return {.id = 42,
            .email = "ada@example.com",
            .first_name = "Ada",
            .last_name = "Lovelace",
            .role = "admin",
            .phone_number = "+44 20 7946 0000",
            .email_verified = true,
            .created_at = 1'700'000'000,
            .last_login_at = 1'700'086'400};
}

user_v2 ada_v2() {
    const user_v1 u = ada_v1();
    return {u.id,           u.email,          u.first_name, u.last_name,    u.role,
            u.phone_number, u.email_verified, u.created_at, u.last_login_at};
}

}  // namespace seed003

template <>
struct tierguard::value_traits<seed003::user_v2> {
    static constexpr std::uint32_t schema_version = 2;  // the field order changed in 2
};

template <std::uint32_t Version>
struct tierguard::codec<seed003::user_response<Version>> {
    using user = seed003::user_response<Version>;

    static void encode(const user& u, tierguard::byte_writer& w) {
        w.u64(u.id);
        if constexpr (Version == 1) {  // the old order: names before the email
            w.string(u.first_name);
            w.string(u.last_name);
            w.string(u.email);
        } else {
            w.string(u.email);
            w.string(u.first_name);
            w.string(u.last_name);
        }
        w.string(u.role);
        w.boolean(u.phone_number.has_value());
        if (u.phone_number) w.string(*u.phone_number);
        w.boolean(u.email_verified);
        w.i64(u.created_at);
        w.boolean(u.last_login_at.has_value());
        if (u.last_login_at) w.i64(*u.last_login_at);
    }

    static tierguard::result<user> decode(tierguard::byte_reader& r) {
        user u;
        auto id = r.u64("id");
        if (!id) return tierguard::unexpected(std::move(id).error());
        u.id = *id;
        const auto order = Version == 1 ? std::array{&u.first_name, &u.last_name, &u.email}
                                        : std::array{&u.email, &u.first_name, &u.last_name};
        for (std::string* field : order) {
            auto text = r.string("name or email");
            if (!text) return tierguard::unexpected(std::move(text).error());
            *field = std::move(*text);
        }
        auto role = r.string("role");
        if (!role) return tierguard::unexpected(std::move(role).error());
        u.role = std::move(*role);
        auto has_phone = r.boolean("phone_number?");
        if (!has_phone) return tierguard::unexpected(std::move(has_phone).error());
        if (*has_phone) {
            auto phone = r.string("phone_number");
            if (!phone) return tierguard::unexpected(std::move(phone).error());
            u.phone_number = std::move(*phone);
        }
        auto verified = r.boolean("email_verified");
        if (!verified) return tierguard::unexpected(std::move(verified).error());
        u.email_verified = *verified;
        auto created = r.i64("created_at");
        if (!created) return tierguard::unexpected(std::move(created).error());
        u.created_at = *created;
        auto has_login = r.boolean("last_login_at?");
        if (!has_login) return tierguard::unexpected(std::move(has_login).error());
        if (*has_login) {
            auto login = r.i64("last_login_at");
            if (!login) return tierguard::unexpected(std::move(login).error());
            u.last_login_at = *login;
        }
        return u;
    }
};

static_assert(tierguard::value_traits<seed003::user_v1>::schema_version == 1);
static_assert(tierguard::value_traits<seed003::user_v2>::schema_version == 2);
static_assert(tierguard::has_codec<seed003::user_v1> && tierguard::has_codec<seed003::user_v2>);

TEST_CASE("cache seeds: seed 003, a user record whose value_traits schema_version goes from 1 to 2") {
    using seed003::user_v1;
    using seed003::user_v2;
    using cache_v1 = tierguard::cache<std::string, user_v1, seed_policies>;
    using cache_v2 = tierguard::cache<std::string, user_v2, seed_policies>;
    static_assert(cache_v1::disk_type::schema_version == 1);
    static_assert(cache_v2::disk_type::schema_version == 2);

    // The danger the version guards against: version 2's codec decodes a version-1 encoding
    // without complaint, into the wrong fields.
    {
        const tierguard::serializer::standard serializer;
        std::vector<std::byte> old_bytes;
        REQUIRE(serializer.encode(seed003::ada_v1(), old_bytes));
        auto misread = serializer.decode(old_bytes, std::type_identity<user_v2>{});
        REQUIRE(misread);
        CHECK(misread->email == "Ada");
        CHECK(misread->last_name == "ada@example.com");
        CHECK_FALSE(*misread == seed003::ada_v2());
    }

    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    auto cfg_v1 = cache_v1::config();
    cfg_v1.storage = {.root = root, .sync = tierguard::durability::none};
    {
        auto old_cache = open_cache<cache_v1>(cfg_v1, clock);
        REQUIRE(old_cache.put("user:42", seed003::ada_v1()));
        user_v1 other = seed003::ada_v1();
        other.id = 7;
        other.phone_number.reset();
        other.last_login_at.reset();
        REQUIRE(old_cache.put("user:7", other));
        auto back = old_cache.get("user:42");
        REQUIRE(back);
        CHECK(back->value == seed003::ada_v1());
    }

    auto cfg_v2 = cache_v2::config();
    cfg_v2.storage = {.root = root, .sync = tierguard::durability::none};

    SECTION("scrub_on_open = false: the get path removes and counts them") {
        cfg_v2.disk.scrub_on_open = false;
        auto cache = open_cache<cache_v2>(cfg_v2, clock);
        for (const char* key : {"user:42", "user:7"}) {
            INFO(key);
            const fs::path file = root / *cache.disk().name_for(key);
            CHECK(fs::exists(file));
            auto got = cache.get(key);
            REQUIRE_FALSE(got);  // never the misread record
            CHECK(got.error().is_miss());
            CHECK_FALSE(fs::exists(file));
            auto again = cache.get(key);
            REQUIRE_FALSE(again);
            CHECK(again.error().is_miss());
        }
        CHECK(cache.metrics().storage.front().version_mismatches == 2);
        CHECK(cache.disk().stats().version_mismatches == 2);
        CHECK(cache.metrics().storage.front().corrupted == 0);
    }
    SECTION("scrub_on_open = true (off by default since issue 18): open removes and counts them") {
        cfg_v2.disk.scrub_on_open = true;
        auto cache = open_cache<cache_v2>(cfg_v2, clock);
        CHECK(cache.disk().stats().version_mismatches == 2);
        CHECK(cache.metrics().storage.front().version_mismatches == 2);
        CHECK(cache.disk().size() == 0);
        for (const char* key : {"user:42", "user:7"}) {
            INFO(key);
            CHECK_FALSE(fs::exists(root / *cache.disk().name_for(key)));
            auto got = cache.get(key);
            REQUIRE_FALSE(got);
            CHECK(got.error().is_miss());
        }
    }

    // Afterwards the new format is stored and served from disk.
    {
        auto cache = open_cache<cache_v2>(cfg_v2, clock);
        REQUIRE(cache.put("user:42", seed003::ada_v2()));
        cache.memory().clear();
        auto got = cache.get("user:42");
        REQUIRE(got);
        CHECK(got->from == tier::disk);
        CHECK(got->value == seed003::ada_v2());
    }
}

// ---------------------------------------------------------------------------------------
// (c) Seed 000, "Post-Fix Testing": a corrupted cache file is a miss, not an exception;
// it is moved out of the way and the key works again.

TEST_CASE("cache seeds: seed 000's corrupted-file procedure through the composed cache") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    auto cache = open_cache<seed_cache>(config_on(root), clock);

    REQUIRE(cache.put("test_key", "cached response"));
    const auto name = cache.disk().name_for("test_key");
    REQUIRE(name);
    const fs::path file = root / *name;
    REQUIRE(fs::exists(file));
    // echo "corrupted data" > cache/warm/test_key.pkl.gz
    { std::ofstream(file, std::ios::binary | std::ios::trunc) << "corrupted data"; }
    REQUIRE(fs::file_size(file) == std::string("corrupted data").size());
    cache.memory().clear();

    tierguard::result<tierguard::hit<std::string>> got = tierguard::fail(errc::invalid_argument, tier::none, "not run");
    REQUIRE_NOTHROW(got = cache.get("test_key"));
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::corrupted);
    CHECK(got.error().where() == tier::disk);

    CHECK_FALSE(fs::exists(file));
    const auto quarantined = files_in(root / "quarantine");
    REQUIRE(quarantined.size() == 1);
    CHECK(quarantined[0].find(flat(*name)) != std::string::npos);
    CHECK(cache.disk().storage().quarantined() == 1);
    const auto mt = cache.metrics();
    CHECK(mt.storage.front().quarantined == 1);
    CHECK(mt.storage.front().corrupted == 1);
    CHECK(mt.storage.front().breaker == breaker_state::closed);
    CHECK(cache.breaker().state() == breaker_state::closed);
    CHECK_FALSE(cache.degraded());

    auto miss = cache.get("test_key");
    REQUIRE_FALSE(miss);
    CHECK(miss.error().is_miss());

    auto stored = cache.put("test_key", "fresh response");
    REQUIRE(stored);
    CHECK(stored->where == stored_in::memory_and_storage);
    cache.memory().clear();
    auto fresh = cache.get("test_key");
    REQUIRE(fresh);
    CHECK(fresh->value == "fresh response");
    CHECK(fresh->from == tier::disk);
    CHECK(cache.metrics().storage.front().quarantined == 1);
}

TEST_CASE(
    "cache seeds: a file corrupted while the cache was closed is quarantined by the scrub at open, or by the "
    "get that reads it") {
    const bool scrub = GENERATE(true, false);  // the default open (issue 18): no scrub
    INFO("scrub_on_open = " << scrub);
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    fs::path file;
    {
        auto cache = open_cache<seed_cache>(config_on(root), clock);
        REQUIRE(cache.put("test_key", "cached response"));
        REQUIRE(cache.put("other", "untouched"));
        file = root / *cache.disk().name_for("test_key");
    }
    { std::ofstream(file, std::ios::binary | std::ios::trunc) << "corrupted data"; }

    std::optional<seed_cache> reopened;
    auto cfg = config_on(root);
    cfg.disk.scrub_on_open = scrub;
    REQUIRE_NOTHROW(reopened.emplace(open_cache<seed_cache>(cfg, clock)));
    CHECK(fs::exists(file) == !scrub);  // without the scrub, untouched until read
    auto got = reopened->get("test_key");
    REQUIRE_FALSE(got);
    if (scrub) {
        CHECK(got.error().is_miss());
    } else {
        CHECK(got.error().code() == errc::corrupted);  // the frame's CRC, checked at read
    }
    CHECK_FALSE(fs::exists(file));
    CHECK(files_in(root / "quarantine").size() == 1);
    CHECK(reopened->metrics().storage.front().quarantined == 1);
    auto other = reopened->get("other");
    REQUIRE(other);
    CHECK(other->value == "untouched");
    CHECK(other->from == tier::disk);
    CHECK(reopened->breaker().state() == breaker_state::closed);
}

// ---------------------------------------------------------------------------------------
// Reopening: the disk tier outlives the cache instance, and one instance at a time owns it.

TEST_CASE("cache seeds: values put through one instance are disk hits from the next one") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    {
        auto first = open_cache<seed_cache>(config_on(root), clock);
        for (int i = 0; i < 10; ++i) REQUIRE(first.put("k" + std::to_string(i), "v" + std::to_string(i)));
        REQUIRE(first.put("short-lived", "x", 10s));
    }
    clock.advance(11s);
    auto second = open_cache<seed_cache>(config_on(root), clock);
    CHECK(second.disk().size() == 11);  // the default open indexes the listing; the expired one goes when met
    for (int i = 0; i < 10; ++i) {
        const std::string key = "k" + std::to_string(i);
        INFO(key);
        auto got = second.get(key);
        REQUIRE(got);
        CHECK(got->value == "v" + std::to_string(i));
        CHECK(got->from == tier::disk);
    }
    auto promoted = second.get("k0");
    REQUIRE(promoted);
    CHECK(promoted->from == tier::memory);
    auto expired = second.get("short-lived");
    REQUIRE_FALSE(expired);
    CHECK((expired.error().is_miss() || expired.error().code() == errc::expired));
    CHECK(second.disk().size() == 10);
}

TEST_CASE("cache seeds: a second instance on a directory in use fails with errc::locked naming it") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    std::optional<seed_cache> first(open_cache<seed_cache>(config_on(root), clock));
    REQUIRE(first->put("k", "v"));

    auto second = seed_cache::open(config_on(root), clock);
    REQUIRE_FALSE(second);
    CHECK(second.error().code() == errc::locked);
    CHECK(second.error().where() == tier::disk);
    CHECK_THAT(second.error().message(), Catch::Matchers::Contains(root.string()));

    // The refused open took nothing from the first instance.
    first->memory().clear();
    auto still = first->get("k");
    REQUIRE(still);
    CHECK(still->from == tier::disk);
    REQUIRE(first->put("k2", "v2"));

    first.reset();
    auto third = seed_cache::open(config_on(root), clock);
    INFO((third ? std::string() : third.error().message()));
    REQUIRE(third);
    auto got = third->get("k2");
    REQUIRE(got);
    CHECK(got->value == "v2");
    CHECK(got->from == tier::disk);
}

TEST_CASE("cache seeds: close() releases the directory lock; the closed cache answers errc::closed (issue 17)") {
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    auto first = open_cache<seed_cache>(config_on(root), clock);
    REQUIRE(first.put("k", "v"));

    first.close();
    first.close();  // idempotent
    auto second = seed_cache::open(config_on(root), clock);
    INFO((second ? std::string() : second.error().message()));
    REQUIRE(second);
    auto got = second->get("k");
    REQUIRE(got);
    CHECK(got->value == "v");

    auto closed = [](const auto& r) { return !r && r.error().code() == errc::closed; };
    CHECK(closed(first.get("k")));
    CHECK(closed(first.put("k", "w")));
    CHECK(closed(first.erase("k")));
    CHECK(closed(first.clear()));
    CHECK(closed(first.scrub()));
    CHECK(closed(first.get_or_load("k", [](const std::string&) { return std::string("loaded"); })));
    const std::array<std::string, 2> keys{"k", "other"};
    for (const auto& answer : first.get_all(keys)) CHECK(closed(answer));
    bool bulk_called = false;
    const auto bulk = first.get_or_load_all(keys, [&](std::span<const std::string>) {
        bulk_called = true;
        return std::vector<std::pair<std::string, std::string>>{};
    });
    REQUIRE(bulk.size() == 2);
    for (const auto& answer : bulk) CHECK(closed(answer));
    CHECK_FALSE(bulk_called);
    CHECK_FALSE(first.contains("k"));
    CHECK_THAT(first.get("k").error().message(), Catch::Matchers::Contains("close()"));
    CHECK(closed(first.disk().get("k")));
    CHECK_FALSE(first.attached());
    CHECK(first.metrics().storage.front().attached == false);
    // The second cache's entry was not touched by the closed one, and closing the first
    // again (or destroying it) does not disturb the second.
    first.close();
    got = second->get("k");
    REQUIRE(got);
    CHECK(got->value == "v");
}

TEST_CASE("cache seeds: a key over the disk's max_key_size fails naming that limit (issue 17)") {
    tierguard_test::temp_dir tmp;
    tierguard::clock::manual clock;
    auto cache = open_cache<seed_cache>(config_on(tmp.path() / "cache"), clock);
    const std::string key((std::size_t{1} << 20) + 2, 'k');  // the default max_key_size is 1 MiB

    auto stored = cache.put(key, "v");
    REQUIRE_FALSE(stored);
    INFO(stored.error().message());
    CHECK(stored.error().code() == errc::invalid_argument);
    CHECK(stored.error().where() == tier::disk);
    CHECK_THAT(stored.error().message(), Catch::Matchers::Contains("disk_config.max_key_size (1048576)"));
    // The memory tier refused it too (it weighs more than a shard holds): said after.
    CHECK_THAT(stored.error().message(), Catch::Matchers::Contains("; memory tier: entry weighs"));
    CHECK_FALSE(cache.get(key));
}

TEST_CASE("cache seeds: with 64 shards an entry over 1 MiB goes to storage only, and says why (issue 17)") {
    tierguard_test::temp_dir tmp;
    tierguard::clock::manual clock;
    auto cache = open_cache<seed_cache>(config_on(tmp.path() / "cache"), clock);
    const std::string big((std::size_t{1} << 20) + 1, 'v');  // 64 MiB / 64 shards = 1 MiB a shard

    auto stored = cache.put("big", big);
    REQUIRE(stored);
    CHECK(stored->where == stored_in::storage);
    REQUIRE(stored->skipped);
    CHECK(stored->skipped->code() == errc::too_large);
    CHECK(stored->skipped->where() == tier::memory);
    CHECK_THAT(stored->skipped->message(), Catch::Matchers::Contains("byte_budget / shards"));
    for (int i = 0; i < 2; ++i) {  // never promoted: every get reads storage
        auto got = cache.get("big");
        REQUIRE(got);
        CHECK(got->from == tier::disk);
        CHECK(got->value == big);
    }
}

TEST_CASE("cache seeds: expired and other-version entries answer miss whether or not scrub_on_open (issue 17)") {
    const bool scrub = GENERATE(true, false);
    INFO("scrub_on_open = " << scrub);
    tierguard_test::temp_dir tmp;
    const fs::path root = tmp.path() / "cache";
    tierguard::clock::manual clock;
    write_old_entries(root, clock);
    {
        auto v1 = open_cache<seed_cache>(config_on(root), clock);
        REQUIRE(v1.put("short", "s", 10s));
        REQUIRE(v1.put("later", "l", 1h));
    }
    clock.advance(20s);

    {
        auto cfg = config_on(root);
        cfg.disk.scrub_on_open = scrub;
        auto reopened = open_cache<seed_cache>(cfg, clock);
        auto expired = reopened.get("short");
        REQUIRE_FALSE(expired);
        CHECK(expired.error().is_miss());
        CHECK(expired.error().where() == tier::disk);
        CHECK(reopened.disk().stats().expirations == 1);  // counted, by the scrub or by the get
        REQUIRE(reopened.get("later"));
        reopened.memory().clear();  // the disk tier's answer, not the memory copy's
        clock.advance(2h);          // expires while the cache is open: the same answer
        auto later = reopened.get("later");
        REQUIRE_FALSE(later);
        CHECK(later.error().is_miss());
    }
    auto cfg = v2_cache::config();
    cfg.storage = {.root = root, .sync = tierguard::durability::none};
    cfg.disk.scrub_on_open = scrub;
    auto v2 = open_cache<v2_cache>(cfg, clock);
    for (int i = 0; i < old_entries; ++i) {
        auto got = v2.get("user:" + std::to_string(i));
        REQUIRE_FALSE(got);
        CHECK(got.error().is_miss());
    }
    CHECK(v2.disk().stats().version_mismatches == static_cast<std::uint64_t>(old_entries));
}
