// Real faults, checked across a restart: a seeded workload of puts, erases and gets over a
// disk tier (or a cache) on posix_directory or segment_log, under faults from the kernel
// (the LD_PRELOAD syscall fault shim, tests/support/syscall_fault_shim.cpp) or from a real
// small file system filled past ENOSPC; then a clean close, and a verify in a fresh process
// (without the shim) that reopens the directory and checks every key against the model of
// acknowledged operations: the last acknowledged value, a value of a failed put since, or a
// miss; never an older value, never an erased value back, never a wrong one.
//
//   driver shim   <front> <storage> <shim.so> <rules> <seed> <work dir>
//   driver fill   <front> <storage> <tmpfs-size|tmpfs-inodes|ext4> <seed> <work dir>
//   driver run    <front> <storage> <profile> <seed> <cache dir> <model file>   (internal)
//   driver verify <front> <storage> <profile> <seed> <cache dir> <model file>   (internal)
// front: disk (tierguard::disk_tier) or cache (tierguard::cache); storage: posix_directory or
// segment_log. Exit 0: checked; 1: a check failed; 77: skipped (the reason is printed).
#include "support/child_process.hpp"

#include <tierguard/tierguard.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// What a run does: the shim profile mixes puts, erases and gets over a few hundred keys;
// the fill profiles put fresh keys until several times the file system's size was offered.
struct profile {
    int keys = 400;
    int ops = 3000;
    std::size_t min_value = 64;
    std::size_t max_value = 700;
    bool fill = false;
};

profile profile_of(const std::string& name) {
    if (name == "shim") return {};
    if (name == "fill-bytes") return {.keys = 6000, .ops = 6000, .min_value = 2000, .max_value = 6000, .fill = true};
    if (name == "fill-inodes") return {.keys = 5000, .ops = 5000, .min_value = 100, .max_value = 400, .fill = true};
    std::fprintf(stderr, "driver: unknown profile %s\n", name.c_str());
    std::exit(2);
}

// A value names its key and the sequence number of the put that wrote it; the rest is
// filler derived from both, so that a verify can tell exact, older and damaged values apart.
std::string value_of(int key, std::uint64_t seq, std::size_t size) {
    std::string v = std::to_string(key) + "|" + std::to_string(seq) + "|";
    std::uint64_t x = seq * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(key);
    while (v.size() < size) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v.push_back(static_cast<char>('a' + x % 26));
    }
    return v;
}

std::string key_of(int key) { return "key-" + std::to_string(key); }

// The sequence number a value was written with, if it is intact and of this key.
std::optional<std::uint64_t> seq_of(int key, const std::string& v) {
    const auto bar1 = v.find('|');
    const auto bar2 = bar1 == std::string::npos ? bar1 : v.find('|', bar1 + 1);
    if (bar2 == std::string::npos || v.substr(0, bar1) != std::to_string(key)) return std::nullopt;
    const std::uint64_t seq = std::strtoull(v.substr(bar1 + 1, bar2 - bar1 - 1).c_str(), nullptr, 10);
    if (value_of(key, seq, v.size()) != v) return std::nullopt;
    return seq;
}

// The model of one key: what a read may return after the acknowledged operations.
struct key_model {
    std::int64_t exact = -1;       // the last acknowledged put's sequence number; -1: none or erased since
    bool erased = false;           // the last acknowledged operation was an erase
    std::set<std::uint64_t> also;  // failed puts since the last acknowledged operation: may have landed
};

enum class verdict { miss, exact, allowed, older, resurrected, wrong };

verdict judge(int key, const key_model& m, const std::optional<std::string>& got) {
    if (!got) return verdict::miss;
    const auto seq = seq_of(key, *got);
    if (!seq) return verdict::wrong;
    if (m.exact >= 0 && *seq == static_cast<std::uint64_t>(m.exact)) return verdict::exact;
    if (m.also.count(*seq) != 0) return verdict::allowed;
    return m.erased ? verdict::resurrected : verdict::older;
}

