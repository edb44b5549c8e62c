// Simulated power loss (issue 5, point 4c): workloads of puts, overwrites and erases run
// through the disk tier and the composed cache over power_loss_storage; the power is cut
// after every step of each workload in turn, the unsynced state is dropped (worst case,
// drawn from a seeded generator), and the directory is reopened; that reopen is then cut
// part-way through its recovery too, crashed again and reopened. The oracle: it opens,
// every key reads back a value once put for it or nothing, no temp file is left, and
// under durability::full every acknowledged put (or erase) survives. The same oracle
// must catch a protocol that skips an fsync, and must see durability::none lose data.
// On Linux, posix_directory's own system calls are traced and compared with the model's
// steps, so that what holds for the model holds for the real protocol.
//
// Replay: TIERGUARD_POWER_LOSS_SEED=<seed> (printed on failure) reruns every crash point
// with the same workloads and the same draws.

#include "support/blob_text.hpp"
#include "support/power_loss_storage.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

using tierguard::durability;
using tierguard::errc;
using tierguard_test::bytes_of;
using tierguard_test::disk_step;
using tierguard_test::power_loss_storage;
using tierguard_test::protocol_faults;
using tierguard_test::simulated_disk;
using tierguard_test::text_of;

using trace_type = std::vector<std::pair<tierguard_test::disk_step, std::string>>;

