// Exhaustive sweeps (issue 5, point 4), in the manner of SQLite's I/O-error tests:
// (a) every storage call of every cache operation failed in turn, once and from then on;
// (b) a corruption corpus: every single-bit flip, every truncation, appended garbage,
//     swapped files and huge length fields, each read through the disk tier, the cache
//     and a scrub.
#include "support/shared_memory_storage.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

#include <tierguard/cache.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/detail/blob_name.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using tierguard::errc;
using tierguard::failure;
using tierguard::stored_in;
using tierguard::tier;
using tierguard::storage::fault;
using tierguard::storage::fault_control;
using tierguard::storage::fault_injecting;
using tierguard::storage::fault_mode;
using tierguard::storage::memory_storage;
using tierguard::storage::posix_directory;

namespace {

using maybe_value = std::optional<std::string>;  // nullopt: the key must read as a miss
const maybe_value gone = std::nullopt;

std::string errc_name(errc code) { return std::string(tierguard::to_string(code)); }

// Deterministic filler: values differ from key to key and do not compress.
std::string noise(std::size_t n, std::uint32_t seed) {
    std::string out(n, '\0');
    for (auto& c : out) {
        seed = seed * 1664525U + 1013904223U;
        c = static_cast<char>(seed >> 24);
    }
    return out;
}

std::string repeated(std::string_view unit, std::size_t n) {
    std::string out;
    while (out.size() < n) out += unit;
    out.resize(n);
    return out;
}

// ---------------------------------------------------------------------------------------
// Backends. A case must reopen whatever an interrupted operation left, also after a
// failed open destroyed the storage object it was given: memory blobs live in a
// memory_storage the test shares, directory blobs in a temp dir.

struct memory_backend {
    using storage = tierguard_test::shared_memory_storage;
    static constexpr std::string_view name = "memory_storage";
    std::shared_ptr<memory_storage> backing = std::make_shared<memory_storage>();

    [[nodiscard]] tierguard_test::shared_memory_storage open() const {
        return tierguard_test::shared_memory_storage(backing);
    }
    [[nodiscard]] std::vector<std::string> temp_files() const { return {}; }  // writes are map assignments
};

struct posix_backend {
    using storage = posix_directory;
    static constexpr std::string_view name = "posix_directory";
    tierguard_test::temp_dir dir;

    [[nodiscard]] fs::path root() const { return dir.path() / "cache"; }
    [[nodiscard]] posix_directory open() const {
        auto opened = posix_directory::open({.root = root(), .sync = tierguard::durability::none});
        REQUIRE(opened);
        return std::move(*opened);
    }
    // Files of writes that never finished (posix_directory names them ".tmp.*").
    [[nodiscard]] std::vector<std::string> temp_files() const {
        std::vector<std::string> out;
        for (const auto& e : fs::recursive_directory_iterator(root()))
            if (e.path().filename().string().starts_with(tierguard::detail::temp_prefix))
                out.push_back(e.path().string());
        return out;
    }
};

template <class Storage>
struct sweep_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = fault_injecting<Storage>;
};
template <class Backend>
using sweep_cache = tierguard::cache<std::string, std::string, sweep_policies<typename Backend::storage>>;

// ---------------------------------------------------------------------------------------
// (a) Fault sweeps.

// The content every case starts from; every value names its key, so another key's value
// is recognisable.
const std::vector<std::pair<std::string, std::string>>& seeded() {
    static const std::vector<std::pair<std::string, std::string>> content{
        {"k0", "k0=v0"},
        {"k1", "k1=" + repeated("compressible ", 600)},
        {"k2", "k2=" + noise(900, 2)},
        {"k3", "k3=v3"},
        {"k4", "k4=" + noise(40, 4)},
        {"k5", "k5=" + noise(300, 5)},
    };
    return content;
}

std::optional<std::string> seeded_value(const std::string& key) {
    for (const auto& [k, v] : seeded())
        if (k == key) return v;
    return std::nullopt;
}

const std::string new_value = "new=" + noise(200, 9);
const std::string overwrite_value = "k1=" + repeated("overwritten ", 400);
const std::string loaded_k4 = "k4=loaded";
const std::string loaded_absent = "absent=loaded";
// Every key a case reads back, and every value each may legitimately hold at some point.
const std::vector<std::string>& all_keys() {
    static const std::vector<std::string> keys{"k0", "k1", "k2", "k3", "k4", "k5", "new", "absent"};
    return keys;
}

template <class C>
typename C::config sweep_config() {
    typename C::config cfg;
    cfg.disk.max_entries = seeded().size();  // a put of a new key evicts one entry
    cfg.disk.compression_level = 1;
    return cfg;
}