struct tally {
    std::uint64_t counts[6] = {};
    void add(verdict v) { ++counts[static_cast<int>(v)]; }
    [[nodiscard]] std::uint64_t of(verdict v) const { return counts[static_cast<int>(v)]; }
    [[nodiscard]] std::uint64_t bad() const {
        return of(verdict::older) + of(verdict::resurrected) + of(verdict::wrong);
    }
    [[nodiscard]] std::string text() const {
        std::ostringstream out;
        out << "exact " << of(verdict::exact) << ", allowed " << of(verdict::allowed) << ", misses "
            << of(verdict::miss) << ", older " << of(verdict::older) << ", resurrected erased "
            << of(verdict::resurrected) << ", wrong " << of(verdict::wrong);
        return out.str();
    }
};

// ---- the fronts: a disk tier or a cache over either storage ----

template <class Storage>
struct disk_policies : tierguard::disk_defaults {
    using storage = Storage;
};

template <class Storage>
struct cache_policies : tierguard::cache_defaults {
    using storage = Storage;
    using clock = tierguard::clock::manual;
};

tierguard::storage::posix_directory::config storage_config(const tierguard::storage::posix_directory*,
                                                           const fs::path& root, const profile&) {
    return {.root = root};
}

tierguard::storage::segment_log::config storage_config(const tierguard::storage::segment_log*, const fs::path& root,
                                                       const profile& p) {
    tierguard::storage::segment_log::config c;
    c.root = root;
    // Shim runs: 64 KiB segments, four kept, so that rolls evict segments (and unlink them).
    c.segment_size = p.fill ? std::uint64_t{1} << 20 : std::uint64_t{64} << 10;
    c.byte_budget = p.fill ? std::uint64_t{64} << 20 : std::uint64_t{256} << 10;
    return c;
}

tierguard::disk_config disk_config_of() {
    tierguard::disk_config c;
    c.byte_budget = std::uint64_t{64} << 20;  // larger than the small file systems: they fill first
    return c;
}

// What the storage holds, read before a tier opens it: blobs, and whether the hash secret
// (without which every entry is an orphan) is there. The verify thus opens the storage
// twice, as two restarts would; a tier must survive both.
template <class Storage>
std::string census_of(const fs::path& root, const profile& p) {
    auto storage = Storage::open(storage_config(static_cast<const Storage*>(nullptr), root, p));
    if (!storage) return "nothing (open failed: " + storage.error().message() + ")";
    auto listing = storage->list();
    if (!listing) return "an unlistable store (" + listing.error().message() + ")";
    const bool secret = std::any_of(listing->begin(), listing->end(),
                                    [](const tierguard::blob_info& b) { return b.name == "tierguard-meta"; });
    return std::to_string(listing->size()) + " blobs, hash secret " + (secret ? "present" : "MISSING");
}

// One front over one storage, with the operations the workload needs.
template <class Storage>
class disk_front {
public:
    using tier = tierguard::disk_tier<std::string, std::string, disk_policies<Storage>>;

    static std::optional<disk_front> open(const fs::path& root, const profile& p, std::string& why) {
        auto storage = Storage::open(storage_config(static_cast<const Storage*>(nullptr), root, p));
        if (!storage) {
            why = storage.error().message();
            return std::nullopt;
        }
        auto t = tier::open(std::move(*storage), disk_config_of());
        if (!t) {
            why = t.error().message();
            return std::nullopt;
        }
        return disk_front(std::move(*t));
    }
    static std::string census(const fs::path& root, const profile& p) { return census_of<Storage>(root, p); }
    bool put(const std::string& k, const std::string& v) { return m_tier.put(k, v).has_value(); }
    bool erase(const std::string& k) { return m_tier.erase(k).has_value(); }
    std::optional<std::string> get(const std::string& k) {
        auto r = m_tier.get(k);
        if (r) return std::move(*r);
        return std::nullopt;
    }
    void tick() {}
    bool drain() { return true; }
    [[nodiscard]] std::size_t held() const { return m_tier.size(); }
    [[nodiscard]] std::string stats() const {
        const auto s = m_tier.stats();
        return "entries " + std::to_string(s.entries) + ", disk_full_events " + std::to_string(s.disk_full_events) +
               ", emergency_evictions " + std::to_string(s.emergency_evictions) + ", io_errors " +
               std::to_string(s.io_errors);
    }

private:
    explicit disk_front(tier t) : m_tier(std::move(t)) {}
    tier m_tier;
};

