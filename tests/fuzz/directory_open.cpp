// libFuzzer target: a disk tier opened over a directory filled with arbitrary files and
// names must not crash, leak, hang or throw; it must open (unless the lock file is not a
// file, or a folder sits where the meta file belongs); its scrub must leave a directory a
// second scrub finds clean; and a get may only return what an intact entry on disk holds,
// and must return it for every intact, current entry.
//
// The input is a list of records, each [op: u8][name length: u8][name][data length: u16 LE][data]
// (lengths clamped to what is left). op & 7 says what the record makes (see `kind`);
// op & 8 repeats the path's segments (deep nesting); op >> 4 is a small parameter. Every
// path is cut down to stay inside a fresh temp directory: ".." never climbs above it,
// the harness itself never follows a link, and links it makes point inside it.
#include <tierguard/clock/manual.hpp>
#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/siphash.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
namespace frame = tierguard::frame;

struct fuzz_policies : tierguard::disk_defaults {
    using clock = tierguard::clock::manual;
};
using tier_type = tierguard::disk_tier<std::string, std::string, fuzz_policies>;

enum class kind : std::uint8_t {
    file,        // a regular file at the path, holding the data
    folder,      // a directory at the path
    link,        // a symbolic link at the path, to the data taken as a path inside the root
    fifo,        // a FIFO at the path
    raw_entry,   // the data, under the entry name of the key `name`
    entry,       // a well-formed frame for key `name` and payload `data`, under its entry name
    temp,        // a temp file (".tmp.<n>.<m>") in the folder at the path
    quarantine,  // a file in the quarantine folder, with a stamp param days old
};

// 2026-01-01T00:00:00Z: quarantine stamps and expiries are set around it.
constexpr std::chrono::system_clock::time_point now{std::chrono::seconds{1767225600}};
constexpr std::array<std::uint64_t, 2> secret{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
constexpr std::size_t max_records = 64;
constexpr std::size_t max_segments = 64;  // 64 segments of up to 255 bytes: well past PATH_MAX

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
    std::fprintf(stderr, "fuzz_directory_open: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
    std::abort();
}

std::span<const std::byte> bytes_of(std::string_view text) {
    return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

std::string entry_name(std::string_view key) {
    std::uint64_t h = tierguard::detail::siphash24(secret, bytes_of(key));
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex(16, '0');
    for (std::size_t i = 16; i-- > 0; h >>= 4) hex[i] = digits[h & 0xf];
    return hex.substr(0, 2) + "/" + hex.substr(2, 2) + "/" + hex;
}

// Segments of `raw` that stay inside the root: no empty, "." or ".." segment (".." drops
// the one before it, never climbing above the root), no NUL, none over NAME_MAX.
std::vector<std::string> segments_of(std::string_view raw, bool deep, unsigned param) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= raw.size()) {
        std::size_t end = raw.find('/', start);
        if (end == std::string_view::npos) end = raw.size();
        std::string segment(raw.substr(start, end - start));
        start = end + 1;
        if (segment.empty() || segment == ".") continue;
        if (segment == "..") {
            if (!out.empty()) out.pop_back();
            continue;
        }
        std::replace(segment.begin(), segment.end(), '\0', '_');
        if (segment.size() > 255) segment.resize(255);
        out.push_back(std::move(segment));
    }
    if (deep && !out.empty()) {
        const std::size_t copies = 2 + param;
        const std::vector<std::string> once = out;
        for (std::size_t i = 1; i < copies && out.size() + once.size() <= max_segments; ++i)
            out.insert(out.end(), once.begin(), once.end());
    }
    if (out.size() > max_segments) out.resize(max_segments);
    return out;
}

std::vector<std::string> split(std::string_view name) { return segments_of(name, false, 0); }

std::string joined(const std::vector<std::string>& segments) {
    std::string out;
    for (const auto& s : segments) out += (out.empty() ? "" : "/") + s;
    return out;
}

// An open directory descriptor, closed on destruction.
struct fd_holder {
    int fd = -1;
    explicit fd_holder(int f) : fd(f) {}
    fd_holder(const fd_holder&) = delete;
    fd_holder& operator=(const fd_holder&) = delete;
    ~fd_holder() {
        if (fd >= 0) ::close(fd);
    }
};

