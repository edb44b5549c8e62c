// Writes a realistic exposition to stdout, as a cache's scrape handler would: counters,
// gauges and latency histograms with labels, samples added in interleaved order, and a
// label value that needs escaping. ctest pipes it to `promtool check metrics`.
// Usage: prometheus_sample [observations per histogram, default 1000]
#include <tierguard/metrics.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

int main(int argc, char** argv) {
    const long observations = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 1000;
    if (observations <= 0) {
        std::fprintf(stderr, "usage: prometheus_sample [observations > 0]\n");
        return 2;
    }

    // Log-normal latencies around 20 us (memory) and 2 ms (disk), with a few above 2.5 s.
    std::mt19937_64 rng(42);
    tierguard::latency_histogram get_memory, get_disk, put_disk;
    auto fill = [&](tierguard::latency_histogram& h, double median_ns) {
        std::lognormal_distribution<double> d(std::log(median_ns), 1.5);
        for (long i = 0; i < observations; ++i) h.observe(std::chrono::nanoseconds{static_cast<std::int64_t>(d(rng))});
        h.observe(std::chrono::seconds{4});
    };
    fill(get_memory, 20e3);
    fill(get_disk, 2e6);
    fill(put_disk, 5e6);

    const std::string cache = "sessions \"eu\\west\"";
    tierguard::prometheus_text text;
    text.gauge("tierguard_build_info", "Library version; always 1.", {{"version", "0.1.0"}}, 1);
    for (const char* tier : {"memory", "disk"}) {
        text.counter("tierguard_hits_total", "Lookups answered with a live entry.", {{"cache", cache}, {"tier", tier}},
                     tier[0] == 'm' ? 912345 : 20481);
        text.counter("tierguard_misses_total", "Lookups that found no live entry.", {{"cache", cache}, {"tier", tier}},
                     tier[0] == 'm' ? 20511 : 30);
        text.gauge("tierguard_entries", "Entries held.", {{"cache", cache}, {"tier", tier}},
                   tier[0] == 'm' ? 4096 : 1e6);
        text.gauge("tierguard_bytes", "Bytes held, as counted by the weigher.", {{"cache", cache}, {"tier", tier}},
                   tier[0] == 'm' ? 67108864.0 : 1.5e9);
    }
    text.histogram("tierguard_get_duration_seconds", "Latency of get(), per tier that answered.",
                   {{"cache", cache}, {"tier", "memory"}}, get_memory.snapshot());
    text.counter("tierguard_failures_total", "Tier operations that failed, by error code.",
                 {{"cache", cache}, {"tier", "disk"}, {"code", "io_error"}}, 3);
    text.histogram("tierguard_get_duration_seconds", "Latency of get(), per tier that answered.",
                   {{"cache", cache}, {"tier", "disk"}}, get_disk.snapshot());
    text.histogram("tierguard_put_duration_seconds", "Latency of put() on the disk tier.",
                   {{"cache", cache}, {"tier", "disk"}}, put_disk.snapshot());
    for (const char* state : {"closed", "open", "half_open"})
        text.gauge("tierguard_breaker_state", "1 for the disk breaker's current state, 0 for the others.",
                   {{"cache", cache}, {"tier", "disk"}, {"state", state}}, state[0] == 'c' ? 1 : 0);
    text.counter("tierguard_failures_total", "Tier operations that failed, by error code.",
                 {{"cache", cache}, {"tier", "disk"}, {"code", "corrupted"}}, 1);
    text.gauge("tierguard_hit_ratio", "Hits over lookups since start; NaN before the first.", {{"cache", "empty"}},
               std::nan(""));

    const std::string out = text.str();
    return std::fwrite(out.data(), 1, out.size(), stdout) == out.size() && std::fflush(stdout) == 0 ? 0 : 1;
}
