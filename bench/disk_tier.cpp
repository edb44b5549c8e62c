// The disk tier against the floor of its own protocol, and against LevelDB when it is
// installed, in one binary so every figure is a ratio taken from one run on one machine:
//   tierguard  tierguard::disk_tier<std::string, std::string> over storage::posix_directory,
//              durability::none (no fsync), compression_level 0, 1 or 6 (zlib:N)
//   raw_posix  the same protocol by hand, no library: put = open(O_CREAT|O_EXCL|O_WRONLY) a
//              temp file in the entry's folder + write + close + rename into place; get =
//              open + fstat + read into a std::string + close. Same "ab/cd/<16 hex>" layout,
//              full paths, no frame, no checksum, no compression: the floor
//   leveldb    leveldb::DB Put / Get, default Options (Snappy), default WriteOptions (no
//              sync); built only when CMake found LevelDB (TIERGUARD_BENCH_HAVE_LEVELDB)
// Scenarios (bench/README.md, "Disk tier", explains them and records a run):
//   put/<size>/<impl>   overwrite one of 1000 keys, in a cycle (every key is present first)
//   get/<size>/<impl>   read one of the same 1000 keys, in a cycle: every get is a hit
//   crc32/<size>/<impl> the frame's checksum alone over one value: zlib's crc32() against
//                       tierguard::detail::crc32_update (the same CRC, carry-less multiply;
//                       256-bit VPCLMULQDQ where the CPU has it) and its 128-bit path, pclmul
//   tier_open/1000000/segment_log  disk_tier::open with default settings over 1M entries of
//                       100 bytes in a segment_log: CPU seconds and resident bytes per entry
// with <size> 1KiB and 16KiB. Values are English-like text with varying numbers: zlib
// shrinks them 1.8x (1 KiB) to 2.6x (16 KiB); the frame_bytes counter shows what tierguard
// stores per entry.
// Everything lives in a mkdtemp() folder under /tmp (or $TIERGUARD_BENCH_DIR; TMPDIR is
// ignored), removed at exit.
#include <benchmark/benchmark.h>

#include <tierguard/detail/crc32.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#if defined(TIERGUARD_BENCH_HAVE_LEVELDB) && __has_include(<leveldb/db.h>)
#include <leveldb/db.h>
#include <leveldb/options.h>
#include <leveldb/slice.h>
#include <leveldb/status.h>
#define TIERGUARD_BENCH_LEVELDB 1
#else
#define TIERGUARD_BENCH_LEVELDB 0
#endif

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <unistd.h>

namespace {

// ---------------------------------------------------------------------------------------
// Workload.

constexpr std::size_t key_count = 1000;
constexpr std::array<std::size_t, 3> value_sizes{100, 1024, 16384};
constexpr std::array<int, 3> compression_levels{0, 1, 6};
constexpr std::uint64_t seed_values = 0x6469736b5f76616cULL;

std::filesystem::path g_root;  // the mkdtemp() folder; every store makes its own folder below it

std::string size_label(std::size_t size) {
    return size < 1024 ? std::to_string(size) + "B" : std::to_string(size / 1024) + "KiB";
}

std::string make_key(std::size_t id) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "object:%06zu", id);
    return buf;
}