// Opens the folder of `segments` (all but the last) below root_fd, one segment at a time,
// never following a link; makes missing folders if `create`. -1 on any failure.
int open_parent(int root_fd, const std::vector<std::string>& segments, bool create) {
    int fd = ::dup(root_fd);
    for (std::size_t i = 0; fd >= 0 && i + 1 < segments.size(); ++i) {
        if (create) (void)::mkdirat(fd, segments[i].c_str(), 0700);
        const int next = ::openat(fd, segments[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        ::close(fd);
        fd = next;
    }
    return fd;
}

// Calls make(folder descriptor, leaf name) to make something at `segments`, making missing folders.
template <class Make>
void make_node(int root_fd, const std::vector<std::string>& segments, Make make) {
    if (segments.empty()) return;
    fd_holder parent(open_parent(root_fd, segments, true));
    if (parent.fd >= 0) (void)make(parent.fd, segments.back().c_str());
}

bool write_file(int root_fd, const std::vector<std::string>& segments, std::span<const std::byte> data) {
    fd_holder parent(open_parent(root_fd, segments, true));
    if (parent.fd < 0) return false;
    fd_holder file(::openat(parent.fd, segments.back().c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    if (file.fd < 0) return false;
    struct stat st {};
    if (::fstat(file.fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    for (std::size_t done = 0; done < data.size();) {
        const ssize_t n = ::write(file.fd, data.data() + done, data.size() - done);
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// The bytes of the regular file at `segments`, reached without following a link.
std::optional<std::vector<std::byte>> read_file(int root_fd, const std::vector<std::string>& segments) {
    fd_holder parent(open_parent(root_fd, segments, false));
    if (parent.fd < 0) return std::nullopt;
    fd_holder file(
        ::openat(parent.fd, segments.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (file.fd < 0) return std::nullopt;
    struct stat st {};
    if (::fstat(file.fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < out.size()) {
        const ssize_t n = ::read(file.fd, out.data() + got, out.size() - got);
        if (n <= 0) return std::nullopt;
        got += static_cast<std::size_t>(n);
    }
    return out;
}

// Removes everything below the folder `fd` (closed here), never following a link, at any depth.
void empty_folder(int fd) {
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
        ::close(fd);
        return;
    }
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(dir)) {
        const std::string_view name = e->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    for (const auto& name : names) {
        struct stat st {};
        if (::fstatat(::dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            const int child = ::openat(::dirfd(dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child >= 0) empty_folder(child);
            (void)::unlinkat(::dirfd(dir), name.c_str(), AT_REMOVEDIR);
        } else {
            (void)::unlinkat(::dirfd(dir), name.c_str(), 0);
        }
    }
    ::closedir(dir);
}

// A fresh directory under the system's temp folder, removed with everything in it.
class scratch {
public:
    scratch() {
        std::string pattern = base() + "/tierguard-fuzz-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp failed");
        m_path = pattern;
        m_fd = ::open(m_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (m_fd < 0) fail("cannot open the scratch directory");
    }
    scratch(const scratch&) = delete;
    scratch& operator=(const scratch&) = delete;
    ~scratch() {
        empty_folder(::dup(m_fd));
        ::close(m_fd);
        if (::rmdir(m_path.c_str()) != 0) fail("the scratch directory could not be removed", m_path);
    }
    [[nodiscard]] const std::string& path() const noexcept { return m_path; }
    [[nodiscard]] int fd() const noexcept { return m_fd; }

private:
    // $TMPDIR if set, else /dev/shm where usable: a tmpfs makes a run about twice as fast.
    static std::string base() {
        if (const char* dir = std::getenv("TMPDIR"); dir != nullptr && *dir != '\0') return dir;
        if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
        return std::filesystem::temp_directory_path().string();
    }

    std::string m_path;
    int m_fd = -1;
};

// Reads the fuzz input front to back; every read is clamped to what is left.
class reader {
public:
    explicit reader(std::span<const std::uint8_t> in) : m_in(in) {}
    [[nodiscard]] bool more() const noexcept { return m_in.size() >= 2; }
    std::uint8_t byte() {
        if (m_in.empty()) return 0;
        const std::uint8_t b = m_in.front();
        m_in = m_in.subspan(1);
        return b;
    }
    std::string text(std::size_t n) {
        n = std::min(n, m_in.size());
        std::string out(reinterpret_cast<const char*>(m_in.data()), n);
        m_in = m_in.subspan(n);
        return out;
    }

private:
    std::span<const std::uint8_t> m_in;
};

// The value a get for `key` may return given the entry file's bytes: the payload of an
// intact, current frame of this key and schema; nullopt if the get must not succeed.
std::optional<std::string> servable(std::string_view key, std::span<const std::byte> bytes) {
    const auto decoded = frame::decode(bytes);
    if (!decoded) return std::nullopt;
    const auto& head = decoded->head;
    if (head.schema_version != tier_type::schema_version) return std::nullopt;
    if (head.expiry_ns != 0 &&
        std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(head.expiry_ns))) <= now)
        return std::nullopt;
    if (!std::ranges::equal(decoded->key, bytes_of(key))) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(decoded->payload.data()), decoded->payload.size());
}

std::string describe(const tierguard::scrub_report& r) {
    return "checked " + std::to_string(r.entries_checked) + ", temp " + std::to_string(r.temp_files_removed) +
           ", foreign " + std::to_string(r.foreign_removed) + ", orphans " + std::to_string(r.orphans_removed) +
           ", quarantined " + std::to_string(r.quarantined) + ", purged " + std::to_string(r.quarantine_purged) +
           ", versions " + std::to_string(r.version_mismatches) + ", expired " + std::to_string(r.expired_removed) +
           ", added " + std::to_string(r.index_added) + ", dropped " + std::to_string(r.index_dropped) + ", evicted " +
           std::to_string(r.evicted) + ", io errors " + std::to_string(r.io_errors);
}

void run(std::span<const std::uint8_t> input) {
    scratch tmp;
    const std::string root = tmp.path();

    std::vector<std::byte> meta;
    {
        std::array<std::byte, 16> raw{};
        for (std::size_t i = 0; i < 16; ++i) raw[i] = static_cast<std::byte>(secret[i / 8] >> (8 * (i % 8)));
        if (!frame::encode(bytes_of(tier_type::meta_name), raw, 1, 0, 0, meta)) fail("cannot encode the meta file");
        if (!write_file(tmp.fd(), {std::string(tier_type::meta_name)}, meta)) fail("cannot write the meta file");
    }

    std::map<std::string, std::vector<std::string>> entries;  // key -> where its entry file is
    reader in(input);
    for (std::size_t record = 0; record < max_records && in.more(); ++record) {
        const std::uint8_t op = in.byte();
        const std::string name = in.text(in.byte());
        const std::size_t data_size = in.byte() | (std::size_t{in.byte()} << 8);
        const std::string data = in.text(data_size);
        const auto what = static_cast<kind>(op & 7);
        const bool deep = (op & 8) != 0;
        const unsigned param = op >> 4;
        const auto segments = segments_of(name, deep, param);

        switch (what) {
            case kind::file:
                if (!segments.empty()) (void)write_file(tmp.fd(), segments, bytes_of(data));
                break;
            case kind::folder:
                make_node(tmp.fd(), segments, [](int dir, const char* leaf) { return ::mkdirat(dir, leaf, 0700); });
                break;
            case kind::link: {
                const std::string target = root + "/" + joined(split(data));
                make_node(tmp.fd(), segments,
                          [&](int dir, const char* leaf) { return ::symlinkat(target.c_str(), dir, leaf); });
                break;
            }
            case kind::fifo:
                make_node(tmp.fd(), segments, [](int dir, const char* leaf) { return ::mkfifoat(dir, leaf, 0600); });
                break;
            case kind::raw_entry:
            case kind::entry: {
                std::vector<std::byte> bytes(bytes_of(data).begin(), bytes_of(data).end());
                if (what == kind::entry) {
                    const std::uint32_t schema = tier_type::schema_version + ((param & 1) != 0 ? 1 : 0);
                    std::int64_t expiry = 0;
                    if ((param & 6) == 2) expiry = std::chrono::nanoseconds((now - 1s).time_since_epoch()).count();
                    if ((param & 6) == 4) expiry = std::chrono::nanoseconds((now + 1h).time_since_epoch()).count();
                    const int level = (param & 8) != 0 ? 6 : 0;
                    bytes.clear();
                    if (!frame::encode(bytes_of(name), bytes_of(data), schema, expiry, level, bytes)) break;
                }
                auto at = split(entry_name(name));
                (void)write_file(tmp.fd(), at, bytes);
                entries[name] = std::move(at);
                break;
            }
            case kind::temp: {
                auto at = segments;
                at.push_back(".tmp." + std::to_string(param) + "." + std::to_string(data.size()));
                (void)write_file(tmp.fd(), at, bytes_of(data));
                break;
            }
            case kind::quarantine: {
                std::string leaf = tierguard::detail::quarantine_name(joined(segments), "fuzz", now - 24h * param);
                std::replace(leaf.begin(), leaf.end(), '\0', '_');
                if (leaf.size() > 255) leaf.resize(255);
                (void)write_file(tmp.fd(), {std::string(tierguard::detail::quarantine_folder), leaf}, bytes_of(data));
                break;
            }
        }
    }

    // With the meta file as written, what a get for each key must return (nullopt: it must
    // fail), from what its entry file holds now: later records may have replaced or blocked it.
    std::optional<std::map<std::string, std::optional<std::string>>> expected;
    if (read_file(tmp.fd(), {std::string(tier_type::meta_name)}) == meta) {
        expected.emplace();
        for (const auto& [key, segments] : entries) {
            const auto on_disk = read_file(tmp.fd(), segments);
            (*expected)[key] = on_disk ? servable(key, *on_disk) : std::nullopt;
        }
    }

    // Only a lock file that is not a file, or a folder where the meta file belongs, may keep
    // the directory from opening: the storage refuses the one, and cannot set the other aside.
    struct stat st {};
    const bool may_refuse =
        (::fstatat(tmp.fd(), ".lock", &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) ||
        (::fstatat(tmp.fd(), std::string(tier_type::meta_name).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISDIR(st.st_mode));
    auto dir = tierguard::storage::posix_directory::open({.root = root, .sync = tierguard::durability::none});
    if (!dir) {
        if (!may_refuse) fail("the directory did not open", dir.error().message());
        return;
    }
    tierguard::clock::manual clock(now);
    tierguard::disk_config cfg;
    cfg.scrub_on_open = false;
    auto tier = tier_type::open(std::move(*dir), cfg, clock);
    if (!tier) {
        if (!may_refuse) fail("the tier did not open", tier.error().message());
        return;
    }
    const auto first = tier->scrub();
    if (!first) fail("scrub failed", first.error().message());
    // The first scrub leaves only entries, the meta file and the quarantine it made.
    const auto second = tier->scrub();
    if (!second) fail("a second scrub failed", second.error().message());
    if (second->temp_files_removed != 0 || second->foreign_removed != 0 || second->orphans_removed != 0 ||
        second->quarantined != 0 || second->quarantine_purged != 0 || second->version_mismatches != 0 ||
        second->expired_removed != 0 || second->index_added != 0 || second->index_dropped != 0 ||
        second->evicted != 0 || second->io_errors != 0 || second->entries_checked != tier->size())
        fail("a second scrub found work the first one left", describe(*first) + " / then " + describe(*second));

    for (const auto& [key, segments] : entries) {
        const auto got = tier->get(key);
        if (!expected) continue;
        const std::optional<std::string>& want = expected->at(key);
        if (got && !want) fail("a get returned a value no intact entry holds", key);
        if (got && *got != *want) fail("a get returned another value than its entry holds", key);
        if (!got && want) fail("an intact, current entry was not served", key + ": " + got.error().message());
    }
    // Every key the directory still lists, read back through the tier.
    if (auto listing = tier->storage().list()) {
        for (const auto& blob : *listing) {
            auto bytes = tier->storage().read(blob.name);
            if (!bytes) continue;
            if (auto decoded = frame::decode(*bytes))
                (void)tier->get(std::string(reinterpret_cast<const char*>(decoded->key.data()), decoded->key.size()));
        }
    }
    // The tier still takes writes, and serves what it took.
    if (tier->put("probe", "value")) {
        const auto got = tier->get("probe");
        if (!got || *got != "value") fail("a value just put was not served");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    run(std::span<const std::uint8_t>(data, size));
    return 0;
}
