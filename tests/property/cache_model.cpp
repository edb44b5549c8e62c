// Model-based (rc::state) test of the composed cache over storage::fault_injecting: random
// sequences of put (tagged or not), get, erase, invalidate_tag, clock advances, scrubs, reopens (with and without
// scrub_on_open) and fault-rate changes run against the cache and a reference model, once over memory_storage, once
// over a shared memory_storage standing in for a remote tier (Redis: the disk tier in shared mode), once over a real
// posix_directory (real files, renames and scans, faults injected around it) and once over a real segment_log
// (append-only segment files; see segment_backend for where its refinement of the storage concept is kept out of the
// model's way). A second model (shared_harness, below) runs two caches on one shared remote with distributed
// invalidation: memory -> remote and memory -> disk -> remote, faults in both storages, the links taken down and up.
//
// After every command: no exception escaped; a get returned a miss or exactly the value the
// model allows for the key (DESIGN.md invariant 2); the memory budget (grown while degraded)
// and the disk budget hold; no temp file is left (invariant 4); the error and corruption
// counters are explained by the faults injected. At the end of each sequence the faults stop,
// the clock passes the breaker's longest open period, and the storage tier must serve again
// (invariant 3) with its files matching its index and budget.
//
// ctest runs 1000 sequences (TIERGUARD_RC_PARAMS) of 1 to size + 1 commands, rapidcheck's size
// growing to max_size (100). Soak:
//   RC_PARAMS="max_success=100000" ./property.cache_model
// A failure prints the seed ("Using configuration: seed=...") and the shrunk command
// sequence; RC_PARAMS="seed=<seed>" replays it. Each property prints a summary line
// (sequences, commands, gets by outcome, faults injected by kind).
//
// The model follows what the cache reported (which tier took a write), since the faults make
// that unpredictable from the commands alone; rapidcheck's own model only drives generation.
//
// The model, per key: `truth`, the value a get may return in this cache's lifetime (or
// nothing); `disk`, the last value the storage tier acknowledged (a put that reached it, or
// nothing after an erase that reached it); `pending`, set when a put or erase did not reach
// the storage tier, so that `disk` is older than `truth`. The cache keeps such keys in memory
// ("pending erasures") and never serves their storage copy. That record lives in memory only
// and does not survive a reopen: after one, a pending key's truth becomes its older storage
// copy (a known gap of invariant 2 across restarts, e.g. put v1; writes fail; put v2, kept in
// memory; reopen; get serves v1). The summary counts the gets that served such a value
// ("resurrected"); once the cache closes that gap, make them a failure.

#include "support/property.hpp"
#include "support/shared_memory_storage.hpp"
#include "support/temp_dir.hpp"

#if TIERGUARD_MODEL_REDIS
#include "support/redis_server.hpp"

#include <tierguard/storage/redis.hpp>
#endif

#include <rapidcheck/state.h>
#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using tierguard::errc;
using tierguard::stored_in;
using tierguard::tier;
using tierguard::storage::fault;
using tierguard::storage::fault_count;
using tierguard::storage::fault_rates;
using tierguard::storage::op;
using tierguard::storage::op_count;
using clock_type = tierguard::clock::manual;
using time_point = clock_type::time_point;
namespace fs = std::filesystem;

// Few keys, so that commands collide; names a careless storage would turn into paths, a
// NUL byte, an empty key, a long one.
const std::array<std::string, 8> keys = {"k", "../x",   "a/b",      std::string("nul\0byte", 8),
                                         "",  ".tmp.1", "\xc3\xbc", std::string(100, 'L')};

// Value sizes: small, medium, too large for a memory shard (storage only), too large for
// any tier.
constexpr std::array<std::size_t, 8> value_sizes = {0, 8, 24, 60, 120, 200, 300, 1500};
// Per-entry TTLs; 0 = the default TTL.
constexpr std::array<std::chrono::milliseconds, 5> ttls = {0ms, 500ms, 1s, 5s, 30s};
constexpr std::array<std::chrono::milliseconds, 6> steps = {10ms, 400ms, 2s, 6s, 40s, 5min};
constexpr std::array<double, 4> rate_choices = {0.0, 0.05, 0.2, 0.5};
constexpr std::array<std::chrono::milliseconds, 3> latencies = {0ms, 1ms, 300ms};

constexpr std::size_t memory_budget = 512;  // two shards of 256 bytes
constexpr std::size_t memory_shards = 2;
constexpr std::uint64_t disk_budget = 1200;
constexpr double budget_factor = 2.0;
constexpr auto default_ttl = 60s;
constexpr std::uint32_t test_requests = 2;
constexpr auto max_recovery = 16s;

