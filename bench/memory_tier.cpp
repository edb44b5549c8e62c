// The memory tier against two references, in one binary so every figure is a ratio
// taken from one run on one machine:
//   tierguard     tierguard::memory_tier<std::string, std::string> (16 shards), default
//                 eviction policy (s3fifo)
//   tierguard_lru the same with eviction::lru
//   textbook_lru  std::unordered_map<Key, std::list<...>::iterator> + std::list + one std::mutex
//   bare_map      std::unordered_map<Key, Value>::find + copy out: no lock, no LRU (the floor)
// Scenarios (bench/README.md explains them and records a run):
//   get_hit/<impl>            100k keys, all present; uniform random order; one thread
//   get_hit_1k/<impl>         the same with 1000 keys: the cache-resident case
//   get_hit_chained/<impl>    the same, each key's position depending on the previous
//                             get's value: latency of a get rather than throughput
//   mix/<impl>/threads:{1,2}  90% get / 10% put, Zipf(0.99) over 1M keys, room for 100k,
//                             one shared instance, real time
//   mix_unshared/tierguard/threads:{1,2}  the same, one instance per thread: what the
//                             machine gives two threads at that moment, nothing shared
//   line_transfer/threads:2   one cache line handed between two threads: what a write to a
//                             line the other core holds costs here
//
// Keys are "key:NNNNNN" and values "val:NNNNNN:ok" (10 and 13 chars): both fit
// libstdc++'s and libc++'s short-string buffers (15 and 22 chars), so copying a value
// out or building one for a put never calls malloc and the figures measure the index,
// the LRU bookkeeping and the locks rather than the allocator.
#include <benchmark/benchmark.h>

#include "workload.hpp"

#include <tierguard/memory_tier.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------
// Workload parameters.

constexpr std::uint32_t max_hit_keys = 100'000;  // get_hit: keys held and looked up (get_hit_1k: 1000)
constexpr std::uint32_t key_space = 1'000'000;   // mix: distinct keys the stream draws from
constexpr std::size_t capacity = 100'000;        // mix: entries each cache may hold
constexpr double zipf_exponent = 0.99;
constexpr double put_share = 0.10;
constexpr std::size_t stream_length = std::size_t{1} << 21;  // mix ops before the stream repeats
constexpr std::uint32_t put_bit = 0x8000'0000U;              // set in a stream item: a put
constexpr std::size_t max_threads = 4;

// Fixed seeds: every run (and every implementation) sees the same keys in the same order.
constexpr std::uint64_t seed_hit_keys = 0x7469657267756172ULL;
constexpr std::uint64_t seed_stream = 0x6d69785f73747265ULL;
constexpr std::uint64_t seed_perm = 0x7065726d5f6b6579ULL;

constexpr std::size_t key_length = 10;  // "key:" + 6 digits

// Writes id's 6 decimal digits over the last 6 characters of a "key:NNNNNN" buffer, so
// the mix builds its key in place (no allocation, ~2 ns) instead of reading it from a
// 32 MB table that would evict the caches under test from L3.
void write_key(std::string& key, std::uint32_t id) noexcept {
    char* p = key.data() + key_length - 1;
    for (int i = 0; i < 6; ++i) {
        *p-- = static_cast<char>('0' + id % 10);
        id /= 10;
    }
}

std::string make_key(std::uint32_t id) {
    std::string key = "key:000000";
    write_key(key, id);
    return key;
}

std::string make_value(std::uint32_t id) {
    std::string value = "val:000000:ok";
    char* p = value.data() + 9;
    for (int i = 0; i < 6; ++i) {
        *p-- = static_cast<char>('0' + id % 10);
        id /= 10;
    }
    return value;
}

using tierguard_bench::uniform01;
using tierguard_bench::zipf_distribution;

// A random bijection rank -> key id, so the hottest keys are not "key:000000".."key:000099".
const std::vector<std::uint32_t>& rank_to_id() {
    static const std::vector<std::uint32_t> perm = tierguard_bench::permutation(key_space, seed_perm);
    return perm;
}