// What an operation did, and what it allows a reopened store to hold.
struct op_result {
    std::string summary;                                   // compared with the fault-free run
    std::optional<failure> error;                          // the storage failure it reported, if any
    std::map<std::string, std::set<maybe_value>> targets;  // keys the operation touched: allowed contents
    std::map<std::string, std::string> written;            // values it gave the memory tier (served live)
    std::uint64_t may_lose = 0;                            // untouched keys it may have evicted
    bool wrote = false;                                    // it wrote an entry (a torn write may show)
};

template <class C>
struct operation {
    std::string name;
    std::function<void(C&)> prepare;   // runs before faults are scripted
    std::function<op_result(C&)> run;  // empty: the operation is the open itself
    bool scrub_on_open = true;         // how the open under test builds its index
};

template <class C>
std::uint64_t evictions_of(C& c) {
    const auto s = c.disk().stats();
    return s.evictions;  // emergency evictions are among them
}

std::string describe(const std::optional<failure>& f) { return f ? "error:" + errc_name(f->code()) : "ok"; }

template <class C>
void damage_k5(C& c) {
    const auto name = c.disk().name_for("k5").value();
    const std::string junk = "not a frame";
    REQUIRE(c.disk().storage().inner().write(name,
                                             std::span(reinterpret_cast<const std::byte*>(junk.data()), junk.size())));
}

template <class C>
std::vector<operation<C>> operations() {
    std::vector<operation<C>> ops;
    auto put_op = [](const std::string& key, const std::string& value) {
        return [key, value](C& c) {
            op_result r;
            const auto evicted_before = evictions_of(c);
            const auto out = c.put(key, value);
            REQUIRE(out);  // the memory tier takes it whatever the disk does
            r.summary = "put:" + std::string(tierguard::to_string(out->where));
            r.error = out->skipped;
            const bool on_disk = out->where == stored_in::memory_and_storage || out->where == stored_in::storage;
            // Not on disk: the cache removed the superseded copy at once, or keeps it pending
            // and removes it when the tier is back or, at the latest, when it closes.
            r.targets[key] = {on_disk ? maybe_value(value) : gone};
            r.may_lose = evictions_of(c) - evicted_before;
            r.written[key] = value;
            r.wrote = true;
            return r;
        };
    };
    ops.push_back({"open (scrubs)", nullptr, nullptr});
    ops.push_back({"open (index from the listing)", nullptr, nullptr, false});
    ops.push_back({"put (new key, evicts)", nullptr, put_op("new", new_value)});
    ops.push_back({"put (overwrite)", nullptr, put_op("k1", overwrite_value)});
    ops.push_back({"get (disk hit, promoted)", nullptr, [](C& c) {
                       op_result r;
                       const auto got = c.get("k2");
                       if (got) {
                           CHECK(got->value == seeded_value("k2"));
                           r.summary = "hit:" + std::string(tierguard::to_string(got->from));
                       } else {
                           r.error = got.error();
                       }
                       r.targets["k2"] = {seeded_value("k2")};
                       return r;
                   }});
    ops.push_back({"erase", nullptr, [](C& c) {
                       op_result r;
                       const auto erased = c.erase("k3");
                       REQUIRE(erased);  // memory_only: a disk failure is deferred, not returned
                       r.summary = *erased ? "erased" : "not erased";
                       // true: the disk removed the file; false: the disk failed and kept it,
                       // and the erasure waits as pending: the healed gets or the close carry it out.
                       if (*erased || c.metrics().pending_erasures != 0)
                           r.targets["k3"] = {gone};
                       else
                           r.targets["k3"] = {seeded_value("k3")};
                       return r;
                   }});
    ops.push_back({"clear", nullptr, [](C& c) {
                       op_result r;
                       const auto cleared = c.clear();
                       if (!cleared) r.error = cleared.error();
                       r.summary = describe(r.error);
                       for (const auto& [k, v] : seeded()) {
                           if (cleared) {
                               r.targets[k] = {gone};
                           } else {
                               r.targets[k] = {gone, v};
                           }
                       }
                       return r;
                   }});
    ops.push_back({"scrub", nullptr, [](C& c) {
                       op_result r;
                       const auto scrubbed = c.scrub();
                       if (scrubbed) {
                           r.summary = "checked " + std::to_string(scrubbed->entries_checked);
                       } else {
                           r.error = scrubbed.error();
                       }
                       return r;
                   }});
    ops.push_back({"get_or_load (disk hit)", nullptr, [](C& c) {
                       op_result r;
                       const auto evicted_before = evictions_of(c);
                       const auto got = c.get_or_load("k4", [](const std::string&) { return loaded_k4; });
                       REQUIRE(got);  // a storage failure on the way is served by the loader
                       CHECK((got->value == seeded_value("k4") || got->value == loaded_k4));
                       r.summary = "hit:" + std::string(tierguard::to_string(got->from));
                       r.wrote = got->from == tier::loader;
                       if (r.wrote) r.written["k4"] = loaded_k4;
                       // Served from the disk, the entry stays; loaded, its put reached the disk, or
                       // the disk copy it superseded is removed (at once, or pending until the close).
                       r.targets["k4"] = {seeded_value("k4")};
                       if (r.wrote) r.targets["k4"] = {loaded_k4, gone};
                       r.may_lose = evictions_of(c) - evicted_before;
                       return r;
                   }});
    ops.push_back({"get_or_load (miss, loads and stores)", nullptr, [](C& c) {
                       op_result r;
                       const auto evicted_before = evictions_of(c);
                       const auto got = c.get_or_load("absent", [](const std::string&) { return loaded_absent; });
                       REQUIRE(got);
                       CHECK(got->value == loaded_absent);
                       CHECK(got->from == tier::loader);
                       r.summary = "loaded";
                       r.targets["absent"] = {gone, loaded_absent};
                       r.written["absent"] = loaded_absent;
                       r.may_lose = evictions_of(c) - evicted_before;
                       r.wrote = true;
                       return r;
                   }});
    ops.push_back({"health (probe)", nullptr, [](C& c) {
                       op_result r;
                       const auto h = c.health(true);
                       REQUIRE(h.tiers.size() == 2);
                       r.error = h.tiers[1].probe_error;
                       r.summary = std::string(tierguard::to_string(h.status)) + " " + describe(r.error);
                       if (r.error) CHECK(h.status == tierguard::health_status::degraded);
                       return r;
                   }});
    // A damaged entry makes the tier quarantine (or, failing that, remove) it: sweeps the
    // quarantine and remove calls on the way.
    ops.push_back({"get (damaged entry, quarantined)", damage_k5<C>, [](C& c) {
                       op_result r;
                       const auto got = c.get("k5");
                       REQUIRE_FALSE(got);
                       r.error = got.error();
                       r.summary = describe(r.error);
                       r.targets["k5"] = {gone};
                       return r;
                   }});
    ops.push_back({"scrub (damaged entry, quarantined)", damage_k5<C>, [](C& c) {
                       op_result r;
                       const auto scrubbed = c.scrub();
                       if (scrubbed) {
                           r.summary = "checked " + std::to_string(scrubbed->entries_checked) + ", quarantined " +
                                       std::to_string(scrubbed->quarantined);
                       } else {
                           r.error = scrubbed.error();
                       }
                       r.targets["k5"] = {gone};
                       return r;
                   }});
    return ops;
}