std::string show_key(const std::string& key) {
    std::string out = "\"";
    if (key.size() > 16) return out + key.substr(0, 3) + "...(" + std::to_string(key.size()) + " bytes)\"";
    for (const char c : key) {
        if (c == '\0') {
            out += "\\0";
        } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[static_cast<unsigned char>(c) >> 4];
            out += hex[static_cast<unsigned char>(c) & 0xf];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

// A value that names the put that made it: its first 8 bytes are the put's serial.
std::string make_value(std::uint64_t serial, std::size_t size) {
    std::string v(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        v[i] = i < 8 ? static_cast<char>((serial >> (8 * i)) & 0xff) : static_cast<char>('a' + (serial + i) % 26);
    return v;
}

// Which put made a value (see make_value), for failure messages.
std::string describe(const std::string& value) {
    if (value.size() < 8) return "a " + std::to_string(value.size()) + "-byte value";
    std::uint64_t serial = 0;
    for (std::size_t i = 0; i < 8; ++i) serial |= std::uint64_t{static_cast<unsigned char>(value[i])} << (8 * i);
    return "the value of put #" + std::to_string(serial) + " (" + std::to_string(value.size()) + " bytes)";
}

// Entry blobs as the storage lists them (not the meta blob).
struct listed {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
};

template <class Listing>
listed entries_of(const Listing& blobs) {
    listed out;
    for (const tierguard::blob_info& b : blobs) {
        if (b.name == "tierguard-meta") continue;
        ++out.entries;
        out.bytes += b.size;
    }
    return out;
}

struct memory_backend {
    using inner = tierguard_test::shared_memory_storage;
    [[maybe_unused]] static constexpr std::string_view name = "memory_storage";
    std::shared_ptr<tierguard::storage::memory_storage> store = std::make_shared<tierguard::storage::memory_storage>();

    tierguard::result<inner> make() { return inner(store); }
    // memory_storage has no temp files; its listing must hold only the meta blob and entry
    // names ("ab/cd/<16 hex>").
    [[nodiscard]] std::optional<std::string> stray_file() const {
        const auto blobs = store->list();
        for (const auto& b : *blobs) {
            if (b.name == "tierguard-meta") continue;
            if (b.name.size() != 22 || b.name[2] != '/' || b.name[5] != '/') return b.name;
        }
        return std::nullopt;
    }
    [[nodiscard]] listed on_disk(const inner&) const {
        const auto blobs = store->list();
        return entries_of(*blobs);
    }
};

// A shared view of one memory_storage, standing in for a remote server (Redis) that every
// instance sees: the disk tier over it runs in shared mode (no index, no byte budget, no
// meta blob, failures and hits named tier::remote); nothing expires by itself, so expired
// entries are the tier's to skip. The faults are injected as into a disk.
struct remote_backend : memory_backend {
    class inner : public tierguard_test::shared_memory_storage {
    public:
        using shared_memory_storage::shared_memory_storage;
        [[maybe_unused]] static constexpr bool shared = true;
    };
    [[maybe_unused]] static constexpr std::string_view name = "remote memory_storage";

    tierguard::result<inner> make() { return inner(store); }
    [[nodiscard]] listed on_disk(const inner&) const {
        const auto blobs = store->list();
        return entries_of(*blobs);
    }
};

#if TIERGUARD_MODEL_REDIS
// Without redis-server the binary reports skipped (ctest SKIP_RETURN_CODE 77) with the
// reason; in CI (CI set) it fails instead.
[[maybe_unused]] const bool redis_available = tierguard_test::redis_server_or_exit("property.cache_model_redis");

// One real redis-server for the run (no persistence), emptied before each sequence.
tierguard_test::redis_server& model_server() {
    static tierguard_test::redis_server server;
    return server;
}

// A real storage::redis on that server, the disk tier in shared mode over it. Redis expires
// entries by wall time while the model's clock is manual: an entry may vanish early (a
// miss, which the model allows) or outlive its TTL on the server (the tier checks the
// frame's expiry against its own clock).
struct redis_backend {
    using inner = tierguard::storage::redis;
    static constexpr std::string_view name = "redis-server";
    redis_backend() { (void)model_server().command({"FLUSHALL"}); }

    tierguard::result<inner> make() {
        return inner::open({.endpoints = {model_server().unix_url()},
                            .command_timeout = 2000ms,
                            .pool_size = 1,
                            .backoff_min = 0ms,
                            .backoff_max = 0ms});
    }
    // SET replaces a value in one step: no temp keys to leave behind.
    [[nodiscard]] std::optional<std::string> stray_file() const { return std::nullopt; }
    [[nodiscard]] listed on_disk(const inner&) const { return {}; }  // a shared tier keeps no index to match
};
#endif

struct posix_backend {
    using inner = tierguard::storage::posix_directory;
    [[maybe_unused]] static constexpr std::string_view name = "posix_directory";
    tierguard_test::temp_dir dir;
    fs::path root = dir.path() / "cache";

    tierguard::result<inner> make() { return inner::open({.root = root, .sync = tierguard::durability::none}); }
    // A temp file (".tmp.<pid>.<n>") anywhere in the tree outlived its write.
    [[nodiscard]] std::optional<std::string> stray_file() const {
        std::error_code ec;
        for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec))
            if (it->path().filename().string().starts_with(".tmp.")) return it->path().string();
        return std::nullopt;
    }
    // The files themselves, not the storage's view of them.
    [[nodiscard]] listed on_disk(const inner&) const {
        listed out;
        std::error_code ec;
        for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
            if (it->path().filename() == "quarantine") {
                it.disable_recursion_pending();
                continue;
            }
            const std::string leaf = it->path().filename().string();
            if (!it->is_regular_file() || leaf.starts_with('.') || leaf == "tierguard-meta") continue;
            ++out.entries;
            out.bytes += it->file_size();
        }
        return out;
    }
};

template <class Backend>
struct cache_policies : tierguard::cache_defaults {
    using clock = clock_type;
    using storage = tierguard::storage::fault_injecting<typename Backend::inner, clock_type>;
};

// What a get of a key may return (besides a miss).
struct entry {
    std::string value;
    std::uint64_t serial = 0;
    time_point expiry = time_point::max();
    std::string tag;  // "" = none
    friend bool operator==(const entry&, const entry&) = default;
};

// Tags a put may carry ("" = none); invalidate_tag picks one of the others.
const std::array<std::string, 3> tags = {"", "red", "blue"};

struct key_model {
    std::optional<entry> truth;
    std::optional<entry> disk;
    bool pending = false;
    bool resurrected = false;  // truth is an older storage copy that a reopen brought back
    std::string noted;         // the tag of this lifetime's last put (the cache's own tag index)
    std::string copied;        // the tag of a copy a get read from storage: the cache may have noted it
};

// Counts over one property's run, for the summary line.
struct totals {
    std::uint64_t sequences = 0, commands = 0, gets = 0, memory_hits = 0, disk_hits = 0, misses = 0, failed_gets = 0,
                  puts = 0, puts_memory_only = 0, puts_storage = 0, failed_puts = 0, reopens = 0, scrubbed_reopens = 0,
                  failed_opens = 0, degraded_opens = 0, scrubs = 0, failed_scrubs = 0, resurrected = 0, recoveries = 0,
                  invalidations = 0, invalidated = 0;
    std::array<std::uint64_t, fault_count> faults{};
    std::uint64_t storage_calls = 0;
    // segment_log only (booked as each cache closes): what its segment eviction did.
    std::uint64_t segments_evicted = 0, entries_evicted = 0, entries_reinserted = 0;

    void add(const tierguard::storage::fault_counters& c) {
        for (std::size_t k = 0; k < fault_count; ++k) faults[k] += c.injected(static_cast<fault>(k));
        storage_calls += c.calls();
    }

    void print(std::string_view backend) const {
        std::uint64_t injected = 0;
        for (const auto n : faults) injected += n;
        std::ostringstream out;
        out << "cache_model[" << backend << "]: " << sequences << " sequences, " << commands << " commands (" << puts
            << " puts: " << puts_storage << " reached storage, " << puts_memory_only << " memory only, " << failed_puts
            << " failed; " << gets << " gets: " << memory_hits << " memory hits, " << disk_hits << " storage hits, "
            << misses << " plain misses, " << failed_gets << " failed; " << reopens << " reopens (" << scrubbed_reopens
            << " with scrub_on_open), " << failed_opens << " opens refused, " << degraded_opens << " opened degraded; "
            << scrubs << " scrubs, " << failed_scrubs << " failed; " << resurrected << " resurrected after reopen; "
            << invalidations << " invalidate_tag, " << invalidated << " keys removed), " << storage_calls
            << " storage calls, " << injected << " faults injected:";
        for (std::size_t k = 0; k < fault_count; ++k)
            out << ' ' << tierguard::storage::to_string(static_cast<fault>(k)) << '=' << faults[k];
        out << "; storage tier back in service after " << recoveries << " of " << sequences << " sequences";
        if (segments_evicted != 0)
            out << "; " << segments_evicted << " segments evicted, " << entries_evicted << " blobs with them, "
                << entries_reinserted << " carried over";
        std::cout << out.str() << std::endl;
    }
};

