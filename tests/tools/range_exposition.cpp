// Prints a range cache's Prometheus exposition after reads, a missing block, a full disk,
// a new version and a cleanup, for `promtool check metrics` (ctest: promtool.range_exposition).
#include <tierguard/clock/manual.hpp>
#include <tierguard/range_cache.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <cstdio>
#include <string>

namespace {

using storage = tierguard::storage::fault_injecting<tierguard::storage::memory_storage>;
struct policies : tierguard::range_defaults {
    using storage = ::storage;
    using clock = tierguard::clock::manual;
};

}  // namespace

int main() {
    using tierguard::storage::fault;
    using tierguard::storage::op;
    tierguard::clock::manual clock;
    storage disk(tierguard::storage::memory_storage(), {}, clock);
    auto ctl = disk.control();
    auto cache =
        tierguard::range_cache<policies>::open(std::move(disk), {.block_size = 4096, .memory_budget = 0}, clock);
    if (!cache) {
        std::fprintf(stderr, "%s\n", cache.error().message().c_str());
        return 1;
    }
    auto fetch = [](std::uint64_t offset, std::span<std::byte> out) -> tierguard::result<void> {
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>((offset + i) * 7);
        return {};
    };
    const tierguard::range_version v{"etag", 64 * 1024};
    for (int i = 0; i < 4; ++i) (void)cache->read("object-" + std::to_string(i), v, 0, v.size, fetch);
    (void)cache->storage().remove(tierguard::range_cache<policies>::block_name(cache->folder_for("object-0"), 3));
    ctl.script(op::write, ctl.counters().calls(op::write) + 1, fault::disk_full);
    (void)cache->read("object-0", v, 0, v.size, fetch);
    (void)cache->read("object-1", {"etag-2", 64 * 1024}, 0, 8192, fetch);
    (void)cache->cleanup();
    std::fputs(cache->to_prometheus().c_str(), stdout);
    return 0;
}