// Sentences of common words with order numbers, amounts and times mixed in: text a
// service would cache (rendered pages, JSON, logs), compressible 1.8-2.6x by zlib but
// with no long exact repeats, so deflate has to work for it.
std::string make_value(std::size_t size, std::size_t id, std::mt19937_64& rng) {
    static constexpr std::array<std::string_view, 64> words{
        "the",     "order",   "was",      "shipped",   "to",        "customer", "from",     "warehouse",
        "at",      "and",     "a",        "total",     "of",        "items",    "in",       "with",
        "payment", "status",  "pending",  "delivered", "returned",  "invoice",  "number",   "for",
        "account", "region",  "north",    "south",     "east",      "west",     "priority", "standard",
        "express", "carrier", "tracking", "code",      "weight",    "kg",       "price",    "discount",
        "tax",     "EUR",     "USD",      "on",        "monday",    "friday",   "after",    "before",
        "update",  "request", "service",  "latency",   "ms",        "user",     "session",  "cache",
        "entry",   "value",   "stored",   "expired",   "refreshed", "by",       "system",   "note"};
    std::string out;
    out.reserve(size + 64);
    out += "record ";
    out += std::to_string(id);
    out += ": ";
    while (out.size() < size) {
        const std::size_t n = 6 + rng() % 9;
        for (std::size_t i = 0; i < n; ++i) {
            if (i != 0) out += ' ';
            const std::uint64_t r = rng();
            switch (r % 8) {
                case 0: out += std::to_string(rng() % 1'000'000); break;
                case 1: {
                    char buf[32];
                    std::snprintf(buf, sizeof buf, "%u.%02u", static_cast<unsigned>(rng() % 10'000),
                                  static_cast<unsigned>(rng() % 100));
                    out += buf;
                    break;
                }
                default: out += words[(r >> 3) % words.size()]; break;
            }
        }
        out += ". ";
    }
    out.resize(size);
    return out;
}

struct data_set {
    std::size_t value_size = 0;
    std::vector<std::string> keys;
    std::vector<std::string> values;
};

const data_set& data_for(std::size_t size) {
    static std::array<std::unique_ptr<data_set>, value_sizes.size()> sets;
    for (std::size_t s = 0; s < value_sizes.size(); ++s) {
        if (value_sizes[s] != size) continue;
        if (!sets[s]) {
            auto d = std::make_unique<data_set>();
            d->value_size = size;
            std::mt19937_64 rng(seed_values + size);
            for (std::size_t i = 0; i < key_count; ++i) {
                d->keys.push_back(make_key(i));
                d->values.push_back(make_value(size, i, rng));
            }
            sets[s] = std::move(d);
        }
        return *sets[s];
    }
    throw std::logic_error("no data set of that size");
}

[[noreturn]] void fail_setup(const std::string& what) { throw std::runtime_error(what); }

// ---------------------------------------------------------------------------------------
// The implementations, behind one small interface:
//   bool put(std::size_t i)   stores values[i] under keys[i]; false if it failed
//   bool get(std::size_t i)   reads keys[i] into a fresh std::string; false unless it is
//                             a hit of the expected size
// Each store is filled with all 1000 keys when it is made, so a put always replaces an
// entry and a get always hits.

template <class Storage>
class tier_store {
public:
    struct policies : tierguard::disk_defaults {
        using storage = Storage;
    };
    using tier_type = tierguard::disk_tier<std::string, std::string, policies>;

    tier_store(const data_set& data, int level, tierguard::durability sync, const std::string& label) : m_data(data) {
        const auto dir = g_root / (label + "-" + size_label(data.value_size));
        auto storage = Storage::open({.root = dir, .sync = sync});
        if (!storage) fail_setup("storage open: " + storage.error().message());
        tierguard::disk_config cfg;
        cfg.compression_level = level;
        auto tier = tier_type::open(std::move(*storage), cfg);
        if (!tier) fail_setup("disk_tier::open: " + tier.error().message());
        m_tier.emplace(std::move(*tier));
        for (std::size_t i = 0; i < key_count; ++i)
            if (auto ok = m_tier->put(m_data.keys[i], m_data.values[i]); !ok)
                fail_setup("disk_tier::put: " + ok.error().message());
    }

    bool put(std::size_t i) {
        auto r = m_tier->put(m_data.keys[i], m_data.values[i]);
        benchmark::DoNotOptimize(r);
        return r.has_value();
    }

    bool get(std::size_t i) {
        auto r = m_tier->get(m_data.keys[i]);
        const bool ok = r.has_value() && r->size() == m_data.value_size;
        benchmark::DoNotOptimize(r);
        return ok;
    }

    // Bytes on disk per entry (frame: 36-byte header and checksum + key + payload).
    [[nodiscard]] double frame_bytes() const {
        const auto st = m_tier->stats();
        return st.entries == 0 ? 0.0 : static_cast<double>(st.bytes) / static_cast<double>(st.entries);
    }

private:
    const data_set& m_data;
    std::optional<tier_type> m_tier;
};

using tierguard_store = tier_store<tierguard::storage::posix_directory>;
using segment_store = tier_store<tierguard::storage::segment_log>;

// segment_log alone, no disk tier: the key is the blob name, the value the blob (no frame,
// no key hash, no serializer): the floor of the segment storage.
class segment_raw_store {
public:
    explicit segment_raw_store(const data_set& data) : m_data(data) {
        auto s = tierguard::storage::segment_log::open(
            {.root = g_root / ("segment-raw-" + size_label(data.value_size)), .sync = tierguard::durability::none});
        if (!s) fail_setup("segment_log::open: " + s.error().message());
        m_log.emplace(std::move(*s));
        for (std::size_t i = 0; i < key_count; ++i)
            if (!put(i)) fail_setup("segment_log::write failed while filling");
    }

    bool put(std::size_t i) {
        const std::string& v = m_data.values[i];
        return m_log->write(name(i), std::span(reinterpret_cast<const std::byte*>(v.data()), v.size())).has_value();
    }

    bool get(std::size_t i) {
        auto r = m_log->read(name(i));
        const bool ok = r.has_value() && r->size() == m_data.value_size;
        benchmark::DoNotOptimize(r);
        return ok;
    }

private:
    // "object:NNNNNN" is no blob name (':'); "object_NNNNNN" is.
    [[nodiscard]] std::string_view name(std::size_t i) {
        m_name = m_data.keys[i];
        m_name[6] = '_';
        return m_name;
    }

    const data_set& m_data;
    std::optional<tierguard::storage::segment_log> m_log;
    std::string m_name;
};

class raw_posix_store {
public:
    explicit raw_posix_store(const data_set& data) : m_data(data) {
        const auto root = g_root / ("raw-" + size_label(data.value_size));
        for (std::size_t i = 0; i < key_count; ++i) {
            // The same layout as posix_directory's: "ab/cd/<16 hex digits of a 64-bit hash>".
            char hex[17];
            std::snprintf(hex, sizeof hex, "%016llx",
                          static_cast<unsigned long long>(std::hash<std::string>{}(m_data.keys[i])));
            const auto folder = root / std::string(hex, 2) / std::string(hex + 2, 2);
            std::error_code ec;
            std::filesystem::create_directories(folder, ec);
            if (ec) fail_setup("create " + folder.native() + ": " + ec.message());
            m_folders.push_back(folder.native() + "/.tmp.");
            m_paths.push_back((folder / hex).native());
        }
        for (std::size_t i = 0; i < key_count; ++i)
            if (!put(i)) fail_setup("raw put of " + m_paths[i] + ": " + std::strerror(errno));
    }

    bool put(std::size_t i) {
        const std::string& value = m_data.values[i];
        // temp = "<folder>/.tmp.<counter>"
        char temp[512];
        const std::string& prefix = m_folders[i];
        if (prefix.size() + 24 > sizeof temp) return false;
        std::memcpy(temp, prefix.data(), prefix.size());
        std::snprintf(temp + prefix.size(), sizeof temp - prefix.size(), "%llu",
                      static_cast<unsigned long long>(m_counter++));
        const int fd = ::open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return false;
        for (std::size_t done = 0; done < value.size();) {
            const ssize_t n = ::write(fd, value.data() + done, value.size() - done);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                ::close(fd);
                ::unlink(temp);
                return false;
            }
            done += static_cast<std::size_t>(n);
        }
        if (::close(fd) != 0 || ::rename(temp, m_paths[i].c_str()) != 0) {
            ::unlink(temp);
            return false;
        }
        return true;
    }

    bool get(std::size_t i) {
        const int fd = ::open(m_paths[i].c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return false;
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            ::close(fd);
            return false;
        }
        std::string out(static_cast<std::size_t>(st.st_size), '\0');
        std::size_t got = 0;
        while (got < out.size()) {
            const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        ::close(fd);
        const bool ok = got == m_data.value_size && out.size() == m_data.value_size;
        benchmark::DoNotOptimize(out);
        return ok;
    }

private:
    const data_set& m_data;
    std::vector<std::string> m_folders;  // "<root>/ab/cd/.tmp." per key
    std::vector<std::string> m_paths;    // "<root>/ab/cd/<hex>" per key
    std::uint64_t m_counter = 0;
};

#if TIERGUARD_BENCH_LEVELDB
class leveldb_store {
public:
    leveldb_store(const data_set& data, bool sync) : m_data(data) {
        m_write.sync = sync;
        const auto dir = g_root / ((sync ? "leveldb-sync-" : "leveldb-") + size_label(data.value_size));
        leveldb::Options options;
        options.create_if_missing = true;
        leveldb::DB* db = nullptr;
        const leveldb::Status s = leveldb::DB::Open(options, dir.native(), &db);
        if (!s.ok()) fail_setup("leveldb::DB::Open: " + s.ToString());
        m_db.reset(db);
        for (std::size_t i = 0; i < key_count; ++i)
            if (!put(i)) fail_setup("leveldb Put failed while filling");
    }

    bool put(std::size_t i) { return m_db->Put(m_write, m_data.keys[i], m_data.values[i]).ok(); }

    bool get(std::size_t i) {
        std::string out;
        const bool ok = m_db->Get(leveldb::ReadOptions(), m_data.keys[i], &out).ok() && out.size() == m_data.value_size;
        benchmark::DoNotOptimize(out);
        return ok;
    }

private:
    const data_set& m_data;
    leveldb::WriteOptions m_write;
    std::unique_ptr<leveldb::DB> m_db;
};
#endif

// ---------------------------------------------------------------------------------------
// A store made on first use (outside the timed loop), shared by the put and the get of
// one implementation and size, and destroyed by main() before the folder is removed.

template <class Impl>
struct slot {
    std::function<std::unique_ptr<Impl>()> make;
    std::unique_ptr<Impl> impl;
    std::string error;
    std::size_t put_pos = 0;
    std::size_t get_pos = 0;

    Impl* get(benchmark::State& state) {
        if (!impl && error.empty()) {
            try {
                impl = make();
            } catch (const std::exception& e) {
                error = e.what();
            }
        }
        if (!impl) state.SkipWithError(error.c_str());
        return impl.get();
    }
};

std::vector<std::function<void()>> g_teardown;

template <class Impl>
std::shared_ptr<slot<Impl>> make_slot(std::function<std::unique_ptr<Impl>()> make) {
    auto s = std::make_shared<slot<Impl>>();
    s->make = std::move(make);
    g_teardown.push_back([s] { s->impl.reset(); });
    return s;
}

template <class Impl>
void add_counters(benchmark::State& state, Impl& impl) {
    if constexpr (std::is_same_v<Impl, tierguard_store> || std::is_same_v<Impl, segment_store>)
        state.counters["frame_bytes"] = impl.frame_bytes();
}

template <class Impl>
void bm_put(benchmark::State& state, const std::shared_ptr<slot<Impl>>& s, std::size_t value_size) {
    Impl* impl = s->get(state);
    if (impl == nullptr) return;
    std::size_t pos = s->put_pos;
    std::uint64_t failed = 0;
    for (auto _ : state) {
        failed += impl->put(pos) ? 0 : 1;
        if (++pos == key_count) pos = 0;
    }
    s->put_pos = pos;
    if (failed != 0) state.SkipWithError("a put failed");
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(value_size));
    add_counters(state, *impl);
}