// segment_log, the refinement of the storage concept (see its class comment), on real files,
// in the smallest shape it takes: two segments of 4 KiB. Where it differs from what the
// model assumes:
//  - blobs vanish when the oldest segment is evicted: the model allows a miss for every get
//    (never an older value), and the final scrub reads every blob, so that any eviction
//    after it carries them over and the listing still matches the tier's index (the meta
//    blob is pinned). A sequence writes a few KiB at most, so every open appends and removes
//    a dead 3300-byte blob: segments roll, and the oldest (with its unread blobs) is evicted,
//    about once per open; the summary line counts the evictions;
//  - durability::none buffers appends (a small buffer, so reads meet both the file and the
//    buffer): the model reopens only after a clean destruction, which writes the buffer out;
//  - no temp files: anything in the root but segment files, the lock and the quarantine
//    folder is stray;
//  - list() reads the segments, buffer included: on_disk() asks the open storage.
//  - the disk tier keeps no index of its own (fault_injecting forwards the log's contains(),
//    held_blobs() and peek()): entries and bytes are the log's, as over a bare segment_log,
//    bounded by the log's byte_budget (disk_config::byte_budget then bounds one frame only);
//    reopens scrub at open or not (scrub_on_open, drawn by reopen_cmd), the first open not.
struct segment_backend {
    using inner = tierguard::storage::segment_log;
    [[maybe_unused]] static constexpr std::string_view name = "segment_log";
    static constexpr std::uint64_t segment_size = 4096;
    static constexpr std::uint64_t byte_budget = 2 * segment_size;  // rules over disk_config::byte_budget
    static constexpr std::size_t dead_bytes = 3300;
    tierguard_test::temp_dir dir;
    fs::path root = dir.path() / "cache";

    tierguard::result<inner> make() {
        auto s = inner::open({.root = root,
                              .sync = tierguard::durability::none,
                              .segment_size = segment_size,
                              .byte_budget = byte_budget,
                              .write_buffer = 1024});
        if (s) {
            const std::vector<std::byte> dead(dead_bytes, std::byte{'d'});
            RC_ASSERT(s->write("dead", dead).has_value());
            RC_ASSERT(s->remove("dead").has_value());
        }
        return s;
    }
    [[nodiscard]] std::optional<std::string> stray_file() const {
        std::error_code ec;
        for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
            const std::string leaf = it->path().filename().string();
            if (leaf == ".lock" || leaf == "quarantine") continue;
            // segment files, pinned blobs' side files, the newest-segment marker
            if (!tierguard::storage::segment_log::owns_file(leaf)) return it->path().string();
        }
        return std::nullopt;
    }
    [[nodiscard]] listed on_disk(const inner& s) const {
        const auto blobs = s.list();
        RC_ASSERT(blobs.has_value());
        return entries_of(*blobs);
    }
    // Books what the storage evicted and carried in the lifetime now ending.
    static void closing(const inner& s, totals& t) {
        const auto st = s.stats();
        t.segments_evicted += st.segments_evicted;
        t.entries_evicted += st.entries_evicted;
        t.entries_reinserted += st.entries_reinserted;
    }
};

// The system under test with its reference model.
template <class Backend>
struct harness {
    using cache_type = tierguard::cache<std::string, std::string, cache_policies<Backend>>;
    using storage_type = typename cache_type::storage_type;
    static constexpr bool shared = cache_type::disk_type::shared;
    static constexpr tier storage_tier = cache_type::disk_type::tier_kind;
    // The bytes the storage tier may hold: disk_budget, or the storage's own where it rules
    // (segment_log's: the tier keeps no index there, and its budget only bounds one frame).
    static constexpr std::uint64_t storage_budget = [] {
        if constexpr (requires { Backend::byte_budget; })
            return Backend::byte_budget;
        else
            return disk_budget;
    }();

    totals& sums;
    std::uint64_t fault_seed;
    Backend backend;
    clock_type clock;
    typename cache_type::config cfg = make_config();
    std::array<fault_rates, op_count> rates{};  // as set by the commands, re-applied at reopen
    std::optional<cache_type> cache;
    std::optional<tierguard::storage::fault_control> faults;
    std::array<key_model, keys.size()> model{};
    std::uint64_t serial = 0;
    std::uint64_t opens = 0;
    static constexpr std::uint64_t no_scan = ~std::uint64_t{0};
    std::uint64_t scanned_writes = no_scan;  // storage writes when the tree was last scanned
    const char* phase = "command";           // or the final check, for failure messages

    harness(totals& t, std::uint64_t seed) : sums(t), fault_seed(seed) {
        ++sums.sequences;
        if constexpr (!shared) plant_secret();  // a shared tier names blobs with a fixed key
        open();
    }

    // A hash secret made from the seed, where the disk tier would draw a random one: blob
    // names, and so listing and eviction orders, then repeat when a seed is replayed (until a
    // fault destroys the meta blob and the tier draws a new secret).
    void plant_secret() {
        auto inner = backend.make();
        RC_ASSERT(inner.has_value());
        const std::string_view meta = cache_type::disk_type::meta_name;
        std::array<std::byte, 16> secret{};
        for (std::size_t i = 0; i < secret.size(); ++i)
            secret[i] = static_cast<std::byte>((fault_seed >> (8 * (i % 8))) ^ (i * 37));
        std::vector<std::byte> blob;
        RC_ASSERT(tierguard::frame::encode(std::as_bytes(std::span(meta)), secret, 1, 0, 0, blob).has_value());
        RC_ASSERT(inner->write(meta, blob).has_value());
    }
    harness(const harness&) = delete;
    harness& operator=(const harness&) = delete;
    ~harness() { close(); }

    static typename cache_type::config make_config() {
        typename cache_type::config c;
        c.memory = {.byte_budget = memory_budget, .shards = memory_shards};
        c.disk.byte_budget = disk_budget;
        c.breaker = {.failure_threshold = 3,
                     .recovery_time = 2s,
                     .max_recovery_time = max_recovery,
                     .test_requests = test_requests};
        c.degradation = {.budget_factor = budget_factor};
        c.default_ttl = default_ttl;
        return c;
    }

    // Closes the cache; books what its storage did (backends that count it) and the faults.
    void close() {
        if constexpr (requires { Backend::closing(cache->disk().storage().inner(), sums); })
            if (cache && cache->attached()) Backend::closing(cache->disk().storage().inner(), sums);
        cache.reset();
        retire();
    }

    // Books the counters of the decorator about to go.
    void retire() {
        if (faults) sums.add(faults->counters());
        faults.reset();
    }

    // Opens over what the last cache left, with the faults as the commands set them. An open
    // whose listing, cleaning or meta blob fails runs degraded, its storage tier detached until
    // a probe attaches it (issue 14); one that fails must fail cleanly: it is retried, and after
    // eight refusals the faults are stopped.
    void open() {
        for (int attempt = 0;; ++attempt) {
            if (attempt == 8) rates.fill(fault_rates{});
            auto inner = backend.make();
            RC_ASSERT(inner.has_value());
            storage_type storage(std::move(*inner), {.seed = fault_seed + 0x9e3779b97f4a7c15ULL * ++opens}, clock);
            faults.emplace(storage.control());
            scanned_writes = no_scan;
            for (std::size_t o = 0; o < op_count; ++o) faults->set_rates(static_cast<op>(o), rates[o]);
            auto opened = cache_type::open(cfg, std::move(storage), clock);
            if (opened) {
                cache.emplace(std::move(*opened));
                if (!cache->attached()) ++sums.degraded_opens;
                return;
            }
            ++sums.failed_opens;
            retire();
            RC_ASSERT(attempt < 8);
        }
    }

    [[nodiscard]] std::uint64_t disk_errors() const {
        const auto mt = cache->metrics();
        std::uint64_t sum = 0;
        for (const auto n : mt.storage.front().errors) sum += n;
        return sum;
    }