// One fault kind as the sweep injects it.
struct fault_kind {
    std::string_view name;
    fault what;
    bool torn_visible;
    errc code;  // what the storage reports
};

const std::vector<fault_kind>& fault_kinds() {
    static const std::vector<fault_kind> kinds{
        {"EIO", fault::io_error, false, errc::io_error},
        {"ENOSPC", fault::disk_full, false, errc::disk_full},
        {"EACCES", fault::permission_denied, false, errc::permission_denied},
        {"torn write (hidden)", fault::torn_write, false, errc::io_error},
        {"torn write (visible)", fault::torn_write, true, errc::io_error},
    };
    return kinds;
}

struct sweep_totals {
    std::uint64_t cases = 0;
    std::uint64_t reached = 0;  // cases where the scripted fault was injected
    std::uint64_t failed_ops = 0;
    std::uint64_t failed_opens = 0;
    std::uint64_t degraded_opens = 0;  // opens that met the fault and came up with the storage detached
};

template <class Backend>
class sweeper {
public:
    using C = sweep_cache<Backend>;
    using faulty = fault_injecting<typename Backend::storage>;

    // Fills a fresh store with the seeded content.
    static void seed(const Backend& b) {
        tierguard::clock::manual clock;
        auto c = C::open(sweep_config<C>(), faulty(b.open()), clock);
        REQUIRE(c);
        for (const auto& [k, v] : seeded()) {
            const auto put = c->put(k, v);
            REQUIRE(put);
            REQUIRE(put->where == stored_in::memory_and_storage);
        }
    }

    // The fault-free outcome of every operation, to compare the cases that reached no fault with.
    void baselines() {
        for (const auto& op : operations<C>()) {
            const Backend b;
            seed(b);
            tierguard::clock::manual clock;
            auto c = C::open(sweep_config<C>(), faulty(b.open()), clock);
            REQUIRE(c);
            op_result r;
            r.summary = "opened";
            if (op.run) {
                if (op.prepare) op.prepare(*c);
                r = op.run(*c);
            }
            m_baseline[op.name] = r;
        }
    }

