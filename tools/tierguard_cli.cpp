// tierguard-cli: an operator's view of a tierguard cache directory (docs/CLI.md).
//
// Works on both disk storages, posix_directory and segment_log (detected from what DIR
// holds, or chosen with --storage), without knowing the cache's value type: frames are
// read generically through tierguard/frame.hpp, keys are taken as std::string encoded by
// serializer::standard (its raw bytes), and the scrub keeps entries of every schema
// version (any_schema_version). Every file and blob is sorted by one function, classify(),
// so that stats, verify and scrub name the same thing the same way. Every error has a
// stable id, printed as "[tierguard-cli.<id>]" and, with --json, as a JSON object on stdout.
#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/os_error.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/range_cache.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <sys/stat.h>

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::system_clock;
using tierguard::storage::posix_directory;
using tierguard::storage::segment_log;

// Exit codes (docs/CLI.md).
constexpr int exit_ok = 0;
constexpr int exit_problems = 1;  // verify found damage; inspect: no intact entry for the key
constexpr int exit_usage = 2;     // bad command line
constexpr int exit_unusable = 3;  // missing, not a directory, not a tierguard cache, I/O failure
constexpr int exit_locked = 4;    // a running process holds the directory

constexpr std::string_view meta_name = "tierguard-meta";

// ---- output -----------------------------------------------------------------------

void append_json_string(std::string& out, std::string_view text) {
    constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (const char raw : text) {
        const auto c = static_cast<unsigned char>(raw);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += raw;
        } else if (c < 0x20 || c >= 0x7f) {  // non-ASCII bytes too: keys need not be UTF-8
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else {
            out += raw;
        }
    }
    out += '"';
}

// A flat JSON object written field by field; nested objects and arrays are built as raw text.
class json_object {
public:
    json_object& str(std::string_view name, std::string_view value) {
        key(name);
        append_json_string(m_out, value);
        return *this;
    }
    json_object& num(std::string_view name, std::uint64_t value) { return raw(name, std::to_string(value)); }
    json_object& num(std::string_view name, std::int64_t value) { return raw(name, std::to_string(value)); }
    json_object& boolean(std::string_view name, bool value) { return raw(name, value ? "true" : "false"); }
    json_object& opt(std::string_view name, std::optional<std::int64_t> value) {
        return raw(name, value ? std::to_string(*value) : "null");
    }
    json_object& raw(std::string_view name, std::string_view json) {
        key(name);
        m_out += json;
        return *this;
    }
    [[nodiscard]] std::string done() const { return m_out + (m_out.empty() ? "{}" : "}"); }

private:
    void key(std::string_view name) {
        m_out += m_out.empty() ? "{" : ",";
        append_json_string(m_out, name);
        m_out += ':';
    }
    std::string m_out;
};

[[nodiscard]] std::string json_array(const std::vector<std::string>& items) {
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i) out += (i == 0 ? "" : ",") + items[i];
    return out + "]";
}

// "3d 4h", "12m 5s", "0s": the two largest units.
[[nodiscard]] std::string human_duration(std::int64_t seconds) {
    if (seconds < 0) return "-" + human_duration(-seconds);
    constexpr std::pair<std::int64_t, char> units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    std::string out;
    int shown = 0;
    for (const auto& [size, unit] : units) {
        if (seconds >= size || (unit == 's' && out.empty())) {
            out += (out.empty() ? "" : " ") + std::to_string(seconds / size) + unit;
            seconds %= size;
            if (++shown == 2) break;
        } else if (!out.empty()) {
            break;
        }
    }
    return out;
}

[[nodiscard]] std::string human_bytes(std::uint64_t bytes) {
    constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (value >= 1024 && unit + 1 < std::size(units)) value /= 1024, ++unit;
    char buf[48];
    std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
    return buf;
}