    static bool fits_memory_shard(const std::string& key, const std::string& value, std::size_t budget) {
        return key.size() + value.size() <= budget / memory_shards;
    }

    // Invariants that hold after every command.
    void check_invariants() {
        const auto mt = cache->metrics();
        const std::size_t budget = cache->memory().byte_budget();
        RC_ASSERT(mt.memory.bytes <= budget);
        // memory_only: the budget is grown exactly while degraded.
        RC_ASSERT(budget ==
                  (cache->degraded() ? static_cast<std::size_t>(memory_budget * budget_factor) : memory_budget));
        RC_ASSERT(mt.storage.size() == 1);
        RC_ASSERT(mt.storage.front().bytes <= storage_budget);
        // The cache's pending erasures are keys whose last write missed the storage tier.
        std::uint64_t pending = 0;
        for (const key_model& km : model) pending += km.pending ? 1 : 0;
        RC_ASSERT(mt.pending_erasures <= pending);
        // Every error and every corrupted entry has an injected fault behind it (this lifetime).
        const auto injected = faults->counters();
        // Only a write makes temp files: the tree is scanned after commands that wrote.
        if (injected.calls(op::write) != scanned_writes) {
            if (const auto stray = backend.stray_file()) RC_FAIL("a temp or stray file was left: " + *stray);
            scanned_writes = injected.calls(op::write);
        }
        RC_ASSERT(mt.storage.front().corrupted <=
                  injected.injected(fault::bit_flip) + injected.injected(fault::truncation));
        RC_ASSERT(mt.storage.front().errors_of(errc::io_error) + mt.storage.front().errors_of(errc::permission_denied) +
                      mt.storage.front().errors_of(errc::disk_full) <=
                  injected.injected(fault::io_error) + injected.injected(fault::permission_denied) +
                      injected.injected(fault::disk_full) + injected.injected(fault::torn_write));
    }

    // The get check: a miss, or exactly what the model allows, unexpired when the get began.
    void check_get(std::size_t k) {
        const time_point began = clock.now();
        key_model& km = model[k];
        // contains() answers from memory and the storage index: only for a key with a live value,
        // unless a bit flip hit the frame header it read for the expiry (the disk tier checks no
        // CRC there: "a get may still miss"; over segment_log, and after an open without scrub).
        const auto flips = faults->counters().injected(op::read, fault::bit_flip);
        if (cache->contains(keys[k]) && faults->counters().injected(op::read, fault::bit_flip) == flips)
            RC_ASSERT(km.truth.has_value() && km.truth->expiry > began);
        auto got = cache->get(keys[k]);
        ++sums.gets;
        if (!got) {
            if (got.error().code() == errc::miss || got.error().code() == errc::expired) {
                ++sums.misses;
            } else {
                ++sums.failed_gets;
            }
            return;
        }
        if (!km.truth || got->value != km.truth->value || km.truth->expiry <= began)
            RC_FAIL(std::string(phase) + ": get(" + show_key(keys[k]) + ") from the " +
                    std::string(tierguard::to_string(got->from)) + " tier returned " + describe(got->value) +
                    "; the model allows a miss" +
                    (km.truth ? " or " + describe(km.truth->value) + (km.truth->expiry <= began ? ", expired" : "")
                              : std::string()));
        RC_ASSERT(!got->stale);
        if (km.resurrected) ++sums.resurrected;
        if (got->from == tier::memory) {
            ++sums.memory_hits;
        } else {
            RC_ASSERT(got->from == storage_tier);
            ++sums.disk_hits;
            km.copied = km.truth->tag;  // promoted into memory (unless skipped) with its tags
        }
    }

    void put(std::size_t k, std::size_t size, std::chrono::milliseconds ttl, const std::string& tag) {
        const std::string& key = keys[k];
        const std::string value = make_value(++serial, size);
        const time_point began = clock.now();
        const std::size_t budget = cache->memory().byte_budget();  // the one this put meets
        tierguard::put_options options;
        if (ttl != 0ms) options.ttl = ttl;
        if (!tag.empty()) options.tags = {tag};
        auto stored = options.ttl || !tag.empty() ? cache->put(key, value, options) : cache->put(key, value);
        ++sums.puts;
        key_model& km = model[k];
        km.resurrected = false;
        km.noted = tag;
        km.copied.clear();
        const std::chrono::nanoseconds life = ttl == 0ms ? std::chrono::nanoseconds(default_ttl) : ttl;
        const entry e{value, serial, began + std::chrono::duration_cast<clock_type::duration>(life), tag};
        if (!stored) {
            // Only a value that no memory shard can hold may fail: the storage failed too.
            RC_ASSERT(!fits_memory_shard(key, value, budget));
            ++sums.failed_puts;
            km.pending = true;
            return;
        }
        RC_ASSERT(stored->where != stored_in::nowhere);
        km.truth = e;
        if (stored->where == stored_in::storage || stored->where == stored_in::memory_and_storage) {
            if (stored->where == stored_in::storage) RC_ASSERT(!fits_memory_shard(key, value, budget));
            RC_ASSERT(!stored->skipped || stored->where == stored_in::storage);
            km.disk = e;
            km.pending = false;
            ++sums.puts_storage;
        } else {
            RC_ASSERT(stored->skipped.has_value());
            km.pending = true;
            ++sums.puts_memory_only;
        }
    }

    void erase(std::size_t k) {
        const std::uint64_t errors_before = disk_errors();
        auto erased = cache->erase(keys[k]);
        RC_ASSERT(erased.has_value());  // memory_only never fails an erase
        key_model& km = model[k];
        km.truth.reset();
        km.resurrected = false;
        // A failed or refused storage erase is counted as a storage error; none: it reached it.
        if (disk_errors() == errors_before) {
            km.disk.reset();
            km.pending = false;
        } else {
            km.pending = true;
        }
    }

    // The cache finds a key by its tag in its own index (this lifetime's last put of it) and
    // in a non-shared storage tier's index (the tag in the stored frame), then erases it as
    // erase() does. If no storage call failed, each key found is gone from every tier. The
    // model knows the stored frame only while the key is not pending (a pending key's copy
    // may have been removed already, or have left the index when a removal failed): such a
    // key, and every key after a refused or failed lookup or erase, may or may not remain.
    void invalidate(const std::string& tag) {
        const std::uint64_t errors_before = disk_errors();
        auto removed = cache->invalidate_tag(tag);
        ++sums.invalidations;
        const bool reached = removed.has_value() && disk_errors() == errors_before;
        if (!removed) RC_ASSERT(disk_errors() != errors_before);  // an error is a storage tier's
        for (key_model& km : model) {
            // A copy read from the storage tier (promoted into memory) is noted with its tags
            // too, so the cache may find and erase any key whose stored copy has the tag; the
            // model cannot tell which, so a failed call leaves every such key pending.
            const bool tagged_copy = km.disk && km.disk->tag == tag;
            const bool stored_with_tag = !shared && tagged_copy;
            const bool found = km.noted == tag || (stored_with_tag && !km.pending);
            if (reached && found) {
                km.truth.reset();
                if (!km.pending) km.disk.reset();
                km.resurrected = false;
                km.noted.clear();
            } else if (found || tagged_copy || km.copied == tag) {
                km.pending = true;
            }
            if (km.copied == tag) km.copied.clear();  // taken from the cache's index either way
        }
        if (removed) sums.invalidated += *removed;
    }