template <class Storage>
class cache_front {
public:
    using cache_type = tierguard::cache<std::string, std::string, cache_policies<Storage>>;

    static std::optional<cache_front> open(const fs::path& root, const profile& p, std::string& why) {
        typename cache_type::config cfg;
        cfg.memory.byte_budget = 64 << 10;  // small: most gets reach the storage tier
        cfg.memory.shards = 4;
        cfg.storage = storage_config(static_cast<const Storage*>(nullptr), root, p);
        cfg.disk = disk_config_of();
        cfg.breaker.recovery_time = 5s;
        cfg.breaker.max_recovery_time = 5s;
        tierguard::clock::manual clock;
        auto c = cache_type::open(cfg, clock);
        if (!c) {
            why = c.error().message();
            return std::nullopt;
        }
        return cache_front(std::move(*c), clock);
    }
    static std::string census(const fs::path& root, const profile& p) { return census_of<Storage>(root, p); }
    bool put(const std::string& k, const std::string& v) { return m_cache.put(k, v).has_value(); }
    bool erase(const std::string& k) { return m_cache.erase(k).has_value(); }
    std::optional<std::string> get(const std::string& k) {
        auto r = m_cache.get(k);
        if (r) return std::move(r->value);
        return std::nullopt;
    }
    void tick() { m_clock.advance(1s); }
    // Lets the breaker close so that the storage copies superseded during an outage are
    // removed before the clean close (the caller has switched the faults off). The cache
    // removes them only when its breaker closes after being open; erasures that failed
    // while it stayed closed wait for that, so an operator's open/close cycle flushes them.
    bool drain() {
        auto settled = [&] {
            return m_cache.breaker().state() == tierguard::breaker_state::closed &&
                   m_cache.metrics().pending_erasures == 0;
        };
        for (int i = 0; i < 5 && !settled(); ++i) {
            m_clock.advance(10s);
            (void)m_cache.health(true);
        }
        if (settled()) return true;
        if (std::getenv("TIERGUARD_REALFAULT_NO_BREAKER_CYCLE") != nullptr) {
            std::printf("run: %llu pending erasures at close (the breaker is not cycled)\n",
                        static_cast<unsigned long long>(m_cache.metrics().pending_erasures));
            return false;
        }
        std::printf("run: %llu pending erasures with the breaker %s after the faults stopped; cycling the breaker\n",
                    static_cast<unsigned long long>(m_cache.metrics().pending_erasures),
                    std::string(tierguard::to_string(m_cache.breaker().state())).c_str());
        m_cache.breaker().force_open();
        (void)m_cache.health(false);
        m_cache.breaker().force_closed();
        (void)m_cache.health(false);
        return settled();
    }
    [[nodiscard]] std::size_t held() { return m_cache.disk().size(); }
    [[nodiscard]] std::string stats() const {
        const auto m = m_cache.metrics();
        return "disk entries " + std::to_string(m.storage.front().entries) + ", pending erasures " +
               std::to_string(m.pending_erasures) + ", disk_full errors " +
               std::to_string(m.storage.front().errors_of(tierguard::errc::disk_full)) + ", io errors " +
               std::to_string(m.storage.front().errors_of(tierguard::errc::io_error));
    }

private:
    cache_front(cache_type c, tierguard::clock::manual clock) : m_cache(std::move(c)), m_clock(std::move(clock)) {}
    cache_type m_cache;
    tierguard::clock::manual m_clock;
};