template <class Impl>
void bm_get(benchmark::State& state, const std::shared_ptr<slot<Impl>>& s, std::size_t value_size) {
    Impl* impl = s->get(state);
    if (impl == nullptr) return;
    std::size_t pos = s->get_pos;
    std::uint64_t missed = 0;
    for (auto _ : state) {
        missed += impl->get(pos) ? 0 : 1;
        if (++pos == key_count) pos = 0;
    }
    s->get_pos = pos;
    if (missed != 0) state.SkipWithError("a get missed or returned the wrong size");
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(value_size));
    add_counters(state, *impl);
}

template <class Impl>
void register_pair(const std::string& impl_name, std::size_t size, std::function<std::unique_ptr<Impl>()> make) {
    auto s = make_slot<Impl>(std::move(make));
    const std::string suffix = "/" + size_label(size) + "/" + impl_name;
    // Real time: the work is in the kernel and, for LevelDB, in a background thread.
    benchmark::RegisterBenchmark(("put" + suffix).c_str(), bm_put<Impl>, s, size)->UseRealTime();
    benchmark::RegisterBenchmark(("get" + suffix).c_str(), bm_get<Impl>, s, size)->UseRealTime();
}

// The CRC-32 of one value: what a frame's checksum costs, by zlib and by tierguard.
enum class crc_impl { zlib, tierguard, pclmul };