    void scrub() {
        auto report = cache->scrub();
        ++sums.scrubs;
        if (!report) ++sums.failed_scrubs;
    }

    // Reopens with a scrub (every blob read and checked) or, as by default, without (the
    // index from the listing; over segment_log the tier then keeps no index of its own).
    void reopen(bool scrub_on_open) {
        close();
        cfg.disk.scrub_on_open = scrub_on_open;
        for (key_model& km : model) {
            // Within a lifetime a key that is not pending has its truth on the storage tier.
            if (!km.pending) RC_ASSERT(km.truth == km.disk);
            km.resurrected = km.pending && km.disk && km.truth != km.disk;
            km.truth = km.disk;
            km.pending = false;
            km.noted.clear();
            km.copied.clear();
        }
        ++sums.reopens;
        if (scrub_on_open) ++sums.scrubbed_reopens;
        open();
    }

    void set_rates(std::optional<op> which, const fault_rates& r) {
        if (which) {
            rates[static_cast<std::size_t>(*which)] = r;
            faults->set_rates(*which, r);
        } else {
            rates.fill(r);
            faults->set_rates(r);
        }
    }

    // Invariant 3 at the end of a sequence: the faults stop, the clock passes the longest open
    // period, and the storage tier serves again: writes reach it, the breaker closes, pending
    // erasures are flushed, a key not in memory is read from it; its files match its index
    // and budget. Then every key still reads as the model allows.
    void recover() {
        phase = "final check after recovery";
        rates.fill(fault_rates{});
        faults->heal();
        clock.advance(max_recovery + 1s);
        for (std::uint32_t i = 0; i < test_requests; ++i) {
            auto stored = cache->put("recovery-probe-" + std::to_string(i), "probe");
            RC_ASSERT(stored.has_value());
            RC_ASSERT(stored->where == stored_in::memory_and_storage);
        }
        RC_ASSERT(cache->breaker().state() == tierguard::breaker_state::closed);
        RC_ASSERT(!cache->degraded());
        RC_ASSERT(cache->health().status == tierguard::health_status::healthy);
        cache->memory().erase("recovery-probe-0");
        auto back = cache->get("recovery-probe-0");
        RC_ASSERT(back.has_value());
        RC_ASSERT(back->from == storage_tier);
        RC_ASSERT(back->value == std::string("probe"));
        auto scrubbed = cache->scrub();
        RC_ASSERT(scrubbed.has_value());
        const auto mt = cache->metrics();
        const listed files = backend.on_disk(cache->disk().storage().inner());
        if constexpr (shared) {
            // No index and no budget: the server's to keep (Redis's maxmemory); reported as 0.
            RC_ASSERT(mt.storage.front().entries == 0 && mt.storage.front().bytes == 0);
            RC_ASSERT(mt.storage.front().which == tier::remote);
        } else {
            RC_ASSERT(files.bytes <= storage_budget);
            RC_ASSERT(files.entries == mt.storage.front().entries);
            RC_ASSERT(files.bytes == mt.storage.front().bytes);
        }
        check_invariants();
        for (std::size_t k = 0; k < keys.size(); ++k) check_get(k);
        ++sums.recoveries;
    }
};

struct gen_model {};  // the reference model lives in the harness (see the file comment)

template <class H>
using command = rc::state::Command<gen_model, H>;

// Runs one command's body: an exception escaping the cache fails the property; the invariants
// are checked after it.
template <class H, class F>
void guarded(H& h, const char* what, F&& body) {
    ++h.sums.commands;
    try {
        body();
    } catch (const rc::detail::CaseResult&) {
        throw;
    } catch (const std::exception& e) {
        RC_FAIL(std::string(what) + " threw: " + e.what());
    } catch (...) {
        RC_FAIL(std::string(what) + " threw a non-standard exception");
    }
    h.check_invariants();
}

template <class H>
struct put_cmd : command<H> {
    std::size_t key = *rc::gen::inRange<std::size_t>(0, keys.size());
    std::size_t size = *rc::gen::elementOf(value_sizes);
    std::chrono::milliseconds ttl = *rc::gen::elementOf(ttls);
    std::string tag = *rc::gen::elementOf(tags);
    void run(const gen_model&, H& h) const override {
        guarded(h, "put", [&] { h.put(key, size, ttl, tag); });
    }
    void show(std::ostream& os) const override {
        os << "put(" << show_key(keys[key]) << ", " << size << " bytes";
        if (ttl != 0ms) os << ", ttl " << ttl.count() << "ms";
        if (!tag.empty()) os << ", tag " << tag;
        os << ")";
    }
};

template <class H>
struct invalidate_cmd : command<H> {
    std::string tag = tags[*rc::gen::inRange<std::size_t>(1, tags.size())];
    void run(const gen_model&, H& h) const override {
        guarded(h, "invalidate_tag", [&] { h.invalidate(tag); });
    }
    void show(std::ostream& os) const override { os << "invalidate_tag(" << tag << ")"; }
};

template <class H>
struct get_cmd : command<H> {
    std::size_t key = *rc::gen::inRange<std::size_t>(0, keys.size());
    void run(const gen_model&, H& h) const override {
        guarded(h, "get", [&] { h.check_get(key); });
    }
    void show(std::ostream& os) const override { os << "get(" << show_key(keys[key]) << ")"; }
};

template <class H>
struct erase_cmd : command<H> {
    std::size_t key = *rc::gen::inRange<std::size_t>(0, keys.size());
    void run(const gen_model&, H& h) const override {
        guarded(h, "erase", [&] { h.erase(key); });
    }
    void show(std::ostream& os) const override { os << "erase(" << show_key(keys[key]) << ")"; }
};

template <class H>
struct advance_cmd : command<H> {
    std::chrono::milliseconds step = *rc::gen::elementOf(steps);
    void run(const gen_model&, H& h) const override {
        guarded(h, "advance", [&] { h.clock.advance(step); });
    }
    void show(std::ostream& os) const override { os << "advance(" << step.count() << "ms)"; }
};

template <class H>
struct scrub_cmd : command<H> {
    void run(const gen_model&, H& h) const override {
        guarded(h, "scrub", [&] { h.scrub(); });
    }
    void show(std::ostream& os) const override { os << "scrub()"; }
};

template <class H>
struct reopen_cmd : command<H> {
    bool scrub_on_open = *rc::gen::arbitrary<bool>();
    void run(const gen_model&, H& h) const override {
        guarded(h, "reopen", [&] { h.reopen(scrub_on_open); });
    }
    void show(std::ostream& os) const override { os << "reopen(" << (scrub_on_open ? "scrub" : "no scrub") << ")"; }
};

fault_rates gen_rates() {
    auto rate = [] {
        return *rc::gen::weightedElement<double>(
            {{6, rate_choices[0]}, {2, rate_choices[1]}, {1, rate_choices[2]}, {1, rate_choices[3]}});
    };
    fault_rates r;
    r.io_error = rate();
    r.disk_full = rate();
    r.permission_denied = rate();
    r.torn_write = rate();
    r.bit_flip = rate();
    r.truncation = rate();
    r.vanish = rate();
    r.latency = *rc::gen::elementOf(latencies);
    return r;
}