    // Fails storage call n, n = 1, 2, ..., of `op` until the operation makes fewer than n calls.
    void sweep(const operation<C>& op, const fault_kind& kind, fault_mode mode, sweep_totals& totals) {
        std::uint64_t reached = 0;
        std::uint64_t n = 1;
        for (;; ++n) {
            REQUIRE(n < 1000);  // an operation that never ends its calls
            const auto [calls, hit] = run_case(op, kind, mode, n, totals);
            if (hit) ++reached;
            if (calls < n) break;
        }
        // EIO and EACCES apply to every call: every case but the last met its fault.
        if (kind.what == fault::io_error || kind.what == fault::permission_denied) CHECK(reached == n - 1);
    }

private:
    static std::string summarize(const op_result& r) { return r.summary + " / " + describe(r.error); }

    // Returns the storage calls the operation made and whether the fault was injected.
    std::pair<std::uint64_t, bool> run_case(const operation<C>& op, const fault_kind& kind, fault_mode mode,
                                            std::uint64_t n, sweep_totals& totals) {
        INFO(Backend::name << ": " << op.name << ", " << kind.name << " at storage call " << n << " ("
                           << (mode == fault_mode::once ? "once" : "from then on") << ")");
        ++totals.cases;
        const Backend b;
        seed(b);
        tierguard::clock::manual clock;
        faulty storage(b.open(), {.torn_writes_visible = kind.torn_visible}, clock);
        fault_control ctl = storage.control();

        std::optional<C> c;
        op_result r;
        std::uint64_t calls_before = 0;
        try {
            if (!op.run) {  // the operation is open itself
                ctl.fail_call(n, kind.what, mode);
                auto cfg = sweep_config<C>();
                cfg.disk.scrub_on_open = op.scrub_on_open;
                auto opened = C::open(cfg, std::move(storage), clock);
                if (opened) {
                    c.emplace(std::move(*opened));
                    r.summary = "opened";
                    if (!c->attached()) ++totals.degraded_opens;
                } else {
                    r.error = opened.error();
                    ++totals.failed_opens;
                }
            } else {
                auto opened = C::open(sweep_config<C>(), std::move(storage), clock);
                REQUIRE(opened);
                c.emplace(std::move(*opened));
                if (op.prepare) op.prepare(*c);
                calls_before = ctl.counters().calls();
                ctl.fail_call(calls_before + n, kind.what, mode);
                r = op.run(*c);
            }
        } catch (const std::exception& e) {
            FAIL("an exception escaped: " << e.what());
        }
        const auto counters = ctl.counters();
        const std::uint64_t calls = counters.calls() - calls_before;
        const bool reached = counters.injected() != 0;
        ctl.heal();
        if (reached) ++totals.reached;
        if (r.error) ++totals.failed_ops;

        // Failures are classified: the injected code, a refusal of the breaker, or what the
        // fault-free run reported too.
        const op_result& baseline = m_baseline.at(op.name);
        if (!reached) {
            CHECK(summarize(r) == summarize(baseline));
        } else if (r.error && !(baseline.error && baseline.error->code() == r.error->code())) {
            CHECK((r.error->code() == kind.code || r.error->code() == errc::circuit_open));
            CHECK(r.error->where() == tier::disk);
        }
        const bool torn_shown = kind.torn_visible && counters.injected(fault::torn_write) != 0;

        // An open that came up degraded attaches the healed storage at the breaker's probe
        // (the first get below).
        if (c && !c->attached()) clock.advance(c->breaker().snapshot().until_half_open + 1ns);
        // The store that went through the fault serves only legitimate values.
        if (c) {
            for (const auto& key : all_keys()) {
                const auto got = c->get(key);
                if (!got) continue;
                std::set<maybe_value> allowed{seeded_value(key)};
                if (const auto t = r.targets.find(key); t != r.targets.end())
                    allowed.insert(t->second.begin(), t->second.end());
                if (const auto w = r.written.find(key); w != r.written.end()) allowed.insert(w->second);
                INFO("live get " << key);
                CHECK(allowed.contains(got->value));
            }
            REQUIRE(c->attached());
            CHECK(c->disk().size() <= sweep_config<C>().disk.max_entries);
            CHECK(c->disk().bytes() <= sweep_config<C>().disk.byte_budget);
        }
        c.reset();

        check_reopened(b, r, torn_shown);
        return {calls, reached};
    }

