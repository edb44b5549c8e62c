// The range cache against its floors (issue 16), each figure a ratio from one run:
//   read_1MiB/disk/tierguard   a cached 64 MiB object read in 1 MiB ranges through
//                              tierguard::range_cache over posix_directory (1 MiB blocks, no
//                              memory tier): every range one block file read into the output
//                              buffer and checked there (verify_reads = always, the default)
//   read_1MiB/disk/tierguard_once the same with verify_reads = once_per_file_change: each block
//                              file CRC-checked at its first read, later reads of the unchanged
//                              file (same fstat identity) not checked again
//   read_1MiB/disk/pread       the same 64 MiB as one plain file, pread() 1 MiB at a time into
//                              the same output buffer: the floor (page cache warm for both). The
//                              file is written in 1 MiB write()s, as each block file is written
//                              (one write() of its frame), so both are cached in like folios
//   read_1MiB/disk/pread_4KiB_writes the same pread()s of a copy written in 4 KiB write()s (as
//                              `head -c` or a small-buffer copy writes): what a floor file
//                              cached in small folios costs
//   read_1MiB/disk/block_files the block files of tierguard_once's cache read without the cache:
//                              open, one readv (head, the output buffer, CRC), fstat, close each:
//                              the floor of one file per block
//   read_1MiB/disk/pread_crc32 the same pread()s, each followed by the CRC-32 of the bytes read:
//                              the floor of a read that checks every byte
//   read_1MiB/memory/tierguard the same reads answered by the memory tier (128 MiB)
//   read_1MiB/memory/memcpy    memcpy of 1 MiB from a 64 MiB buffer: the floor
//   read_1MiB/crc32_only       the CRC-32 of 64 MiB in 1 MiB pieces, alone: what a disk hit must verify
//   cold_16_blocks             a cold read of 16 contiguous missing blocks; counts origin requests
//   open_verify/<walks>/<objects> open() (verification by listing + every record read) of a cache of
//                              <objects> objects x 64 blocks of 4 KiB (--benchmark_filter=open to run;
//                              the data set is built once, through the cache, before timing): one_walk
//                              over posix_directory (clean() returns the listing), two_walks over the
//                              same directory through a wrapper without that member (clean(), then list())
// bytes_per_second is the read throughput. Everything lives in a mkdtemp() folder under /tmp
// (or $TIERGUARD_BENCH_DIR), removed at exit.
#include <benchmark/benchmark.h>

#include <tierguard/range_cache.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using range_cache = tierguard::range_cache<>;
constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t object_size = 64 * mib;

// The folder's name in static storage that outlives every destructor, so the atexit handler can use it.
char scratch_name[4096];

fs::path scratch() {
    if (scratch_name[0] == '\0') {
        const char* base = std::getenv("TIERGUARD_BENCH_DIR");
        const std::string pattern =
            (fs::path(base != nullptr ? base : "/tmp") / "tierguard-bench-range-XXXXXX").string();
        if (pattern.size() >= sizeof scratch_name) std::abort();
        std::memcpy(scratch_name, pattern.c_str(), pattern.size() + 1);
        if (::mkdtemp(scratch_name) == nullptr) std::abort();
        std::atexit([] { fs::remove_all(scratch_name); });
    }
    return scratch_name;
}

tierguard::result<void> origin(std::uint64_t offset, std::span<std::byte> out) {
    for (std::size_t i = 0; i < out.size(); i += 8) {
        const std::uint64_t v = (offset + i) * 0x9e3779b97f4a7c15ULL;
        std::memcpy(out.data() + i, &v, std::min<std::size_t>(8, out.size() - i));
    }
    return {};
}

range_cache open_cache(const fs::path& root, const tierguard::range_config& cfg) {
    auto dir = tierguard::storage::posix_directory::open({.root = root, .sync = tierguard::durability::none});
    if (!dir) std::abort();
    auto cache = range_cache::open(std::move(*dir), cfg);
    if (!cache) {
        std::fprintf(stderr, "%s\n", cache.error().message().c_str());
        std::abort();
    }
    return std::move(*cache);
}

const tierguard::range_version big{"etag-big", object_size};

void read_all(benchmark::State& state, range_cache& cache, std::vector<std::byte>& out) {
    for (auto _ : state) {
        for (std::size_t at = 0; at < object_size; at += mib) {
            if (!cache.read("big", big, at, std::span<std::byte>(out), origin)) state.SkipWithError("read failed");
            benchmark::DoNotOptimize(out.data());
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * object_size));
}

// The 64 MiB object cached under `folder` with `mode`; warmed up, and its block files older than
// verify_settle, so that once_per_file_change may trust what it checked.
range_cache& disk_cache(const char* folder, tierguard::range_verify mode) {
    static std::vector<std::unique_ptr<range_cache>> caches;
    for (auto& c : caches)
        if (c->config().verify_reads == mode) return *c;
    caches.push_back(std::make_unique<range_cache>(open_cache(
        scratch() / folder, {.block_size = mib, .byte_budget = 1ULL << 30, .memory_budget = 0, .verify_reads = mode})));
    std::vector<std::byte> out(mib);
    for (std::size_t at = 0; at < object_size; at += mib)
        (void)caches.back()->read("big", big, at, std::span(out), origin);
    std::this_thread::sleep_for(range_cache::verify_settle + std::chrono::milliseconds(100));
    return *caches.back();
}