std::optional<op> pick_op(std::size_t n) {
    if (n == op_count) return std::nullopt;
    return static_cast<op>(n);
}

template <class H>
struct faults_cmd : command<H> {
    // nullopt: every operation
    std::optional<op> which = pick_op(*rc::gen::inRange<std::size_t>(0, op_count + 1));
    fault_rates rates = gen_rates();
    void run(const gen_model&, H& h) const override {
        guarded(h, "set_rates", [&] { h.set_rates(which, rates); });
    }
    void show(std::ostream& os) const override {
        os << "faults(" << (which ? tierguard::storage::to_string(*which) : std::string_view("all ops"));
        for (std::size_t k = 0; k < fault_count; ++k) {
            const double p = rates.of(static_cast<fault>(k));
            if (p != 0.0) os << ", " << tierguard::storage::to_string(static_cast<fault>(k)) << ' ' << p;
        }
        if (rates.latency != 0ms)
            os << ", latency " << std::chrono::duration_cast<std::chrono::milliseconds>(rates.latency).count() << "ms";
        os << ")";
    }
};

template <class H>
struct heal_cmd : command<H> {
    void run(const gen_model&, H& h) const override {
        guarded(h, "heal", [&] { h.set_rates(std::nullopt, fault_rates{}); });
    }
    void show(std::ostream& os) const override { os << "faults(off)"; }
};

template <class Backend>
void run_model(const std::string& description) {
    using H = harness<Backend>;
    totals sums;
    tierguard_test::check_property(description, [&sums] {
        const auto fault_seed = *rc::gen::arbitrary<std::uint64_t>().as("fault seed");
        H h(sums, fault_seed);
        rc::state::check(
            gen_model{}, h,
            // Listed more than once: drawn more often (a reopen in about 1 of 20 commands).
            rc::state::gen::execOneOfWithArgs<
                put_cmd<H>, put_cmd<H>, put_cmd<H>, put_cmd<H>, put_cmd<H>, put_cmd<H>, get_cmd<H>, get_cmd<H>,
                get_cmd<H>, get_cmd<H>, get_cmd<H>, erase_cmd<H>, invalidate_cmd<H>, advance_cmd<H>, advance_cmd<H>,
                scrub_cmd<H>, reopen_cmd<H>, faults_cmd<H>, faults_cmd<H>, faults_cmd<H>, heal_cmd<H>>());
        h.recover();
    });
    sums.print(Backend::name);
}

#if !TIERGUARD_MODEL_REDIS
// ---------------------------------------------------------------------------------------
// Two caches on one shared tier with distributed invalidation (issue 15): A is memory ->
// remote, B is memory -> disk -> remote (B's disk a fault-injected memory_storage). The
// remote is a fault-injected shared memory_storage behind notifying_remote, which stands in
// for Redis's pub/sub: a notice goes out with the write or removal (even a failed one, as
// Redis runs the PUBLISH after an error reply) and is delivered at once to every subscriber
// whose link is up; the model takes links down and up. The model, per key: `shared`, the
// last value the remote acknowledged (nothing after an acknowledged erase), an upper bound:
// pending erasures may remove it later; per cache, `local`, set when that cache's own
// put or erase did not reach the remote (a value, or a tombstone), cleared when the cache
// applies another cache's notice for the key or its link comes up (it flushes). A get of a
// cache returns a miss, or, not stale: its `local` if set and its link is up, else
// `shared`; stale (a faster tier's copy the remote could not confirm): only while that
// cache's link is down, and a value once put for the key.

// Redis's pub/sub as the model drives it: synchronous delivery, links set by the model.
struct notice_bus {
    struct subscriber {
        std::function<void(std::span<const std::byte>)> on_notice;
        std::function<void(bool)> on_link;
        bool up = false;
    };
    std::array<std::shared_ptr<subscriber>, 2> subscribers{};               // by cache: A, B
    std::vector<std::pair<std::size_t, std::vector<std::byte>>> delivered;  // to whom, what

    void publish(std::span<const std::byte> notice) {
        for (std::size_t i = 0; i < subscribers.size(); ++i) {
            const auto s = subscribers[i];
            if (!s || !s->up) continue;
            delivered.emplace_back(i, std::vector<std::byte>(notice.begin(), notice.end()));
            s->on_notice(notice);
        }
    }
    void set_link(std::size_t who, bool up) {
        const auto s = subscribers[who];
        if (!s || s->up == up) return;
        s->up = up;
        s->on_link(up);
    }
};

using faulty_remote = tierguard::storage::fault_injecting<remote_backend::inner, clock_type>;
using faulty_disk = tierguard::storage::fault_injecting<memory_backend::inner, clock_type>;

// A shared storage that carries notices (the shape of storage::redis) over faulty_remote.
class notifying_remote {
public:
    using notice_bytes = std::span<const std::byte>;
    using notice_handler = std::function<void(notice_bytes)>;
    using link_handler = std::function<void(bool)>;
    using error_handler = std::function<void(const tierguard::failure&)>;
    static constexpr bool shared = true;

    class subscription {
    public:
        subscription(std::shared_ptr<notice_bus> bus, std::size_t who) : m_bus(std::move(bus)), m_who(who) {}
        subscription(subscription&& o) noexcept : m_bus(std::move(o.m_bus)), m_who(o.m_who) {}
        subscription& operator=(subscription&&) = delete;
        ~subscription() {
            if (m_bus) m_bus->subscribers[m_who].reset();
        }

    private:
        std::shared_ptr<notice_bus> m_bus;
        std::size_t m_who;
    };

    notifying_remote(faulty_remote inner, std::shared_ptr<notice_bus> bus, std::size_t who)
        : m_inner(std::move(inner)), m_bus(std::move(bus)), m_who(who) {}

    [[nodiscard]] tierguard::result<std::vector<std::byte>> read(std::string_view name) { return m_inner.read(name); }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return m_inner.write(name, bytes);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes, notice_bytes notice) {
        auto out = m_inner.write(name, bytes);
        m_bus->publish(notice);
        return out;
    }
    // Expiries are the tier's to check here (no TTL is used by this model).
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes, std::chrono::milliseconds) {
        return write(name, bytes);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes, std::chrono::milliseconds,
                                  notice_bytes notice) {
        return write(name, bytes, notice);
    }
    tierguard::result<void> remove(std::string_view name) { return m_inner.remove(name); }
    tierguard::result<void> remove(std::string_view name, notice_bytes notice) {
        auto out = m_inner.remove(name);
        m_bus->publish(notice);
        return out;
    }
    tierguard::result<void> publish(notice_bytes notice) {
        m_bus->publish(notice);
        return {};
    }
    [[nodiscard]] tierguard::result<std::vector<tierguard::blob_info>> list() { return m_inner.list(); }
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason, time_point now) {
        return m_inner.quarantine(name, reason, now);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        return m_inner.clean(options);
    }
    // The link starts down; the model brings it up.
    [[nodiscard]] tierguard::result<subscription> subscribe(notice_handler n, link_handler l, error_handler) const {
        m_bus->subscribers[m_who] =
            std::make_shared<notice_bus::subscriber>(notice_bus::subscriber{std::move(n), std::move(l), false});
        return subscription(m_bus, m_who);
    }