    // Reopened without faults, the store opens cleanly and holds exactly what the
    // operation's outcome allows; no temp file or stray blob remains; the budgets hold.
    void check_reopened(const Backend& b, const op_result& r, bool torn_shown) {
        tierguard::clock::manual clock;
        faulty storage(b.open(), {}, clock);
        auto reopened = C::open(sweep_config<C>(), std::move(storage), clock);
        REQUIRE(reopened);
        C& c = *reopened;
        std::uint64_t lost = 0;
        for (const auto& key : all_keys()) {
            INFO("reopened, key " << key);
            const auto got = c.get(key);
            if (!got) {
                const errc code = got.error().code();
                CHECK((code == errc::miss || code == errc::corrupted));
            }
            const maybe_value found = got ? maybe_value(got->value) : gone;
            if (const auto t = r.targets.find(key); t != r.targets.end()) {
                auto allowed = t->second;
                if (torn_shown && r.wrote) allowed.insert(gone);  // the torn prefix is refused
                CHECK(allowed.contains(found));
            } else if (found != seeded_value(key)) {
                CHECK(found == gone);  // an untouched key holds its value, or was evicted
                ++lost;
            }
        }
        CHECK(lost <= r.may_lose);
        CHECK(b.temp_files().empty());
        const auto listing = c.disk().storage().list();
        REQUIRE(listing);
        std::uint64_t entry_bytes = 0;
        for (const auto& blob : *listing)
            if (blob.name != C::disk_type::meta_name) entry_bytes += blob.size;
        CHECK(listing->size() == c.disk().size() + 1);  // the meta blob and the indexed entries
        CHECK(c.disk().bytes() == entry_bytes);
        CHECK(c.disk().size() <= sweep_config<C>().disk.max_entries);
        CHECK(c.disk().bytes() <= sweep_config<C>().disk.byte_budget);
    }

    std::map<std::string, op_result> m_baseline;
};

template <class Backend>
sweep_totals sweep_all(const std::vector<fault_kind>& kinds) {
    sweeper<Backend> s;
    s.baselines();
    sweep_totals totals;
    for (const auto& op : operations<sweep_cache<Backend>>())
        for (const auto& kind : kinds)
            for (const fault_mode mode : {fault_mode::once, fault_mode::from_then_on}) s.sweep(op, kind, mode, totals);
    std::printf(
        "fault sweep over %s: %llu cases, fault reached in %llu, operation failed in %llu, open failed in %llu, "
        "open degraded in %llu\n",
        std::string(Backend::name).c_str(), static_cast<unsigned long long>(totals.cases),
        static_cast<unsigned long long>(totals.reached), static_cast<unsigned long long>(totals.failed_ops),
        static_cast<unsigned long long>(totals.failed_opens), static_cast<unsigned long long>(totals.degraded_opens));
    return totals;
}

}  // namespace

TEST_CASE("fault sweep: every storage call of every cache operation fails in turn (memory_storage)", "[fault_sweeps]") {
    const auto totals = sweep_all<memory_backend>(fault_kinds());
    CHECK(totals.reached > 0);
    CHECK(totals.failed_ops > 0);
    // Every injected fault is a run-time fault: an open that meets one runs degraded (issue 14).
    CHECK(totals.failed_opens == 0);
    CHECK(totals.degraded_opens > 0);
}

TEST_CASE("fault sweep: every storage call of every cache operation fails in turn (posix_directory)",
          "[fault_sweeps]") {
    // A smaller sweep: EACCES and hidden torn writes take the same paths as EIO in the cache.
    std::vector<fault_kind> kinds;
    for (const auto& kind : fault_kinds())
        if (kind.what == fault::io_error || kind.what == fault::disk_full || kind.torn_visible) kinds.push_back(kind);
    const auto totals = sweep_all<posix_backend>(kinds);
    CHECK(totals.reached > 0);
    CHECK(totals.failed_ops > 0);
}

// ---------------------------------------------------------------------------------------
// (b) The corruption corpus.

namespace {

template <class Storage>
struct corpus_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;
    using storage = Storage;
};

// A frame shape the corpus damages; `compressed` and the TTL are checked on the stored frame.
struct shape {
    std::string key;
    std::string value;
    std::chrono::nanoseconds ttl;
    bool compressed;
};

const std::vector<shape>& shapes() {
    static const std::vector<shape> all{
        {"a", "x", tierguard::no_expiry, false},
        {"user:42", "user:42=" + noise(4000, 42), 1h, false},  // large, incompressible
        {std::string(100, 'L') + ":long key", repeated("lorem ipsum dolor sit amet ", 2000), tierguard::no_expiry,
         true},
        {"session/7", repeated("token=abcdef; ", 600), 1h, true},
        {"empty", "", tierguard::no_expiry, false},
    };
    return all;
}

void store_u32(std::vector<std::byte>& bytes, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) bytes[at + i] = static_cast<std::byte>(v >> (8 * i));
}

// Where the damage is read: a get of the disk tier, a get of the cache (memory empty),
// or a scrub.
enum class reader : unsigned char { disk_get, cache_get, scrub };
constexpr std::array<reader, 3> readers{reader::disk_get, reader::cache_get, reader::scrub};