// ---- the model file: one line per key ----

void write_model(const fs::path& file, const std::map<int, key_model>& model, std::size_t held,
                 std::uint64_t capacity) {
    std::ofstream out(file);
    out << "held " << held << " capacity " << capacity << "\n";
    for (const auto& [key, m] : model) {
        out << key << " " << m.exact << " " << (m.erased ? 1 : 0) << " " << m.also.size();
        for (const auto s : m.also) out << " " << s;
        out << "\n";
    }
}

std::map<int, key_model> read_model(const fs::path& file, std::size_t& held, std::uint64_t& capacity) {
    std::ifstream in(file);
    std::map<int, key_model> model;
    std::string word;
    in >> word >> held >> word >> capacity;
    int key = 0;
    while (in >> key) {
        key_model m;
        int erased = 0;
        std::size_t n = 0;
        in >> m.exact >> erased >> n;
        m.erased = erased != 0;
        for (std::size_t i = 0; i < n; ++i) {
            std::uint64_t s = 0;
            in >> s;
            m.also.insert(s);
        }
        model[key] = m;
    }
    return model;
}

// ---- run and verify ----

// About how many of the profile's largest entries the file system at `mount` holds: its
// blocks over the blocks of one entry, or a third of its inodes (a file and its folders).
std::uint64_t capacity_of(const fs::path& mount, const profile& p) {
    struct statvfs sv {};
    if (::statvfs(mount.c_str(), &sv) != 0 || sv.f_frsize == 0) return 0;
    const std::uint64_t entry_blocks = (p.max_value + 200 + sv.f_frsize - 1) / sv.f_frsize;
    return std::min<std::uint64_t>(sv.f_blocks / entry_blocks, sv.f_files / 3);
}

template <class Front>
int run(const profile& p, std::uint64_t seed, const fs::path& root, const fs::path& model_file) {
    std::string why;
    std::optional<Front> front;
    for (int attempt = 1; attempt <= 50 && !front; ++attempt) {
        front = Front::open(root, p, why);  // an application retries an open that met a fault
        if (!front) std::printf("run: open %d failed: %s\n", attempt, why.c_str());
    }
    if (!front) {
        std::printf("FAIL: no open of 50 succeeded\n");
        return 1;
    }
    std::mt19937_64 rng(seed);
    std::map<int, key_model> model;
    tally live;
    std::uint64_t seq = 0, puts_failed = 0, erases_failed = 0, puts = 0, erases = 0, gets = 0;
    for (int op = 0; op < p.ops; ++op) {
        front->tick();
        const int key = p.fill ? op % p.keys : static_cast<int>(rng() % static_cast<std::uint64_t>(p.keys));
        const auto dice = rng() % 100;
        key_model& m = model[key];
        if (p.fill || dice < 55) {
            ++seq, ++puts;
            const std::size_t size = p.min_value + rng() % (p.max_value - p.min_value + 1);
            if (front->put(key_of(key), value_of(key, seq, size))) {
                m = key_model{static_cast<std::int64_t>(seq), false, {}};
            } else {
                ++puts_failed;
                m.also.insert(seq);
            }
        } else if (dice < 75) {
            ++erases;
            if (front->erase(key_of(key))) {
                m = key_model{-1, true, {}};
            } else {
                ++erases_failed;  // the key holds what it held, or nothing
            }
        } else {
            ++gets;
            live.add(judge(key, m, front->get(key_of(key))));
        }
    }
    using set_enabled_fn = void (*)(int);
    using faults_fn = long long (*)();
    const auto faults = reinterpret_cast<faults_fn>(::dlsym(RTLD_DEFAULT, "tierguard_shim_faults"));
    if (auto off = reinterpret_cast<set_enabled_fn>(::dlsym(RTLD_DEFAULT, "tierguard_shim_set_enabled")); off) off(0);
    const bool drained = front->drain();
    const std::size_t held = front->held();
    std::printf("run: %llu puts (%llu failed), %llu erases (%llu failed), %llu gets: %s\n",
                static_cast<unsigned long long>(puts), static_cast<unsigned long long>(puts_failed),
                static_cast<unsigned long long>(erases), static_cast<unsigned long long>(erases_failed),
                static_cast<unsigned long long>(gets), live.text().c_str());
    std::printf("run: at close: %s%s\n", front->stats().c_str(), drained ? "" : " (NOT drained)");
    front.reset();  // the clean close
    write_model(model_file, model, held, p.fill ? capacity_of(root.parent_path(), p) : 0);
    if (faults != nullptr && faults() == 0) {
        std::printf("FAIL: the shim injected no fault: this case tests nothing\n");
        return 1;
    }
    if (puts == puts_failed) {
        std::printf("FAIL: no put was acknowledged: this case tests nothing\n");
        return 1;
    }
    if (live.bad() != 0) {
        std::printf("FAIL: gets during the run returned older, erased or wrong values\n");
        return 1;
    }
    return 0;
}