private:
    faulty_remote m_inner;
    std::shared_ptr<notice_bus> m_bus;
    std::size_t m_who;
};

struct near_policies : tierguard::cache_defaults {
    using clock = clock_type;
    using storage = tierguard::tiers<notifying_remote>;
};
struct layered_policies : tierguard::cache_defaults {
    using clock = clock_type;
    using storage = tierguard::tiers<faulty_disk, notifying_remote>;
};
using near_cache = tierguard::cache<std::string, std::string, near_policies>;
using layered_cache = tierguard::cache<std::string, std::string, layered_policies>;
static_assert(near_cache::has_invalidation && layered_cache::has_invalidation && layered_cache::invalidated_tier == 1);

constexpr std::array<std::size_t, 4> shared_value_sizes = {8, 60, 200, 300};  // 300: no memory shard holds it

struct shared_totals {
    std::uint64_t sequences = 0, commands = 0, gets = 0, hits = 0, stale_hits = 0, misses = 0, puts = 0,
                  puts_shared = 0, notices_applied = 0, link_changes = 0, recoveries = 0;
    void print() const {
        std::cout << "cache_model[two caches, memory -> remote and memory -> disk -> remote, invalidation]: "
                  << sequences << " sequences, " << commands << " commands (" << puts << " puts, " << puts_shared
                  << " reached the remote; " << gets << " gets: " << hits << " hits, " << stale_hits
                  << " stale while the link was down, " << misses << " misses or failures; " << notices_applied
                  << " notices applied to the other cache; " << link_changes << " link changes); recovered after "
                  << recoveries << " of " << sequences << " sequences" << std::endl;
    }
};

struct shared_harness {
    static constexpr std::size_t key_count = 4;
    shared_totals& sums;
    clock_type clock;
    std::shared_ptr<tierguard::storage::memory_storage> remote_store =
        std::make_shared<tierguard::storage::memory_storage>();
    std::shared_ptr<notice_bus> bus = std::make_shared<notice_bus>();
    std::array<std::optional<tierguard::storage::fault_control>, 3> faults;  // A's remote, B's remote, B's disk
    std::optional<near_cache> a;
    std::optional<layered_cache> b;
    std::array<std::optional<entry>, key_count> shared{};
    std::array<std::array<std::optional<std::optional<entry>>, key_count>, 2> local{};  // by cache, key
    std::array<std::vector<std::string>, key_count> history{};
    std::array<bool, 2> link{};
    std::array<std::vector<std::byte>, key_count> encoded{};
    std::uint64_t serial = 0;
    std::size_t acting = 0;

    static std::string key_of(std::size_t k) { return keys[k]; }

    template <class Cfg>
    static void tune(Cfg& c) {
        c.memory = {.byte_budget = memory_budget, .shards = memory_shards};
    }
    template <class TC>
    static void tune_tier(TC& tc) {
        tc.breaker = {
            .failure_threshold = 3, .recovery_time = 2s, .max_recovery_time = max_recovery, .test_requests = 1};
    }

    shared_harness(shared_totals& t, std::uint64_t seed) : sums(t) {
        ++sums.sequences;
        for (std::size_t k = 0; k < key_count; ++k)
            RC_ASSERT(tierguard::serializer::standard{}.encode(keys[k], encoded[k]).has_value());
        auto remote_for = [&](std::size_t who, std::uint64_t salt) {
            faulty_remote f(remote_backend::inner(remote_store), {.seed = seed ^ salt}, clock);
            faults[who].emplace(f.control());
            return notifying_remote(std::move(f), bus, who);
        };
        near_cache::config ca;
        tune(ca);
        tune_tier(std::get<0>(ca.tiers));
        auto oa = near_cache::open(ca, {remote_for(0, 0x1111)}, clock);
        RC_ASSERT(oa.has_value());
        a.emplace(std::move(*oa));
        layered_cache::config cb;
        tune(cb);
        tune_tier(std::get<0>(cb.tiers));
        tune_tier(std::get<1>(cb.tiers));
        std::get<0>(cb.tiers).disk.byte_budget = disk_budget;
        faulty_disk disk(memory_backend::inner(std::make_shared<tierguard::storage::memory_storage>()),
                         {.seed = seed ^ 0x3333}, clock);
        faults[2].emplace(disk.control());
        auto ob = layered_cache::open(cb, {std::move(disk), remote_for(1, 0x2222)}, clock);
        RC_ASSERT(ob.has_value());
        b.emplace(std::move(*ob));
        for (std::size_t c = 0; c < 2; ++c) set_link(c, true);
    }
    shared_harness(const shared_harness&) = delete;
    shared_harness& operator=(const shared_harness&) = delete;
    ~shared_harness() {
        b.reset();  // each stops its subscription first
        a.reset();
    }

    template <class F>
    decltype(auto) on(std::size_t c, F&& f) {
        acting = c;
        bus->delivered.clear();
        if (c == 0) return f(*a);
        return f(*b);
    }

    // The notices the other cache applied during the acting cache's command.
    void book_notices() {
        for (const auto& [who, n] : bus->delivered) {
            if (who == acting) continue;  // its own: ignored by the cache
            RC_ASSERT(n.size() >= 18);
            ++sums.notices_applied;
            if (n[17] == std::byte{2}) {
                for (auto& l : local[who]) l.reset();
                continue;
            }
            for (std::size_t k = 0; k < key_count; ++k)
                if (std::equal(n.begin() + 18, n.end(), encoded[k].begin(), encoded[k].end())) local[who][k].reset();
        }
        bus->delivered.clear();
    }

    void set_link(std::size_t c, bool up) {
        acting = c;
        bus->delivered.clear();
        bus->set_link(c, up);
        if (up && !link[c])
            for (auto& l : local[c]) l.reset();  // flushed: only the remote is left to answer
        link[c] = up;
        ++sums.link_changes;
        book_notices();
    }

    std::uint64_t remote_errors(std::size_t c) {
        const auto mt = c == 0 ? a->metrics() : b->metrics();
        std::uint64_t sum = 0;
        for (const auto n : mt.storage.back().errors) sum += n;
        return sum;
    }

    void put(std::size_t c, std::size_t k, std::size_t size) {
        const std::string value = make_value(++serial, size);
        history[k].push_back(value);
        const std::size_t remote_index = c == 0 ? 0 : 1;
        auto stored = on(c, [&](auto& cache) { return cache.put(key_of(k), value); });
        book_notices();
        ++sums.puts;
        const entry e{value, serial, time_point::max(), {}};
        if (stored && stored->stored_in_tier(remote_index)) {
            shared[k] = e;
            local[c][k].reset();
            ++sums.puts_shared;
        } else if (stored) {
            local[c][k] = std::optional<entry>(e);
        } else {
            local[c][k] = std::optional<entry>();  // nothing of this cache may be served
        }
    }

    void erase(std::size_t c, std::size_t k) {
        const std::uint64_t before = remote_errors(c);
        auto erased = on(c, [&](auto& cache) { return cache.erase(key_of(k)); });
        book_notices();
        RC_ASSERT(erased.has_value());
        if (remote_errors(c) == before) {
            shared[k].reset();
            local[c][k].reset();
        } else {
            local[c][k] = std::optional<entry>();
        }
    }

