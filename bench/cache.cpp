// The composed cache (tierguard::cache) against the bare memory tier it wraps, in one
// binary so every figure is a ratio taken from one run on one machine. bench/README.md
// ("Composed cache") explains the scenarios and records a run.
//
//   get_hit/<impl>          100k keys, all present in memory; uniform random order; one thread
//   get_hit_chained/<impl>  the same, each key's position depending on the previous get's
//                           value: the latency of a get rather than throughput
//   get_hit_paired/<impl>   the get_hit walk in alternating blocks of 512 gets through the
//                           cache and 512 through its own memory tier; counter
//                           cache_over_tier = the median of the blocks' time ratios
//   get_miss/<impl>         100k keys present, gets of 100k other keys (absent from memory)
//
// Implementations (all 16 shards, no count limit, the default 64 MB byte budget):
//   memory_tier            tierguard::memory_tier<std::string, std::string>: the reference
//   cache/memory_storage   tierguard::cache over storage::memory_storage, breaker closed
//   cache/memory_storage/own_memory_tier
//                          the same cache's memory tier asked directly (cache.memory().get):
//                          the bare tier on the very table, pages and heap layout the
//                          cache's gets read, so cache/memory_storage over it prices the
//                          cache's machinery alone. Separate tables differ by up to 30% in
//                          a random-access get from where the heap and the kernel put them.
//   cache/no_storage       tierguard::cache with no storage tier
//   open/<degradation>     a cache over memory_storage with its breaker forced open
//                          (memory_only, fail_fast, bypass); get_miss only
//   steps/<n>              the cache's memory-hit path rebuilt step by step on its own
//                          memory_type, to price each step (see below)
//
// Keys "key:NNNNNN" and values "val:NNNNNN:ok" as in bench/memory_tier.cpp: both fit the
// short-string buffer, so copying a value never calls malloc.
#include <benchmark/benchmark.h>

#include <tierguard/cache.hpp>
#include <tierguard/degradation/bypass.hpp>
#include <tierguard/degradation/fail_fast.hpp>
#include <tierguard/degradation/memory_only.hpp>
#include <tierguard/memory_tier.hpp>
#include <tierguard/metrics.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------
// Workload, as in bench/memory_tier.cpp.

constexpr std::uint32_t hit_keys = 100'000;     // keys held, and keys looked up
constexpr std::uint32_t key_space = 1'000'000;  // ids the held and the absent keys come from
constexpr std::size_t shards = 16;
constexpr std::uint64_t seed_hit_keys = 0x7469657267756172ULL;  // bench/memory_tier.cpp's
constexpr std::size_t key_length = 10;                          // "key:" + 6 digits

void write_digits(std::string& s, std::size_t last, std::uint32_t id) noexcept {
    char* p = s.data() + last;
    for (int i = 0; i < 6; ++i) {
        *p-- = static_cast<char>('0' + id % 10);
        id /= 10;
    }
}

std::string make_key(std::uint32_t id) {
    std::string key = "key:000000";
    write_digits(key, key_length - 1, id);
    return key;
}

std::string make_value(std::uint32_t id) {
    std::string value = "val:000000:ok";
    write_digits(value, 9, id);
    return value;
}

// Fisher-Yates with a fixed reduction: the same order on every standard library.
template <class T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

int seen(const std::string& value) noexcept { return 1 + static_cast<unsigned char>(value[0]); }

tierguard::memory_config memory_config() {
    tierguard::memory_config cfg;
    cfg.max_entries = 0;  // no count limit: 16 shards never fill evenly
    cfg.shards = shards;  // byte_budget: the default 64 MB, about 25 times the payload
    return cfg;
}

// ---------------------------------------------------------------------------------------
// The implementations, behind one interface:
//   int get(const std::string&)   0 on a miss, else 1 + the value's first byte
//   void put(const std::string&, const std::string&)
//   std::size_t size()            entries in memory
//   std::string miss_code(key)    the error a get of an absent key returns (checked once)
// Each result goes through DoNotOptimize so the copy cannot be elided.

struct bare_memory_tier {
    static constexpr const char* name = "memory_tier";
    tierguard::memory_tier<std::string, std::string> tier{memory_config()};

