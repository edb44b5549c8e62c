// libFuzzer target: a disk tier opened over a directory filled with arbitrary files and
// names must not crash, leak, hang or throw; it must open (unless the lock file is not a
// file, or a folder sits where the meta file belongs); its scrub must leave a directory a
// second scrub finds clean; and a get may only return what an intact entry on disk holds,
// and must return it for every intact, current entry.
//
// The input is a mode byte (bit 0: the tier's storage is segment_log, else posix_directory),
// then a list of records, each [op: u8][name length: u8][name][data length: u16 LE][data]
// (lengths clamped to what is left). op & 7 says what the record makes (see `kind`);
// op & 8 repeats the path's segments (deep nesting); op >> 4 is a small parameter. Every
// path is cut down to stay inside a fresh temp directory: ".." never climbs above it,
// the harness itself never follows a link, and links it makes point inside it.
//
// Over segment_log the entries live in segment files (<16 hex>.seg, valid headers made with
// detail/segment_format.hpp, so that the fuzzer starts past them): the meta blob opens
// segment 1; `entry` appends a well-formed record to the newest segment (op & 8: a
// tombstone), `raw_entry` appends its bytes as they are to segment 1 + param % 4; the other
// kinds make the same files, folders, links and FIFOs as over posix_directory (a `file`
// may well be named like a segment). What a get may return is replayed from the segment
// files as open reads them (segment_replay).
#include <tierguard/clock/manual.hpp>
#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/segment_format.hpp>
#include <tierguard/detail/siphash.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

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

template <class Storage>
struct fuzz_policies : tierguard::disk_defaults {
    using storage = Storage;
    using clock = tierguard::clock::manual;
};
template <class Storage>
using result_of_open = decltype(Storage::open({}));
using posix_tier = tierguard::disk_tier<std::string, std::string, fuzz_policies<tierguard::storage::posix_directory>>;
constexpr std::string_view meta_name = posix_tier::meta_name;
constexpr std::uint32_t schema_version = posix_tier::schema_version;
namespace seg = tierguard::detail::segment;
// segment_log: small segments, so that a few records fill one.
constexpr std::uint64_t segment_size = 4096;
constexpr std::uint64_t segment_budget = 16 * segment_size;

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
    if (head.schema_version != schema_version) return std::nullopt;
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

// segment_log's files, as the harness writes them: <16 hex digits>.seg.
std::string segment_file(std::uint64_t sequence) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (std::size_t i = 16; i-- > 0; sequence >>= 4) out[i] = digits[sequence & 0xf];
    return out + ".seg";
}

// The blob segment_log must serve for each name, or nullopt, replaying the segment files now
// in the root as its open does (docs/FORMAT.md, "Segment files"): in sequence order, a later
// record or tombstone wins; a damaged record removes its name; a stretch without a trustworthy
// header drops every name recorded before it; so does a segment whose header is unreadable (it
// is quarantined), except an unreadable newest one of at most a header's size (deleted), and
// so does a sequence missing between two segment files (a lost segment); a torn tail ends a
// segment, and in a sealed one (a newer segment follows) drops every name recorded before it,
// as does a sealed segment shorter than the next one's header records (bytes past that length
// are not replayed).
// `exact` is false where the replay is not sure to match (more segments than the budget
// keeps): then only the never-a-wrong-value half is checked.
struct segment_replay {
    std::map<std::string, std::optional<std::vector<std::byte>>, std::less<>> blobs;
    bool exact = true;

    void record(std::size_t, const seg::record_view& r) {
        if (r.head.tombstone())
            blobs[std::string(r.head.name)] = std::nullopt;
        else
            blobs[std::string(r.head.name)] = std::vector<std::byte>(r.blob.begin(), r.blob.end());
    }
    void damaged_record(std::size_t, const seg::record_view& r) { blobs[std::string(r.head.name)] = std::nullopt; }
    void unreadable(std::size_t, std::size_t) { blobs.clear(); }
    void torn(std::size_t, std::size_t) {
        if (sealed) blobs.clear();
    }
    bool sealed = false;