[[nodiscard]] std::string quoted(std::span<const std::byte> bytes) {
    return tierguard::detail::quoted_name(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

[[nodiscard]] std::string hex_of(std::uint64_t value, int digits) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%0*llx", digits, static_cast<unsigned long long>(value));
    return buf;
}

[[nodiscard]] std::int64_t age_seconds(clock_type::time_point now, clock_type::time_point then) {
    return std::chrono::duration_cast<std::chrono::seconds>(now - then).count();
}

// ---- errors --------------------------------------------------------------------------

bool json_output = false;  // --json: set by main before anything is printed

/// A failure of the tool: a stable id (docs/CLI.md lists them), what went wrong, and where.
struct cli_error {
    std::string_view id;  // printed as "tierguard-cli.<id>"
    std::string message;
    int exit_code = exit_unusable;
    std::string directory;                // the DIR it concerns, if any
    std::string_view command;             // for usage errors: the command given, if any
    std::optional<tierguard::errc> code;  // the library's code, when the library failed
};

template <class T>
using either = std::variant<T, cli_error>;

// Prints `e` on stderr as "tierguard-cli: DIR: [tierguard-cli.<id>] message" and, with --json,
// as {"error": {...}} on stdout; returns its exit code.
int report(const cli_error& e) {
    const std::string id = "tierguard-cli." + std::string(e.id);
    std::string where = "tierguard-cli";
    if (!e.directory.empty())
        where += ": " + e.directory;
    else if (!e.command.empty())
        where += " " + std::string(e.command);
    std::fprintf(stderr, "%s: [%s] %s\n", where.c_str(), id.c_str(), e.message.c_str());
    if (e.exit_code == exit_usage)
        std::fprintf(stderr, "run 'tierguard-cli %.*s%s--help' for usage\n", static_cast<int>(e.command.size()),
                     e.command.data(), e.command.empty() ? "" : " ");
    if (json_output) {
        json_object error;
        error.str("id", id).str("message", e.message).num("exit_code", std::int64_t{e.exit_code});
        if (!e.directory.empty()) error.str("directory", e.directory);
        if (!e.command.empty()) error.str("command", e.command);
        if (e.code) error.str("errc", to_string(*e.code));
        std::printf("%s\n", json_object().raw("error", error.done()).done().c_str());
    }
    return e.exit_code;
}

[[nodiscard]] cli_error usage_error(std::string_view command, std::string_view id, std::string message) {
    return {id, std::move(message), exit_usage, {}, command, {}};
}

[[nodiscard]] cli_error dir_error(const std::string& dir, std::string_view id, std::string message) {
    return {id, std::move(message), exit_unusable, dir, {}, {}};
}

// An OS failure on DIR: `ec`'s errno mapped to the library's errc (errc says which, e.g. permission_denied).
[[nodiscard]] cli_error os_error(const std::string& dir, std::string_view id, std::string message, std::error_code ec) {
    return {id, std::move(message), exit_unusable, dir, {}, tierguard::detail::os_failure(ec.value(), "", "").code()};
}

// A library failure while working on DIR: errc::locked is exit code 4, anything else 3.
[[nodiscard]] cli_error library_error(const std::string& dir, std::string_view id, std::string_view doing,
                                      const tierguard::failure& f) {
    if (f.code() == tierguard::errc::locked)
        return {"locked",
                "locked: a running process has this cache open; stop it, or run the command when it is done (" +
                    f.context() + ")",
                exit_locked,
                dir,
                {},
                f.code()};
    return {id, std::string(doing) + f.message(), exit_unusable, dir, {}, f.code()};
}

// ---- storages and what their directories hold -------------------------------------------

enum class layout : unsigned char { posix_directory, segment_log };

[[nodiscard]] constexpr std::string_view name_of(layout l) noexcept {
    return l == layout::posix_directory ? "posix_directory" : "segment_log";
}

template <class Storage>
constexpr layout layout_of = std::is_same_v<Storage, segment_log> ? layout::segment_log : layout::posix_directory;

[[nodiscard]] bool is_lower_hex(std::string_view text) noexcept {
    return std::all_of(text.begin(), text.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// disk_tier's entry names, "ab/cd/abcd" and 12 more hex digits: the file under posix_directory,
// the blob's name inside segment_log.
[[nodiscard]] bool is_entry_name(std::string_view name) noexcept {
    return name.size() == 22 && name[2] == '/' && name[5] == '/' && is_lower_hex(name.substr(6)) &&
           name.substr(0, 2) == name.substr(6, 2) && name.substr(3, 2) == name.substr(8, 2);
}

// posix_directory's fan-out folders, "ab" and "ab/cd".
[[nodiscard]] bool is_fanout_folder(std::string_view path) noexcept {
    return (path.size() == 2 && is_lower_hex(path)) ||
           (path.size() == 5 && path[2] == '/' && is_lower_hex(path.substr(0, 2)) && is_lower_hex(path.substr(3)));
}

// segment_log's segment files, "<16 hex digits>.seg" in the root.
[[nodiscard]] bool is_segment_name(std::string_view path) noexcept {
    return path.size() == 20 && path.ends_with(".seg") && is_lower_hex(path.substr(0, 16));
}

enum class kind : unsigned char { entry, meta, segment, temp, quarantined, foreign, lock, folder };
constexpr std::array<std::string_view, 8> kind_names{"entry",       "meta",    "segment", "temp",
                                                     "quarantined", "foreign", "lock",    "folder"};

/// What a thing in a cache directory is: the one rule stats, verify and scrub share. `path` is
/// relative to DIR, '/'-separated, or with `in_log` the name of a blob inside segment_log's
/// segments; `type` is the thing's own type (links are never followed). Entries are only what
/// disk_tier names them; any other file, link or blob the storage does not make is foreign.
/// Folders are structure: counted, never foreign (the things in them are classified).
[[nodiscard]] kind classify(layout l, std::string_view path, fs::file_type type, bool in_log) {
    namespace td = tierguard::detail;
    if (in_log) return path == meta_name ? kind::meta : is_entry_name(path) ? kind::entry : kind::foreign;
    if (type == fs::file_type::directory) return kind::folder;  // structure, not content
    const bool file = type == fs::file_type::regular;
    const std::string_view leaf = td::blob_leaf(path);
    if (file && leaf.starts_with(td::temp_prefix)) return kind::temp;
    if (td::blob_parent(path) == td::quarantine_folder)
        return file && td::quarantine_time(leaf) ? kind::quarantined : kind::foreign;
    if (file && path == td::posix::lock_file_name) return kind::lock;
    if (file && path == meta_name) return kind::meta;
    if (file && l == layout::posix_directory && is_entry_name(path)) return kind::entry;
    if (file && l == layout::segment_log && tierguard::storage::segment_log::owns_file(path))
        return is_segment_name(path) ? kind::segment : kind::meta;  // the other: a pinned blob's side file
    return kind::foreign;
}

[[nodiscard]] std::string describe(fs::file_type type, bool in_log) {
    if (in_log) return "a blob in the log that is no entry";
    switch (type) {
        case fs::file_type::regular: return "a file that is no entry";
        case fs::file_type::symlink: return "a symbolic link";
        case fs::file_type::fifo: return "a FIFO";
        case fs::file_type::socket: return "a socket";
        default: return "a device or special file";
    }
}

struct item {
    std::string name;  // relative to DIR, or a blob's name (in_log)
    kind what = kind::foreign;
    fs::file_type type = fs::file_type::regular;
    bool in_log = false;
    std::uint64_t size = 0;
    clock_type::time_point modified{};
};

/// Every file under DIR and, for segment_log, every blob in its segments, classified; by name.
struct inventory {
    std::vector<item> items;

    [[nodiscard]] std::array<std::uint64_t, kind_names.size()> counts() const {
        std::array<std::uint64_t, kind_names.size()> out{};
        for (const item& i : items) ++out[static_cast<std::size_t>(i.what)];
        return out;
    }
    [[nodiscard]] std::uint64_t count(kind k) const { return counts()[static_cast<std::size_t>(k)]; }
    [[nodiscard]] std::string json() const {
        json_object out;
        const auto n = counts();
        for (std::size_t k = 0; k < n.size(); ++k) out.num(kind_names[k], n[k]);
        return out.done();
    }
    [[nodiscard]] std::string text() const {  // "7 entry, 1 meta, 2 quarantined", kinds present only
        std::string out;
        const auto n = counts();
        for (std::size_t k = 0; k < n.size(); ++k)
            if (n[k] != 0) out += (out.empty() ? "" : ", ") + std::to_string(n[k]) + " " + std::string(kind_names[k]);
        return out.empty() ? "nothing" : out;
    }
};

// Walks DIR without following links (a thing vanishing meanwhile is skipped) and, for
// segment_log, lists the blobs of `storage`.
template <class Storage>
[[nodiscard]] either<inventory> take_inventory(const std::string& dir, const Storage& storage) {
    constexpr layout l = layout_of<Storage>;
    inventory out;
    std::error_code ec;
    const std::size_t prefix = dir.size();
    std::string last;  // the thing listed last: the folder whose listing failed, if one does
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        last = it->path().native();
        const fs::file_status status = it->symlink_status(ec);
        if (ec) break;
        std::string name = it->path().native().substr(prefix);
        name.erase(0, name.find_first_not_of('/'));
        item thing{name, classify(l, name, status.type(), false), status.type()};
        if (status.type() == fs::file_type::regular) {
            std::error_code gone;
            thing.size = it->file_size(gone);
            const auto written = it->last_write_time(gone);
            if (gone) continue;
            thing.modified =
                std::chrono::time_point_cast<clock_type::duration>(fs::file_time_type::clock::to_sys(written));
        }
        out.items.push_back(std::move(thing));
    }
    if (ec && ec != std::errc::no_such_file_or_directory)
        return os_error(
            dir, "read_failed",
            "cannot list " + (last.empty() ? std::string("the directory") : "the folder " + last) + ": " + ec.message(),
            ec);
    if constexpr (l == layout::segment_log) {
        auto blobs = storage.list();
        if (!blobs) return library_error(dir, "read_failed", "cannot list the log's blobs: ", blobs.error());
        for (tierguard::blob_info& blob : *blobs) {
            const kind what = classify(l, blob.name, fs::file_type::regular, true);
            out.items.push_back({std::move(blob.name), what, fs::file_type::regular, true, blob.size, blob.modified});
        }
    } else {
        (void)storage;
    }
    std::sort(out.items.begin(), out.items.end(), [](const item& a, const item& b) { return a.name < b.name; });
    return out;
}

// Which storage DIR holds (docs/CLI.md, "What counts as a tierguard cache"), decided from its
// root listing and the first bytes of tierguard-meta, before anything in DIR is opened.
[[nodiscard]] either<layout> detect(const std::string& dir, std::optional<layout> forced) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT) return dir_error(dir, "no_such_directory", "no such directory");
        const int err = errno;
        return os_error(dir, "open_failed", std::string("cannot stat: ") + std::strerror(err),
                        std::error_code(err, std::generic_category()));
    }
    if (!S_ISDIR(st.st_mode)) return dir_error(dir, "not_a_directory", "not a directory");
    bool segments = false, fanout = false, meta = false, empty = true;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        empty = false;
        const std::string name = it->path().filename().native();
        const fs::file_type type = it->symlink_status(ec).type();
        segments = segments || (type == fs::file_type::regular && tierguard::storage::segment_log::owns_file(name));
        fanout = fanout || (type == fs::file_type::directory && is_fanout_folder(name));
        meta = meta || (type == fs::file_type::regular && name == meta_name);
    }
    if (ec) return os_error(dir, "open_failed", "cannot list: " + ec.message(), ec);
    const std::string untouched = "; nothing was read or changed";
    if (!forced) {
        if (segments && fanout)
            return dir_error(dir, "ambiguous_storage",
                             "it holds both segment files (segment_log) and entry folders (posix_directory); choose "
                             "with --storage posix_directory or --storage segment_log" +
                                 untouched);
        if (segments) return layout::segment_log;
        if (!meta)
            return dir_error(dir, "not_a_cache",
                             empty ? "not a tierguard cache: the directory is empty" + untouched
                                   : "not a tierguard cache: it has no tierguard-meta file, no "
                                     "tierguard-range-secret file and no segment_log files (a posix_directory cache "
                                     "holds tierguard-meta, a range cache tierguard-range-secret, a segment_log cache "
                                     "<16 hex digits>.seg files and pin-<hex>.0/.1 side files)" +
                                         untouched);
        forced = layout::posix_directory;
    }
    if (*forced == layout::segment_log) {
        if (!segments)
            return dir_error(dir, "not_a_cache",
                             "not a tierguard segment_log cache: it has no segment files (<16 hex digits>.seg) and no "
                             "pin-<hex>.0/.1 side files" +
                                 untouched);
        return layout::segment_log;
    }
    if (!meta)
        return dir_error(dir, "not_a_cache",
                         "not a tierguard posix_directory cache: it has no tierguard-meta file (every directory a "
                         "posix_directory disk tier has opened has one)" +
                             untouched);
    std::FILE* f = std::fopen((fs::path(dir) / meta_name).c_str(), "rb");
    std::array<char, 4> head{};
    const bool framed =
        f != nullptr && std::fread(head.data(), 1, 4, f) == 4 &&
        std::equal(head.begin(), head.end(), reinterpret_cast<const char*>(tierguard::frame::magic.data()));
    if (f != nullptr) std::fclose(f);
    if (!framed)
        return dir_error(
            dir, "not_a_cache",
            "not a tierguard cache: its tierguard-meta file is not a tierguard frame (no TGFR magic)" + untouched);
    return layout::posix_directory;
}