// The mix's operations: key id in the low 31 bits, put_bit for a put. 8 MB, read
// sequentially (the prefetcher hides it); 2M ops is 20x the capacity, so wrapping
// around does not make the stream look more cacheable than Zipf.
const std::vector<std::uint32_t>& mix_stream() {
    static const std::vector<std::uint32_t> ops = [] {
        const zipf_distribution zipf(key_space, zipf_exponent);
        const auto& perm = rank_to_id();
        std::mt19937_64 rng(seed_stream);
        std::vector<std::uint32_t> out(stream_length);
        for (auto& op : out) {
            const auto rank = zipf(rng);
            op = perm[rank - 1];
            if (uniform01(rng) < put_share) op |= put_bit;
        }
        return out;
    }();
    return ops;
}

// ---------------------------------------------------------------------------------------
// The three implementations, behind one small interface:
//   int get(const std::string&)   finds and copies the value out; 0 on a miss, else
//                                 1 + the value's first byte (get_hit_chained feeds it
//                                 into the next key's position)
//   void put(const std::string&, std::string)
// Each result goes through DoNotOptimize so the copy cannot be elided.

int seen(const std::string& value) noexcept { return 1 + static_cast<unsigned char>(value[0]); }

template <class Eviction>
struct tierguard_cache {
    static constexpr const char* name =
        std::is_same_v<Eviction, tierguard::memory_defaults::eviction> ? "tierguard" : "tierguard_lru";
    static constexpr bool can_evict = true;
    struct policies : tierguard::memory_defaults {
        using eviction = Eviction;
    };
    using tier_type = tierguard::memory_tier<std::string, std::string, policies>;

    // max_entries 0 = no count limit (get_hit must hold all 100k keys, and 16 shards
    // never fill evenly); the 64 MB default byte budget is 25x the ~2.3 MB of payload.
    explicit tierguard_cache(std::size_t max_entries) : m_tier(config(max_entries)) {}

    int get(const std::string& key) {
        auto r = m_tier.get(key);
        const int out = r ? seen(*r) : 0;
        benchmark::DoNotOptimize(r);
        return out;
    }
    void put(const std::string& key, std::string value) {
        auto r = m_tier.put(key, std::move(value));
        benchmark::DoNotOptimize(r);
    }
    [[nodiscard]] std::size_t size() const { return m_tier.size(); }

private:
    static tierguard::memory_config config(std::size_t max_entries) {
        tierguard::memory_config cfg;
        cfg.max_entries = max_entries;
        cfg.shards = 16;
        return cfg;
    }
    tier_type m_tier;
};

// The LRU cache of every textbook and interview: a hash map from key to a position in
// a recency list, one lock. reserve() so it never rehashes during a run.
struct textbook_lru {
    static constexpr const char* name = "textbook_lru";
    static constexpr bool can_evict = true;

    explicit textbook_lru(std::size_t cap) : m_capacity(cap == 0 ? std::size_t(-1) : cap) {
        m_index.reserve(cap == 0 ? max_hit_keys : cap + 1);
    }

    int get(const std::string& key) {
        std::optional<std::string> r = find(key);
        const int out = r ? seen(*r) : 0;
        benchmark::DoNotOptimize(r);
        return out;
    }
    void put(const std::string& key, std::string value) {
        std::lock_guard lock(m_mutex);
        if (auto it = m_index.find(key); it != m_index.end()) {
            it->second->second = std::move(value);
            m_items.splice(m_items.begin(), m_items, it->second);
            return;
        }
        m_items.emplace_front(key, std::move(value));
        m_index.emplace(key, m_items.begin());
        if (m_index.size() > m_capacity) {
            m_index.erase(m_items.back().first);
            m_items.pop_back();
        }
    }
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(m_mutex);
        return m_index.size();
    }

private:
    std::optional<std::string> find(const std::string& key) {
        std::lock_guard lock(m_mutex);
        const auto it = m_index.find(key);
        if (it == m_index.end()) return std::nullopt;
        m_items.splice(m_items.begin(), m_items, it->second);
        return it->second->second;
    }

    using list_type = std::list<std::pair<std::string, std::string>>;
    mutable std::mutex m_mutex;
    list_type m_items;  // most recently used first
    std::unordered_map<std::string, list_type::iterator> m_index;
    std::size_t m_capacity;
};

