// Property test of the range cache (issue 16): random reads of random ranges of a few
// objects whose versions change now and then, with cleanups, reopens (what a crash leaves:
// the cache holds nothing that a restart would have written), damage to stored files and
// changing fault rates, over storage::fault_injecting (io_error, disk_full, torn writes left
// visible, bit flips, truncations, vanishing blobs) around memory_storage and around a real
// posix_directory. Under ctest the posix_directory property also runs with the syscall
// fault shim preloaded (property.range_cache_model.shim: EIO and ENOSPC from the kernel).
// Half the posix_directory sequences run over the plain directory, whose blocks are read in
// place into the caller's span with the file's identity, damaged only through the file system. Each
// sequence draws range_config::verify_reads: always or once_per_file_change.
//
// After every read: it returned exactly the origin's bytes of the range for the version
// asked, or it failed with errc::loader_failed while the origin was failing; a storage
// fault never fails a read. After every step: the disk byte budget holds. At the end the
// faults stop, the cache reopens, a deep cleanup runs, and every object reads back right.
//
// Each case prints nothing unless it fails; a failure names the seed of its operation
// sequence ("sequence seed"), and rapidcheck's own seed ("Using configuration: seed=...")
// replays it with RC_PARAMS="seed=<seed>".
#include "support/property.hpp"
#include "support/shared_memory_storage.hpp"
#include "support/temp_dir.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/range_cache.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <dlfcn.h>
#include <sys/stat.h>

using namespace std::chrono_literals;
using tierguard::errc;
namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t block = 512;
constexpr int objects = 3;

std::byte origin_byte(const std::string& validator, std::uint64_t offset) {
    std::uint64_t x = (offset + 1) * 0x9e3779b97f4a7c15ULL ^ std::hash<std::string>{}(validator);
    x ^= x >> 31;
    return static_cast<std::byte>(x & 0xff);
}

// The syscall fault shim's switch, when the shim is preloaded: faults stay off while the
// cache opens (an open that cannot read its own directory fails, which is not what this
// property is about) and on for everything else.
void shim_enabled(bool on) {
    using switch_fn = void (*)(int);
    static const auto fn = reinterpret_cast<switch_fn>(::dlsym(RTLD_DEFAULT, "tierguard_shim_set_enabled"));
    if (fn != nullptr) fn(on ? 1 : 0);
}

struct memory_backend {
    using inner = tierguard_test::shared_memory_storage;
    std::shared_ptr<tierguard::storage::memory_storage> backing =
        std::make_shared<tierguard::storage::memory_storage>();
    std::optional<inner> make() { return inner(backing); }
    // Damages a stored blob: garbage, a cut, or gone.
    void damage(std::mt19937_64& rng) {
        auto listing = backing->list();
        if (!listing || listing->empty()) return;
        const auto& victim = (*listing)[rng() % listing->size()];
        auto bytes = backing->read(victim.name);
        if (!bytes) return;
        switch (rng() % 3) {
            case 0:
                if (!bytes->empty()) (*bytes)[rng() % bytes->size()] ^= std::byte{0x40};
                (void)backing->write(victim.name, *bytes);
                break;
            case 1:
                bytes->resize(bytes->size() / 2);
                (void)backing->write(victim.name, *bytes);
                break;
            default: (void)backing->remove(victim.name);
        }
    }
};

std::int64_t ctime_of(const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return -1;
    return std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
}

struct posix_backend {
    using inner = tierguard::storage::posix_directory;
    tierguard_test::temp_dir dir;
    fs::path root = dir.path() / "cache";
    std::optional<inner> make() {
        auto opened = inner::open({.root = root, .sync = tierguard::durability::none});
        if (!opened) return std::nullopt;
        return std::move(*opened);
    }
    void damage(std::mt19937_64& rng) {
        std::vector<fs::path> files;
        std::error_code ec;
        for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
             it.increment(ec)) {
            const auto name = it->path().filename().string();
            if (it->is_regular_file() && name.front() != '.' && it->path().parent_path().filename() != "quarantine")
                files.push_back(it->path());
        }
        if (files.empty()) return;
        const fs::path victim = files[rng() % files.size()];
        switch (rng() % 3) {
            case 0: {
                // Again until the file's ctime moves, as any later write in real time would
                // (the cache's manual clock runs ahead of the real one: see run_sequence).
                const auto at =
                    static_cast<std::streamoff>(rng() % std::max<std::uintmax_t>(1, fs::file_size(victim, ec)));
                const auto before = ctime_of(victim);
                for (int attempt = 0; attempt < 1'000'000 && ctime_of(victim) == before; ++attempt) {
                    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
                    f.seekp(at);
                    f.put('\x7f');
                }
                break;
            }
            case 1: fs::resize_file(victim, fs::file_size(victim, ec) / 2, ec); break;
            default: fs::remove(victim, ec);
        }
    }
};