// DIR's storage. posix_directory: read-only (a shared lock, nothing written) unless `writing`.
// segment_log has no read-only mode: it is opened as the cache opens it (exclusive lock), with
// the largest segments and a budget no log reaches, so that the open never evicts a segment.
template <class Storage>
[[nodiscard]] tierguard::result<Storage> open_storage(const std::string& dir, bool writing) {
    constexpr std::size_t any_size = std::numeric_limits<std::size_t>::max();  // the operator sees every blob
    if constexpr (layout_of<Storage> == layout::posix_directory) {
        posix_directory::config cfg;
        cfg.root = dir;
        cfg.max_blob_size = any_size;
        cfg.read_only = !writing;
        return posix_directory::open(cfg);
    } else {
        (void)writing;
        segment_log::config cfg;
        cfg.root = dir;
        cfg.max_blob_size = any_size;
        cfg.segment_size = std::uint64_t{128} << 20;
        cfg.byte_budget = cfg.segment_size * 16384;
        cfg.keep_active_in_memory = false;
        cfg.reinsert_read = false;
        return segment_log::open(std::move(cfg));
    }
}

struct cli_listener {
    std::vector<std::string>* lines = nullptr;
    void on_event(const tierguard::event& e) noexcept {
        if (lines == nullptr || e.kind == tierguard::event_kind::scrub_done) return;
        try {
            std::string line(tierguard::to_string(e.kind));
            line += ' ';
            line += e.detail;
            if (e.cause != nullptr) line += ": " + e.cause->context();
            lines->push_back(std::move(line));
        } catch (...) {  // a lost log line must not fail the scrub
        }
    }
};

template <class Storage>
struct cli_policies : tierguard::disk_defaults {
    using storage = Storage;
    using listener = cli_listener;
    static constexpr bool any_schema_version = true;
};
// Keys as std::string: serializer::standard stores them as their raw bytes, so the frame's key
// bytes are the key, and name_for() hashes what a std::string-keyed cache hashes.
template <class Storage>
using tier_type = tierguard::disk_tier<std::string, std::vector<std::byte>, cli_policies<Storage>>;

// The tier over DIR, for its file names and its scrub. Opening it reads the meta blob; its
// budgets are unbounded, so nothing is evicted, and without a scrub at open nothing is read.
template <class Storage>
[[nodiscard]] tierguard::result<tier_type<Storage>> open_tier(Storage storage, std::vector<std::string>* events) {
    tierguard::disk_config cfg;
    cfg.byte_budget = std::numeric_limits<std::uint64_t>::max();
    cfg.max_entries = 0;
    cfg.max_entry_size = std::numeric_limits<std::size_t>::max();
    cfg.max_key_size = std::numeric_limits<std::uint32_t>::max();
    cfg.scrub_on_open = false;
    return tier_type<Storage>::open(std::move(storage), cfg, {}, cli_listener{events});
}

constexpr tierguard::frame::limits unbounded_frames{std::numeric_limits<std::uint32_t>::max(),
                                                    std::numeric_limits<std::uint32_t>::max()};

// Why the blob `name` (tierguard-meta, or a range cache's secret) is unusable, or nothing if it
// holds a hash secret.
template <class Storage>
[[nodiscard]] std::optional<std::string> meta_problem(const Storage& storage, std::string_view name = meta_name) {
    auto bytes = storage.read(name);
    if (!bytes) return bytes.error().message();
    auto decoded = tierguard::frame::decode(*bytes);
    if (!decoded) return decoded.error().message();
    const auto* key = reinterpret_cast<const char*>(decoded->key.data());
    if (std::string_view(key, decoded->key.size()) != name || decoded->payload.size() != 16)
        return "the frame does not hold a 16-byte hash secret under the key " + std::string(name);
    return std::nullopt;
}

// segment_log's counters of damage met while opening it (its stats() right after open()).
[[nodiscard]] std::string log_json(const tierguard::storage::segment_log_stats& s) {
    return json_object()
        .num("segments", std::uint64_t{s.segments})
        .num("frames_recovered", s.frames_recovered)
        .num("bad_frames", s.bad_frames)
        .num("damaged_regions", s.damaged_regions)
        .num("entries_dropped", s.entries_dropped)
        .num("torn_tails", s.torn_tails)
        .num("bad_segments", s.bad_segments)
        .num("lost_segments", s.lost_segments)
        .done();
}

[[nodiscard]] std::uint64_t log_damage(const tierguard::storage::segment_log_stats& s) {
    return s.bad_frames + s.damaged_regions + s.bad_segments + s.torn_tails + s.lost_segments;
}

// What happens to the entries when the meta blob (the hash secret) is damaged.
[[nodiscard]] std::string orphans_warning(std::uint64_t entries) {
    return "tierguard-meta (the hash secret) is damaged: none of the " + std::to_string(entries) +
           " entries can be matched to its key's name, so the next scrub (the application's open scrubs by "
           "default, or 'tierguard-cli scrub') drops every one as an orphan (a cold cache, never a wrong value)";
}

// ---- the command line ---------------------------------------------------------------

struct command_info {
    std::string_view name;
    std::string_view synopsis;
    std::string_view help;
};

constexpr command_info commands[] = {
    {"stats", "stats DIR [--storage KIND] [--json]",
     "Entries, bytes, the spread of their ages, the quarantine, and every other file (or blob)\n"
     "by kind: temp, foreign (not an entry: scrub removes it), segment files. Reads the\n"
     "listing only (segment_log: the records' heads), no entry."},
    {"verify", "verify DIR [--storage KIND] [--json]",
     "Reads every entry and checks its frame (magic, version, lengths, CRC-32, zlib stream)\n"
     "and that it sits under its own key's name; reports each bad one, and (segment_log) the\n"
     "damage met while opening the log. Lists foreign files and blobs (scrub removes them).\n"
     "Exit code 1 if any frame is damaged or misplaced."},
    {"scrub", "scrub DIR [--storage KIND] [--json]",
     "Runs the library's disk_tier::scrub() and prints its report: removes leftover temp\n"
     "files and foreign files, purges quarantine older than 7 days, quarantines damaged\n"
     "frames, removes expired and misplaced entries; on segment_log also segment_log::scrub(),\n"
     "which re-reads every record and deletes the oldest segments that hold no entry. Keeps\n"
     "entries of every schema version (the cache itself removes those of another version).\n"
     "Prints the kinds of files before and after. Modifies DIR."},
    {"purge-quarantine", "purge-quarantine DIR --older-than DURATION [--storage KIND] [--json]",
     "Deletes quarantined files older than DURATION (by the time in their names), through\n"
     "the storage's clean(), which also removes leftover temp files and foreign files.\n"
     "DURATION is a number and a unit, or several: 7d, 12h, 30m, 45s, 1h30m. Modifies DIR."},
    {"inspect", "inspect DIR KEY [--storage KIND] [--json]",
     "The frame header of the entry for KEY: name, lengths, flags, schema version, expiry,\n"
     "stored and computed CRC. KEY is taken as a std::string key encoded by\n"
     "serializer::standard (its bytes as given); caches with other key types are not\n"
     "addressable by this command. Exit code 1 if there is no intact entry."},
};

constexpr std::string_view common_help =
    "Options:\n"
    "  --storage KIND  posix_directory, segment_log or auto (the default: detected from DIR)\n"
    "  --json          print one JSON object on stdout instead of text, errors included\n"
    "  --help          print this help\n"
    "\n"
    "Storages: a posix_directory cache holds the file tierguard-meta (a frame starting with\n"
    "\"TGFR\") and entry files in fan-out folders ab/cd/; a segment_log cache holds segment\n"
    "files <16 hex digits>.seg. A directory holding neither is refused untouched; one holding\n"
    "segment files and entry folders needs --storage. stats, verify and inspect open a\n"
    "posix_directory read-only (a shared lock, nothing written); segment_log has no read-only\n"
    "mode, so they open it as the cache does (exclusive lock; its open cuts a torn tail and\n"
    "quarantines an unreadable segment, as the cache's would). scrub and purge-quarantine open\n"
    "either as the cache does.\n"
    "\n"
    "Range caches: a directory holding the file tierguard-range-secret is a range cache\n"
    "(tierguard::range_cache over posix_directory); every command then works on its objects,\n"
    "records and block files: verify names each damaged record or block (CORRUPT) and each\n"
    "file scrub would remove (ORPHAN), and counts leftover temp files (.tmp.*); scrub fixes\n"
    "them.\n"
    "\n"
    "Exit codes: 0 ok, 1 problems found (verify, inspect; scrub: unreadable files), 2 bad command\n"
    "line, 3 DIR missing, not a tierguard cache or unusable, 4 DIR locked by a running process.\n"
    "Errors carry a stable id, [tierguard-cli.<id>] (docs/CLI.md lists them).\n";

void print_usage(std::FILE* to) {
    std::fputs("usage: tierguard-cli COMMAND DIR [ARGS] [--storage KIND] [--json]\n\nCommands:\n", to);
    for (const command_info& c : commands)
        std::fprintf(to, "  %.*s\n", static_cast<int>(c.synopsis.size()), c.synopsis.data());
    std::fputs("\nRun 'tierguard-cli COMMAND --help' for one command.\n\n", to);
    std::fputs(common_help.data(), to);
}

void print_command_help(const command_info& c) {
    std::printf("usage: tierguard-cli %.*s\n\n%.*s\n\n%.*s", static_cast<int>(c.synopsis.size()), c.synopsis.data(),
                static_cast<int>(c.help.size()), c.help.data(), static_cast<int>(common_help.size()),
                common_help.data());
}