std::string_view to_string(reader r) {
    switch (r) {
        case reader::disk_get: return "disk get";
        case reader::cache_get: return "cache get";
        case reader::scrub: return "scrub";
    }
    return "?";
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

// Which bytes are flipped and which truncation lengths tried: all of them, but under a
// sanitizer (ten times slower) only the header's and every 16th after it.
bool swept(std::size_t i) {
    constexpr std::size_t stride = sanitized ? 16 : 1;
    return i < tierguard::frame::header_size || i % stride == 0;
}

// Over a directory the corpus damages only the small frames: a sample that keeps the
// file system work modest (every case renames a file into quarantine).
bool small_frame(const std::vector<std::byte>& frame) { return frame.size() < 64; }

// Offsets in a frame (docs/FORMAT.md).
constexpr std::size_t format_version_at = 4;
constexpr std::size_t format_version_end = 6;
constexpr std::array<std::size_t, 3> length_fields{12, 16, 20};  // key_length, stored_length, raw_length

// Files in quarantine now.
std::size_t quarantined(memory_storage& s, const fs::path&) { return s.quarantined(); }
std::size_t quarantined(posix_directory&, const fs::path& root) {
    const fs::path folder = root / tierguard::detail::quarantine_folder;
    if (!fs::exists(folder)) return 0;
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(folder), fs::directory_iterator()));
}

// A cache over Storage (memory_storage, or posix_directory in a temp dir) that damages
// one entry file at a time and checks how each damage is read.
template <class Storage>
class corpus {
public:
    using corpus_cache = tierguard::cache<std::string, std::string, corpus_policies<Storage>>;

    corpus() : m_cache(open(m_clock, root())) {}

    struct tally {
        std::uint64_t cases = 0;
        std::uint64_t corrupted = 0;
        std::uint64_t version_mismatch = 0;
    };

    // Writes the shape's entry afresh (memory left empty) and returns its frame as stored.
    std::vector<std::byte> fresh_frame(const shape& s) {
        m_clock.advance(1s);  // a distinct quarantine name per case
        const auto put = m_cache.put(s.key, s.value, s.ttl);
        REQUIRE(put);
        REQUIRE(put->where == stored_in::memory_and_storage);
        m_cache.memory().erase(s.key);
        auto bytes = storage().read(name_of(s));
        REQUIRE(bytes);
        return std::move(*bytes);
    }

    // Checks the stored frame has the shape meant: compressed or not, expiry or not.
    void check_shape(const shape& s) {
        const auto bytes = fresh_frame(s);
        const auto decoded = tierguard::frame::decode(bytes);
        REQUIRE(decoded);
        CHECK(decoded->head.compressed() == s.compressed);
        CHECK((decoded->head.expiry_ns != 0) == (s.ttl != tierguard::no_expiry));
        CHECK(m_cache.disk().get(s.key).value() == s.value);
    }

    // Stores `damage`(fresh frame) at the entry's name and reads it through `r`: it must
    // be refused as `expected` (corrupted: quarantined; version_mismatch: removed), never
    // served. Failures are collected, not asserted one by one (there are tens of thousands).
    template <class Damage>
    void refuse(const shape& s, reader r, std::string_view what, Damage damage) {
        auto bytes = fresh_frame(s);
        const errc expected = damage(bytes);
        const std::string name = name_of(s);
        REQUIRE(storage().write(name, bytes));
        const auto stats_before = m_cache.disk().stats();
        const auto quarantined_before = quarantined(storage(), root());
        const auto label = [&] {
            return std::string(to_string(r)) + " of " + s.key.substr(0, 12) + ", " + std::string(what);
        };
        auto expect = [&](bool ok, std::string_view check) {
            if (!ok && m_failures.size() < 20) m_failures.push_back(label() + ": " + std::string(check));
            if (!ok) ++m_failed;
        };

        // A get answers a removed other-version entry as a miss that says so (issue 17).
        auto classified = [](const tierguard::failure& f) {
            const bool removed_version = f.is_miss() && f.context().find("version_mismatch") != std::string::npos;
            return removed_version ? errc::version_mismatch : f.code();
        };
        std::optional<errc> code;
        switch (r) {
            case reader::disk_get: {
                const auto got = m_cache.disk().get(s.key);
                expect(!got, "served a value");
                if (!got) code = classified(got.error());
                break;
            }
            case reader::cache_get: {
                const auto got = m_cache.get(s.key);
                expect(!got, "served a value");
                if (!got) {
                    code = classified(got.error());
                    expect(got.error().where() == tier::disk, "the failure names another tier");
                }
                break;
            }
            case reader::scrub: {
                const auto report = m_cache.scrub();
                expect(report.has_value(), "scrub failed");
                if (report) {
                    expect(report->quarantined + report->version_mismatches == 1, "scrub did not refuse one entry");
                    if (report->quarantined == 1) code = errc::corrupted;
                    if (report->version_mismatches == 1) code = errc::version_mismatch;
                }
                const auto got = m_cache.get(s.key);
                expect(!got && got.error().code() == errc::miss, "after the scrub, not a plain miss");
                break;
            }
        }
        expect(code == expected, "classified as " + (code ? errc_name(*code) : std::string("nothing")) + ", expected " +
                                     errc_name(expected));
        const auto stats = m_cache.disk().stats();
        if (expected == errc::corrupted) {
            expect(stats.corrupted == stats_before.corrupted + 1, "not counted as corrupted");
            expect(stats.quarantined == stats_before.quarantined + 1, "not counted as quarantined");
            expect(quarantined(storage(), root()) == quarantined_before + 1, "not in the quarantine");
            ++m_tally.corrupted;
        } else {
            expect(stats.version_mismatches == stats_before.version_mismatches + 1, "not counted as a mismatch");
            expect(quarantined(storage(), root()) == quarantined_before, "quarantined");
            ++m_tally.version_mismatch;
        }
        const auto left = storage().read(name);
        expect(!left && left.error().code() == errc::miss, "the damaged file is still in place");
        expect(!m_cache.disk().indexed(s.key), "still indexed");
        expect(!m_cache.breaker().snapshot().opens, "the breaker opened");
        // Purged often over a directory: counting its quarantine reads the whole folder.
        constexpr std::uint64_t purge_every = std::is_same_v<Storage, posix_directory> ? 16 : 1024;
        if (++m_tally.cases % purge_every == 0) (void)storage().clean({.now = m_clock.now(), .quarantine_max_age = 0s});
    }