template <crc_impl Impl>
void bm_crc32(benchmark::State& state, std::size_t value_size) {
    const std::string& value = data_for(value_size).values[0];
    const auto bytes = std::as_bytes(std::span(value.data(), value.size()));
    std::uint32_t crc = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(bytes.data());
        if constexpr (Impl == crc_impl::zlib)
            crc = static_cast<std::uint32_t>(
                ::crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
        else if constexpr (Impl == crc_impl::tierguard)
            crc = tierguard::detail::crc32_update(0, bytes);
        else
            crc = tierguard::detail::crc32_clmul(0, bytes.data(), bytes.size());
        benchmark::DoNotOptimize(crc);
    }
    if (crc != tierguard::detail::crc32_portable(0, bytes.data(), bytes.size())) state.SkipWithError("CRC differs");
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(value_size));
}

// open/<N>/segment_log: segment_log::open over N blobs of 100 bytes under disk-tier
// names ("ab/cd/<16 hex>"), written once beforehand (untimed; the page cache is warm).
// Counters: the index's bytes per entry and the open's nanoseconds per entry.
void bm_open_segments(benchmark::State& state, std::size_t entries) {
    const auto dir = g_root / ("segment-open-" + std::to_string(entries));
    const tierguard::storage::segment_log::config cfg{.root = dir, .sync = tierguard::durability::none};
    if (!std::filesystem::exists(dir)) {
        auto s = tierguard::storage::segment_log::open(cfg);
        if (!s) return state.SkipWithError(s.error().message().c_str());
        std::mt19937_64 rng(seed_values);
        const std::string value = make_value(100, 0, rng);
        const std::span<const std::byte> blob(reinterpret_cast<const std::byte*>(value.data()), value.size());
        char name[32];
        for (std::size_t i = 0; i < entries; ++i) {
            const auto h = static_cast<unsigned long long>(rng());
            std::snprintf(name, sizeof name, "%02llx/%02llx/%016llx", h >> 56, (h >> 48) & 0xff, h);
            if (!s->write(name, blob)) return state.SkipWithError("a write failed while filling");
        }
    }
    std::size_t found = 0;
    std::size_t index_bytes = 0;
    double seconds = 0;
    for (auto _ : state) {
        const auto start = std::chrono::steady_clock::now();
        auto s = tierguard::storage::segment_log::open(cfg);
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!s) return state.SkipWithError(s.error().message().c_str());
        const auto st = s->stats();
        found = st.entries;
        index_bytes = st.index_bytes;
    }
    if (found != entries) state.SkipWithError("open found another number of entries");
    state.counters["index_bytes_per_entry"] = static_cast<double>(index_bytes) / static_cast<double>(entries);
    state.counters["open_ns_per_entry"] =
        seconds * 1e9 / static_cast<double>(state.iterations()) / static_cast<double>(entries);
}