/// "7d", "12h", "30m", "45s" or a sequence of them ("1h30m"); nullopt for anything else.
[[nodiscard]] std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::int64_t total = 0;
    constexpr std::int64_t limit = std::int64_t{100} * 365 * 86400;  // no purge reaches further back
    while (!text.empty()) {
        std::int64_t number = 0;
        std::size_t digits = 0;
        while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
            number = number * 10 + (text[digits] - '0');
            if (number > limit) return std::nullopt;
            ++digits;
        }
        if (digits == 0 || digits == text.size()) return std::nullopt;
        std::int64_t unit = 0;
        switch (text[digits]) {
            case 'd': unit = 86400; break;
            case 'h': unit = 3600; break;
            case 'm': unit = 60; break;
            case 's': unit = 1; break;
            default: return std::nullopt;
        }
        total += number * unit;
        if (total > limit) return std::nullopt;
        text.remove_prefix(digits + 1);
    }
    return std::chrono::seconds(total);
}

struct arguments {
    const command_info* command = nullptr;
    std::vector<std::string> positional;
    bool json = false;
    std::optional<std::string> older_than;
    std::optional<std::string> storage;
};

// ---- commands -------------------------------------------------------------------------

struct spread {
    std::optional<std::int64_t> newest, median, oldest;

    static spread of(std::vector<std::int64_t> ages) {
        if (ages.empty()) return {};
        std::sort(ages.begin(), ages.end());
        return {ages.front(), ages[ages.size() / 2], ages.back()};
    }
    [[nodiscard]] std::string json() const {
        return json_object().opt("newest", newest).opt("median", median).opt("oldest", oldest).done();
    }
    [[nodiscard]] std::string human() const {
        if (!newest) return "-";
        return "newest " + human_duration(*newest) + ", median " + human_duration(*median) + ", oldest " +
               human_duration(*oldest);
    }
};

template <class Storage>
int run_stats(const std::string& dir, const Storage& storage, bool json) {
    constexpr layout l = layout_of<Storage>;
    const auto now = clock_type::now();
    auto taken = take_inventory(dir, storage);
    if (const auto* e = std::get_if<cli_error>(&taken)) return report(*e);
    const inventory& found = std::get<inventory>(taken);
    std::uint64_t bytes = 0, q_bytes = 0, segment_bytes = 0;
    std::vector<std::int64_t> ages, q_ages;
    for (const item& i : found.items) {
        if (i.what == kind::entry) {
            bytes += i.size;
            ages.push_back(age_seconds(now, i.modified));
        } else if (i.what == kind::quarantined) {
            q_bytes += i.size;
            q_ages.push_back(
                age_seconds(now, *tierguard::detail::quarantine_time(tierguard::detail::blob_leaf(i.name))));
        } else if (i.what == kind::segment) {
            segment_bytes += i.size;
        }
    }
    const spread entry_ages = spread::of(std::move(ages));
    const spread quarantine_ages = spread::of(std::move(q_ages));
    const std::uint64_t entries = found.count(kind::entry), q_files = found.count(kind::quarantined);
    const std::optional<std::string> bad_meta = meta_problem(storage);
    if (json) {
        json_object out;
        out.str("directory", storage.root().native())
            .str("storage", name_of(l))
            .num("entries", entries)
            .num("bytes", bytes)
            .raw("age_seconds", entry_ages.json())
            .raw("quarantine", json_object()
                                   .num("files", q_files)
                                   .num("bytes", q_bytes)
                                   .raw("age_seconds", quarantine_ages.json())
                                   .done())
            .raw("kinds", found.json());
        if (bad_meta)
            out.str("meta_damaged", *bad_meta).str("warning", orphans_warning(entries));
        else
            out.raw("meta_damaged", "null");
        if constexpr (l == layout::segment_log)
            out.raw("segments",
                    json_object().num("files", found.count(kind::segment)).num("bytes", segment_bytes).done())
                .raw("log", log_json(storage.stats()));
        std::printf("%s\n", out.done().c_str());
        return exit_ok;
    }
    std::printf("directory   %s\n", storage.root().c_str());
    std::printf("storage     %.*s\n", static_cast<int>(name_of(l).size()), name_of(l).data());
    std::printf("entries     %llu\n", static_cast<unsigned long long>(entries));
    if (bad_meta) std::printf("WARNING     %s (%s)\n", orphans_warning(entries).c_str(), bad_meta->c_str());
    std::printf("bytes       %llu (%s)\n", static_cast<unsigned long long>(bytes), human_bytes(bytes).c_str());
    std::printf("ages        %s\n", entry_ages.human().c_str());
    std::printf("quarantine  %llu file(s), %s; ages %s\n", static_cast<unsigned long long>(q_files),
                human_bytes(q_bytes).c_str(), quarantine_ages.human().c_str());
    if constexpr (l == layout::segment_log) {
        std::printf("segments    %llu file(s), %s\n", static_cast<unsigned long long>(found.count(kind::segment)),
                    human_bytes(segment_bytes).c_str());
        if (const auto s = storage.stats(); log_damage(s) != 0)
            std::printf(
                "damage      %llu damaged record(s), %llu unreadable stretch(es), %llu unreadable segment(s), "
                "%llu torn tail(s), %llu missing segment(s) met at open; run 'tierguard-cli verify'\n",
                static_cast<unsigned long long>(s.bad_frames), static_cast<unsigned long long>(s.damaged_regions),
                static_cast<unsigned long long>(s.bad_segments), static_cast<unsigned long long>(s.torn_tails),
                static_cast<unsigned long long>(s.lost_segments));
    }
    std::printf("other       %llu temp file(s), %llu foreign (no entries: 'tierguard-cli scrub' removes them)\n",
                static_cast<unsigned long long>(found.count(kind::temp)),
                static_cast<unsigned long long>(found.count(kind::foreign)));
    return exit_ok;
}

struct problem {
    std::string name;
    std::string kind;  // an errc name, or "misplaced"
    std::string message;
};

