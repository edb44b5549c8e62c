// Hit ratios of the memory tier's eviction policies on seeded synthetic workloads, next
// to the static optimum. Deterministic: every run prints the same ratios (the times
// vary; they are not the point). bench/README.md explains the workloads and records a run.
//
//   zipf<s>/cache<c>%[/scans]/<policy>
//       Requests drawn from Zipf(s) over 1M keys, s = 0.8 or 1.0; a request is a get,
//       and a miss puts the key (read-through). Room for c% of the key space (1% or 5%).
//       /scans: after every 50k requests, 20k requests for keys never asked before or
//       after (a one-time scan); hit_ratio counts the Zipf requests only, so it compares
//       directly with the same workload without scans.
//   mix99/<policy>
//       bench_memory_tier's mix: 90% get / 10% put over Zipf(0.99), 1M keys, room for
//       100k; a get never inserts. hit_ratio = hits / gets. 25M requests, as only its
//       puts fill the cache.
//
// Every other workload runs 5M Zipf requests (plus the scans); the first 20% warm the cache
// and are not counted. oracle = the share of counted requests that ask for the C keys
// asked most often among them (C = the capacity): what a cache that knew the future
// counts and never changed its contents would hit. The tier has 16 shards (as in
// bench_memory_tier) and counts entries (weigher::unit, byte_budget = C).
//
//   <zipf workload at 1%>/segment_log
//       storage::segment_log alone (the disk tier's log-structured storage: whole
//       segments leave oldest first, and blobs read since they were written are carried
//       into the newest segment: FIFO with reinsertion), durability::none, in a mkdtemp()
//       folder under $TIERGUARD_BENCH_DIR or /tmp; an 8-byte blob per key, its byte
//       budget sized to hold C blobs (measured), 64 segments. Slower (system calls).
#include <benchmark/benchmark.h>

#include "workload.hpp"

#include <tierguard/memory_tier.hpp>
#include <tierguard/storage/segment_log.hpp>
#include <tierguard/weigher/dynamic_size.hpp>

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::uint32_t key_space = 1'000'000;
constexpr std::size_t zipf_requests = 5'000'000;
constexpr std::size_t mix_requests = 25'000'000;  // the mix fills its cache through its puts only
constexpr std::size_t scan_every = 50'000;
constexpr std::size_t scan_length = 20'000;
constexpr double warm_share = 0.2;
constexpr double mix_put_share = 0.10;
constexpr std::uint32_t put_bit = 0x8000'0000U;
constexpr std::size_t shards = 16;
constexpr std::uint64_t seed_perm = 0x7065726d5f6b6579ULL;
constexpr std::uint64_t seed_trace = 0x6869745f72617469ULL;

struct workload {
    std::string name;
    double zipf;
    std::size_t capacity;
    bool scans;
    bool mix;  // 90/10 get/put, no insert on a miss
};

// A trace: key ids in the low 31 bits (ids >= key_space are scan keys), put_bit for the
// mix's puts; `counted` is where the measured part starts; `oracle` as described above.
struct trace {
    std::vector<std::uint32_t> ops;
    std::size_t counted = 0;
    double oracle = 0;
};

trace make_trace(const workload& w) {
    static const std::vector<std::uint32_t> perm = tierguard_bench::permutation(key_space, seed_perm);
    const tierguard_bench::zipf_distribution zipf(key_space, w.zipf);
    std::mt19937_64 rng(seed_trace ^ static_cast<std::uint64_t>(w.zipf * 1000) ^ (w.mix ? 1 : 0));
    trace t;
    t.ops.reserve(w.mix ? mix_requests : zipf_requests + (w.scans ? zipf_requests / scan_every * scan_length : 0));
    std::uint32_t next_scan_key = key_space;
    const std::size_t requests = w.mix ? mix_requests : zipf_requests;
    for (std::size_t i = 0; i < requests; ++i) {
        if (i == static_cast<std::size_t>(warm_share * static_cast<double>(requests))) t.counted = t.ops.size();
        if (w.scans && i % scan_every == 0 && i != 0) {
            for (std::size_t j = 0; j < scan_length; ++j) t.ops.push_back(next_scan_key++);
        }
        std::uint32_t op = perm[zipf(rng) - 1];
        if (w.mix && tierguard_bench::uniform01(rng) < mix_put_share) op |= put_bit;
        t.ops.push_back(op);
    }
    std::vector<std::uint32_t> asked(key_space, 0);
    std::uint64_t total = 0;
    for (std::size_t i = t.counted; i < t.ops.size(); ++i) {
        if ((t.ops[i] & put_bit) != 0 || t.ops[i] >= key_space) continue;
        ++asked[t.ops[i]];
        ++total;
    }
    std::partial_sort(asked.begin(), asked.begin() + static_cast<std::ptrdiff_t>(w.capacity), asked.end(),
                      std::greater<>());
    std::uint64_t top = 0;
    for (std::size_t k = 0; k < w.capacity; ++k) top += asked[k];
    t.oracle = static_cast<double>(top) / static_cast<double>(total);
    return t;
}

const trace& trace_for(const workload& w) {
    static std::map<std::string, std::unique_ptr<trace>> made;
    auto& t = made[w.name];
    if (!t) t = std::make_unique<trace>(make_trace(w));
    return *t;
}

template <class Eviction>
struct counted_policies : tierguard::memory_defaults {
    using weigher = tierguard::weigher::unit;
    using eviction = Eviction;
};