    int get(const std::string& key) {
        auto r = tier.get(key);
        const int out = r ? seen(*r) : 0;
        benchmark::DoNotOptimize(r);
        return out;
    }
    void put(const std::string& key, const std::string& value) {
        if (!tier.put(key, value)) throw std::runtime_error("memory_tier put failed");
    }
    [[nodiscard]] std::size_t size() const { return tier.size(); }
    std::string miss_code(const std::string& key) {
        auto r = tier.get(key);
        return r ? "hit" : std::string(tierguard::to_string(r.error().code()));
    }
    void prepare() {}
};

template <class Storage, class Degradation>
struct policies : tierguard::cache_defaults {
    using storage = Storage;
    using degradation = Degradation;
};

template <class Storage, class Degradation, bool ForceOpen>
struct composed {
    using cache_type = tierguard::cache<std::string, std::string, policies<Storage, Degradation>>;
    cache_type cache = open();

    static cache_type open() {
        typename cache_type::config cfg;
        cfg.memory = memory_config();
        auto c = cache_type::open(cfg);
        if (!c) throw std::runtime_error("cache::open failed: " + c.error().message());
        return std::move(*c);
    }

    int get(const std::string& key) {
        auto r = cache.get(key);
        const int out = r ? seen(r->value) : 0;
        benchmark::DoNotOptimize(r);
        return out;
    }
    void put(const std::string& key, const std::string& value) {
        auto r = cache.put(key, value);
        if (!r) throw std::runtime_error("cache put failed: " + r.error().message());
        const auto want =
            cache_type::has_storage ? tierguard::stored_in::memory_and_storage : tierguard::stored_in::memory;
        if (r->where != want) throw std::runtime_error("cache put did not reach every tier");
    }
    // The cache's own memory tier asked directly: the bare tier on the very table the
    // cache's gets read.
    int get_own_memory(const std::string& key) {
        auto r = cache.memory().get(key);
        const int out = r ? seen(*r) : 0;
        benchmark::DoNotOptimize(r);
        return out;
    }
    [[nodiscard]] std::size_t size() { return cache.memory().size(); }
    std::string miss_code(const std::string& key) {
        auto r = cache.get(key);
        return r ? "hit" : std::string(tierguard::to_string(r.error().code()));
    }
    void prepare() {
        if constexpr (ForceOpen) cache.breaker().force_open();
    }
};

using memory_only = tierguard::degradation::memory_only;
using fail_fast = tierguard::degradation::fail_fast;
using bypass = tierguard::degradation::bypass;
using memory_storage = tierguard::storage::memory_storage;

struct cache_memory_storage : composed<memory_storage, memory_only, false> {
    static constexpr const char* name = "cache/memory_storage";
};
struct cache_no_storage : composed<tierguard::no_storage, memory_only, false> {
    static constexpr const char* name = "cache/no_storage";
};
struct open_memory_only : composed<memory_storage, memory_only, true> {
    static constexpr const char* name = "open/memory_only";
};
struct open_fail_fast : composed<memory_storage, fail_fast, true> {
    static constexpr const char* name = "open/fail_fast";
};
struct open_bypass : composed<memory_storage, bypass, true> {
    static constexpr const char* name = "open/bypass";
};

// The cache's memory-hit path (cache::lookup) rebuilt in steps on the cache's own
// memory_type, so the difference between neighbouring steps is the price of one step:
//   1 hit        get_with_stale building result<hit<std::string>> inside the lookup
//                (detail::memory_hit, as the cache does)
//   2 sampled    plus the thread_local 1-in-64 counter, and two steady_clock reads and a
//                histogram observe on every 64th get: all of cache::lookup's memory-hit
//                work except the indirection to the cache's state
using step_cache = tierguard::cache<std::string, std::string, policies<tierguard::no_storage, memory_only>>;
using step_memory = step_cache::memory_type;

template <int Step>
struct steps {
    static constexpr const char* name = Step == 1 ? "steps/1_hit" : "steps/2_sampled";
    step_memory tier{memory_config()};
    tierguard::latency_histogram latency;

    static bool sample_hit() noexcept {  // cache::sample_hit, verbatim
        thread_local std::uint32_t calls = 0;
        return (++calls & 63U) == 0;
    }

    int get(const std::string& key) {
        const bool sampled = Step >= 2 && sample_hit();
        const auto started = sampled ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
        tierguard::result<tierguard::hit<std::string>> r =
            tier.get_with_stale(key, tierguard::detail::memory_hit<std::string>);
        if (r && !r->stale && sampled) latency.observe(std::chrono::steady_clock::now() - started);
        const int out = r ? seen(r->value) : 0;
        benchmark::DoNotOptimize(r);
        return out;
    }
    void put(const std::string& key, const std::string& value) {
        if (!tier.put(key, value)) throw std::runtime_error("steps put failed");
    }
    [[nodiscard]] std::size_t size() const { return tier.size(); }
    std::string miss_code(const std::string&) { return "miss"; }
    void prepare() {}
};