template <class Storage>
int run_verify(const std::string& dir, Storage storage, bool json) {
    constexpr layout l = layout_of<Storage>;
    const auto now = clock_type::now();
    std::vector<problem> problems;
    std::optional<tierguard::storage::segment_log_stats> at_open;  // before any read adds to its counters
    if constexpr (l == layout::segment_log) at_open = storage.stats();
    auto taken = take_inventory(dir, storage);
    if (const auto* e = std::get_if<cli_error>(&taken)) return report(*e);
    const inventory& found = std::get<inventory>(taken);
    std::optional<tier_type<Storage>> tier;  // needs an intact meta blob, for the entries' names
    const std::optional<std::string> bad_meta = meta_problem(storage);
    if (bad_meta) {
        problems.push_back(
            {std::string(meta_name), "corrupted", *bad_meta + "; " + orphans_warning(found.count(kind::entry))});
    } else {
        auto opened = open_tier(std::move(storage), nullptr);
        if (!opened) return report(library_error(dir, "open_failed", "", opened.error()));
        tier.emplace(std::move(*opened));
    }
    const Storage& blobs = tier ? tier->storage() : storage;
    if (at_open && log_damage(*at_open) != 0)
        problems.push_back(
            {"segments", "corrupted",
             "opening the log met " + std::to_string(at_open->bad_frames) +
                 " damaged record(s) (each loses its entry), " + std::to_string(at_open->damaged_regions) +
                 " unreadable stretch(es), " + std::to_string(at_open->bad_segments) +
                 " unreadable segment file(s) (moved to quarantine) and " + std::to_string(at_open->torn_tails) +
                 " torn tail(s) (cut: the records in them are lost), found " + std::to_string(at_open->lost_segments) +
                 " segment file(s) missing (everything older is dropped), and dropped " +
                 std::to_string(at_open->entries_dropped) +
                 " more entries for them; the damaged records stay in their segments (every open meets them again) "
                 "until the log evicts or reclaims those segments"});
    const std::size_t store_problems = problems.size();  // the meta's and the log's, not an entry's

    std::uint64_t checked = 0, intact = 0, orphaned = 0, expired = 0;
    std::map<std::uint32_t, std::uint64_t> schemas;
    std::vector<const item*> foreign;
    for (const item& i : found.items) {
        if (i.what == kind::foreign) foreign.push_back(&i);
        if (i.what != kind::entry) continue;
        ++checked;
        auto bytes = blobs.read(i.name);
        if (!bytes) {
            if (bytes.error().code() == tierguard::errc::miss) {  // removed since it was listed
                --checked;
                continue;
            }
            problems.push_back({i.name, std::string(to_string(bytes.error().code())), bytes.error().message()});
            continue;
        }
        auto entry = tierguard::frame::decode(*bytes, unbounded_frames);
        if (!entry) {
            problems.push_back({i.name, std::string(to_string(entry.error().code())), entry.error().message()});
            continue;
        }
        if (tier) {
            const std::string key(reinterpret_cast<const char*>(entry->key.data()), entry->key.size());
            if (auto name = tier->name_for(key); !name || *name != i.name) {
                problems.push_back({i.name, "misplaced",
                                    "holds the entry of key " + quoted(entry->key) +
                                        ", which belongs under another name (scrub removes it)"});
                continue;
            }
        } else {
            ++orphaned;
            continue;
        }
        ++intact;
        ++schemas[entry->head.schema_version];
        if (entry->head.expiry_ns != 0 &&
            entry->head.expiry_ns <=
                std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count())
            ++expired;
    }
    const std::uint64_t temp = found.count(kind::temp);
    const std::uint64_t damaged = problems.size() - store_problems;  // checked == intact + damaged + orphaned

    if (json) {
        std::vector<std::string> items, strangers;
        for (const problem& p : problems)
            items.push_back(json_object().str("name", p.name).str("error", p.kind).str("message", p.message).done());
        for (const item* i : foreign)
            strangers.push_back(json_object().str("name", i->name).str("what", describe(i->type, i->in_log)).done());
        json_object versions;
        for (const auto& [version, count] : schemas) versions.num(std::to_string(version), count);
        json_object out;
        out.str("directory", blobs.root().native())
            .str("storage", name_of(l))
            .boolean("ok", problems.empty())
            .num("checked", checked)
            .num("intact", intact)
            .num("damaged", damaged)
            .num("orphaned", orphaned)
            .num("expired", expired)
            .raw("schema_versions", versions.done())
            .raw("problems", json_array(items))
            .raw("foreign", json_array(strangers))
            .raw("kinds", found.json());
        if (at_open) out.raw("log", log_json(*at_open));
        std::printf("%s\n", out.done().c_str());
    } else {
        for (const problem& p : problems)
            std::printf("%-10s %s: %s\n", p.kind == "misplaced" ? "MISPLACED" : "CORRUPT", p.name.c_str(),
                        p.message.c_str());
        for (const item* i : foreign)
            std::printf("%-10s %s: %s (scrub removes it)\n", "FOREIGN", i->name.c_str(),
                        describe(i->type, i->in_log).c_str());
        std::string versions;
        for (const auto& [version, count] : schemas)
            versions +=
                (versions.empty() ? "" : ", ") + std::to_string(count) + " of version " + std::to_string(version);
        const std::string orphans =
            bad_meta ? ", " + std::to_string(orphaned) + " orphaned (no name can be matched)" : "";
        std::printf("checked %llu entries in %s (%.*s): %llu intact (%llu of them expired), %llu damaged%s%s%s\n",
                    static_cast<unsigned long long>(checked), blobs.root().c_str(), static_cast<int>(name_of(l).size()),
                    name_of(l).data(), static_cast<unsigned long long>(intact),
                    static_cast<unsigned long long>(expired), static_cast<unsigned long long>(damaged), orphans.c_str(),
                    versions.empty() ? "" : "; schema versions: ", versions.c_str());
        if (!foreign.empty() || temp != 0)
            std::printf(
                "also %zu foreign file(s) or blob(s) and %llu temp file(s): 'tierguard-cli scrub' removes them\n",
                foreign.size(), static_cast<unsigned long long>(temp));
        if (problems.empty()) std::printf("OK\n");
        if (bad_meta)
            std::printf("ORPHANED: %s; 'tierguard-cli scrub' empties the cache\n", orphans_warning(checked).c_str());
        if (damaged != 0)
            std::printf(
                "DAMAGED: run 'tierguard-cli scrub' to quarantine the damaged entries and remove the "
                "misplaced ones\n");
        if (at_open && log_damage(*at_open) != 0)
            std::printf(
                "LOST: the log's open dropped the entries of damaged or torn records (CORRUPT segments "
                "above; a damaged record that an entry's later record or erase had superseded costs "
                "nothing); nothing to repair: scrub cannot remove a damaged record from its segment, which "
                "keeps it, and every verify reports it, until the log evicts or reclaims that segment\n");
    }
    return problems.empty() ? exit_ok : exit_problems;
}

template <class Storage>
int run_scrub(const std::string& dir, Storage storage, bool json) {
    auto before = take_inventory(dir, storage);
    if (const auto* e = std::get_if<cli_error>(&before)) return report(*e);
    const std::optional<std::string> bad_meta = meta_problem(storage);
    std::vector<std::string> events;
    auto tier = open_tier(std::move(storage), &events);
    if (!tier) return report(library_error(dir, "open_failed", "", tier.error()));
    auto scrubbed = tier->scrub();
    if (!scrubbed) return report(library_error(dir, "scrub_failed", "scrub failed: ", scrubbed.error()));
    // The open already removed temp files, foreign files and old quarantine by name.
    scrubbed->temp_files_removed += tier->open_report().temp_files_removed;
    scrubbed->foreign_removed += tier->open_report().foreign_removed;
    scrubbed->quarantine_purged += tier->open_report().quarantine_purged;
    std::vector<std::pair<std::string_view, std::uint64_t>> log_fields;
    if constexpr (layout_of<Storage> == layout::segment_log) {
        auto log = tier->storage().scrub();
        if (!log) return report(library_error(dir, "scrub_failed", "segment_log scrub failed: ", log.error()));
        log_fields = {{"segments_checked", log->segments_checked}, {"frames_checked", log->frames_checked},
                      {"frames_skipped", log->frames_skipped},     {"entries_dropped", log->entries_dropped},
                      {"segments_removed", log->segments_removed}, {"bytes_reclaimed", log->bytes_reclaimed}};
    }
    auto after = take_inventory(dir, tier->storage());
    if (const auto* e = std::get_if<cli_error>(&after)) return report(*e);
    const tierguard::scrub_report& r = *scrubbed;
    const std::pair<std::string_view, std::uint64_t> fields[] = {
        {"entries_checked", r.entries_checked},
        {"temp_files_removed", r.temp_files_removed},
        {"foreign_removed", r.foreign_removed},
        {"orphans_removed", r.orphans_removed},
        {"quarantined", r.quarantined},
        {"quarantine_purged", r.quarantine_purged},
        {"version_mismatches", r.version_mismatches},
        {"expired_removed", r.expired_removed},
        {"io_errors", r.io_errors},
    };
    const std::string_view storage_name = name_of(layout_of<Storage>);
    const inventory& was = std::get<inventory>(before);
    const inventory& is = std::get<inventory>(after);
    if (json) {
        json_object out;
        out.str("directory", tier->storage().root().native()).str("storage", storage_name);
        for (const auto& [name, value] : fields) out.num(name, value);
        if (!log_fields.empty()) {
            json_object log;
            for (const auto& [name, value] : log_fields) log.num(name, value);
            out.raw("segments", log.done());
        }
        out.raw("before", was.json()).raw("after", is.json());
        if (bad_meta) out.str("meta_damaged", *bad_meta);
        std::vector<std::string> items;
        for (const std::string& e : events) items.push_back(json_object().str("event", e).done());
        out.raw("events", json_array(items));
        std::printf("%s\n", out.done().c_str());
    } else {
        if (bad_meta)
            std::printf(
                "WARNING: tierguard-meta (the hash secret) was damaged (%s): no entry could be matched to "
                "its name, so every one was dropped as an orphan (a cold cache, never a wrong value)\n",
                bad_meta->c_str());
        for (const std::string& e : events) std::printf("event: %s\n", e.c_str());
        std::printf("scrubbed %s (%.*s)\n", tier->storage().root().c_str(), static_cast<int>(storage_name.size()),
                    storage_name.data());
        for (const auto& [name, value] : fields)
            std::printf("  %-20.*s %llu\n", static_cast<int>(name.size()), name.data(),
                        static_cast<unsigned long long>(value));
        if (!log_fields.empty()) std::printf("segment_log scrub:\n");
        for (const auto& [name, value] : log_fields)
            std::printf("  %-20.*s %llu\n", static_cast<int>(name.size()), name.data(),
                        static_cast<unsigned long long>(value));
        std::printf("before: %s\nafter:  %s\n", was.text().c_str(), is.text().c_str());
    }
    return r.io_errors == 0 ? exit_ok : exit_problems;
}