// The floor: what a lookup costs with no lock and no recency bookkeeping. It cannot
// evict, so in the mix it holds the 100k most popular keys (the best any 100k-entry
// cache can hold under a fixed Zipf law) and runs every op as a get: inserting the
// puts would grow it towards the whole 1M key space (10x the memory, a different
// hit ratio), and writing would make the 2-thread run a data race.
struct bare_map {
    static constexpr const char* name = "bare_map";
    static constexpr bool can_evict = false;

    explicit bare_map(std::size_t cap) { m_map.reserve(cap == 0 ? max_hit_keys : cap); }

    int get(const std::string& key) {
        std::optional<std::string> r;
        if (const auto it = m_map.find(key); it != m_map.end()) r = it->second;
        const int out = r ? seen(*r) : 0;
        benchmark::DoNotOptimize(r);
        return out;
    }
    void put(const std::string& key, std::string value) { m_map.insert_or_assign(key, std::move(value)); }
    [[nodiscard]] std::size_t size() const { return m_map.size(); }

private:
    std::unordered_map<std::string, std::string> m_map;
};

// ---------------------------------------------------------------------------------------
// get_hit: 100k keys, all present; looked up in a shuffled order of the same 100k
// precomputed std::strings (3.2 MB, read sequentially), so every key is asked once per
// 100k gets and the lookups land uniformly at random in the cache's memory.
// get_hit_1k: the same with 1000 keys, so the whole cache stays in L1/L2 and a get
// costs its instructions, not its cache misses.

template <class Impl, std::uint32_t Keys>
struct hit_fixture {
    Impl impl{0};
    std::vector<std::string> order;
    std::size_t pos = 0;

    hit_fixture() {
        std::mt19937_64 rng(seed_hit_keys);
        std::vector<std::uint32_t> ids(key_space);
        for (std::uint32_t i = 0; i < key_space; ++i) ids[i] = i;
        tierguard_bench::shuffle(ids, rng);
        ids.resize(Keys);
        for (const std::uint32_t id : ids) impl.put(make_key(id), make_value(id));
        tierguard_bench::shuffle(ids, rng);
        order.reserve(Keys);
        for (const std::uint32_t id : ids) order.push_back(make_key(id));
    }

    static hit_fixture& instance() {
        static hit_fixture fx;  // built once, on first use, outside the timed loop
        return fx;
    }
};