// tier_open/<N>/segment_log: disk_tier::open (default disk_config: no scrub at open) over a
// segment_log of N entries of 100 bytes put through the tier beforehand (untimed; page
// cache warm), segment_log::open included. Counters: wall and CPU (user + system) seconds
// per open, and resident memory per entry: the process's RSS (/proc/self/statm) after the
// open minus before it (malloc_trim(0) before the open), divided by N (the log's index, and
// the tier's when it keeps one: it does not over segment_log since issue 18): as the process
// sees it (rss_bytes_per_entry) and after a malloc_trim(0) (rss_trimmed_bytes_per_entry).
void bm_open_tier(benchmark::State& state, std::size_t entries) {
    using tier_type = segment_store::tier_type;
    const auto dir = g_root / ("tier-open-" + std::to_string(entries));
    const tierguard::storage::segment_log::config cfg{.root = dir, .sync = tierguard::durability::none};
    tierguard::disk_config tier_cfg;
    tier_cfg.byte_budget = std::uint64_t{1} << 31;
    if (!std::filesystem::exists(dir)) {
        auto s = tierguard::storage::segment_log::open(cfg);
        if (!s) return state.SkipWithError(s.error().message().c_str());
        auto tier = tier_type::open(std::move(*s), tier_cfg);
        if (!tier) return state.SkipWithError(tier.error().message().c_str());
        const std::string value(100, 'v');
        for (std::size_t i = 0; i < entries; ++i)
            if (!tier->put("object:" + std::to_string(i), value))
                return state.SkipWithError("a put failed while filling");
    }
    auto resident = [] {
        long pages = 0;
        long resident_pages = 0;
        if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
            if (std::fscanf(f, "%ld %ld", &pages, &resident_pages) != 2) resident_pages = 0;
            std::fclose(f);
        }
        return static_cast<double>(resident_pages) * static_cast<double>(::sysconf(_SC_PAGESIZE));
    };
    auto cpu_seconds = [] {
        rusage u{};
        ::getrusage(RUSAGE_SELF, &u);
        return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
    };
    double cpu = 0;
    double rss_bytes = 0;
    double rss_trimmed_bytes = 0;
    std::size_t found = 0;
    for (auto _ : state) {
        ::malloc_trim(0);
        const double rss_before = resident();
        const double cpu_before = cpu_seconds();
        auto s = tierguard::storage::segment_log::open(cfg);
        if (!s) return state.SkipWithError(s.error().message().c_str());
        auto tier = tier_type::open(std::move(*s), tier_cfg);
        cpu += cpu_seconds() - cpu_before;
        if (!tier) return state.SkipWithError(tier.error().message().c_str());
        rss_bytes = resident() - rss_before;
        ::malloc_trim(0);
        rss_trimmed_bytes = resident() - rss_before;
        found = tier->size();
    }
    if (found != entries) state.SkipWithError("open found another number of entries");
    state.counters["cpu_s_per_open"] = cpu / static_cast<double>(state.iterations());
    state.counters["rss_bytes_per_entry"] = rss_bytes / static_cast<double>(entries);
    state.counters["rss_trimmed_bytes_per_entry"] = rss_trimmed_bytes / static_cast<double>(entries);
}