#if defined(TIERGUARD_TEST_SYSCALL_TRACE)
// posix_directory's durability-relevant system calls under one root, recorded through the
// linker's --wrap (tests/CMakeLists.txt): each wrapper calls the real function and notes
// the step the model takes for it.
namespace syscall_trace {
std::string root;  // canonical path of the traced folder; empty: not tracing
trace_type steps;

void start(std::string traced) {
    steps.clear();
    root = std::move(traced);
}
trace_type stop() {
    root.clear();
    return std::move(steps);
}

// `fd`'s path below the root ("." for the root itself), or nothing outside it.
std::optional<std::string> relative(int fd) {
    if (root.empty()) return std::nullopt;
    char buf[4096];
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    const std::string path(buf, static_cast<std::size_t>(n));
    if (path == root) return ".";
    if (path.starts_with(root + "/")) return path.substr(root.size() + 1);
    return std::nullopt;
}
std::optional<std::string> relative(int dir_fd, const char* name) {
    auto dir = relative(dir_fd);
    if (!dir) return std::nullopt;
    return *dir == "." ? std::string(name) : *dir + "/" + name;
}
void note(tierguard_test::disk_step step, const std::optional<std::string>& path) {
    if (path && *path != ".lock") steps.emplace_back(step, *path);  // the lock is no blob: open() makes it
}
bool is_folder(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace syscall_trace

extern "C" {
int __real_mkdirat(int, const char*, mode_t);
int __real_openat(int, const char*, int, ...);
ssize_t __real_write(int, const void*, std::size_t);
int __real_fsync(int);
int __real_fdatasync(int);
int __real_renameat(int, const char*, int, const char*);
int __real_unlinkat(int, const char*, int);

int __wrap_mkdirat(int dir_fd, const char* name, mode_t mode) {
    const int rc = __real_mkdirat(dir_fd, name, mode);
    if (rc == 0) syscall_trace::note(disk_step::make_folder, syscall_trace::relative(dir_fd, name));
    return rc;
}
int __wrap_openat(int dir_fd, const char* name, int flags, ...) {
    mode_t mode = 0;
    if ((flags & O_CREAT) != 0) {
        std::va_list args;
        va_start(args, flags);
        mode = static_cast<mode_t>(va_arg(args, int));
        va_end(args);
    }
    const int fd = __real_openat(dir_fd, name, flags, mode);
    if (fd >= 0 && (flags & O_CREAT) != 0) syscall_trace::note(disk_step::create_temp, syscall_trace::relative(fd));
    return fd;
}
ssize_t __wrap_write(int fd, const void* bytes, std::size_t size) {
    if (!syscall_trace::root.empty()) syscall_trace::note(disk_step::write_temp, syscall_trace::relative(fd));
    return __real_write(fd, bytes, size);
}
int __wrap_fsync(int fd) {
    if (!syscall_trace::root.empty())
        syscall_trace::note(syscall_trace::is_folder(fd) ? disk_step::sync_folder : disk_step::sync_file,
                            syscall_trace::relative(fd));
    return __real_fsync(fd);
}
int __wrap_fdatasync(int fd) {
    syscall_trace::note(disk_step::sync_file, syscall_trace::relative(fd));
    return __real_fdatasync(fd);
}
int __wrap_renameat(int from_fd, const char* from, int to_fd, const char* to) {
    const auto target = syscall_trace::relative(to_fd, to);
    const int rc = __real_renameat(from_fd, from, to_fd, to);
    if (rc == 0) syscall_trace::note(disk_step::rename, target);
    return rc;
}
int __wrap_unlinkat(int dir_fd, const char* name, int flags) {
    const auto path = syscall_trace::relative(dir_fd, name);
    const int rc = __real_unlinkat(dir_fd, name, flags);
    if (rc == 0) syscall_trace::note(disk_step::unlink, path);
    return rc;
}
}
#endif

namespace {

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

std::uint64_t base_seed() {
    static const std::uint64_t seed = [] {
        if (const char* text = std::getenv("TIERGUARD_POWER_LOSS_SEED"))
            return static_cast<std::uint64_t>(std::strtoull(text, nullptr, 10));
        return (std::uint64_t{std::random_device{}()} << 32) | std::uint64_t{std::random_device{}()};
    }();
    return seed;
}

// ---- workloads ------------------------------------------------------------------------

struct operation {
    enum kind_t : unsigned char { put, erase, get } kind;
    std::string key;
    std::string value;  // put only
};

// Keys from a small set so that puts overwrite and erases hit; every value names its key
// and its operation, so a value read back identifies the put that wrote it.
std::vector<operation> make_workload(std::uint64_t seed, std::size_t length) {
    std::mt19937_64 rng(seed);
    std::vector<operation> ops;
    for (std::size_t i = 0; i < length; ++i) {
        const std::string key = "key-" + std::to_string(rng() % 8);
        const auto roll = rng() % 100;
        if (roll < 70) {
            std::string value = key + "=" + std::to_string(i) + ":";
            value.append(rng() % 300, static_cast<char>('a' + rng() % 26));
            ops.push_back({operation::put, key, std::move(value)});
        } else if (roll < 85) {
            ops.push_back({operation::erase, key, {}});
        } else {
            ops.push_back({operation::get, key, {}});
        }
    }
    return ops;
}

// ---- the two ways in: disk tier and cache ---------------------------------------------

struct disk_policies : tierguard::disk_defaults {
    using storage = power_loss_storage;
    using clock = tierguard::clock::manual;
};

struct cache_policies : tierguard::cache_defaults {
    using storage = power_loss_storage;
    using clock = tierguard::clock::manual;
};

// What a read after the crash found: a value, or nothing (a plain miss).
using observed = std::optional<std::string>;

struct disk_driver {
    static constexpr std::string_view name = "disk_tier";
    using tier_type = tierguard::disk_tier<std::string, std::string, disk_policies>;

    // The recovery under test is the scrub at open (scrub_on_open, off by default since
    // issue 18: without it a damaged frame is found by the get that reads it, and temp
    // files by scrub()).
    static tierguard::result<tier_type> open(power_loss_storage storage, tierguard::clock::manual clock) {
        return tier_type::open(std::move(storage), tierguard::disk_config{.scrub_on_open = true}, std::move(clock));
    }
    // Whether the operation reported success (for a put: that it reached the storage).
    static bool put(tier_type& t, const std::string& key, const std::string& value) {
        return t.put(key, value).has_value();
    }
    static bool erase(tier_type& t, const std::string& key) { return t.erase(key).has_value(); }
    static tierguard::result<observed> get(tier_type& t, const std::string& key) {
        auto got = t.get(key);
        if (got) return observed(std::move(*got));
        if (got.error().code() == errc::miss) return observed();
        return tierguard::unexpected(std::move(got).error());
    }
    static std::uint64_t corrupted(const tier_type& t) { return t.stats().corrupted; }
};

struct cache_driver {
    static constexpr std::string_view name = "cache";
    using tier_type = tierguard::cache<std::string, std::string, cache_policies>;

    static tierguard::result<tier_type> open(power_loss_storage storage, tierguard::clock::manual clock) {
        tier_type::config cfg;
        cfg.disk.scrub_on_open = true;  // as disk_driver's
        return tier_type::open(cfg, std::move(storage), std::move(clock));
    }
    static bool put(tier_type& c, const std::string& key, const std::string& value) {
        auto outcome = c.put(key, value);
        return outcome && (outcome->where == tierguard::stored_in::memory_and_storage ||
                           outcome->where == tierguard::stored_in::storage);
    }
    // The cache reports an erase that reached memory but not the storage as done (the
    // storage copy waits as a pending erasure), so success says nothing about the disk.
    static std::optional<bool> erase(tier_type& c, const std::string& key) {
        (void)c.erase(key);
        return std::nullopt;
    }
    static tierguard::result<observed> get(tier_type& c, const std::string& key) {
        auto got = c.get(key);
        if (got) return observed(std::move(got->value));
        if (got.error().code() == errc::miss) return observed();
        return tierguard::unexpected(std::move(got).error());
    }
    static std::uint64_t corrupted(const tier_type& c) { return c.metrics().storage.front().corrupted; }
};

// ---- the oracle ---------------------------------------------------------------------

// What may be read back for one key after the crash.
struct key_record {
    std::set<std::string> ever;  // every value a put for the key was issued with
    observed acked;              // the last acknowledged put's value; nothing after an acknowledged erase
    bool cut = false;            // the power failed during an operation on this key...
    observed cut_value;          // ...a put of this value, or an erase
};

struct crash_setup {
    durability sync;
    protocol_faults broken;
    std::size_t workload;  // index, for messages
    const std::vector<operation>* ops;
    const trace_type* trace;  // of the run without a cut
};

struct tally {
    std::uint64_t crash_points = 0;
    std::uint64_t steps = 0;             // steps of the longest workload run
    std::uint64_t lost_acked = 0;        // acknowledged puts or erases undone by a crash
    std::uint64_t damaged_files = 0;     // unsynced files the crashes cut or garbled
    std::uint64_t corrupted_seen = 0;    // damaged entries the reopened tier found (quarantined)
    std::uint64_t recovery_crashes = 0;  // second crashes, part-way through a reopen
    std::uint64_t violations = 0;
    std::string first_violation;
};

std::string describe(const observed& o) { return o ? "\"" + o->substr(0, 24) + "...\"" : "absent"; }

// Reopens a tier over `disk` after a crash and checks the oracle; the problems found go to
// `problems`. Returns whether an acknowledged write was undone; `recovery_steps` gets the
// steps the reopen itself took (scrub's removals and quarantines).
template <class Driver>
bool check_reopen(const crash_setup& setup, const std::map<std::string, key_record>& records,
                  const std::shared_ptr<simulated_disk>& disk, const tierguard::clock::manual& clock,
                  std::string_view when, tally& totals, std::vector<std::string>& problems,
                  std::uint64_t& recovery_steps) {
    auto reopened = Driver::open(power_loss_storage(disk, setup.sync, setup.broken), clock);
    recovery_steps = disk->steps();
    const std::string prefix = "reopened " + std::string(when) + ": ";
    if (!reopened) {
        problems.push_back(prefix + "open failed: " + reopened.error().message());
        return false;
    }
    if (const auto temps = disk->temp_files(); !temps.empty())
        problems.push_back(prefix + "temp file left after the scrub: " + temps.front());
    const std::uint64_t corrupted = Driver::corrupted(*reopened);
    totals.corrupted_seen += corrupted;
    if (corrupted != 0 && setup.sync != durability::none && !setup.broken.skip_file_sync)
        problems.push_back(prefix + std::to_string(corrupted) + " damaged entries though their bytes were synced");
    bool lost = false;
    for (const auto& [key, r] : records) {
        auto got = Driver::get(*reopened, key);
        if (!got) {
            problems.push_back(prefix + key + ": read failed: " + got.error().message());
            continue;
        }
        if (*got && !r.ever.contains(**got)) {
            problems.push_back(prefix + key + ": read back " + describe(*got) + ", never put for it");
            continue;
        }
        const bool latest = *got == r.acked || (r.cut && *got == r.cut_value);
        if (!latest) lost = true;
        if (!latest && setup.sync == durability::full)
            problems.push_back(prefix + key + ": acknowledged " + describe(r.acked) +
                               (r.cut ? " (then one in flight)" : "") + ", read back " + describe(*got));
    }
    return lost;
}

// Runs the workload with the power cut after `cut_after` steps (simulated_disk::never: no
// cut), crashes, reopens and checks; then crashes the same state again part-way through
// its reopen, reopens and checks again. Returns the steps the workload took.
template <class Driver>
trace_type crash_once(const crash_setup& setup, std::uint64_t cut_after, tally& totals) {
    auto disk = std::make_shared<simulated_disk>();
    disk->cut_power_after(cut_after);
    tierguard::clock::manual clock;
    std::map<std::string, key_record> records;
    std::vector<std::string> problems;
    {
        auto opened = Driver::open(power_loss_storage(disk, setup.sync, setup.broken), clock);
        if (!opened && disk->powered()) problems.push_back("first open failed: " + opened.error().message());
        for (std::size_t i = 0; opened && i < setup.ops->size() && disk->powered(); ++i) {
            const operation& op = (*setup.ops)[i];
            key_record& r = records[op.key];
            switch (op.kind) {
                case operation::put: {
                    r.ever.insert(op.value);
                    const bool ok = Driver::put(*opened, op.key, op.value);
                    if (disk->powered() != ok)
                        problems.push_back("put " + std::to_string(i) + " reported " + (ok ? "success" : "failure") +
                                           " with the power " + (disk->powered() ? "on" : "off"));
                    if (disk->powered()) {
                        r.acked = op.value;
                    } else {
                        r.cut = true;
                        r.cut_value = op.value;
                    }
                    break;
                }
                case operation::erase: {
                    const std::optional<bool> ok = Driver::erase(*opened, op.key);
                    if (ok && *ok != disk->powered()) problems.push_back("erase " + std::to_string(i) + " misreported");
                    if (disk->powered()) {
                        r.acked.reset();
                    } else {
                        r.cut = true;
                        r.cut_value.reset();
                    }
                    break;
                }
                case operation::get: {
                    auto got = Driver::get(*opened, op.key);
                    if (!got || *got != r.acked)
                        problems.push_back("get " + std::to_string(i) + " before the crash read " +
                                           (got ? describe(*got) : got.error().message()) + ", expected " +
                                           describe(r.acked));
                    break;
                }
            }
        }
    }  // the process dies with the power
    trace_type trace = disk->trace();
    const std::uint64_t point_seed = mix(base_seed() ^ mix(setup.workload * 1000003 + cut_after) ^
                                         mix(static_cast<std::uint64_t>(setup.sync) + 16 * Driver::name.size()));
    totals.damaged_files += disk->crash(point_seed).files_damaged;
    ++totals.crash_points;
    auto again = std::make_shared<simulated_disk>(*disk);
    std::uint64_t recovery_steps = 0;
    if (check_reopen<Driver>(setup, records, disk, clock, "after the crash", totals, problems, recovery_steps))
        ++totals.lost_acked;
    std::string second;
    if (recovery_steps != 0) {
        const std::uint64_t cut = point_seed % recovery_steps;
        again->cut_power_after(cut);
        (void)Driver::open(power_loss_storage(again, setup.sync, setup.broken), clock);
        totals.damaged_files += again->crash(mix(point_seed + 1)).files_damaged;
        ++totals.recovery_crashes;
        second = "after a second crash, " + std::to_string(cut) + " of " + std::to_string(recovery_steps) +
                 " recovery steps in";
        (void)check_reopen<Driver>(setup, records, again, clock, second, totals, problems, recovery_steps);
    }
    if (!problems.empty()) {
        if (totals.violations == 0) {
            totals.first_violation =
                std::string(Driver::name) + ", durability " + std::to_string(static_cast<int>(setup.sync)) +
                ", workload " + std::to_string(setup.workload) + ", power cut after step " + std::to_string(cut_after);
            if (setup.trace != nullptr && cut_after < setup.trace->size())
                totals.first_violation += " (before " + std::string(to_string((*setup.trace)[cut_after].first)) + " " +
                                          (*setup.trace)[cut_after].second + ")";
            totals.first_violation += ", crash seed " + std::to_string(point_seed) +
                                      "; replay with TIERGUARD_POWER_LOSS_SEED=" + std::to_string(base_seed()) + ":";
            for (const std::string& p : problems) totals.first_violation += "\n  " + p;
        }
        ++totals.violations;
    }
    return trace;
}

// Every crash point of `workloads` random workloads of `length` operations each.
template <class Driver>
tally crash_everywhere(durability sync, protocol_faults broken, std::size_t workloads, std::size_t length) {
    tally totals;
    for (std::size_t w = 0; w < workloads; ++w) {
        const auto ops = make_workload(mix(base_seed() + w), length);
        tally ignored;
        const trace_type trace =
            crash_once<Driver>(crash_setup{sync, broken, w, &ops, nullptr}, simulated_disk::never, ignored);
        totals.steps = std::max<std::uint64_t>(totals.steps, trace.size());
        for (std::uint64_t cut = 0; cut <= trace.size(); ++cut)
            (void)crash_once<Driver>(crash_setup{sync, broken, w, &ops, &trace}, cut, totals);
    }
    std::string broken_label;
    if (broken.skip_folder_sync) broken_label += " [no folder sync]";
    if (broken.skip_parent_sync) broken_label += " [no sync of a folder's parent]";
    if (broken.skip_file_sync) broken_label += " [no file sync]";
    std::printf(
        "power_loss: %-9s durability=%d%s: %llu crash points (longest run %llu steps) + %llu crashes during "
        "recovery; %llu lost an acknowledged write, %llu files damaged, %llu entries quarantined, %llu "
        "violations\n",
        std::string(Driver::name).c_str(), static_cast<int>(sync), broken_label.c_str(),
        static_cast<unsigned long long>(totals.crash_points), static_cast<unsigned long long>(totals.steps),
        static_cast<unsigned long long>(totals.recovery_crashes), static_cast<unsigned long long>(totals.lost_acked),
        static_cast<unsigned long long>(totals.damaged_files), static_cast<unsigned long long>(totals.corrupted_seen),
        static_cast<unsigned long long>(totals.violations));
    return totals;
}

#if defined(__SANITIZE_ADDRESS__)
#define POWER_LOSS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POWER_LOSS_SANITIZED 1
#endif
#endif

// Workloads per configuration: fewer under a sanitizer (about 30 times slower);
// TIERGUARD_POWER_LOSS_WORKLOADS overrides (a soak raises it).
std::size_t workloads() {
    if (const char* text = std::getenv("TIERGUARD_POWER_LOSS_WORKLOADS"))
        return static_cast<std::size_t>(std::strtoull(text, nullptr, 10));
#if defined(POWER_LOSS_SANITIZED)
    return 3;
#else
    return 12;
#endif
}
constexpr std::size_t workload_length = 60;

template <class Driver>
void check_clean(durability sync) {
    const tally t = crash_everywhere<Driver>(sync, {}, workloads(), workload_length);
    INFO(t.first_violation);
    CHECK(t.violations == 0);
    CHECK(t.crash_points >= workloads() * 50);  // every step of every workload was a crash point
}

}  // namespace

// ---- the model itself ----------------------------------------------------------------

namespace {

// A trace as text, temp names shown as "temp" (they carry a pid or an instance number).
std::vector<std::string> shown(const trace_type& trace) {
    std::vector<std::string> out;
    for (const auto& [step, path] : trace) {
        const bool temp = path.starts_with(".tmp.") || path.find("/.tmp.") != std::string::npos;
        out.push_back(std::string(to_string(step)) + " " + (temp ? std::string("temp") : path));
    }
    return out;
}

// Every kind of step: new folders, an overwrite, a blob at the root, a remove, a quarantine.
template <class Storage>
void protocol_workload(Storage& s) {
    const auto t = std::chrono::system_clock::time_point{std::chrono::hours{24 * 365 * 50}};
    REQUIRE(s.write("ab/cd/x", bytes_of("one")));
    REQUIRE(s.write("ab/cd/x", bytes_of("two")));
    REQUIRE(s.write("ab/ef/y", bytes_of("three")));
    REQUIRE(s.write("z", bytes_of("four")));
    REQUIRE(s.remove("ab/cd/x"));
    REQUIRE(s.quarantine("ab/ef/y", "test", t));
    REQUIRE(s.clean(tierguard::clean_options{t}));
}

}  // namespace

TEST_CASE("power_loss_storage takes posix_directory's steps for each durability", "[power_loss]") {
    const auto steps_of = [](durability sync) {
        auto disk = std::make_shared<simulated_disk>();
        power_loss_storage s(disk, sync);
        REQUIRE(s.write("ab/cd/x", bytes_of("one")));
        REQUIRE(s.remove("ab/cd/x"));
        return shown(disk->trace());
    };
    using v = std::vector<std::string>;
    CHECK(steps_of(durability::none) == v{"make_folder ab", "make_folder ab/cd", "create_temp temp", "write_temp temp",
                                          "rename ab/cd/x", "unlink ab/cd/x", "unlink ab/cd", "unlink ab"});
    CHECK(steps_of(durability::data) == v{"make_folder ab", "make_folder ab/cd", "create_temp temp", "write_temp temp",
                                          "sync_file temp", "rename ab/cd/x", "unlink ab/cd/x", "unlink ab/cd",
                                          "unlink ab"});
    CHECK(steps_of(durability::full) == v{"make_folder ab", "sync_folder .", "make_folder ab/cd", "sync_folder ab",
                                          "create_temp temp", "write_temp temp", "sync_file temp", "rename ab/cd/x",
                                          "sync_folder ab/cd", "unlink ab/cd/x", "sync_folder ab/cd", "unlink ab/cd",
                                          "unlink ab"});
}

#if defined(TIERGUARD_TEST_SYSCALL_TRACE)
namespace {
trace_type model_trace(durability sync) {
    auto disk = std::make_shared<simulated_disk>();
    {
        power_loss_storage s(disk, sync);
        protocol_workload(s);
    }
    REQUIRE(power_loss_storage(disk, sync).write("ab/ef/w", bytes_of("five")));
    return disk->trace();
}

}  // namespace

TEST_CASE("posix_directory makes the same durability-relevant system calls as the model", "[power_loss]") {
    // The linker's --wrap records posix_directory's mkdirat, openat(O_CREAT), write,
    // fsync, fdatasync, renameat and unlinkat under its root: the model stands for the
    // real protocol only while these agree.
    for (const durability sync : {durability::none, durability::data, durability::full}) {
        INFO("durability " << static_cast<int>(sync));
        tierguard_test::temp_dir dir;
        {
            auto opened = tierguard::storage::posix_directory::open({dir.path() / "cache", sync});
            REQUIRE(opened);
            syscall_trace::start(std::filesystem::canonical(dir.path() / "cache").string());
            protocol_workload(*opened);
        }
        // A new instance (a new process) writing into folders the first one made.
        auto again = tierguard::storage::posix_directory::open({dir.path() / "cache", sync});
        REQUIRE(again);
        REQUIRE(again->write("ab/ef/w", bytes_of("five")));
        const trace_type real = syscall_trace::stop();
        CHECK(shown(real) == shown(model_trace(sync)));
        CHECK(real.size() > 10);
    }
}
#endif

TEST_CASE("simulated_disk: a cut power fails the next step and changes nothing after it", "[power_loss]") {
    auto disk = std::make_shared<simulated_disk>();
    power_loss_storage s(disk, durability::full);
    disk->cut_power_after(3);  // make_folder, sync, and no further than creating the temp file
    auto written = s.write("x", bytes_of("lost"));
    REQUIRE_FALSE(written);
    CHECK(written.error().code() == errc::io_error);
    CHECK_FALSE(disk->powered());
    CHECK(disk->steps() == 3);
    CHECK_FALSE(s.write("y", bytes_of("also lost")));
    CHECK(disk->steps() == 3);
    CHECK(disk->temp_files().size() == 1);
}

TEST_CASE("simulated_disk: unsynced bytes and renames may be lost, synced ones never", "[power_loss]") {
    // Over many draws: what was synced always survives; what was not sometimes survives
    // whole, sometimes comes back damaged or reverted.
    std::set<std::string> unsynced_outcomes;
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        auto disk = std::make_shared<simulated_disk>();
        REQUIRE(power_loss_storage(disk, durability::full).write("kept", bytes_of("synced bytes")));
        REQUIRE(power_loss_storage(disk, durability::full).write("gone", bytes_of("old")));
        REQUIRE(power_loss_storage(disk, durability::data).write("renamed", bytes_of("synced, not its name")));
        REQUIRE(power_loss_storage(disk, durability::none).write("gone", bytes_of("new and unsynced")));
        disk->crash(mix(seed));
        power_loss_storage after(disk, durability::full);
        CHECK(text_of(after.read("kept").value()) == "synced bytes");
        if (auto renamed = after.read("renamed")) CHECK(text_of(*renamed) == "synced, not its name");
        auto gone = after.read("gone");
        REQUIRE(gone);
        unsynced_outcomes.insert(text_of(*gone) == "old"                ? "old"
                                 : text_of(*gone) == "new and unsynced" ? "new"
                                                                        : "damaged");
    }
    CHECK(unsynced_outcomes == std::set<std::string>{"old", "new", "damaged"});
}

TEST_CASE("durability full: a write into a folder an earlier instance made without syncing survives a power loss",
          "[power_loss][regression]") {
    // A folder made under durability none (or by a process killed before its sync) may
    // not survive a power loss; a later instance under durability::full must sync its
    // link before acknowledging a write into it, not trust that it exists.
    for (std::uint64_t seed = 0; seed < 64; ++seed) {
        auto disk = std::make_shared<simulated_disk>();
        REQUIRE(power_loss_storage(disk, durability::none).write("ab/cd/x", bytes_of("unsynced")));
        REQUIRE(power_loss_storage(disk, durability::full).write("ab/cd/y", bytes_of("acknowledged")));
        disk->crash(mix(seed));
        auto read = power_loss_storage(disk, durability::full).read("ab/cd/y");
        INFO("seed " << seed);
        REQUIRE(read);
        CHECK(text_of(*read) == "acknowledged");
    }
}

// ---- crash at every step ------------------------------------------------------------

TEST_CASE("power loss under durability::full: every entry intact or absent, no acknowledged write lost",
          "[power_loss]") {
    check_clean<disk_driver>(durability::full);
    check_clean<cache_driver>(durability::full);
}

TEST_CASE("power loss under durability::data: every entry intact or absent, never torn", "[power_loss]") {
    check_clean<disk_driver>(durability::data);
    check_clean<cache_driver>(durability::data);
}

TEST_CASE("power loss under durability::none: intact or absent, and acknowledged writes do get lost", "[power_loss]") {
    const tally disk = crash_everywhere<disk_driver>(durability::none, {}, workloads(), workload_length);
    const tally cache = crash_everywhere<cache_driver>(durability::none, {}, workloads(), workload_length);
    INFO(disk.first_violation << cache.first_violation);
    CHECK(disk.violations + cache.violations == 0);
    // The model does lose data when nothing is synced, and the torn files it makes are
    // found by the checksum and quarantined, never served.
    CHECK(disk.lost_acked > 0);
    CHECK(cache.lost_acked > 0);
    CHECK(disk.corrupted_seen + cache.corrupted_seen > 0);
}

TEST_CASE("the oracle catches a protocol that skips an fsync under durability::full", "[power_loss]") {
    const tally no_folder_sync =
        crash_everywhere<disk_driver>(durability::full, protocol_faults{.skip_folder_sync = true}, 2, workload_length);
    const tally no_parent_sync =
        crash_everywhere<disk_driver>(durability::full, protocol_faults{.skip_parent_sync = true}, 2, workload_length);
    const tally no_file_sync =
        crash_everywhere<cache_driver>(durability::full, protocol_faults{.skip_file_sync = true}, 2, workload_length);
    INFO("no folder sync: " << no_folder_sync.first_violation << "\nno parent sync: " << no_parent_sync.first_violation
                            << "\nno file sync: " << no_file_sync.first_violation);
    CHECK(no_folder_sync.violations > 0);
    CHECK(no_parent_sync.violations > 0);
    CHECK(no_file_sync.violations > 0);
    CHECK(no_file_sync.corrupted_seen > 0);
}