void read_disk(benchmark::State& state, range_cache& cache) {
    std::vector<std::byte> out(mib);
    const auto before = cache.metrics().blocks_verified;
    read_all(state, cache, out);
    state.counters["origin_requests"] = static_cast<double>(cache.metrics().origin_requests);
    state.counters["verified_per_read"] =
        static_cast<double>(cache.metrics().blocks_verified - before) /
        static_cast<double>(std::max<std::int64_t>(1, state.iterations() * std::int64_t{object_size / mib}));
}

void read_disk_tierguard(benchmark::State& state) {
    read_disk(state, disk_cache("disk", tierguard::range_verify::always));
}
void read_disk_tierguard_once(benchmark::State& state) {
    read_disk(state, disk_cache("disk_once", tierguard::range_verify::once_per_file_change));
}

// pread()s of a 64 MiB plain file into `out`, 1 MiB at a time; with `check`, each followed
// by the CRC-32 of what it read. The file is written in write() calls of `write_size` bytes:
// 1 MiB, as the cache writes each block file (one write() of its frame), so that both sit in
// the page cache in folios of the same size; how a file was written changes what a warm
// pread of it costs (4 KiB writes leave small folios: pread_4KiB_writes).
void read_plain(benchmark::State& state, bool check, std::size_t write_size = mib) {
    const fs::path file = scratch() / ("plain-" + std::to_string(write_size) + ".bin");
    std::vector<std::byte> out(mib);
    if (!fs::exists(file)) {
        const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        for (std::size_t at = 0; at < object_size; at += mib) {
            (void)origin(at, out);
            for (std::size_t done = 0; done < mib; done += write_size)
                if (::write(fd, out.data() + done, write_size) != static_cast<ssize_t>(write_size)) std::abort();
        }
        ::close(fd);
    }
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    for (auto _ : state) {
        for (std::size_t at = 0; at < object_size; at += mib) {
            if (::pread(fd, out.data(), mib, static_cast<off_t>(at)) != static_cast<ssize_t>(mib))
                state.SkipWithError("pread failed");
            if (check) benchmark::DoNotOptimize(tierguard::frame::checksum(out));
            benchmark::DoNotOptimize(out.data());
        }
    }
    ::close(fd);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * object_size));
}

void read_disk_pread(benchmark::State& state) { read_plain(state, false); }
void read_disk_pread_small_writes(benchmark::State& state) { read_plain(state, false, 4096); }

void read_block_files(benchmark::State& state) {
    range_cache& cache = disk_cache("disk_once", tierguard::range_verify::once_per_file_change);
    const fs::path root = scratch() / "disk_once";
    std::vector<std::string> files;
    for (std::uint32_t i = 0; i < object_size / mib; ++i)
        files.push_back((root / range_cache::block_name(cache.folder_for("big"), i)).string());
    const std::size_t head_size = fs::file_size(files[0]) - mib - 4;
    std::vector<std::byte> out(mib);
    std::vector<std::byte> head(head_size);
    std::array<std::byte, 4> tail{};
    for (auto _ : state) {
        for (const std::string& file : files) {
            const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            ::iovec io[] = {{head.data(), head.size()}, {out.data(), mib}, {tail.data(), tail.size()}};
            struct stat st {};
            if (fd < 0 || ::readv(fd, io, 3) != static_cast<ssize_t>(head_size + mib + 4) || ::fstat(fd, &st) != 0)
                state.SkipWithError("read failed");
            ::close(fd);
            benchmark::DoNotOptimize(out.data());
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * object_size));
}
void read_disk_pread_crc(benchmark::State& state) { read_plain(state, true); }

void read_memory_tierguard(benchmark::State& state) {
    static auto cache =
        open_cache(scratch() / "memory",
                   {.block_size = mib, .byte_budget = 1ULL << 30, .memory_budget = 128 * mib, .memory_shards = 1});
    std::vector<std::byte> out(mib);
    for (std::size_t at = 0; at < object_size; at += mib) (void)cache.read("big", big, at, std::span(out), origin);
    read_all(state, cache, out);
    state.counters["memory_hits"] = static_cast<double>(cache.metrics().memory_hits);
}

void read_memory_memcpy(benchmark::State& state) {
    std::vector<std::byte> source(object_size);
    (void)origin(0, source);
    std::vector<std::byte> out(mib);
    for (auto _ : state) {
        for (std::size_t at = 0; at < object_size; at += mib) {
            std::memcpy(out.data(), source.data() + at, mib);
            benchmark::DoNotOptimize(out.data());
            benchmark::ClobberMemory();
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * object_size));
}