void register_all() {
    for (const std::size_t n : {std::size_t{250000}, std::size_t{500000}, std::size_t{1000000}})
        benchmark::RegisterBenchmark(("open/" + std::to_string(n) + "/segment_log").c_str(), bm_open_segments, n)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond)
            ->Iterations(3);
    benchmark::RegisterBenchmark("tier_open/1000000/segment_log", bm_open_tier, std::size_t{1000000})
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
    for (const std::size_t size : value_sizes) {
        const std::string crc_name = "crc32/" + size_label(size) + "/";
        benchmark::RegisterBenchmark((crc_name + "zlib").c_str(), bm_crc32<crc_impl::zlib>, size)->UseRealTime();
        benchmark::RegisterBenchmark((crc_name + "tierguard").c_str(), bm_crc32<crc_impl::tierguard>, size)
            ->UseRealTime();
#if TIERGUARD_CRC32_CLMUL
        if (tierguard::detail::crc32_clmul_supported())
            benchmark::RegisterBenchmark((crc_name + "pclmul").c_str(), bm_crc32<crc_impl::pclmul>, size)
                ->UseRealTime();
#endif
        using tierguard::durability;
        for (const int level : compression_levels) {
            register_pair<tierguard_store>("tierguard/zlib:" + std::to_string(level), size, [size, level] {
                return std::make_unique<tierguard_store>(data_for(size), level, durability::none,
                                                         "tierguard-zlib" + std::to_string(level));
            });
        }
        register_pair<tierguard_store>("tierguard/fsync", size, [size] {
            return std::make_unique<tierguard_store>(data_for(size), 0, durability::data, "tierguard-fsync");
        });
        register_pair<segment_store>("segment_log", size, [size] {
            return std::make_unique<segment_store>(data_for(size), 0, durability::none, "segment");
        });
        register_pair<segment_raw_store>("segment_log_raw", size,
                                         [size] { return std::make_unique<segment_raw_store>(data_for(size)); });
        register_pair<segment_store>("segment_log/fsync", size, [size] {
            return std::make_unique<segment_store>(data_for(size), 0, durability::data, "segment-fsync");
        });
        register_pair<raw_posix_store>("raw_posix", size,
                                       [size] { return std::make_unique<raw_posix_store>(data_for(size)); });
#if TIERGUARD_BENCH_LEVELDB
        register_pair<leveldb_store>("leveldb", size,
                                     [size] { return std::make_unique<leveldb_store>(data_for(size), false); });
        register_pair<leveldb_store>("leveldb/fsync", size,
                                     [size] { return std::make_unique<leveldb_store>(data_for(size), true); });
#endif
    }
}

