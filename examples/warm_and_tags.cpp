// Warming and invalidation of related entries (seed 003 §3 and §5): a service restarts,
// copies its hottest disk entries into memory at open, warms its product catalogue in the
// background while it serves requests, then drops everything tagged with a team and every
// product under a key prefix.
#include "scratch_dir.hpp"

#include <tierguard/tierguard.hpp>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using profile_cache = tierguard::cache<std::string, std::string>;

// Stands in for the catalogue's database: one product in ten fails to load.
std::string load_product(const std::string& key) {
    const int id = std::stoi(key.substr(key.find(':') + 1));
    if (id % 10 == 0) throw std::runtime_error("catalogue timeout for " + key);
    return "product #" + std::to_string(id);
}

int run(const std::filesystem::path& root) {
    using namespace std::chrono_literals;
    profile_cache::config cfg;
    cfg.storage.root = root;
    cfg.storage.sync = tierguard::durability::none;  // a cache: a crash may lose entries, never corrupt one
    cfg.default_ttl = 1h;
    const char* teams[] = {"team:red", "team:blue"};

    {  // Yesterday's process: user profiles, each tagged with its user and team.
        auto cache = profile_cache::open(cfg);
        if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;
        for (int u = 0; u < 200; ++u) {
            const std::string id = std::to_string(u);
            (void)cache->put("user:" + id, "profile of " + id, {.ttl = 1h, .tags = {"user:" + id, teams[u % 2]}});
        }
        for (int p = 0; p < 50; ++p) (void)cache->put("product:" + std::to_string(p), "product #" + std::to_string(p));
    }

    // Today's process: the 100 most recently used entries go back into memory at open.
    cfg.warm_on_open = 100;
    auto cache = profile_cache::open(cfg);
    if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;
    std::printf("warmed at open: %llu entries from disk into memory\n",
                static_cast<unsigned long long>(cache->metrics().warmed_at_open));

    // Warm the catalogue on 4 threads while this thread serves profile requests.
    std::vector<std::string> products;
    for (int p = 0; p < 200; ++p) products.push_back("product:" + std::to_string(p));
    tierguard::warm_progress report;
    std::jthread warmer([&] {
        tierguard::warm_options opts;
        opts.threads = 4;
        report = cache->warm(products, load_product, opts);
    });
    int served = 0;
    int failed = 0;
    for (int round = 0; round < 5; ++round) {
        for (int u = 0; u < 200; ++u) {
            auto profile = cache->get("user:" + std::to_string(u));
            ++(profile ? served : failed);
        }
    }
    warmer.join();
    std::printf(
        "warm: %zu warmed, %zu skipped (already cached), %zu failed (loader); %d requests served "
        "meanwhile, %d failed\n",
        report.warmed, report.skipped, report.failed, served, failed);

    // The red team's data changed: every entry tagged with it goes, from memory and disk.
    auto removed = cache->invalidate_tag("team:red");
    if (!removed) return std::printf("%s\n", removed.error().message().c_str()), 1;
    std::printf("invalidate_tag(team:red) removed %zu entries; user:2 %s, user:3 %s\n", *removed,
                cache->get("user:2") ? "cached" : "gone", cache->get("user:3") ? "cached" : "gone");

    // Products 10..19 were repriced: one prefix, answered from the tiers' key indexes.
    auto repriced = cache->invalidate_prefix("product:1");
    if (!repriced) return std::printf("%s\n", repriced.error().message().c_str()), 1;
    std::printf("invalidate_prefix(product:1) removed %zu entries\n", *repriced);
    const auto mt = cache->metrics();
    std::printf("metrics: warmed=%llu warm_failed=%llu invalidated_entries=%llu\n",
                static_cast<unsigned long long>(mt.warmed), static_cast<unsigned long long>(mt.warm_failed),
                static_cast<unsigned long long>(mt.invalidated_entries));
    return 0;
}

int main() { return run_in_scratch_dir("cache", run); }
