// The range cache: ranges of a large file served through an origin function that counts
// its calls; then a damaged block and a damaged metadata record, and how the cache recovers.
#include <tierguard/tierguard.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;
using range_cache = tierguard::range_cache<>;

int run(const fs::path& scratch) {
    // The "origin": a generated 8 MiB file, read with pread.
    fs::create_directories(scratch);
    const fs::path object = scratch / "model.bin";
    {
        std::ofstream out(object, std::ios::binary);
        for (std::uint32_t i = 0; i < (8u << 20) / 4; ++i) out.write(reinterpret_cast<const char*>(&i), 4);
    }
    const int fd = ::open(object.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    int origin_calls = 0;
    auto fetch = [&](std::uint64_t offset, std::span<std::byte> out) -> tierguard::result<void> {
        ++origin_calls;
        if (::pread(fd, out.data(), out.size(), static_cast<off_t>(offset)) != static_cast<ssize_t>(out.size()))
            return tierguard::fail(tierguard::errc::io_error, tierguard::tier::none, "short pread of the origin");
        return {};
    };
    const tierguard::range_version version{"etag-1", fs::file_size(object)};
    const tierguard::range_version other_version{"etag-7", 1 << 20};
    const tierguard::range_config config{.block_size = 256 << 10, .byte_budget = 64 << 20, .memory_budget = 0};
    auto open = [&] {
        auto dir = tierguard::storage::posix_directory::open({.root = scratch / "cache"});
        return dir ? range_cache::open(std::move(*dir), config) : tierguard::unexpected(std::move(dir).error());
    };

    std::string folder;
    {
        auto cache = open();
        if (!cache) return std::printf("%s\n", range_cache::describe(cache.error()).c_str()), 1;
        auto cold = cache->read("model.bin", version, 1 << 20, 4 << 20, fetch);  // 16 blocks, all missing
        std::printf("cold read of 4 MiB: %s, origin calls %d\n", cold ? "ok" : "failed", origin_calls);
        auto warm = cache->read("model.bin", version, (1 << 20) + 100, 3 << 20, fetch);
        std::printf(
            "warm read of 3 MiB: %s, origin calls %d\n",
            cold && warm && *warm == std::vector<std::byte>(cold->begin() + 100, cold->begin() + 100 + (3 << 20))
                ? "same bytes"
                : "WRONG",
            origin_calls);
        (void)cache->read("other.bin", other_version, 0, 1 << 20, fetch);
        folder = cache->folder_for("model.bin");
        // Damage: a flipped byte in block 5 of model.bin, and other.bin's metadata overwritten.
        std::fstream block(scratch / "cache" / range_cache::block_name(folder, 5),
                           std::ios::in | std::ios::out | std::ios::binary);
        block.seekp(1000);
        block.put('!');
        std::ofstream(scratch / "cache" / range_cache::metadata_name(cache->folder_for("other.bin")), std::ios::trunc)
            << "garbage";
    }
    auto cache = open();  // verification at open finds the damaged record
    if (!cache) return std::printf("%s\n", range_cache::describe(cache.error()).c_str()), 1;
    const int before = origin_calls;
    auto again = cache->read("model.bin", version, 1 << 20, 4 << 20, fetch);
    std::printf("after damage: read %s, origin calls +%d (block 5 fetched again)\n", again ? "ok" : "failed",
                origin_calls - before);
    (void)cache->read("other.bin", other_version, 0, 1 << 20, fetch);
    const auto m = cache->metrics();
    std::printf("corruption_metadata=%llu corruption_missing_range=%llu orphaned_files_cleaned=%llu\n",
                static_cast<unsigned long long>(m.corruption_metadata),
                static_cast<unsigned long long>(m.corruption_missing_range),
                static_cast<unsigned long long>(m.orphaned_files_cleaned));
    auto report = cache->cleanup();
    if (report)
        std::printf("cleanup: %llu objects checked, %llu inconsistencies fixed, %llu orphans, %llu temp files\n",
                    static_cast<unsigned long long>(report->objects_checked),
                    static_cast<unsigned long long>(report->inconsistencies_fixed),
                    static_cast<unsigned long long>(report->orphaned_files_cleaned),
                    static_cast<unsigned long long>(report->temp_files_cleaned));
    ::close(fd);
    return 0;
}

int main() {
    // A fresh folder under the system's temp directory (mkdtemp), removed afterwards.
    std::string scratch = (fs::temp_directory_path() / "tierguard-range-XXXXXX").string();
    if (::mkdtemp(scratch.data()) == nullptr) return 1;
    const int status = run(scratch);
    fs::remove_all(scratch);
    return status;
}
