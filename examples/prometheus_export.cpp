// Prometheus export: what a /metrics handler returns for a cache. cache::to_prometheus()
// renders every counter, gauge and latency histogram in the text exposition format 0.0.4;
// the application's own metrics can be added with tierguard::prometheus_text.
// It writes one scrape body to stdout; ctest checks it with `promtool check metrics`.
#include "scratch_dir.hpp"

#include <tierguard/tierguard.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

using profile_cache = tierguard::cache<std::string, std::string>;

// The body of a scrape, served with "Content-Type: text/plain; version=0.0.4".
std::string scrape(const profile_cache& cache, std::uint64_t requests_served) {
    tierguard::prometheus_text app;  // the application's own families, after the cache's
    app.counter("app_requests_total", "Requests the application served.", {}, requests_served);
    return cache.to_prometheus() + app.str();
}

int run(const std::filesystem::path& root) {
    profile_cache::config cfg;
    cfg.storage.root = root;
    auto cache = profile_cache::open(cfg);
    if (!cache) return std::fprintf(stderr, "%s\n", cache.error().message().c_str()), 1;
    std::uint64_t served = 0;
    for (const char* id : {"ada", "grace", "ada", "edsger", "ada"}) {
        if (!cache->get(id)) (void)cache->put(id, std::string("profile of ") + id);
        ++served;
    }
    const std::string body = scrape(*cache, served);
    std::fputs(body.c_str(), stdout);
    return body.find("tierguard_hits_total{tier=\"memory\"} 2\n") != std::string::npos ? 0 : 1;
}

int main() { return run_in_scratch_dir("cache", run); }
