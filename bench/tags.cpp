// Warming and invalidation of related entries (issue 17), for the figures of its closing note:
//   warm_on_open/100000   a cache reopened over 100k entries of 100 bytes in a segment_log
//                         with config::warm_on_open = 100000: the time open() took to copy
//                         them into memory (counter warm_at_open_s, from metrics())
//   invalidate_tag/1000000  invalidate_tag() of one tag held by 1000 of 1M entries (1000
//                         tags of 1000 entries each; every iteration takes another tag),
//                         memory tier in front holding the most recent 100k
// Storage: segment_log, durability::none, in a mkdtemp() folder under /tmp (or
// $TIERGUARD_BENCH_DIR), removed at exit. bench/README.md ("Tags and warming") records a run.
#include <benchmark/benchmark.h>

#include <tierguard/cache.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

struct bench_policies : tierguard::cache_defaults {
    using storage = tierguard::storage::segment_log;
};
using cache_t = tierguard::cache<std::string, std::string, bench_policies>;

struct scratch {
    std::filesystem::path path;
    scratch() {
        const char* base = std::getenv("TIERGUARD_BENCH_DIR");
        std::string pattern =
            (std::filesystem::path(base != nullptr ? base : "/tmp") / "tierguard-bench-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) std::abort();
        path = pattern;
    }
    ~scratch() { std::filesystem::remove_all(path); }
};

cache_t::config config_for(const std::filesystem::path& root, std::size_t memory_bytes) {
    cache_t::config cfg;
    cfg.storage.root = root;
    cfg.storage.sync = tierguard::durability::none;
    cfg.storage.byte_budget = std::uint64_t{4} << 30;
    cfg.disk.byte_budget = std::uint64_t{4} << 30;
    cfg.memory.byte_budget = memory_bytes;
    return cfg;
}

cache_t open_or_die(const cache_t::config& cfg) {
    auto c = cache_t::open(cfg);
    if (!c) std::abort();
    return std::move(*c);
}

const std::string value(100, 'v');

void warm_on_open(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    scratch dir;
    auto cfg = config_for(dir.path, std::size_t{256} << 20);
    {
        auto cache = open_or_die(cfg);
        for (std::size_t i = 0; i < n; ++i) (void)cache.put("user:" + std::to_string(i), value);
    }
    cfg.warm_on_open = n;
    double seconds = 0;
    std::uint64_t warmed = 0;
    for (auto _ : state) {
        auto cache = open_or_die(cfg);
        const auto mt = cache.metrics();
        seconds = std::chrono::duration<double>(mt.warm_at_open_time).count();
        warmed = mt.warmed_at_open;
    }
    state.counters["warm_at_open_s"] = seconds;
    state.counters["warmed"] = static_cast<double>(warmed);
}
BENCHMARK(warm_on_open)->Arg(100000)->Iterations(3)->Unit(benchmark::kMillisecond);

void invalidate_tag(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    constexpr std::size_t tags = 1000;
    scratch dir;
    auto cache = open_or_die(config_for(dir.path, std::size_t{32} << 20));
    for (std::size_t i = 0; i < n; ++i)
        (void)cache.put("item:" + std::to_string(i), value,
                        {.ttl = std::nullopt, .tags = {"t" + std::to_string(i % tags)}});
    std::size_t next = 0;
    std::size_t removed = 0;
    for (auto _ : state) {
        auto r = cache.invalidate_tag("t" + std::to_string(next++ % tags));
        removed = r ? *r : 0;
    }
    state.counters["removed"] = static_cast<double>(removed);
}
BENCHMARK(invalidate_tag)->Arg(1000000)->Iterations(10)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