std::string file_system_of(const std::filesystem::path& dir) {
    struct statfs fs {};
    if (::statfs(dir.c_str(), &fs) != 0) return "unknown";
    switch (static_cast<unsigned long>(fs.f_type)) {
        case 0xEF53UL: return "ext4 (or ext2/3)";
        case 0x794c7630UL: return "overlayfs";
        case 0x01021994UL: return "tmpfs";
        case 0x58465342UL: return "xfs";
        case 0x9123683EUL: return "btrfs";
        default: {
            char buf[32];
            std::snprintf(buf, sizeof buf, "f_type 0x%lx", static_cast<unsigned long>(fs.f_type));
            return buf;
        }
    }
}

void add_context() {
    benchmark::AddCustomContext("workload",
                                "1000 keys \"object:NNNNNN\"; put overwrites them in a cycle, get reads them in a "
                                "cycle (all hits); values 1 KiB and 16 KiB of English-like text with numbers");
    benchmark::AddCustomContext("directory", g_root.native() + " on " + file_system_of(g_root));
    benchmark::AddCustomContext("tierguard_config",
                                "posix_directory durability::none; disk_config defaults but "
                                "compression_level (zlib:N)");
    benchmark::AddCustomContext("leveldb", TIERGUARD_BENCH_LEVELDB ? "default Options (Snappy), no sync"
                                                                   : "not built (LevelDB not found by CMake)");
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    // /tmp unless TIERGUARD_BENCH_DIR names another parent (a tmpfs, a journaled disk...).
    const char* parent = std::getenv("TIERGUARD_BENCH_DIR");
    std::string templ =
        std::string(parent != nullptr && *parent != '\0' ? parent : "/tmp") + "/tierguard-bench-disk-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
        std::perror(("bench_disk_tier: mkdtemp " + templ).c_str());
        return 1;
    }
    g_root = templ;

    int rc = 0;
    try {
        register_all();
        add_context();
        benchmark::RunSpecifiedBenchmarks();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_disk_tier: %s\n", e.what());
        rc = 1;
    }
    for (auto& teardown : g_teardown) teardown();  // close the stores (and their locks) first
    benchmark::Shutdown();
    std::error_code ec;
    std::filesystem::remove_all(g_root, ec);
    if (ec) std::fprintf(stderr, "bench_disk_tier: could not remove %s: %s\n", g_root.c_str(), ec.message().c_str());
    return rc;
}