// ---------------------------------------------------------------------------------------
// One fixture per implementation: 100k keys put, a shuffled order of the same 100k keys
// (hits) and one of 100k other keys (misses), as precomputed std::strings.

template <class Impl>
struct fixture {
    Impl impl;
    std::vector<std::string> present;
    std::vector<std::string> absent;
    std::size_t hit_pos = 0;
    std::size_t miss_pos = 0;

    fixture() {
        std::mt19937_64 rng(seed_hit_keys);
        std::vector<std::uint32_t> ids(key_space);
        for (std::uint32_t i = 0; i < key_space; ++i) ids[i] = i;
        shuffle(ids, rng);
        for (std::uint32_t i = 0; i < hit_keys; ++i) impl.put(make_key(ids[i]), make_value(ids[i]));
        std::vector<std::uint32_t> held(ids.begin(), ids.begin() + hit_keys);
        std::vector<std::uint32_t> other(ids.begin() + hit_keys, ids.begin() + 2 * hit_keys);
        shuffle(held, rng);
        shuffle(other, rng);
        present.reserve(hit_keys);
        absent.reserve(hit_keys);
        for (const std::uint32_t id : held) present.push_back(make_key(id));
        for (const std::uint32_t id : other) absent.push_back(make_key(id));
        impl.prepare();
        benchmark::DoNotOptimize(impl.get(absent.back()));  // lets the cache enter degraded mode
    }

    static fixture& instance() {
        static fixture fx;  // built once, on first use, outside the timed loop
        return fx;
    }
};

// The fixture, or nullptr (the run marked failed) if memory lost any of the 100k keys.
template <class Impl>
fixture<Impl>* held_fixture(benchmark::State& state) {
    auto& fx = fixture<Impl>::instance();
    if (fx.impl.size() == hit_keys) return &fx;
    state.SkipWithError("memory does not hold all 100k keys");
    return nullptr;
}

// OwnMemory: gets go to the implementation's own memory tier (composed caches only).
template <class Impl, bool OwnMemory = false>
int get_of(Impl& impl, const std::string& key) {
    if constexpr (OwnMemory) {
        return impl.get_own_memory(key);
    } else {
        return impl.get(key);
    }
}