    void get(std::size_t c, std::size_t k, const char* phase = "command") {
        auto got = on(c, [&](auto& cache) { return cache.get(key_of(k)); });
        book_notices();
        ++sums.gets;
        if (!got) {
            ++sums.misses;
            return;
        }
        const std::string who = c == 0 ? "A" : "B";
        const std::string what = std::string(phase) + ": " + who + ".get(" + show_key(keys[k]) + ") from the " +
                                 std::string(tierguard::to_string(got->from)) + " tier returned " +
                                 describe(got->value);
        if (got->stale) {
            ++sums.stale_hits;
            if (link[c]) RC_FAIL(what + " marked stale while its link was up");
            if (std::find(history[k].begin(), history[k].end(), got->value) == history[k].end())
                RC_FAIL(what + ", never put for this key");
            return;
        }
        ++sums.hits;
        // Link down: only the remote answers unmarked (a pending erasure of its copy: a miss).
        const std::optional<entry>& allowed = link[c] && local[c][k] ? *local[c][k] : shared[k];
        if (!allowed || allowed->value != got->value)
            RC_FAIL(what + "; the model allows a miss" + (allowed ? " or " + describe(allowed->value) : std::string()));
    }

    void set_rates(std::size_t which, const fault_rates& r) { faults[which]->set_rates(r); }

    // After every command: each cache's link is as the model set it.
    void check_invariants() {
        RC_ASSERT(a->metrics().storage.back().link_up == link[0]);
        RC_ASSERT(b->metrics().storage.back().link_up == link[1]);
    }

    // The faults stop, the links come up, the clock passes the longest open period: both
    // caches write through to the remote again, and every get agrees with the model.
    void recover() {
        for (auto& f : faults) f->heal();
        clock.advance(max_recovery + 1s);
        for (std::size_t c = 0; c < 2; ++c) set_link(c, true);
        for (std::size_t c = 0; c < 2; ++c) {
            const std::uint32_t all = c == 0 ? 1U : 3U;
            for (int i = 0; i < 2; ++i) {  // the first may be the half-open probe of one tier
                auto stored = on(c, [&](auto& cache) { return cache.put("recovery-probe", "probe"); });
                book_notices();
                RC_ASSERT(stored.has_value());
                if (i == 1) RC_ASSERT(stored->stored_tiers == all);
            }
        }
        RC_ASSERT(!a->degraded() && !b->degraded());
        for (std::size_t c = 0; c < 2; ++c)
            for (std::size_t k = 0; k < key_count; ++k) get(c, k, "final check after recovery");
        ++sums.recoveries;
    }
};

using shared_command = rc::state::Command<gen_model, shared_harness>;

const char* cache_name(std::size_t c) { return c == 0 ? "A" : "B"; }

struct shared_put : shared_command {
    std::size_t cache = *rc::gen::inRange<std::size_t>(0, 2);
    std::size_t key = *rc::gen::inRange<std::size_t>(0, shared_harness::key_count);
    std::size_t size = *rc::gen::elementOf(shared_value_sizes);
    void run(const gen_model&, shared_harness& h) const override {
        guarded(h, "put", [&] { h.put(cache, key, size); });
    }
    void show(std::ostream& os) const override {
        os << cache_name(cache) << ".put(" << show_key(keys[key]) << ", " << size << " bytes)";
    }
};

// A get or an erase of one key on one cache.
template <bool Erase>
struct shared_keyed : shared_command {
    std::size_t cache = *rc::gen::inRange<std::size_t>(0, 2);
    std::size_t key = *rc::gen::inRange<std::size_t>(0, shared_harness::key_count);
    void run(const gen_model&, shared_harness& h) const override {
        guarded(h, Erase ? "erase" : "get", [&] { Erase ? h.erase(cache, key) : h.get(cache, key); });
    }
    void show(std::ostream& os) const override {
        os << cache_name(cache) << (Erase ? ".erase(" : ".get(") << show_key(keys[key]) << ")";
    }
};
using shared_get = shared_keyed<false>;
using shared_erase = shared_keyed<true>;

struct shared_link : shared_command {
    std::size_t cache = *rc::gen::inRange<std::size_t>(0, 2);
    bool up = *rc::gen::arbitrary<bool>();
    void run(const gen_model&, shared_harness& h) const override {
        guarded(h, "link", [&] { h.set_link(cache, up); });
    }
    void show(std::ostream& os) const override { os << cache_name(cache) << ".link(" << (up ? "up" : "down") << ")"; }
};

struct shared_advance : shared_command {
    std::chrono::milliseconds step = *rc::gen::elementOf(steps);
    void run(const gen_model&, shared_harness& h) const override {
        guarded(h, "advance", [&] { h.clock.advance(step); });
    }
    void show(std::ostream& os) const override { os << "advance(" << step.count() << "ms)"; }
};

struct shared_faults : shared_command {
    std::size_t which = *rc::gen::inRange<std::size_t>(0, 3);
    fault_rates rates = gen_rates();
    void run(const gen_model&, shared_harness& h) const override {
        guarded(h, "faults", [&] { h.set_rates(which, rates); });
    }
    void show(std::ostream& os) const override {
        os << "faults(" << (which == 0 ? "A's remote" : which == 1 ? "B's remote" : "B's disk");
        for (std::size_t k = 0; k < fault_count; ++k) {
            const double p = rates.of(static_cast<fault>(k));
            if (p != 0.0) os << ", " << tierguard::storage::to_string(static_cast<fault>(k)) << ' ' << p;
        }
        os << ")";
    }
};

void run_shared_model() {
    shared_totals sums;
    tierguard_test::check_property("cache model: two caches on one remote with invalidation", [&sums] {
        const auto seed = *rc::gen::arbitrary<std::uint64_t>().as("fault seed");
        shared_harness h(sums, seed);
        rc::state::check(gen_model{}, h,
                         rc::state::gen::execOneOfWithArgs<shared_put, shared_put, shared_put, shared_get, shared_get,
                                                           shared_get, shared_get, shared_erase, shared_link,
                                                           shared_link, shared_advance, shared_faults>());
        h.recover();
    });
    sums.print();
}
#endif

}  // namespace

#if TIERGUARD_MODEL_REDIS
TEST_CASE("cache over a fault-injected storage::redis on a real redis-server agrees with the reference model") {
    run_model<redis_backend>("cache model over fault_injecting<storage::redis> (redis-server)");
}
#else
TEST_CASE("cache over fault-injected memory_storage agrees with the reference model") {
    run_model<memory_backend>("cache model over fault_injecting<memory_storage>");
}

TEST_CASE("cache over a fault-injected shared memory_storage (a remote tier) agrees with the reference model") {
    run_model<remote_backend>("cache model over fault_injecting<remote memory_storage>");
}

TEST_CASE("cache over a fault-injected posix_directory agrees with the reference model") {
    run_model<posix_backend>("cache model over fault_injecting<posix_directory>");
}

TEST_CASE("cache over a fault-injected segment_log agrees with the reference model") {
    run_model<segment_backend>("cache model over fault_injecting<segment_log>");
}

TEST_CASE("two caches, memory -> remote and memory -> disk -> remote, with invalidation agree with the model") {
    run_shared_model();
}
#endif