    explicit segment_replay(int root_fd) {
        std::map<std::uint64_t, std::string> files;
        {
            // A descriptor of its own: a dup would share (and move) the scratch's offset.
            DIR* dir = ::fdopendir(::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (dir == nullptr) fail("cannot read the scratch directory");
            while (const dirent* e = ::readdir(dir)) {
                const std::string_view name = e->d_name;
                if (name.size() != 20 || !name.ends_with(".seg") || name.find_first_not_of("0123456789abcdef") != 16)
                    continue;
                struct stat st {};
                if (::fstatat(root_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
                    files.emplace(std::stoull(std::string(name.substr(0, 16)), nullptr, 16), std::string(name));
            }
            ::closedir(dir);
        }
        // Past the budget, open deletes the oldest; near it, the scrub's tombstones may evict.
        if (files.size() + 2 >= segment_budget / segment_size) exact = false;
        // The newest segment, unless it is one a crash left at most a header long (deleted).
        std::optional<std::uint64_t> newest;
        for (auto it = files.rbegin(); it != files.rend() && !newest; ++it) {
            const auto bytes = read_file(root_fd, {it->second});
            if (!bytes) fail("cannot read a segment file", it->second);
            if (it != files.rbegin() || seg::decode_segment_header(*bytes) || bytes->size() > seg::segment_header_size)
                newest = it->first;
        }
        std::optional<std::uint64_t> previous;
        for (const auto& [sequence, file] : files) {
            if (previous && sequence != *previous + 1) blobs.clear();  // a lost segment: everything older goes
            previous = sequence;
            auto bytes = read_file(root_fd, {file});
            if (!bytes) fail("cannot read a segment file", file);
            const auto head = seg::decode_segment_header(*bytes);
            if (!head && sequence == files.rbegin()->first && bytes->size() <= seg::segment_header_size) continue;
            sealed = newest && sequence < *newest;
            if (!head || head->sequence != sequence) {
                blobs.clear();
                continue;
            }
            // A sealed segment ends where the next one's header says: bytes past it are not
            // replayed, and a segment shorter than that lost records.
            std::size_t length = 0;
            if (const auto next = files.find(sequence + 1); next != files.end() && newest && sequence < *newest) {
                const auto next_bytes = read_file(root_fd, {next->second});
                bool repaired = false;
                const auto next_head =
                    next_bytes ? seg::read_segment_header(*next_bytes, sequence + 1, repaired) : std::nullopt;
                if (next_head && next_head->sequence == sequence + 1 &&
                    next_head->previous_length >= seg::segment_header_size)
                    length = next_head->previous_length;
            }
            if (length != 0 && length < bytes->size()) bytes->resize(length);
            const std::size_t end = seg::scan_records(*bytes, *this);
            if (end >= bytes->size() && end < length) blobs.clear();
        }
    }
};

// Opens the disk tier over `storage` and checks it (see the file comment). `expected`: what a
// get for each key must return (nullopt: it must fail), if known; `must_serve`: whether an
// intact, current entry must be served (else only: never another value).
template <class Storage>
void check_tier(result_of_open<Storage> opened, bool may_refuse,
                const std::map<std::string, std::optional<std::string>>* expected, bool must_serve) {
    using tier_t = tierguard::disk_tier<std::string, std::string, fuzz_policies<Storage>>;
    if (!opened) {
        if (!may_refuse) fail("the directory did not open", opened.error().message());
        return;
    }
    tierguard::clock::manual clock(now);
    tierguard::disk_config cfg;
    cfg.scrub_on_open = false;
    auto tier = tier_t::open(std::move(*opened), cfg, clock);
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
        fail("a second scrub found work the first one left",
             describe(*first) + " / then " + describe(*second) + " / size " + std::to_string(tier->size()));

    if (expected != nullptr) {
        for (const auto& [key, want] : *expected) {
            const auto got = tier->get(key);
            if (got && !want) fail("a get returned a value no intact entry holds", key);
            if (got && *got != *want) fail("a get returned another value than its entry holds", key);
            if (!got && want && must_serve)
                fail("an intact, current entry was not served", key + ": " + got.error().message());
        }
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

void run(std::span<const std::uint8_t> input) {
    scratch tmp;
    const std::string root = tmp.path();
    reader in(input);
    // Bit 0: segment_log (else posix_directory). Bits 2-3: what each segment's header records
    // of the previous one's length: nothing (as tierguard 0.1), its length, (bits 4-7) * 8
    // bytes less (the rest a write that failed), or that much plus 8 more (a lost tail).
    const std::uint8_t mode = in.byte();
    const bool segments = (mode & 1) != 0;

    std::vector<std::byte> meta;
    {
        std::array<std::byte, 16> raw{};
        for (std::size_t i = 0; i < 16; ++i) raw[i] = static_cast<std::byte>(secret[i / 8] >> (8 * (i % 8)));
        if (!frame::encode(bytes_of(meta_name), raw, 1, 0, 0, meta)) fail("cannot encode the meta file");
    }
    // segment_log: segment files by sequence, written after the records; the meta blob opens
    // segment 1. posix_directory: the meta file.
    std::map<std::uint64_t, std::vector<std::byte>> segment_bytes;
    auto segment = [&](std::uint64_t sequence) -> std::vector<std::byte>& {
        auto& bytes = segment_bytes[sequence];
        if (bytes.empty()) {
            bytes.resize(seg::segment_header_size);
            seg::encode_segment_header({sequence, 1767225600LL * 1000000000LL}, bytes.data());
        }
        return bytes;
    };
    if (segments)
        seg::append_record(segment(1), meta_name, meta, 0);
    else if (!write_file(tmp.fd(), {std::string(meta_name)}, meta))
        fail("cannot write the meta file");

    std::map<std::string, std::vector<std::string>> entries;  // key -> where its entry file is
    for (std::size_t record = 0; record < max_records && in.more(); ++record) {
        const std::uint8_t op = in.byte();
        const std::string name = in.text(in.byte());
        const std::size_t data_size = in.byte() | (std::size_t{in.byte()} << 8);
        const std::string data = in.text(data_size);
        const auto what = static_cast<kind>(op & 7);
        const bool deep = (op & 8) != 0;
        const unsigned param = op >> 4;
        const auto segments_of_name = segments_of(name, deep, param);

        switch (what) {
            case kind::file:
                if (!segments_of_name.empty()) (void)write_file(tmp.fd(), segments_of_name, bytes_of(data));
                break;
            case kind::folder:
                make_node(tmp.fd(), segments_of_name,
                          [](int dir, const char* leaf) { return ::mkdirat(dir, leaf, 0700); });
                break;
            case kind::link: {
                const std::string target = root + "/" + joined(split(data));
                make_node(tmp.fd(), segments_of_name,
                          [&](int dir, const char* leaf) { return ::symlinkat(target.c_str(), dir, leaf); });
                break;
            }
            case kind::fifo:
                make_node(tmp.fd(), segments_of_name,
                          [](int dir, const char* leaf) { return ::mkfifoat(dir, leaf, 0600); });
                break;
            case kind::raw_entry:
            case kind::entry: {
                std::vector<std::byte> bytes(bytes_of(data).begin(), bytes_of(data).end());
                if (what == kind::entry) {
                    const std::uint32_t schema = schema_version + ((param & 1) != 0 ? 1 : 0);
                    std::int64_t expiry = 0;
                    if ((param & 6) == 2) expiry = std::chrono::nanoseconds((now - 1s).time_since_epoch()).count();
                    if ((param & 6) == 4) expiry = std::chrono::nanoseconds((now + 1h).time_since_epoch()).count();
                    const int level = (param & 8) != 0 ? 6 : 0;
                    bytes.clear();
                    if (!frame::encode(bytes_of(name), bytes_of(data), schema, expiry, level, bytes)) break;
                }
                if (segments) {
                    // A record in the newest segment (deep: a tombstone); raw: the bytes
                    // appended as they are to segment 1 + param % 4, damage included.
                    const std::uint64_t newest = segment_bytes.rbegin()->first;
                    if (what == kind::raw_entry) {
                        auto& target = segment(1 + param % 4);
                        target.insert(target.end(), bytes.begin(), bytes.end());
                    } else {
                        seg::append_record(segment(newest), entry_name(name), deep ? std::vector<std::byte>{} : bytes,
                                           deep ? seg::flag_tombstone : 0);
                    }
                    entries[name] = {};
                    break;
                }
                auto at = split(entry_name(name));
                (void)write_file(tmp.fd(), at, bytes);
                entries[name] = std::move(at);
                break;
            }
            case kind::temp: {
                auto at = segments_of_name;
                at.push_back(".tmp." + std::to_string(param) + "." + std::to_string(data.size()));
                (void)write_file(tmp.fd(), at, bytes_of(data));
                break;
            }
            case kind::quarantine: {
                std::string leaf =
                    tierguard::detail::quarantine_name(joined(segments_of_name), "fuzz", now - 24h * param);
                std::replace(leaf.begin(), leaf.end(), '\0', '_');
                if (leaf.size() > 255) leaf.resize(255);
                (void)write_file(tmp.fd(), {std::string(tierguard::detail::quarantine_folder), leaf}, bytes_of(data));
                break;
            }
        }
    }
    if (const unsigned lengths = (mode >> 2) & 3; lengths != 0) {
        const std::size_t shift = std::size_t{8} * (mode >> 4);
        for (auto& [sequence, bytes] : segment_bytes) {
            const auto previous = segment_bytes.find(sequence - 1);
            if (previous == segment_bytes.end()) continue;
            std::size_t length = previous->second.size();
            if (lengths == 2) length = length > shift ? length - shift : 0;
            if (lengths == 3) length += shift + 8;
            auto head = seg::decode_segment_header(bytes);
            head->previous_length = static_cast<std::uint32_t>(length);
            seg::encode_segment_header(*head, bytes.data());
        }
    }
    for (const auto& [sequence, bytes] : segment_bytes) (void)write_file(tmp.fd(), {segment_file(sequence)}, bytes);

    // With the meta blob as written, what a get for each key must return (nullopt: it must
    // fail), from what its entry holds now: later records may have replaced or blocked it.
    std::optional<std::map<std::string, std::optional<std::string>>> expected;
    bool must_serve = true;
    struct stat st {};
    const bool lock_is_odd = ::fstatat(tmp.fd(), ".lock", &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode);
    if (segments) {
        const segment_replay replay(tmp.fd());
        must_serve = replay.exact;
        const auto blob = [&](const std::string& name) -> std::optional<std::vector<std::byte>> {
            const auto it = replay.blobs.find(name);
            return it == replay.blobs.end() ? std::nullopt : it->second;
        };
        if (blob(std::string(meta_name)) == meta) {
            expected.emplace();
            for (const auto& [key, unused] : entries) {
                const auto stored = blob(entry_name(key));
                (*expected)[key] = stored ? servable(key, *stored) : std::nullopt;
            }
        }
        // Only a lock file that is not a file keeps the directory from opening.
        check_tier<tierguard::storage::segment_log>(
            tierguard::storage::segment_log::open({.root = root,
                                                   .sync = tierguard::durability::none,
                                                   .segment_size = segment_size,
                                                   .byte_budget = segment_budget}),
            lock_is_odd, expected ? &*expected : nullptr, must_serve);
        return;
    }
    if (read_file(tmp.fd(), {std::string(meta_name)}) == meta) {
        expected.emplace();
        for (const auto& [key, at] : entries) {
            const auto on_disk = read_file(tmp.fd(), at);
            (*expected)[key] = on_disk ? servable(key, *on_disk) : std::nullopt;
        }
    }
    // Only a lock file that is not a file, or a folder where the meta file belongs, may keep
    // the directory from opening: the storage refuses the one, and cannot set the other aside.
    const bool may_refuse =
        lock_is_odd ||
        (::fstatat(tmp.fd(), std::string(meta_name).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode));
    check_tier<tierguard::storage::posix_directory>(
        tierguard::storage::posix_directory::open({.root = root, .sync = tierguard::durability::none}), may_refuse,
        expected ? &*expected : nullptr, must_serve);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    run(std::span<const std::uint8_t>(data, size));
    return 0;
}