template <class Eviction>
void bm_hit_ratio(benchmark::State& state, const workload& w) {
    const trace& t = trace_for(w);
    std::uint64_t asked = 0;
    std::uint64_t hits = 0;
    for (auto _ : state) {
        tierguard::memory_tier<std::uint64_t, std::uint64_t, counted_policies<Eviction>> tier(
            {.byte_budget = w.capacity, .shards = shards});
        asked = hits = 0;
        for (std::size_t i = 0; i < t.ops.size(); ++i) {
            const std::uint32_t op = t.ops[i];
            const std::uint64_t key = op & ~put_bit;
            if ((op & put_bit) != 0) {
                (void)tier.put(key, key);
                continue;
            }
            const bool hit = tier.get(key).has_value();
            if (!hit && !w.mix) (void)tier.put(key, key);
            if (i >= t.counted && key < key_space) {
                ++asked;
                hits += hit ? 1 : 0;
            }
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(t.ops.size()) * state.iterations());
    state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(asked);
    state.counters["oracle"] = t.oracle;
    state.counters["of_oracle"] = static_cast<double>(hits) / static_cast<double>(asked) / t.oracle;
}

// A fresh folder for one segment_log run, removed afterwards.
class scratch_dir {
public:
    scratch_dir() {
        const char* base = std::getenv("TIERGUARD_BENCH_DIR");
        std::string templ = std::string(base != nullptr ? base : "/tmp") + "/tierguard-hit-ratio-XXXXXX";
        if (::mkdtemp(templ.data()) == nullptr) {
            std::perror(("bench_hit_ratio: mkdtemp " + templ).c_str());
            std::exit(1);
        }
        m_path = templ;
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return m_path; }

private:
    std::filesystem::path m_path;
};

using tierguard::storage::segment_log;

// "k" and 7 digits: every blob name has the same length, so every blob takes the same room.
struct blob_name {
    char text[16];
    explicit blob_name(std::uint64_t key) {
        std::snprintf(text, sizeof text, "k%07llu", static_cast<unsigned long long>(key));
    }
    [[nodiscard]] std::string_view view() const { return text; }
};

// Bytes of segment file one 8-byte blob named as below takes.
double segment_bytes_per_blob() {
    const scratch_dir dir;
    auto log = segment_log::open({.root = dir.path() / "probe", .sync = tierguard::durability::none});
    if (!log) return 0;
    constexpr int n = 10'000;
    const std::uint64_t value = 0;
    for (int i = 0; i < n; ++i) {
        (void)log->write(blob_name(static_cast<std::uint64_t>(i)).view(),
                         std::as_bytes(std::span<const std::uint64_t>(&value, 1)));
    }
    return static_cast<double>(log->stats().disk_bytes) / n;
}

void bm_segment_log(benchmark::State& state, const workload& w) {
    static const double per_blob = segment_bytes_per_blob();
    const trace& t = trace_for(w);
    const auto budget = static_cast<std::uint64_t>(per_blob * static_cast<double>(w.capacity));
    std::uint64_t asked = 0;
    std::uint64_t hits = 0;
    std::size_t held = 0;
    for (auto _ : state) {
        const scratch_dir dir;
        auto log = segment_log::open({.root = dir.path() / "log",
                                      .sync = tierguard::durability::none,
                                      .segment_size = std::max<std::uint64_t>(budget / 64, 4096),
                                      .byte_budget = budget});
        if (!log) {
            state.SkipWithError(log.error().message().c_str());
            return;
        }
        asked = hits = 0;
        for (std::size_t i = 0; i < t.ops.size(); ++i) {
            const std::uint64_t key = t.ops[i] & ~put_bit;
            const blob_name name(key);
            const bool hit = log->read(name.view()).has_value();
            if (!hit) (void)log->write(name.view(), std::as_bytes(std::span<const std::uint64_t>(&key, 1)));
            if (i >= t.counted && key < key_space) {
                ++asked;
                hits += hit ? 1 : 0;
            }
        }
        held = log->stats().entries;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(t.ops.size()) * state.iterations());
    state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(asked);
    state.counters["oracle"] = t.oracle;
    state.counters["of_oracle"] = static_cast<double>(hits) / static_cast<double>(asked) / t.oracle;
    state.counters["held"] = static_cast<double>(held);  // blobs at the end: about C
}

std::vector<workload> workloads() {
    std::vector<workload> out;
    for (const double s : {0.8, 1.0}) {
        for (const std::size_t percent : {1, 5}) {
            for (const bool scans : {false, true}) {
                const std::string name = std::string("zipf") + (s < 0.9 ? "0.8" : "1.0") + "/cache" +
                                         std::to_string(percent) + "%" + (scans ? "/scans" : "");
                out.push_back({name, s, key_space / 100 * percent, scans, false});
            }
        }
    }
    out.push_back({"mix99", 0.99, 100'000, false, true});
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    static const std::vector<workload> all = workloads();
    for (const workload& w : all) {
        benchmark::RegisterBenchmark((w.name + "/lru").c_str(), bm_hit_ratio<tierguard::eviction::lru>, w)
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((w.name + "/s3fifo").c_str(), bm_hit_ratio<tierguard::eviction::s3fifo>, w)
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
        if (!w.mix && w.capacity == key_space / 100) {
            benchmark::RegisterBenchmark((w.name + "/segment_log").c_str(), bm_segment_log, w)
                ->Iterations(1)
                ->Unit(benchmark::kMillisecond);
        }
    }
    benchmark::AddCustomContext("workload",
                                "5M Zipf requests over 1M keys (+ 20k-key scans every 50k), 20% warm-up; "
                                "16 shards, entry-counted");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