template <class Impl, std::uint32_t Keys>
void bm_get_hit(benchmark::State& state) {
    auto& fx = hit_fixture<Impl, Keys>::instance();
    if (fx.impl.size() != Keys) {
        state.SkipWithError("the cache does not hold all its keys");
        return;
    }
    const std::string* const keys = fx.order.data();
    const std::size_t n = fx.order.size();
    std::size_t pos = fx.pos;
    std::uint64_t hits = 0;
    for (auto _ : state) {
        hits += fx.impl.get(keys[pos]) != 0 ? 1 : 0;
        if (++pos == n) pos = 0;
    }
    fx.pos = pos;
    if (hits != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a get_hit lookup missed");
    state.SetItemsProcessed(state.iterations());
    state.counters["hit_ratio"] = benchmark::Counter(
        state.iterations() == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(state.iterations()));
}

// get_hit_chained: get_hit, but the position of the next key depends on the value the
// previous get returned (values start with 'v', so the step is always 1, which the
// compiler cannot know). The CPU can no longer start the next lookup's cache misses
// while the current one waits for its own: this measures the latency of one get, where
// get_hit measures throughput and rewards overlapping independent lookups. An extra
// scenario, added to explain get_hit's tierguard / bare_map ratio (bench/README.md).

template <class Impl, std::uint32_t Keys>
void bm_get_hit_chained(benchmark::State& state) {
    auto& fx = hit_fixture<Impl, Keys>::instance();
    if (fx.impl.size() != Keys) {
        state.SkipWithError("the cache does not hold all its keys");
        return;
    }
    const std::string* const keys = fx.order.data();
    const std::size_t n = fx.order.size();
    std::size_t pos = fx.pos;
    std::uint64_t hits = 0;
    for (auto _ : state) {
        const int got = fx.impl.get(keys[pos]);
        hits += got != 0 ? 1 : 0;
        pos += 1 + (static_cast<unsigned>(got) >> 8);  // got <= 256: always + 1
        if (pos >= n) pos = 0;
    }
    fx.pos = pos;
    if (hits != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a get_hit lookup missed");
    state.SetItemsProcessed(state.iterations());
}

// ---------------------------------------------------------------------------------------
// mix: 90% get / 10% put over Zipf(0.99) keys from a 1M key space, room for 100k.
// One instance per implementation, shared by the threads of a run and kept across runs
// (warm: the stream is replayed once before the first timed run), so every run
// measures the steady state. Each thread keeps its own place in the stream, and thread
// t starts t/4 of the stream in, so two threads never ask for the same keys in step.

template <class Impl>
struct mix_fixture {
    Impl impl{capacity};
    struct alignas(64) cursor {
        std::size_t pos = 0;
        bool started = false;
    };
    std::array<cursor, max_threads> cursors{};

    mix_fixture() {
        if constexpr (Impl::can_evict) {
            std::string key = make_key(0);
            for (const std::uint32_t op : mix_stream()) {
                write_key(key, op & ~put_bit);
                if ((op & put_bit) != 0) {
                    impl.put(key, make_value(op & ~put_bit));
                } else {
                    benchmark::DoNotOptimize(impl.get(key));
                }
            }
        } else {
            const auto& perm = rank_to_id();
            for (std::size_t rank = 0; rank < capacity; ++rank) impl.put(make_key(perm[rank]), make_value(perm[rank]));
        }
    }

    static mix_fixture& instance() {
        static mix_fixture fx;
        return fx;
    }

    // Thread t's own instance, for the unshared runs. Made on first use, by that thread,
    // before its timed loop.
    static mix_fixture& unshared_instance(std::size_t t) {
        static std::array<std::unique_ptr<mix_fixture>, max_threads> fx;
        if (!fx[t]) fx[t] = std::make_unique<mix_fixture>();
        return *fx[t];
    }
};

// Shared: one instance for all threads (the scenario). Unshared: each thread has its own
// instance, so nothing is shared and the 2-thread figure is what this machine gives
// the same work at that moment: the reference the shared figure is read against.
template <class Impl, bool Shared>
void bm_mix(benchmark::State& state) {
    const auto t = static_cast<std::size_t>(state.thread_index());
    if (t >= max_threads) {
        state.SkipWithError("more threads than the fixture has cursors for");
        return;
    }
    auto& fx = Shared ? mix_fixture<Impl>::instance() : mix_fixture<Impl>::unshared_instance(t);
    const std::vector<std::uint32_t>& ops = mix_stream();
    const std::uint32_t* const stream = ops.data();
    constexpr std::size_t mask = stream_length - 1;
    static_assert((stream_length & mask) == 0, "the stream length must be a power of two");

    auto& cur = fx.cursors[t];
    if (!cur.started) {
        cur.pos = (t * stream_length / max_threads) & mask;
        cur.started = true;
    }
    std::size_t pos = cur.pos;
    std::string key = make_key(0);
    std::uint64_t gets = 0;
    std::uint64_t hits = 0;
    for (auto _ : state) {
        const std::uint32_t op = stream[pos];
        pos = (pos + 1) & mask;
        const std::uint32_t id = op & ~put_bit;
        write_key(key, id);
        if (Impl::can_evict && (op & put_bit) != 0) {
            fx.impl.put(key, make_value(id));
        } else {
            ++gets;
            hits += fx.impl.get(key) != 0 ? 1 : 0;
        }
    }
    cur.pos = pos;
    state.SetItemsProcessed(state.iterations());
    // Per thread, averaged over the threads of the run.
    state.counters["hit_ratio"] = benchmark::Counter(
        gets == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(gets), benchmark::Counter::kAvgThreads);
    // Entries held at the end: below the 100k capacity, the mix never evicts (its
    // 2M-op stream puts fewer distinct keys), so its hit ratio is every policy's.
    if (t == 0) state.counters["held"] = static_cast<double>(fx.impl.size());
    state.counters["get_share"] = benchmark::Counter(
        state.iterations() == 0 ? 0.0 : static_cast<double>(gets) / static_cast<double>(state.iterations()),
        benchmark::Counter::kAvgThreads);
}

// ---------------------------------------------------------------------------------------
// line_transfer/threads:2: two threads hand one cache line back and forth (each waits for
// the other's increment, then increments); an iteration is one hand-over. It prices what
// every write to a line the other core touched last costs on this machine at this
// moment: the budget a shared tier's get spends on each lock, counter or LRU link it
// writes.

void bm_line_transfer(benchmark::State& state) {
    alignas(64) static std::atomic<std::uint64_t> turn{0};
    const auto me = static_cast<std::uint64_t>(state.thread_index());
    if (me == 0) turn.store(0, std::memory_order_relaxed);  // the loop's start barrier publishes it
    for (auto _ : state) {
        while (turn.load(std::memory_order_acquire) % 2 != me) {}
        turn.fetch_add(1, std::memory_order_release);
    }
    state.SetItemsProcessed(state.iterations());
}

// ---------------------------------------------------------------------------------------

template <class Impl>
void register_impl() {
    benchmark::RegisterBenchmark((std::string("get_hit/") + Impl::name).c_str(), bm_get_hit<Impl, max_hit_keys>);
    benchmark::RegisterBenchmark((std::string("get_hit_1k/") + Impl::name).c_str(), bm_get_hit<Impl, 1000>);
    benchmark::RegisterBenchmark((std::string("get_hit_chained/") + Impl::name).c_str(),
                                 bm_get_hit_chained<Impl, max_hit_keys>);
}

template <class Impl, bool Shared = true>
void register_mix() {
    benchmark::RegisterBenchmark((std::string(Shared ? "mix/" : "mix_unshared/") + Impl::name).c_str(),
                                 bm_mix<Impl, Shared>)
        ->Threads(1)
        ->Threads(2)
        ->UseRealTime();
}

// Context lines in the report: the workload, and a check that the Zipf sampler draws
// the law it claims (observed vs exact share of the three most popular ranks).
void add_context() {
    const zipf_distribution zipf(key_space, zipf_exponent);
    const auto& perm = rank_to_id();
    std::array<std::uint64_t, 3> seen{};
    std::uint64_t puts = 0;
    for (const std::uint32_t op : mix_stream()) {
        const std::uint32_t id = op & ~put_bit;
        for (std::size_t r = 0; r < seen.size(); ++r) seen[r] += id == perm[r] ? 1 : 0;
        puts += (op & put_bit) != 0 ? 1 : 0;
    }
    char buf[256];
    std::snprintf(buf, sizeof buf, "P(rank 1..3) exact %.4f %.4f %.4f, in stream %.4f %.4f %.4f; puts %.4f",
                  zipf.probability(1), zipf.probability(2), zipf.probability(3),
                  static_cast<double>(seen[0]) / stream_length, static_cast<double>(seen[1]) / stream_length,
                  static_cast<double>(seen[2]) / stream_length, static_cast<double>(puts) / stream_length);
    benchmark::AddCustomContext("zipf_check", buf);
    benchmark::AddCustomContext("workload",
                                "get_hit: 100k keys all present, uniform order; mix: 90% get / 10% put, "
                                "Zipf(0.99) over 1M keys, capacity 100k, 2M-op stream");
    benchmark::AddCustomContext("kv", "key \"key:NNNNNN\" (10 B), value \"val:NNNNNN:ok\" (13 B): std::string, SSO");
    benchmark::AddCustomContext("tierguard_config",
                                "16 shards; get_hit max_entries=0, mix max_entries=100000; tierguard = the default "
                                "eviction policy (s3fifo), tierguard_lru = eviction::lru");
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    using tierguard_default = tierguard_cache<tierguard::memory_defaults::eviction>;
    using tierguard_lru = tierguard_cache<tierguard::eviction::lru>;
    register_impl<tierguard_default>();
    register_impl<tierguard_lru>();
    register_impl<textbook_lru>();
    register_impl<bare_map>();
    register_mix<tierguard_default>();
    register_mix<tierguard_lru>();
    register_mix<tierguard_default, false>();
    register_mix<textbook_lru>();
    register_mix<bare_map>();
    benchmark::RegisterBenchmark("line_transfer", bm_line_transfer)->Threads(2)->UseRealTime();

    add_context();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