    [[nodiscard]] std::string name_of(const shape& s) { return m_cache.disk().name_for(s.key).value(); }
    [[nodiscard]] Storage& storage() { return m_cache.disk().storage(); }
    [[nodiscard]] corpus_cache& cache() { return m_cache; }
    [[nodiscard]] const tally& counts() const { return m_tally; }
    [[nodiscard]] std::uint64_t failed() const { return m_failed; }
    [[nodiscard]] const std::vector<std::string>& failures() const { return m_failures; }

private:
    [[nodiscard]] fs::path root() const { return m_dir.path() / "cache"; }

    static corpus_cache open(const tierguard::clock::manual& clock, const fs::path& root) {
        typename corpus_cache::config cfg;
        cfg.disk.compression_level = 6;
        if constexpr (std::is_same_v<Storage, posix_directory>) {
            cfg.storage = {.root = root, .sync = tierguard::durability::none};
            auto c = corpus_cache::open(cfg, clock);
            REQUIRE(c);
            return std::move(*c);
        } else {
            auto c = corpus_cache::open(cfg, Storage(), clock);
            REQUIRE(c);
            return std::move(*c);
        }
    }

    tierguard_test::temp_dir m_dir;  // posix_directory's root; unused by memory_storage
    tierguard::clock::manual m_clock;
    corpus_cache m_cache;
    tally m_tally;
    std::uint64_t m_failed = 0;
    std::vector<std::string> m_failures;
};