template <class Impl, bool OwnMemory = false>
void bm_get_hit(benchmark::State& state) {
    auto* const full = held_fixture<Impl>(state);
    if (full == nullptr) return;
    auto& fx = *full;
    const std::string* const keys = fx.present.data();
    std::size_t pos = fx.hit_pos;
    std::uint64_t hits = 0;
    for (auto _ : state) {
        hits += get_of<Impl, OwnMemory>(fx.impl, keys[pos]) != 0 ? 1 : 0;
        if (++pos == hit_keys) pos = 0;
    }
    fx.hit_pos = pos;
    if (hits != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a get_hit lookup missed");
    state.SetItemsProcessed(state.iterations());
}

// The next key's position depends on the value the previous get returned (always + 1,
// which the compiler cannot know): gets cannot overlap, so this is a get's latency.
template <class Impl, bool OwnMemory = false>
void bm_get_hit_chained(benchmark::State& state) {
    auto* const full = held_fixture<Impl>(state);
    if (full == nullptr) return;
    auto& fx = *full;
    const std::string* const keys = fx.present.data();
    std::size_t pos = fx.hit_pos;
    std::uint64_t hits = 0;
    for (auto _ : state) {
        const int got = get_of<Impl, OwnMemory>(fx.impl, keys[pos]);
        hits += got != 0 ? 1 : 0;
        pos += 1 + (static_cast<unsigned>(got) >> 8);
        if (pos >= hit_keys) pos = 0;
    }
    fx.hit_pos = pos;
    if (hits != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a get_hit lookup missed");
    state.SetItemsProcessed(state.iterations());
}

// get_hit_paired/<impl>: the get_hit walk in blocks of 512 gets through the cache and 512
// through its own memory tier, back to back, which of the two goes first alternating. The
// counter cache_over_tier is the median of the blocks' time ratios: a neighbour's burst,
// or the machine's memory getting slower for a while, lands on both halves of a block,
// so the ratio holds still where separately timed runs of the two swing by a third.
template <class Impl>
void bm_get_hit_paired(benchmark::State& state) {
    constexpr int block_gets = 512;
    auto* const full = held_fixture<Impl>(state);
    if (full == nullptr) return;
    auto& fx = *full;
    std::uint64_t hits = 0;
    std::size_t pos = fx.hit_pos;
    const auto timed_block = [&](bool via_cache) {
        const auto started = std::chrono::steady_clock::now();
        for (int i = 0; i < block_gets; ++i) {
            const std::string& key = fx.present[pos];
            hits += (via_cache ? get_of<Impl>(fx.impl, key) : get_of<Impl, true>(fx.impl, key)) != 0 ? 1 : 0;
            if (++pos == hit_keys) pos = 0;
        }
        return static_cast<double>((std::chrono::steady_clock::now() - started).count());
    };
    std::vector<double> ratios;
    bool cache_first = true;
    for (auto _ : state) {
        const double first = timed_block(cache_first);
        const double second = timed_block(!cache_first);
        ratios.push_back(cache_first ? first / second : second / first);
        cache_first = !cache_first;
    }
    fx.hit_pos = pos;
    const std::uint64_t gets = static_cast<std::uint64_t>(state.iterations()) * 2 * block_gets;
    if (hits != gets) state.SkipWithError("a get_hit lookup missed");
    std::nth_element(ratios.begin(), ratios.begin() + static_cast<std::ptrdiff_t>(ratios.size() / 2), ratios.end());
    state.counters["cache_over_tier"] = ratios.empty() ? 0.0 : ratios[ratios.size() / 2];
    state.SetItemsProcessed(static_cast<std::int64_t>(gets));
}

template <class Impl>
void bm_get_miss(benchmark::State& state, const char* expected_code) {
    auto& fx = fixture<Impl>::instance();
    if (const std::string code = fx.impl.miss_code(fx.absent.front()); code != expected_code) {
        state.SkipWithError(("a miss returned " + code + ", not " + expected_code).c_str());
        return;
    }
    const std::string* const keys = fx.absent.data();
    std::size_t pos = fx.miss_pos;
    std::uint64_t hits = 0;
    for (auto _ : state) {
        hits += fx.impl.get(keys[pos]) != 0 ? 1 : 0;
        if (++pos == hit_keys) pos = 0;
    }
    fx.miss_pos = pos;
    if (hits != 0) state.SkipWithError("a get_miss lookup hit");
    state.SetItemsProcessed(state.iterations());
}

template <class Impl, bool OwnMemory = false>
void register_hits() {
    const std::string name = std::string(Impl::name) + (OwnMemory ? "/own_memory_tier" : "");
    benchmark::RegisterBenchmark(("get_hit/" + name).c_str(), bm_get_hit<Impl, OwnMemory>);
    benchmark::RegisterBenchmark(("get_hit_chained/" + name).c_str(), bm_get_hit_chained<Impl, OwnMemory>);
}

template <class Impl>
void register_miss(const char* expected_code) {
    benchmark::RegisterBenchmark((std::string("get_miss/") + Impl::name).c_str(), bm_get_miss<Impl>, expected_code);
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    register_hits<bare_memory_tier>();
    register_hits<cache_memory_storage>();
    register_hits<cache_memory_storage, true>();
    register_hits<cache_no_storage, true>();
    benchmark::RegisterBenchmark("get_hit_paired/cache/memory_storage", bm_get_hit_paired<cache_memory_storage>);
    benchmark::RegisterBenchmark("get_hit_paired/cache/no_storage", bm_get_hit_paired<cache_no_storage>);
    register_hits<cache_no_storage>();
    register_hits<steps<1>>();
    register_hits<steps<2>>();

    register_miss<bare_memory_tier>("miss");
    register_miss<cache_no_storage>("miss");
    register_miss<cache_memory_storage>("miss");
    register_miss<open_memory_only>("circuit_open");
    register_miss<open_fail_fast>("circuit_open");
    register_miss<open_bypass>("circuit_open");

    benchmark::AddCustomContext("workload",
                                "100k keys held; get_hit: the same keys, uniform order; get_miss: 100k other keys");
    benchmark::AddCustomContext("kv", "key \"key:NNNNNN\" (10 B), value \"val:NNNNNN:ok\" (13 B): std::string, SSO");
    benchmark::AddCustomContext("memory_config", "16 shards, max_entries 0, byte_budget 64 MB (default)");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