template <class Front>
int verify(const profile& p, const fs::path& root, const fs::path& model_file) {
    std::size_t held = 0;
    std::uint64_t capacity = 0;
    const auto model = read_model(model_file, held, capacity);
    std::printf("verify: the storage holds %s\n", Front::census(root, p).c_str());
    std::string why;
    auto front = Front::open(root, p, why);
    if (!front) {
        std::printf("FAIL: reopen failed: %s\n", why.c_str());
        return 1;
    }
    tally after;
    std::uint64_t acknowledged = 0;
    for (const auto& [key, m] : model) {
        const verdict v = judge(key, m, front->get(key_of(key)));
        after.add(v);
        if (m.exact >= 0) ++acknowledged;
        if (v == verdict::older || v == verdict::resurrected || v == verdict::wrong)
            std::printf("  key %d: %s\n", key,
                        v == verdict::wrong   ? "wrong value"
                        : v == verdict::older ? "older value"
                                              : "erased value back");
    }
    const std::uint64_t readable = after.of(verdict::exact) + after.of(verdict::allowed);
    std::printf(
        "verify: %zu keys, %llu acknowledged values at close, %zu entries held at close, %llu readable after reopen\n",
        model.size(), static_cast<unsigned long long>(acknowledged), held, static_cast<unsigned long long>(readable));
    std::printf("verify: %s\n", after.text().c_str());
    int status = 0;
    if (after.bad() != 0) {
        std::printf("FAIL: older, erased or wrong values after reopen\n");
        status = 1;
    }
    if (p.fill)
        std::printf("fill: entries kept %llu (the file system holds about %llu)\n",
                    static_cast<unsigned long long>(readable), static_cast<unsigned long long>(capacity));
    if (readable < capacity / 4) {
        std::printf("FAIL: the tier kept fewer than a quarter of the %llu entries the file system can hold\n",
                    static_cast<unsigned long long>(capacity));
        status = 1;
    }
    // A fill must find every entry the tier held; under the shim, a reopen may evict to the
    // budget (a segment whose delete failed), but never lose most of the tier.
    if (p.fill ? readable < held : readable < held / 2) {
        std::printf("FAIL: the reopened tier reads %llu entries of the %zu it held at close\n",
                    static_cast<unsigned long long>(readable), held);
        status = 1;
    }
    return status;
}

// ---- processes ----

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// Runs this program again with `args`, the environment minus LD_PRELOAD and TIERGUARD_SHIM_*
// plus `extra`; returns its exit code.
int run_self(const std::vector<std::string>& args, const std::vector<std::string>& extra = {}) {
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) return 127;
    if (pid == 0) {
        std::vector<std::string> env;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string s = *e;
            if (s.rfind("LD_PRELOAD=", 0) != 0 && s.rfind("TIERGUARD_SHIM_", 0) != 0) env.push_back(s);
        }
        env.insert(env.end(), extra.begin(), extra.end());
        std::vector<char*> argv{const_cast<char*>("driver")}, envp;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        for (auto& s : env) envp.push_back(s.data());
        envp.push_back(nullptr);
        ::execve("/proc/self/exe", argv.data(), envp.data());
        std::perror("driver: execve /proc/self/exe");
        ::_exit(127);
    }
    return wait_for(pid);
}

