// The disk tier on its own: entries survive a restart, and a corrupted file is a
// counted, quarantined miss instead of an exception or a wrong value.
#include <tierguard/tierguard.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

int main() {
    namespace fs = std::filesystem;
    std::string scratch = (fs::temp_directory_path() / "tierguard-example-XXXXXX").string();
    if (::mkdtemp(scratch.data()) == nullptr) return 1;
    const fs::path root = fs::path(scratch) / "cache";
    using disk = tierguard::disk_tier<std::string, std::string>;
    int status = 0;
    {
        auto dir = tierguard::storage::posix_directory::open({.root = root, .sync = tierguard::durability::data});
        if (!dir) return std::printf("%s\n", dir.error().message().c_str()), 1;
        auto cache = disk::open(std::move(*dir), {.byte_budget = 64 << 20, .compression_level = 6});
        if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;

        for (const char* user : {"ada", "grace", "edsger"}) {
            if (auto stored = cache->put(user, std::string("profile of ") + user); !stored)
                std::printf("not stored: %s\n", stored.error().message().c_str());
        }
        std::printf("grace -> %s\n", cache->get("grace").value_or("(miss)").c_str());

        // Damage one entry's file, as a bad disk or a stray script would.
        std::ofstream(root / cache->name_for("ada").value(), std::ios::trunc) << "corrupted data";
        const auto damaged = cache->get("ada");
        std::printf("ada   -> %s\n", damaged ? damaged->c_str() : damaged.error().message().c_str());

        const auto stats = cache->stats();
        std::printf("entries=%zu corrupted=%llu quarantined=%llu\n", stats.entries,
                    static_cast<unsigned long long>(stats.corrupted),
                    static_cast<unsigned long long>(stats.quarantined));
        status = damaged.error().code() == tierguard::errc::corrupted && stats.quarantined == 1 ? 0 : 1;
    }
    {
        // A restart: the index is rebuilt by scanning, and the good entries are there.
        auto dir = tierguard::storage::posix_directory::open({.root = root});
        if (!dir) return std::printf("%s\n", dir.error().message().c_str()), 1;
        auto cache = disk::open(std::move(*dir));
        if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;
        std::printf("after reopen: entries=%zu edsger -> %s\n", cache->size(),
                    cache->get("edsger").value_or("(miss)").c_str());
        if (cache->size() != 2) status = 1;
    }
    fs::remove_all(scratch);
    return status;
}