template <class Storage>
int run_purge(const std::string& dir, Storage storage, std::chrono::seconds older_than, const std::string& shown,
              bool json) {
    auto cleaned = storage.clean({clock_type::now(), older_than});
    if (!cleaned) return report(library_error(dir, "purge_failed", "purge failed: ", cleaned.error()));
    const std::string_view storage_name = name_of(layout_of<Storage>);
    if (json) {
        std::printf("%s\n", json_object()
                                .str("directory", storage.root().native())
                                .str("storage", storage_name)
                                .num("older_than_seconds", static_cast<std::int64_t>(older_than.count()))
                                .num("quarantine_purged", cleaned->quarantine_purged)
                                .num("temp_files_removed", cleaned->temp_files_removed)
                                .num("foreign_removed", cleaned->foreign_removed)
                                .num("bytes_freed", cleaned->bytes_freed)
                                .done()
                                .c_str());
    } else {
        std::printf("purged %llu quarantined file(s) older than %s from %s\n",
                    static_cast<unsigned long long>(cleaned->quarantine_purged), shown.c_str(), storage.root().c_str());
        std::printf("also removed %llu temp file(s) and %llu foreign file(s); freed %s\n",
                    static_cast<unsigned long long>(cleaned->temp_files_removed),
                    static_cast<unsigned long long>(cleaned->foreign_removed),
                    human_bytes(cleaned->bytes_freed).c_str());
    }
    return exit_ok;
}
template <class Storage>
int run_inspect(const std::string& dir, Storage storage, const std::string& key, bool json) {
    if (auto bad = meta_problem(storage))
        return report(
            dir_error(dir, "meta_damaged", "cannot compute the name of a key: tierguard-meta is damaged: " + *bad));
    auto tier = open_tier(std::move(storage), nullptr);
    if (!tier) return report(library_error(dir, "open_failed", "", tier.error()));
    auto name = tier->name_for(key);
    if (!name) return report(library_error(dir, "bad_key", "", name.error()));
    const std::string shown_key = tierguard::detail::quoted_name(key);

    auto bytes = tier->storage().read(*name);
    if (!bytes) {
        const bool absent = bytes.error().code() == tierguard::errc::miss;
        if (json) {
            std::printf("%s\n", json_object()
                                    .str("key", key)
                                    .str("file", *name)
                                    .boolean("found", false)
                                    .str("status", absent ? "absent" : to_string(bytes.error().code()))
                                    .str("message", absent ? "" : bytes.error().message())
                                    .done()
                                    .c_str());
        } else if (absent) {
            std::printf("no entry for key %s (file %s is absent)\n", shown_key.c_str(), name->c_str());
        } else {
            std::printf("key %s: file %s cannot be read: %s\n", shown_key.c_str(), name->c_str(),
                        bytes.error().message().c_str());
        }
        return exit_problems;
    }

    // The header as stored (no CRC check), then the full check, so that a damaged frame still shows its fields.
    auto head = tierguard::frame::decode_header(*bytes);
    auto full = tierguard::frame::decode(*bytes, unbounded_frames);
    std::string status = "intact";
    std::string message;
    if (!full) {
        status = std::string(to_string(full.error().code()));
        message = full.error().message();
    } else if (std::string_view(reinterpret_cast<const char*>(full->key.data()), full->key.size()) != key) {
        status = "other_key";
        message = "the file holds the entry of key " + quoted(full->key) + " (a hash collision, or moved by hand)";
    }
    const std::uint32_t stored_crc =
        bytes->size() >= 4 ? tierguard::detail::load_le<std::uint32_t>(bytes->data() + bytes->size() - 4) : 0;
    const std::uint32_t computed_crc =
        bytes->size() >= 4 ? tierguard::frame::checksum(std::span(*bytes).first(bytes->size() - 4)) : 0;
    std::string expiry = "never";
    std::optional<std::int64_t> expires_in;
    if (head && head->expiry_ns != 0) {
        const auto at = clock_type::time_point(
            std::chrono::duration_cast<clock_type::duration>(std::chrono::nanoseconds(head->expiry_ns)));
        expires_in = -age_seconds(clock_type::now(), at);
        expiry =
            tierguard::detail::utc_stamp(at) + (*expires_in <= 0 ? " (expired " + human_duration(-*expires_in) + " ago)"
                                                                 : " (in " + human_duration(*expires_in) + ")");
    }
    const std::span<const std::byte> stored_key =
        head ? std::span<const std::byte>(*bytes).subspan(tierguard::frame::header_size, head->key_length)
             : std::span<const std::byte>();

    if (json) {
        json_object out;
        out.str("key", key).str("file", *name).boolean("found", true).num("file_size", std::uint64_t{bytes->size()});
        out.str("status", status).str("message", message);
        if (head) {
            out.num("format_version", std::uint64_t{head->format_version})
                .num("flags", std::uint64_t{head->flags})
                .boolean("compressed", head->compressed())
                .num("schema_version", std::uint64_t{head->schema_version})
                .num("key_length", std::uint64_t{head->key_length})
                .num("stored_length", std::uint64_t{head->stored_length})
                .num("raw_length", std::uint64_t{head->raw_length})
                .num("expiry_ns", head->expiry_ns)
                .opt("expires_in_seconds", expires_in)
                .str("stored_key",
                     std::string_view(reinterpret_cast<const char*>(stored_key.data()), stored_key.size()));
        } else {
            out.str("header_error", head.error().message());
        }
        out.num("stored_crc", std::uint64_t{stored_crc}).num("computed_crc", std::uint64_t{computed_crc});
        std::printf("%s\n", out.done().c_str());
    } else {
        std::printf("key             %s\n", shown_key.c_str());
        std::printf("file            %s (%zu bytes)\n", name->c_str(), bytes->size());
        if (head) {
            std::printf("format_version  %u\n", static_cast<unsigned>(head->format_version));
            std::printf("flags           %s%s\n", hex_of(head->flags, 4).c_str(),
                        head->compressed() ? " (zlib)" : " (stored raw)");
            std::printf("schema_version  %u\n", static_cast<unsigned>(head->schema_version));
            std::printf("key_length      %u\n", static_cast<unsigned>(head->key_length));
            std::printf("stored_length   %u\n", static_cast<unsigned>(head->stored_length));
            std::printf("raw_length      %u\n", static_cast<unsigned>(head->raw_length));
            std::printf("expiry          %s\n", expiry.c_str());
            std::printf("stored key      %s\n", quoted(stored_key).c_str());
        } else {
            std::printf("header          unreadable: %s\n", head.error().message().c_str());
        }
        std::printf("crc             stored %s, computed %s%s\n", hex_of(stored_crc, 8).c_str(),
                    hex_of(computed_crc, 8).c_str(), stored_crc == computed_crc ? " (match)" : " (MISMATCH)");
        std::printf("status          %s%s%s\n", status.c_str(), message.empty() ? "" : ": ", message.c_str());
    }
    return status == "intact" ? exit_ok : exit_problems;
}

// ---- range caches (tierguard::range_cache over posix_directory) -------------------------

// Collects the corrupted events the range cache raises: each names a damaged record or block
// file (or the secret) and says why. Once per name: a read-only verify meets them twice.
struct range_listener {
    std::vector<problem>* found = nullptr;
    void on_event(const tierguard::event& e) noexcept {
        if (found == nullptr || e.kind != tierguard::event_kind::corrupted) return;
        try {
            if (std::any_of(found->begin(), found->end(), [&](const problem& p) { return p.name == e.detail; })) return;
            found->push_back({std::string(e.detail),
                              e.cause != nullptr ? std::string(to_string(e.cause->code())) : "corrupted",
                              e.cause != nullptr ? e.cause->message() : std::string()});
        } catch (...) {  // a lost line must not fail the verification
        }
    }
};

struct range_policies : tierguard::range_defaults {
    using listener = range_listener;
};
using range_cache = tierguard::range_cache<range_policies>;

// A range cache directory holds the range cache's hash secret (docs/RANGE_CACHE.md).
[[nodiscard]] bool is_range_cache(const std::string& dir) {
    std::error_code ec;
    return fs::symlink_status(fs::path(dir) / range_cache::secret_name, ec).type() == fs::file_type::regular;
}

// The layout's names (range_cache::metadata_name, block_name): "ab/<16 hex>/meta", "ab/<16 hex>/<8 hex>".
[[nodiscard]] bool is_range_record(std::string_view name) { return name.size() == 24 && name.ends_with("/meta"); }
[[nodiscard]] bool is_range_block(std::string_view name) {
    return name.size() == 28 && name[19] == '/' && is_lower_hex(name.substr(20));
}

// What happens to the objects when the range cache's secret is damaged.
[[nodiscard]] std::string range_secret_warning(std::uint64_t records) {
    return std::string(range_cache::secret_name) + " (the hash secret) is damaged: none of the " +
           std::to_string(records) +
           " records can be matched to its folder, so the next open (the application's, or 'tierguard-cli scrub') "
           "quarantines every record and removes every block (a cold cache, never a wrong value)";
}

// The keys the records among `blobs` hold (a record's frame key is its object's key); records
// that cannot be read or decoded are left out (the cache reports those).
[[nodiscard]] std::vector<std::string> range_record_keys(const posix_directory& storage,
                                                         const std::vector<tierguard::blob_info>& blobs) {
    std::vector<std::string> keys;
    for (const tierguard::blob_info& b : blobs) {
        if (!is_range_record(b.name)) continue;
        auto bytes = storage.read(b.name);
        if (!bytes) continue;
        auto decoded = tierguard::frame::decode(*bytes, unbounded_frames);
        if (decoded) keys.emplace_back(reinterpret_cast<const char*>(decoded->key.data()), decoded->key.size());
    }
    return keys;
}