template <class Storage>
void report_corpus(std::string_view sweep, const corpus<Storage>& c) {
    std::printf("corruption corpus over %s, %s: %llu cases (corrupted %llu, version_mismatch %llu)\n",
                std::is_same_v<Storage, posix_directory> ? "posix_directory" : "memory_storage",
                std::string(sweep).c_str(), static_cast<unsigned long long>(c.counts().cases),
                static_cast<unsigned long long>(c.counts().corrupted),
                static_cast<unsigned long long>(c.counts().version_mismatch));
    for (const auto& f : c.failures()) UNSCOPED_INFO(f);
    CHECK(c.failed() == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("corruption corpus: every single-bit flip is refused, never served", "[fault_sweeps][corpus]",
                   memory_storage, posix_directory) {
    constexpr bool sample = std::is_same_v<TestType, posix_directory>;
    corpus<TestType> c;
    std::uint64_t frames = 0;
    for (const shape& s : shapes()) {
        c.check_shape(s);
        if (sample && !small_frame(c.fresh_frame(s))) continue;
        ++frames;
        const std::size_t size = c.fresh_frame(s).size();
        for (std::size_t i = 0; i < size; ++i) {
            if (!swept(i)) continue;
            for (unsigned bit = 0; bit < 8; ++bit) {
                // A version check precedes the CRC (a later format may checksum otherwise),
                // so a flip in format_version reads as version_mismatch: removed, not quarantined.
                const errc expected =
                    i >= format_version_at && i < format_version_end ? errc::version_mismatch : errc::corrupted;
                for (const reader r : readers)
                    c.refuse(s, r, "bit " + std::to_string(bit) + " of byte " + std::to_string(i),
                             [&](std::vector<std::byte>& b) {
                                 b[i] ^= static_cast<std::byte>(1U << bit);
                                 return expected;
                             });
            }
        }
    }
    report_corpus("bit flips", c);
    CHECK(c.counts().version_mismatch == frames * 16 * readers.size());
}

TEMPLATE_TEST_CASE("corruption corpus: every truncation, appended garbage and huge length fields are refused",
                   "[fault_sweeps][corpus]", memory_storage, posix_directory) {
    constexpr bool sample = std::is_same_v<TestType, posix_directory>;
    corpus<TestType> c;
    for (const shape& s : shapes()) {
        const auto frame = c.fresh_frame(s);
        if (sample && !small_frame(frame)) continue;
        const std::size_t size = frame.size();
        for (const reader r : readers) {
            for (std::size_t length = 0; length < size; ++length)
                if (swept(length))
                    c.refuse(s, r, "truncated to " + std::to_string(length), [&](std::vector<std::byte>& b) {
                        b.resize(length);
                        return errc::corrupted;
                    });
            for (const std::size_t extra : {1, 3, 4, 35, 36, 1000}) {
                c.refuse(s, r, std::to_string(extra) + " bytes appended", [&](std::vector<std::byte>& b) {
                    const std::string junk = noise(extra, static_cast<std::uint32_t>(extra));
                    for (const char ch : junk) b.push_back(static_cast<std::byte>(ch));
                    return errc::corrupted;
                });
            }
            c.refuse(s, r, "the frame appended to itself", [&](std::vector<std::byte>& b) {
                const std::vector<std::byte> copy = b;
                b.insert(b.end(), copy.begin(), copy.end());
                return errc::corrupted;
            });
            for (const std::size_t field : length_fields) {
                for (const bool fix_crc : {false, true}) {
                    // With the CRC recomputed, the checks behind it must refuse the frame:
                    // the size check (key and stored length) or the limits (raw length).
                    c.refuse(s, r,
                             "length field at " + std::to_string(field) + " set to 0xFFFFFFFF" +
                                 (fix_crc ? ", CRC recomputed" : ""),
                             [&](std::vector<std::byte>& b) {
                                 store_u32(b, field, 0xFFFFFFFFU);
                                 if (fix_crc) {
                                     const auto body = std::span<const std::byte>(b).first(b.size() - 4);
                                     store_u32(b, b.size() - 4, tierguard::frame::checksum(body));
                                 }
                                 return errc::corrupted;
                             });
                }
            }
        }
    }
    report_corpus("truncations, appended garbage, length fields", c);
    CHECK(c.counts().version_mismatch == 0);
}

TEMPLATE_TEST_CASE("corruption corpus: an entry's file under another key's name is a miss, never the other value",
                   "[fault_sweeps][corpus]", memory_storage, posix_directory) {
    // The frame holds the full key, compared on read: a file under another key's name is
    // taken for a file of a key whose hash collides (errc::miss; nothing quarantined);
    // scrub, which can tell a misplaced file by hashing its key, removes it as an orphan.
    corpus<TestType> c;
    auto& cache = c.cache();
    std::uint64_t cases = 0;
    for (const shape& a : shapes()) {
        for (const shape& b : shapes()) {
            if (&a == &b) continue;
            for (const bool both_ways : {false, true}) {
                INFO(a.key.substr(0, 12) << "'s file at " << b.key.substr(0, 12) << "'s name"
                                         << (both_ways ? ", and the other way" : ""));
                ++cases;
                const auto frame_a = c.fresh_frame(a);
                const auto frame_b = c.fresh_frame(b);
                REQUIRE(c.storage().write(c.name_of(b), frame_a));
                if (both_ways) REQUIRE(c.storage().write(c.name_of(a), frame_b));
                const auto before = cache.disk().stats();

                const auto via_disk = cache.disk().get(b.key);
                REQUIRE_FALSE(via_disk);
                CHECK(via_disk.error().code() == errc::miss);
                const auto via_cache = cache.get(b.key);
                REQUIRE_FALSE(via_cache);
                CHECK(via_cache.error().code() == errc::miss);
                if (both_ways) {
                    CHECK(cache.get(a.key).error().code() == errc::miss);
                } else {
                    CHECK(cache.get(a.key).value().value == a.value);
                }
                const auto after = cache.disk().stats();
                CHECK(after.corrupted == before.corrupted);
                CHECK(after.quarantined == before.quarantined);

                const auto report = cache.scrub();
                REQUIRE(report);
                CHECK(report->orphans_removed == (both_ways ? 2U : 1U));
                CHECK(report->quarantined == 0);
                CHECK(cache.get(b.key).error().code() == errc::miss);
                CHECK_FALSE(cache.disk().indexed(b.key));
                CHECK(c.storage().read(c.name_of(b)).error().code() == errc::miss);
                cache.memory().clear();
            }
        }
    }
    std::printf("corruption corpus, swapped files: %llu cases\n", static_cast<unsigned long long>(cases));
    CHECK(cases == shapes().size() * (shapes().size() - 1) * 2);
}