void cold_16_blocks(benchmark::State& state) {
    auto cache = open_cache(scratch() / "cold", {.block_size = 4096, .memory_budget = 0});
    std::uint64_t requests = 0;
    static int n = 0;  // keys never read before, across repetitions (they share the directory)
    for (auto _ : state) {
        const std::string key = "cold-" + std::to_string(n++);
        auto counting = [&](std::uint64_t offset, std::span<std::byte> out) {
            ++requests;
            return origin(offset, out);
        };
        if (!cache.read(key, {"e", 64 * 4096}, 8 * 4096, 16 * 4096, counting)) state.SkipWithError("read failed");
    }
    state.counters["origin_requests_per_read"] =
        static_cast<double>(requests) / static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
}

// The CRC-32 a disk hit computes over its block frame, alone (what bounds read_1MiB/disk/tierguard).
void crc_1MiB(benchmark::State& state) {
    std::vector<std::byte> source(object_size);
    (void)origin(0, source);
    for (auto _ : state) {
        for (std::size_t at = 0; at < object_size; at += mib)
            benchmark::DoNotOptimize(tierguard::frame::checksum(std::span(source).subspan(at, mib)));
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * object_size));
}

// posix_directory without clean(options, listing): a range cache over it cleans, then lists.
struct two_walk_directory {
    tierguard::storage::posix_directory inner;
    tierguard::result<std::vector<std::byte>> read(std::string_view n) { return inner.read(n); }
    tierguard::result<void> write(std::string_view n, std::span<const std::byte> b) { return inner.write(n, b); }
    tierguard::result<void> remove(std::string_view n) { return inner.remove(n); }
    tierguard::result<std::vector<tierguard::blob_info>> list() { return inner.list(); }
    tierguard::result<void> quarantine(std::string_view n, std::string_view r,
                                       std::chrono::system_clock::time_point t) {
        return inner.quarantine(n, r, t);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& o) { return inner.clean(o); }
};
struct two_walk_policies : tierguard::range_defaults {
    using storage = two_walk_directory;
};
static_assert(!tierguard::storage_cleans_listing<two_walk_directory>);

template <class Cache>
std::uint64_t open_blocks(const fs::path& root, const tierguard::range_config& cfg) {
    auto dir = tierguard::storage::posix_directory::open({.root = root, .sync = tierguard::durability::none});
    if (!dir) std::abort();
    auto cache = [&] {
        if constexpr (std::is_same_v<Cache, range_cache>)
            return Cache::open(std::move(*dir), cfg);
        else
            return Cache::open(two_walk_directory{std::move(*dir)}, cfg);
    }();
    if (!cache) std::abort();
    return cache->metrics().blocks;
}

void open_verify(benchmark::State& state) {
    const bool one_walk = state.range(0) == 1;
    const auto objects = static_cast<int>(state.range(1));
    const fs::path root = scratch() / ("open" + std::to_string(objects));
    const tierguard::range_config cfg{.block_size = 4096, .byte_budget = 1ULL << 40, .memory_budget = 0};
    if (!fs::exists(root)) {
        auto cache = open_cache(root, cfg);
        for (int i = 0; i < objects; ++i)
            if (!cache.read("object-" + std::to_string(i), {"e", 64 * 4096}, 0, 64 * 4096, origin)) std::abort();
    }
    std::uint64_t blocks = 0;
    for (auto _ : state)
        blocks = one_walk ? open_blocks<range_cache>(root, cfg)
                          : open_blocks<tierguard::range_cache<two_walk_policies>>(root, cfg);
    state.counters["blocks"] = static_cast<double>(blocks);
}

}  // namespace

BENCHMARK(read_disk_tierguard)->Name("read_1MiB/disk/tierguard")->Unit(benchmark::kMillisecond);
BENCHMARK(read_disk_tierguard_once)->Name("read_1MiB/disk/tierguard_once")->Unit(benchmark::kMillisecond);
BENCHMARK(read_disk_pread)->Name("read_1MiB/disk/pread")->Unit(benchmark::kMillisecond);
BENCHMARK(read_disk_pread_small_writes)->Name("read_1MiB/disk/pread_4KiB_writes")->Unit(benchmark::kMillisecond);
BENCHMARK(read_block_files)->Name("read_1MiB/disk/block_files")->Unit(benchmark::kMillisecond);
BENCHMARK(read_disk_pread_crc)->Name("read_1MiB/disk/pread_crc32")->Unit(benchmark::kMillisecond);
BENCHMARK(read_memory_tierguard)->Name("read_1MiB/memory/tierguard")->Unit(benchmark::kMillisecond);
BENCHMARK(read_memory_memcpy)->Name("read_1MiB/memory/memcpy")->Unit(benchmark::kMillisecond);
BENCHMARK(crc_1MiB)->Name("read_1MiB/crc32_only")->Unit(benchmark::kMillisecond);
BENCHMARK(cold_16_blocks)->Unit(benchmark::kMicrosecond);
BENCHMARK(open_verify)
    ->ArgNames({"one_walk", "objects"})
    ->Args({0, 10000})
    ->Args({1, 10000})
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