// The files among `blobs` (listed before the cache opened) that the cache does not keep: block
// files no record holds, records of objects it dropped, names not of its layout. Those already
// named in `corrupt` are left out.
[[nodiscard]] std::vector<problem> range_strays(const range_cache& cache,
                                                const std::vector<tierguard::blob_info>& blobs,
                                                const std::vector<std::string>& keys,
                                                const std::vector<problem>& corrupt) {
    std::vector<std::string> kept{std::string(range_cache::secret_name)};
    for (const problem& p : corrupt) kept.push_back(p.name);
    for (const std::string& key : keys) {
        auto info = cache.inspect(key);
        if (!info) continue;
        kept.push_back(range_cache::metadata_name(info->folder));
        for (const std::uint32_t i : info->blocks) kept.push_back(range_cache::block_name(info->folder, i));
    }
    std::sort(kept.begin(), kept.end());
    std::vector<problem> out;
    std::vector<const tierguard::blob_info*> sorted;
    for (const tierguard::blob_info& b : blobs) sorted.push_back(&b);
    std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
    for (const tierguard::blob_info* b : sorted) {
        if (std::binary_search(kept.begin(), kept.end(), b->name)) continue;
        out.push_back({b->name, "orphan",
                       is_range_block(b->name)    ? "a block file no record holds (a stray, or of the wrong size)"
                       : is_range_record(b->name) ? "the record of an object left without blocks"
                                                  : "a file that is not of the range cache's layout"});
    }
    return out;
}

// The cleanup report as JSON fields and as text lines, for verify and scrub.
json_object& range_report_json(json_object& out, const tierguard::range_cleanup_report& r) {
    return out.num("objects_checked", r.objects_checked)
        .num("blocks_checked", r.blocks_checked)
        .num("corrupt_metadata", r.corrupt_metadata)
        .num("damaged_blocks", r.damaged_blocks)
        .num("inconsistencies_fixed", r.inconsistencies_fixed)
        .num("orphaned_files_cleaned", r.orphaned_files_cleaned)
        .num("temp_files_cleaned", r.temp_files_cleaned)
        .num("objects_removed", r.objects_removed)
        .num("quarantine_purged", r.quarantine_purged)
        .num("io_errors", r.io_errors);
}

void print_range_report(const tierguard::range_cleanup_report& r, const char* verb) {
    std::printf("objects checked         %llu\n", static_cast<unsigned long long>(r.objects_checked));
    std::printf("blocks checked          %llu\n", static_cast<unsigned long long>(r.blocks_checked));
    std::printf("corrupt metadata        %llu (%s)\n", static_cast<unsigned long long>(r.corrupt_metadata), verb);
    std::printf("damaged blocks          %llu (%s)\n", static_cast<unsigned long long>(r.damaged_blocks), verb);
    std::printf("inconsistencies         %llu (%s)\n", static_cast<unsigned long long>(r.inconsistencies_fixed), verb);
    std::printf("orphaned files          %llu (%s)\n", static_cast<unsigned long long>(r.orphaned_files_cleaned), verb);
    std::printf("temp files              %llu (%s)\n", static_cast<unsigned long long>(r.temp_files_cleaned), verb);
    std::printf("objects without blocks  %llu\n", static_cast<unsigned long long>(r.objects_removed));
    std::printf("io errors               %llu\n", static_cast<unsigned long long>(r.io_errors));
}

// The opening of every range JSON object: kind, directory, storage.
[[nodiscard]] json_object range_json(const std::string& root) {
    json_object out;
    out.str("kind", "range_cache").str("directory", root).str("storage", name_of(layout::posix_directory));
    return out;
}

// stats and verify when the secret is damaged: the cache cannot open read-only, so the
// listing says what the next open drops.
int run_range_bad_secret(const arguments& args, const std::string& root, const std::vector<tierguard::blob_info>& blobs,
                         const std::string& why) {
    std::uint64_t records = 0, blocks = 0, bytes = 0;
    for (const tierguard::blob_info& b : blobs) {
        records += is_range_record(b.name) ? 1 : 0;
        if (is_range_block(b.name)) ++blocks, bytes += b.size;
    }
    const std::string warning = range_secret_warning(records);
    const bool verify = args.command->name == "verify";
    if (args.json) {
        json_object out = range_json(root);
        if (verify)
            out.boolean("modified", false)
                .boolean("ok", false)
                .raw("problems", json_array({json_object()
                                                 .str("name", range_cache::secret_name)
                                                 .str("error", "corrupted")
                                                 .str("message", why)
                                                 .done()}));
        else
            out.num("objects", records).num("blocks", blocks).num("bytes", bytes);
        std::printf("%s\n", out.str("secret_damaged", why).str("warning", warning).done().c_str());
    } else if (verify) {
        std::printf("%-10s %.*s: %s\n", "CORRUPT", static_cast<int>(range_cache::secret_name.size()),
                    range_cache::secret_name.data(), why.c_str());
        std::printf("ORPHANED: %s; 'tierguard-cli scrub' empties the cache\n", warning.c_str());
    } else {
        std::printf("range cache (posix_directory)\ndirectory   %s\n", root.c_str());
        std::printf("objects     %llu (records)\n", static_cast<unsigned long long>(records));
        std::printf("blocks      %llu (%llu bytes)\n", static_cast<unsigned long long>(blocks),
                    static_cast<unsigned long long>(bytes));
        std::printf("WARNING     %s (%s)\n", warning.c_str(), why.c_str());
    }
    return verify ? exit_problems : exit_ok;
}