int shell(const std::string& command) {
    std::fflush(stdout);
    const int rc = std::system(command.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// `work`, or a folder of its name on /dev/shm where that is a writable tmpfs: fsync there
// costs nothing, which keeps the runs short (an ext4 image there too: the loop device's
// flushes land in memory, while ext4 itself still runs out of blocks and inodes).
fs::path scratch(const fs::path& work) {
    struct statfs sf {};
    const fs::path shm = "/dev/shm";
    if (::statfs(shm.c_str(), &sf) == 0 && sf.f_type == TMPFS_MAGIC && ::access(shm.c_str(), W_OK) == 0)
        return shm / ("tierguard-" + work.filename().string());
    return work;
}

struct args {
    std::string front, storage;
};

// shim: the run under the shim, the verify in a fresh process without it.
int shim_case(const args& a, const std::string& lib, const std::string& rules, const std::string& seed,
              const fs::path& work) {
    // On tmpfs where there is one, so that the thousands of real fsyncs cost nothing: the
    // faults come from the shim, not from the file system.
    const fs::path dir = scratch(work);
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path root = dir / "cache";
    const fs::path model = dir / "model.txt";
    std::printf("shim: %s over %s, rules %s, seed %s, in %s\n", a.front.c_str(), a.storage.c_str(), rules.c_str(),
                seed.c_str(), dir.c_str());
    const int ran = run_self({"run", a.front, a.storage, "shim", seed, root.string(), model.string()},
                             {"LD_PRELOAD=" + lib, "TIERGUARD_SHIM_RULES=" + rules, "TIERGUARD_SHIM_SEED=" + seed,
                              "TIERGUARD_SHIM_PREFIX=" + fs::absolute(root).string()});
    if (ran != 0) std::printf("FAIL: the run under the shim exited with %d\n", ran);
    const int checked =
        ran != 0 ? 1 : run_self({"verify", a.front, a.storage, "shim", seed, root.string(), model.string()});
    if (checked == 0 || dir != work) fs::remove_all(dir);  // a failure on /work stays for a look
    return checked == 0 ? 0 : 1;
}

// fill: in a private mount namespace, a small file system on <work>/mnt filled past ENOSPC.
int fill_case(const args& a, const std::string& kind, const std::string& seed, const fs::path& work) {
    fs::remove_all(work);
    fs::create_directories(work / "mnt");
    const fs::path mnt = work / "mnt";
    const fs::path root = mnt / "cache";
    const fs::path model = work / "model.txt";
    const std::string profile = kind == "tmpfs-inodes" ? "fill-inodes" : "fill-bytes";
    const fs::path image_dir = scratch(work);
    fs::create_directories(image_dir);
    const fs::path image = image_dir / "ext4.img";
    if (kind == "ext4") {
        if (shell("command -v mkfs.ext4 >/dev/null") != 0) {
            std::printf("SKIPPED: mkfs.ext4 not found (Debian: e2fsprogs)\n");
            return 77;
        }
        if (shell("truncate -s 16M '" + image.string() + "' && mkfs.ext4 -q -F '" + image.string() + "' >/dev/null") !=
            0) {
            std::printf("FAIL: mkfs.ext4 failed\n");
            return 1;
        }
    }
    const int code = tierguard_test::in_child(
        [&]() -> int {
            if (kind == "ext4") {
                if (!tierguard_test::enter_private_mount_namespace()) return 77;
                const std::string mount = "mount -o loop '" + image.string() + "' '" + mnt.string() + "' 2>&1";
                if (shell(mount) != 0) return 78;
                const int ran = run_self({"run", a.front, a.storage, profile, seed, root.string(), model.string()});
                struct statvfs sv {};
                ::statvfs(mnt.c_str(), &sv);
                std::printf("fill: ext4 %llu of %llu blocks and %llu of %llu inodes free after the run\n",
                            static_cast<unsigned long long>(sv.f_bfree), static_cast<unsigned long long>(sv.f_blocks),
                            static_cast<unsigned long long>(sv.f_ffree), static_cast<unsigned long long>(sv.f_files));
                if (shell("umount '" + mnt.string() + "'") != 0 || shell(mount) != 0) return 79;
                if (ran != 0) return ran;
                const int checked =
                    run_self({"verify", a.front, a.storage, profile, seed, root.string(), model.string()});
                (void)shell("umount '" + mnt.string() + "'");
                return checked;
            }
            const char* options = kind == "tmpfs-inodes" ? "nr_inodes=2000,mode=0700" : "size=8m,mode=0700";
            if (!tierguard_test::mount_private_tmpfs(mnt.c_str(), options)) return 77;
            const int ran = run_self({"run", a.front, a.storage, profile, seed, root.string(), model.string()});
            struct statvfs sv {};
            ::statvfs(mnt.c_str(), &sv);
            std::printf("fill: tmpfs %llu of %llu blocks and %llu of %llu inodes free after the run\n",
                        static_cast<unsigned long long>(sv.f_bfree), static_cast<unsigned long long>(sv.f_blocks),
                        static_cast<unsigned long long>(sv.f_ffree), static_cast<unsigned long long>(sv.f_files));
            if (ran != 0) return ran;
            return run_self({"verify", a.front, a.storage, profile, seed, root.string(), model.string()});
        },
        120);
    std::error_code ignored;
    fs::remove_all(work, ignored);
    fs::remove_all(image_dir, ignored);
    if (code == 77) std::printf("SKIPPED: namespaces unavailable (unshare or mount of tmpfs refused)\n");
    if (code == 78) {
        std::printf("SKIPPED: mount -o loop refused (it needs real root and a loop device)\n");
        return 77;
    }
    return code;
}

template <template <class> class Front>
int dispatch_storage(const std::string& mode, const args& a, char** argv) {
    const profile p = profile_of(argv[4]);
    const std::uint64_t seed = std::strtoull(argv[5], nullptr, 10);
    const fs::path root = argv[6], model = argv[7];
    auto go = [&]<class Storage>(const Storage*) {
        return mode == "run" ? run<Front<Storage>>(p, seed, root, model) : verify<Front<Storage>>(p, root, model);
    };
    if (a.storage == "posix_directory") return go(static_cast<const tierguard::storage::posix_directory*>(nullptr));
    if (a.storage == "segment_log") return go(static_cast<const tierguard::storage::segment_log*>(nullptr));
    std::fprintf(stderr, "driver: unknown storage %s\n", a.storage.c_str());
    return 2;
}

int usage() {
    std::fprintf(stderr,
                 "usage: driver shim <disk|cache> <posix_directory|segment_log> <shim.so> <rules> <seed> <dir>\n"
                 "       driver fill <disk|cache> <posix_directory|segment_log> <tmpfs-size|tmpfs-inodes|ext4> "
                 "<seed> <dir>\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) return usage();
    const std::string mode = argv[1];
    const args a{argv[2], argv[3]};
    if (a.front != "disk" && a.front != "cache") return usage();
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    if (mode == "shim" && argc == 8) return shim_case(a, argv[4], argv[5], argv[6], argv[7]);
    if (mode == "fill" && argc == 7) return fill_case(a, argv[4], argv[5], argv[6]);
    if ((mode == "run" || mode == "verify") && argc == 8) {
        return a.front == "disk" ? dispatch_storage<disk_front>(mode, a, argv)
                                 : dispatch_storage<cache_front>(mode, a, argv);
    }
    return usage();
}