// With `faults`, the storage is Backend::inner inside storage::fault_injecting; without, the
// inner storage itself (posix_directory: its in-place reads, read_into with the file's identity).
template <class Backend, bool faults>
struct policies_over : tierguard::range_defaults {
    using storage = std::conditional_t<faults, tierguard::storage::fault_injecting<typename Backend::inner>,
                                       typename Backend::inner>;
    using clock = tierguard::clock::manual;
};

template <class Backend, bool faults = true>
void run_sequence(std::uint64_t seed, int steps) {
    using faulty = tierguard::storage::fault_injecting<typename Backend::inner>;
    using cache_type = tierguard::range_cache<policies_over<Backend, faults>>;
    std::mt19937_64 rng(seed);
    const std::string where = " (sequence seed " + std::to_string(seed) + ")";
    Backend backend;
    // An hour ahead of the real time: under verify_reads once_per_file_change, the files the
    // cache writes have settled (range_cache::verify_settle) when it reads them again.
    tierguard::clock::manual clock(std::chrono::system_clock::now() + 1h);
    tierguard::range_config cfg;
    cfg.verify_reads = rng() % 2 == 0 ? tierguard::range_verify::always : tierguard::range_verify::once_per_file_change;
    cfg.block_size = block;
    cfg.byte_budget = (20 + rng() % 40) * (block + 100);
    cfg.memory_budget = rng() % 2 == 0 ? 0 : 8 * 1024;
    cfg.memory_shards = 2;
    cfg.max_request_bytes = (1 + rng() % 8) * block;
    cfg.emergency_eviction_backoff = rng() % 2 == 0 ? 0s : 10s;

    tierguard::storage::fault_rates rates;
    std::optional<tierguard::storage::fault_control> control;
    auto random_rates = [&] {
        auto r = [&](int percent) { return rng() % 100 < static_cast<unsigned>(percent) ? 0.02 * (rng() % 5) : 0.0; };
        rates = {.io_error = r(40),
                 .disk_full = r(30),
                 .permission_denied = 0.0,
                 .torn_write = r(30),
                 .bit_flip = r(30),
                 .truncation = r(20),
                 .vanish = r(20)};
    };
    random_rates();

    std::optional<cache_type> cache;
    auto reopen = [&] {
        cache.reset();
        shim_enabled(false);
        for (int attempt = 0; attempt < 3 && !cache; ++attempt) {
            auto inner = backend.make();
            RC_ASSERT(inner.has_value());
            if constexpr (faults) {
                faulty wrapped(std::move(*inner), {.seed = rng(), .torn_writes_visible = true}, clock);
                control = wrapped.control();
                if (attempt == 0) control->set_rates(rates);  // a retry opens without faults
                auto opened = cache_type::open(std::move(wrapped), cfg, clock);
                if (opened) cache.emplace(std::move(*opened));
            } else {
                auto opened = cache_type::open(std::move(*inner), cfg, clock);
                if (opened) cache.emplace(std::move(*opened));
            }
        }
        shim_enabled(true);
        if (!cache) RC_FAIL("the range cache did not open without faults" + where);
        if (control) control->set_rates(rates);
    };
    reopen();

    std::array<int, objects> version{};
    auto version_of = [&](int k) {
        const int v = version[static_cast<std::size_t>(k)];
        return tierguard::range_version{
            "k" + std::to_string(k) + "-v" + std::to_string(v),
            static_cast<std::uint64_t>((v * 7 + k * 3) % 23) * block + (v * 97 + k) % block};
    };
    bool origin_failing = false;
    auto fetch = [&](std::uint64_t offset, std::span<std::byte> out, const std::string& validator,
                     std::uint64_t size) -> tierguard::result<void> {
        if (offset % block != 0 || offset + out.size() > size ||
            (out.size() % block != 0 && offset + out.size() != size))
            RC_FAIL("an origin request not aligned to blocks: [" + std::to_string(offset) + ", +" +
                    std::to_string(out.size()) + ")" + where);
        if (origin_failing) return tierguard::fail(errc::io_error, tierguard::tier::none, "origin down");
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = origin_byte(validator, offset + i);
        return {};
    };
    // strict: the read must succeed (every block it needs is cached, or the origin works).
    auto check_read = [&](int k, std::uint64_t offset, std::uint64_t length, bool strict = false) {
        const auto v = version_of(k);
        auto got = cache->read(
            "object-" + std::to_string(k), v, offset, length,
            [&](std::uint64_t at, std::span<std::byte> out) { return fetch(at, out, v.validator, v.size); });
        if (!got) {
            if (strict || !origin_failing || got.error().code() != errc::loader_failed)
                RC_FAIL("a read failed: " + got.error().message() + where);
            return;
        }
        RC_ASSERT(got->size() == length);
        for (std::size_t i = 0; i < got->size(); ++i)
            if ((*got)[i] != origin_byte(v.validator, offset + i))
                RC_FAIL("byte " + std::to_string(offset + i) + " of " + v.validator + " differs from the origin's" +
                        where);
    };

    for (int step = 0; step < steps; ++step) {
        const unsigned pick = rng() % 100;
        const int k = static_cast<int>(rng() % objects);
        if (pick < 65) {
            if (rng() % 10 == 0) ++version[static_cast<std::size_t>(k)];
            origin_failing = rng() % 20 == 0;
            const auto size = version_of(k).size;
            const std::uint64_t offset = size == 0 ? 0 : rng() % size;
            const std::uint64_t length = size == offset ? 0 : rng() % (size - offset + 1);
            check_read(k, offset, length);
            origin_failing = false;
        } else if (pick < 75) {
            (void)cache->cleanup(rng() % 2 == 0);
        } else if (pick < 85) {
            reopen();
        } else if (pick < 93) {
            // Each object read whole before and after: what the damage hit was read (and, under
            // once_per_file_change, its file's identity recorded), and must be caught.
            for (int j = 0; j < objects; ++j) check_read(j, 0, version_of(j).size);
            backend.damage(rng);
            for (int j = 0; j < objects; ++j) check_read(j, 0, version_of(j).size);
        } else {
            random_rates();
            if (control) control->set_rates(rates);
        }
        RC_ASSERT(cache->metrics().bytes <= cfg.byte_budget);
    }

    rates = {};
    reopen();
    shim_enabled(false);
    auto report = cache->cleanup(true);
    if (!report) RC_FAIL("a cleanup without faults failed: " + report.error().message() + where);
    for (int k = 0; k < objects; ++k) check_read(k, 0, version_of(k).size, true);
    for (int k = 0; k < objects; ++k) {  // what is cached now serves without the origin
        origin_failing = true;
        const auto info = cache->inspect("object-" + std::to_string(k));
        if (info)
            for (const std::uint32_t b : info->blocks)
                check_read(k, std::uint64_t{b} * block,
                           std::min<std::uint64_t>(block, version_of(k).size - std::uint64_t{b} * block), true);
        origin_failing = false;
    }
    RC_ASSERT(cache->metrics().bytes <= cfg.byte_budget);
    shim_enabled(true);
}

}  // namespace

TEST_CASE("range cache model over fault_injecting memory_storage") {
    tierguard_test::check_property("every read returns the origin's bytes or fails with loader_failed (memory)",
                                   [](std::uint64_t seed) { run_sequence<memory_backend>(seed, 60); });
}

TEST_CASE("range cache model over posix_directory, fault_injecting or plain") {
    // Half the sequences over the plain directory: blocks read in place, with the file's identity.
    tierguard_test::check_property("every read returns the origin's bytes or fails with loader_failed (posix)",
                                   [](std::uint64_t seed) {
                                       if (seed % 2 == 0)
                                           run_sequence<posix_backend>(seed, 40);
                                       else
                                           run_sequence<posix_backend, false>(seed, 40);
                                   });
}