// stats, verify, inspect: read-only (a shared lock; the cache reports what it would fix).
// scrub: the cache opened as an application opens it, then a deep cleanup().
int run_range(const arguments& args, const std::string& dir, std::optional<std::chrono::seconds> older_than) {
    const std::string_view name = args.command->name;
    const bool writing = name == "scrub" || name == "purge-quarantine";
    auto storage = open_storage<posix_directory>(dir, writing);
    if (!storage) return report(library_error(dir, "open_failed", "", storage.error()));
    if (name == "purge-quarantine")
        return run_purge(dir, std::move(*storage), *older_than, *args.older_than, args.json);
    const std::string root = storage->root().native();
    const std::optional<std::string> bad_secret = meta_problem(*storage, range_cache::secret_name);
    if (bad_secret && name == "inspect")
        return report(dir_error(dir, "meta_damaged",
                                "cannot compute the folder of a key: " + std::string(range_cache::secret_name) +
                                    " is damaged: " + *bad_secret));
    // stats, verify, scrub: the files as they were before the cache opened; verify and scrub
    // account for each of them, and count the temp files (a read-only open cleans nothing).
    std::vector<tierguard::blob_info> listed;
    std::vector<std::string> keys;
    std::uint64_t temp_found = 0;
    if (name != "inspect") {
        auto all = storage->list();
        if (!all) return report(library_error(dir, "read_failed", "cannot list the cache's files: ", all.error()));
        listed = std::move(*all);
        if (bad_secret && !writing) return run_range_bad_secret(args, root, listed, *bad_secret);
    }
    if (name == "verify") {
        auto taken = take_inventory(dir, *storage);
        if (const auto* e = std::get_if<cli_error>(&taken)) return report(*e);
        temp_found = std::get<inventory>(taken).count(kind::temp);
    }
    if (name == "verify" || name == "scrub") keys = range_record_keys(*storage, listed);
    const std::size_t quarantined = storage->quarantined();
    std::vector<problem> corrupt;
    tierguard::range_config cfg;
    cfg.read_only = !writing;
    cfg.memory_budget = 0;
    cfg.byte_budget = std::numeric_limits<std::uint64_t>::max();
    auto cache = range_cache::open(std::move(*storage), cfg, {}, range_listener{&corrupt});
    if (!cache) return report(library_error(dir, "open_failed", "range cache: ", cache.error()));
    if (name == "inspect") {
        auto info = cache->inspect(args.positional[1]);
        if (!info) {
            if (args.json)
                std::printf("%s\n",
                            json_object().str("key", args.positional[1]).boolean("found", false).done().c_str());
            else
                std::printf("no object for key %s\n", tierguard::detail::quoted_name(args.positional[1]).c_str());
            return exit_problems;
        }
        if (args.json) {
            std::vector<std::string> blocks;
            for (std::size_t i = 0; i < info->blocks.size(); ++i)
                blocks.push_back(json_object()
                                     .num("index", std::uint64_t{info->blocks[i]})
                                     .str("file", range_cache::block_name(info->folder, info->blocks[i]))
                                     .num("crc", std::uint64_t{info->checksums[i]})
                                     .done());
            std::printf("%s\n", json_object()
                                    .str("key", info->key)
                                    .boolean("found", true)
                                    .str("folder", info->folder)
                                    .str("validator", info->version.validator)
                                    .num("size", info->version.size)
                                    .num("block_size", std::uint64_t{info->block_size})
                                    .num("stored_bytes", info->stored_bytes)
                                    .raw("blocks", json_array(blocks))
                                    .done()
                                    .c_str());
        } else {
            std::printf("key         %s\n", tierguard::detail::quoted_name(info->key).c_str());
            std::printf("folder      %s\n", info->folder.c_str());
            std::printf("validator   %s\n", tierguard::detail::quoted_name(info->version.validator).c_str());
            std::printf("size        %llu bytes in blocks of %u\n", static_cast<unsigned long long>(info->version.size),
                        static_cast<unsigned>(info->block_size));
            std::printf("blocks      %zu held, %llu bytes stored\n", info->blocks.size(),
                        static_cast<unsigned long long>(info->stored_bytes));
            for (std::size_t i = 0; i < info->blocks.size(); ++i)
                std::printf("  %s  crc %s\n", range_cache::block_name(info->folder, info->blocks[i]).c_str(),
                            hex_of(info->checksums[i], 8).c_str());
        }
        return exit_ok;
    }
    const auto at_open = cache->metrics();
    if (name == "stats") {
        if (args.json) {
            std::printf("%s\n", range_json(root)
                                    .num("objects", at_open.objects)
                                    .num("blocks", at_open.blocks)
                                    .num("bytes", at_open.bytes)
                                    .num("quarantined", std::uint64_t{quarantined})
                                    .raw("secret_damaged", "null")
                                    .done()
                                    .c_str());
        } else {
            std::printf("range cache (posix_directory)\n");
            std::printf("directory   %s\n", root.c_str());
            std::printf("objects     %llu\n", static_cast<unsigned long long>(at_open.objects));
            std::printf("blocks      %llu (%llu bytes)\n", static_cast<unsigned long long>(at_open.blocks),
                        static_cast<unsigned long long>(at_open.bytes));
            std::printf("quarantine  %zu files\n", quarantined);
        }
        return exit_ok;
    }
    // verify and scrub: open's verification (by listing), then every block read.
    auto deep = cache->cleanup(true);
    if (!deep) return report(library_error(dir, "io_failed", "range cache cleanup: ", deep.error()));
    // What open found, plus what the deep pass found beyond it (read-only, the deep pass meets
    // again the damaged records and orphans open left in place: those count once).
    tierguard::range_cleanup_report total = *deep;
    total.inconsistencies_fixed += at_open.inconsistency_fixed;
    total.temp_files_cleaned += writing ? at_open.partial_write_cleanup : temp_found;
    total.corrupt_metadata = at_open.corruption_metadata + (writing ? deep->corrupt_metadata : 0);
    total.orphaned_files_cleaned = at_open.orphaned_files_cleaned + (writing ? deep->orphaned_files_cleaned : 0);
    const bool found_any = total.corrupt_metadata + total.damaged_blocks + total.inconsistencies_fixed +
                               total.orphaned_files_cleaned + total.io_errors !=
                           0;
    std::vector<problem> named = corrupt;
    for (problem& p : range_strays(*cache, listed, keys, corrupt)) named.push_back(std::move(p));
    if (args.json) {
        std::vector<std::string> items;
        for (const problem& p : named)
            items.push_back(json_object().str("name", p.name).str("error", p.kind).str("message", p.message).done());
        json_object out = range_json(root);
        out.boolean("modified", writing).boolean("ok", writing ? total.io_errors == 0 : !found_any);
        if (bad_secret) out.str("secret_damaged", *bad_secret);
        range_report_json(out, total).raw("problems", json_array(items));
        std::printf("%s\n", out.done().c_str());
    } else {
        if (bad_secret)
            std::printf(
                "WARNING: %.*s (the hash secret) was damaged (%s): no record could be matched to its "
                "folder, so every object was dropped (a cold cache, never a wrong value)\n",
                static_cast<int>(range_cache::secret_name.size()), range_cache::secret_name.data(),
                bad_secret->c_str());
        for (const problem& p : named)
            std::printf("%-10s %s: %s%s\n", p.kind == "orphan" ? (writing ? "REMOVED" : "ORPHAN") : "CORRUPT",
                        p.name.c_str(), p.message.c_str(),
                        writing              ? ""
                        : p.kind == "orphan" ? " (scrub removes it)"
                                             : " (scrub quarantines it)");
        std::printf("range cache (posix_directory)\ndirectory               %s\n", root.c_str());
        print_range_report(total, writing ? "fixed" : "found, not changed");
    }
    if (writing) return total.io_errors != 0 ? exit_problems : exit_ok;
    return found_any ? exit_problems : exit_ok;
}

template <class Storage>
int run_on(const arguments& args, const std::string& dir, std::optional<std::chrono::seconds> older_than) {
    const std::string_view name = args.command->name;
    auto storage = open_storage<Storage>(dir, name == "scrub" || name == "purge-quarantine");
    if (!storage) return report(library_error(dir, "open_failed", "", storage.error()));
    if (name == "stats") return run_stats(dir, *storage, args.json);
    if (name == "verify") return run_verify(dir, std::move(*storage), args.json);
    if (name == "scrub") return run_scrub(dir, std::move(*storage), args.json);
    if (name == "purge-quarantine")
        return run_purge(dir, std::move(*storage), *older_than, *args.older_than, args.json);
    return run_inspect(dir, std::move(*storage), args.positional[1], args.json);
}

int run(const arguments& args) {
    const std::string_view name = args.command->name;
    const std::size_t wanted = name == "inspect" ? 2 : 1;
    if (args.positional.empty()) return report(usage_error(name, "usage.missing_argument", "missing DIR"));
    if (args.positional.size() < wanted) return report(usage_error(name, "usage.missing_argument", "missing KEY"));
    if (args.positional.size() > wanted)
        return report(usage_error(name, "usage.too_many_arguments", "too many arguments"));
    std::optional<std::chrono::seconds> older_than;
    if (name == "purge-quarantine") {
        if (!args.older_than)
            return report(usage_error(name, "usage.missing_argument",
                                      "--older-than DURATION is required (e.g. --older-than 7d)"));
        older_than = parse_duration(*args.older_than);
        if (!older_than)
            return report(usage_error(name, "usage.bad_value",
                                      "bad duration '" + *args.older_than +
                                          "': expected a number and a unit d, h, m or s, or several (7d, 12h, 30m, "
                                          "45s, 1h30m), at most 100 years"));
    } else if (args.older_than) {
        return report(usage_error(name, "usage.not_applicable", "--older-than applies to purge-quarantine only"));
    }
    std::optional<layout> forced;
    if (args.storage && *args.storage != "auto") {
        if (*args.storage == name_of(layout::posix_directory))
            forced = layout::posix_directory;
        else if (*args.storage == name_of(layout::segment_log))
            forced = layout::segment_log;
        else
            return report(
                usage_error(name, "usage.bad_value",
                            "bad storage '" + *args.storage + "': expected auto, posix_directory or segment_log"));
    }

    const std::string& dir = args.positional[0];
    if (is_range_cache(dir) && forced.value_or(layout::posix_directory) == layout::posix_directory)
        return run_range(args, dir, older_than);
    const auto found = detect(dir, forced);
    if (const auto* e = std::get_if<cli_error>(&found)) return report(*e);
    if (std::get<layout>(found) == layout::segment_log) return run_on<segment_log>(args, dir, older_than);
    return run_on<posix_directory>(args, dir, older_than);
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 2; i < argc && std::string_view(argv[i]) != "--"; ++i)
        json_output = json_output || std::string_view(argv[i]) == "--json";
    if (argc < 2) {
        print_usage(stderr);
        return exit_usage;
    }
    const std::string_view first = argv[1];
    if (first == "--help" || first == "-h" || first == "help") {
        print_usage(stdout);
        return exit_ok;
    }
    arguments args;
    args.json = json_output;
    for (const command_info& c : commands)
        if (c.name == first) args.command = &c;
    if (args.command == nullptr)
        return report(usage_error("", "usage.unknown_command", "unknown command '" + std::string(first) + "'"));

    bool options_done = false;
    for (int i = 2; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (options_done || arg.empty() || arg[0] != '-' || arg == "-") {
            args.positional.emplace_back(arg);
        } else if (arg == "--") {
            options_done = true;
        } else if (arg == "--help" || arg == "-h") {
            print_command_help(*args.command);
            return exit_ok;
        } else if (arg == "--json") {
        } else if (arg == "--older-than" || arg.starts_with("--older-than=") || arg == "--storage" ||
                   arg.starts_with("--storage=")) {
            const std::string_view option = arg.substr(0, arg.find('='));
            std::optional<std::string>& value = option == "--older-than" ? args.older_than : args.storage;
            if (arg == option) {
                if (i + 1 == argc)
                    return report(usage_error(
                        first, "usage.missing_argument",
                        std::string(option) + (option == "--storage" ? " needs a KIND" : " needs a DURATION")));
                value = std::string(argv[++i]);
            } else {
                value = std::string(arg.substr(option.size() + 1));
            }
        } else {
            return report(usage_error(first, "usage.unknown_option", "unknown option '" + std::string(arg) + "'"));
        }
    }
    try {
        return run(args);
    } catch (const std::exception& e) {  // bad_alloc or a filesystem error: still a clean message
        return report({"internal", e.what(), exit_unusable, {}, first, {}});
    }
}
