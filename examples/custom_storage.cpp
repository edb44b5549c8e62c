// A Storage policy of your own under a cache: every blob in one in-memory map, kept in a
// single file that each change rewrites atomically (a temp file renamed over the old one).
// The same six functions adapt any store you already run (a key-value database, an object
// store) to tierguard; the concept is tierguard::storage_policy (tierguard/storage/concept.hpp).
#include "scratch_dir.hpp"

#include <tierguard/tierguard.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

class single_file_storage {
public:
    /// What cache::config::storage holds for this storage; the cache calls open(config).
    struct config {
        std::filesystem::path file;
    };

    /// Loads the file if there is one. A damaged file is not fatal: a cache may start empty.
    static tierguard::result<single_file_storage> open(const config& cfg) {
        single_file_storage s(cfg);
        std::ifstream in(cfg.file, std::ios::binary);
        if (!in) return s;
        const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!s.load(std::as_bytes(std::span(raw.data(), raw.size()))))
            std::printf("%s is damaged; starting empty\n", cfg.file.c_str());
        return s;
    }

    tierguard::result<std::vector<std::byte>> read(std::string_view name) const {
        std::lock_guard lock(*m_mutex);
        const auto it = m_maps.blobs.find(name);
        if (it == m_maps.blobs.end()) return tierguard::fail(tierguard::errc::miss, tierguard::tier::disk);
        return it->second.bytes;
    }

    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return change([&](maps& m) {
            m.blobs[std::string(name)] = {{bytes.begin(), bytes.end()}, std::chrono::system_clock::now()};
            return true;
        });
    }

    tierguard::result<void> remove(std::string_view name) {
        return change([&](maps& m) { return m.blobs.erase(std::string(name)) == 1; });
    }

    tierguard::result<std::vector<tierguard::blob_info>> list() const {
        std::lock_guard lock(*m_mutex);
        std::vector<tierguard::blob_info> out;
        for (const auto& [name, b] : m_maps.blobs) out.push_back({name, b.bytes.size(), b.modified});
        return out;
    }

    // Quarantined blobs stay in the file, apart, stamped with the time they were moved.
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        return change([&](maps& m) {
            const auto it = m.blobs.find(name);
            if (it == m.blobs.end()) return false;
            m.quarantine[std::string(name) + "." + std::string(reason)] = {std::move(it->second.bytes), now};
            m.blobs.erase(it);
            return true;
        });
    }

    // Nothing is ever left half-written here, so cleaning only purges old quarantine.
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        tierguard::clean_report report;
        auto done = change([&](maps& m) {
            std::erase_if(m.quarantine, [&](const auto& q) {
                if (q.second.modified >= options.now - options.quarantine_max_age) return false;
                ++report.quarantine_purged;
                report.bytes_freed += q.second.bytes.size();
                return true;
            });
            return true;
        });
        if (!done) return tierguard::unexpected(std::move(done).error());
        return report;
    }

private:
    struct blob {
        std::vector<std::byte> bytes;
        std::chrono::system_clock::time_point modified;
    };
    using blob_map = std::map<std::string, blob, std::less<>>;
    struct maps {
        blob_map blobs, quarantine;
    };

    explicit single_file_storage(config cfg) : m_config(std::move(cfg)), m_mutex(std::make_unique<std::mutex>()) {}

    // Applies `edit` to a copy of the maps, writes the copy, and only then makes it current:
    // a failed write changes nothing. O(total size) per change, which suits a small cache.
    template <class Edit>
    tierguard::result<void> change(Edit edit) {
        std::lock_guard lock(*m_mutex);
        maps next = m_maps;
        if (!edit(next)) return tierguard::fail(tierguard::errc::miss, tierguard::tier::disk);
        if (auto saved = save(next); !saved) return saved;
        m_maps = std::move(next);
        return {};
    }

    // The file: for each map, a count, then name, bytes and time of each blob (byte_writer's
    // little-endian fields). Written beside the file and renamed over it: readers and a crash
    // see the old file or the new one. (Add an fsync before the rename to survive a power cut.)
    tierguard::result<void> save(const maps& m) const {
        std::vector<std::byte> out;
        tierguard::byte_writer w(out);
        for (const blob_map* map : {&m.blobs, &m.quarantine}) {
            w.u64(map->size());
            for (const auto& [name, b] : *map) {
                w.string(name);
                w.bytes(b.bytes);
                w.i64(std::chrono::duration_cast<std::chrono::nanoseconds>(b.modified.time_since_epoch()).count());
            }
        }
        const std::filesystem::path temp = m_config.file.string() + ".tmp";
        std::ofstream file(temp, std::ios::binary | std::ios::trunc);
        file.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
        file.close();
        std::error_code ec;
        if (file) std::filesystem::rename(temp, m_config.file, ec);
        if (!file || ec)
            return tierguard::fail(tierguard::errc::io_error, tierguard::tier::disk, "cannot write " + temp.string());
        return {};
    }

    [[nodiscard]] bool load(std::span<const std::byte> raw) {
        tierguard::byte_reader r(raw);
        maps loaded;
        for (blob_map* map : {&loaded.blobs, &loaded.quarantine}) {
            auto count = r.u64("count");
            if (!count) return false;
            for (std::uint64_t i = 0; i < *count; ++i) {
                auto name = r.string("name");
                if (!name) return false;
                auto bytes = r.bytes("bytes");
                if (!bytes) return false;
                auto ns = r.i64("modified");
                if (!ns) return false;
                const std::chrono::nanoseconds since_epoch(*ns);
                (*map)[std::move(*name)] = {
                    std::move(*bytes),
                    std::chrono::system_clock::time_point(
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch))};
            }
        }
        if (!r.finish()) return false;
        m_maps = std::move(loaded);
        return true;
    }

    config m_config;
    std::unique_ptr<std::mutex> m_mutex;  // unique_ptr: the storage is moved into the cache
    maps m_maps;
};

static_assert(tierguard::storage_policy<single_file_storage>);

struct single_file_policies : tierguard::cache_defaults {
    using storage = single_file_storage;
};
using profile_cache = tierguard::cache<std::string, std::string, single_file_policies>;

int run(const std::filesystem::path& file) {
    profile_cache::config cfg;
    cfg.storage.file = file;
    {
        auto cache = profile_cache::open(cfg);
        if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;
        for (const char* id : {"ada", "grace", "edsger"}) (void)cache->put(id, std::string("profile of ") + id);
        std::printf("stored %zu entries in %s (%ju bytes)\n", cache->disk().size(), file.filename().c_str(),
                    static_cast<std::uintmax_t>(std::filesystem::file_size(file)));
    }
    // A restart: the memory tier starts empty, the disk tier reads the file back.
    auto cache = profile_cache::open(cfg);
    if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;
    const auto ada = cache->get("ada");
    if (!ada) return std::printf("%s\n", ada.error().message().c_str()), 1;
    std::printf("after reopen: ada from %s -> %s (%zu entries)\n", std::string(to_string(ada->from)).c_str(),
                ada->value.c_str(), cache->disk().size());
    return ada->from == tierguard::tier::disk && cache->disk().size() == 3 ? 0 : 1;
}

int main() { return run_in_scratch_dir("cache.tgblobs", run); }
