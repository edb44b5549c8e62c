// tierguard-cli: an operator's view of a tierguard cache directory (docs/CLI.md).
//
// Works without knowing the cache's value type: frames are read generically through
// tierguard/frame.hpp, keys are taken as std::string encoded by serializer::standard (its
// raw bytes), and the scrub keeps entries of every schema version (any_schema_version).
// stats, verify and inspect open the directory read-only (a shared lock, nothing written);
// scrub and purge-quarantine open it as the cache does, exclusively.
#include <tierguard/detail/blob_name.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/storage/posix_directory.hpp>

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
#include <vector>

#include <sys/stat.h>

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::system_clock;

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

// ---- the command line ---------------------------------------------------------------

struct command_info {
    std::string_view name;
    std::string_view synopsis;
    std::string_view help;
};

constexpr command_info commands[] = {
    {"stats", "stats DIR [--json]",
     "Entries, bytes, the spread of their ages (by file modification time) and the quarantine.\n"
     "Read-only: reads the listing only, no entry file."},
    {"verify", "verify DIR [--json]",
     "Reads every entry file and checks its frame (magic, version, lengths, CRC-32, zlib\n"
     "stream) and that it sits under its own key's file name; reports each bad one.\n"
     "Read-only. Exit code 1 if any frame is damaged or misplaced."},
    {"scrub", "scrub DIR [--json]",
     "Runs the library's disk_tier::scrub() and prints its report: removes leftover temp\n"
     "files and foreign files, purges quarantine older than 7 days, quarantines damaged\n"
     "frames, removes expired and misplaced entries. Keeps entries of every schema version\n"
     "(the cache itself removes those of another version). Modifies DIR."},
    {"purge-quarantine", "purge-quarantine DIR --older-than DURATION [--json]",
     "Deletes quarantined files older than DURATION (by the time in their names), through\n"
     "the storage's clean(), which also removes leftover temp files and foreign files.\n"
     "DURATION is a number and a unit, or several: 7d, 12h, 30m, 45s, 1h30m. Modifies DIR."},
    {"inspect", "inspect DIR KEY [--json]",
     "The frame header of the entry for KEY: file, lengths, flags, schema version, expiry,\n"
     "stored and computed CRC. KEY is taken as a std::string key encoded by\n"
     "serializer::standard (its bytes as given); caches with other key types are not\n"
     "addressable by this command. Read-only. Exit code 1 if there is no intact entry."},
};

constexpr std::string_view common_help =
    "Options:\n"
    "  --json    print one JSON object on stdout instead of text\n"
    "  --help    print this help\n"
    "\n"
    "Exit codes: 0 ok, 1 problems found (verify, inspect; scrub: unreadable files), 2 bad command\n"
    "line, 3 DIR missing, not a tierguard cache or unusable, 4 DIR locked by a running process.\n"
    "DIR is a tierguard cache when it holds the file tierguard-meta (a frame, starting\n"
    "with \"TGFR\") that every disk tier writes when it opens a directory; nothing else is\n"
    "ever opened for writing.\n";

void print_usage(std::FILE* to) {
    std::fputs("usage: tierguard-cli COMMAND DIR [ARGS] [--json]\n\nCommands:\n", to);
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

int usage_error(std::string_view command, const std::string& message) {
    std::fprintf(stderr, "tierguard-cli%s%.*s: %s\n", command.empty() ? "" : " ", static_cast<int>(command.size()),
                 command.data(), message.c_str());
    std::fprintf(stderr, "run 'tierguard-cli %.*s%s--help' for usage\n", static_cast<int>(command.size()),
                 command.data(), command.empty() ? "" : " ");
    return exit_usage;
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
};

// ---- opening the directory ------------------------------------------------------------

struct cli_policies : tierguard::disk_defaults {
    struct listener {
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
    static constexpr bool any_schema_version = true;
};
// Keys as std::string: serializer::standard stores them as their raw bytes, so the frame's key
// bytes are the key, and name_for() hashes what a std::string-keyed cache hashes.
using tier_type = tierguard::disk_tier<std::string, std::vector<std::byte>, cli_policies>;

// Prints why DIR cannot be used and returns the exit code for it.
int refuse(const std::string& dir, const std::string& why, int code = exit_unusable) {
    std::fprintf(stderr, "tierguard-cli: %s: %s\n", dir.c_str(), why.c_str());
    return code;
}

// The rule for "a tierguard cache" (docs/CLI.md): a directory holding tierguard-meta, a
// regular file starting with the frame magic. Checked before anything is opened.
[[nodiscard]] std::optional<int> check_cache_dir(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT) return refuse(dir, "no such directory");
        return refuse(dir, std::string("cannot stat: ") + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return refuse(dir, "not a directory");
    const fs::path meta = fs::path(dir) / meta_name;
    struct stat meta_st {};
    if (::lstat(meta.c_str(), &meta_st) != 0 || !S_ISREG(meta_st.st_mode))
        return refuse(dir,
                      "not a tierguard cache: it has no tierguard-meta file (every directory a tierguard disk tier "
                      "has opened has one); nothing was read or changed");
    std::FILE* f = std::fopen(meta.c_str(), "rb");
    std::array<char, 4> head{};
    const bool framed =
        f != nullptr && std::fread(head.data(), 1, 4, f) == 4 &&
        std::equal(head.begin(), head.end(), reinterpret_cast<const char*>(tierguard::frame::magic.data()));
    if (f != nullptr) std::fclose(f);
    if (!framed)
        return refuse(dir,
                      "not a tierguard cache: its tierguard-meta file is not a tierguard frame (no TGFR magic); "
                      "nothing was changed");
    return std::nullopt;
}

// Opens DIR's storage: read-only (shared lock) unless `writing`.
[[nodiscard]] tierguard::result<tierguard::storage::posix_directory> open_storage(const std::string& dir,
                                                                                  bool writing) {
    tierguard::storage::posix_directory::config cfg;
    cfg.root = dir;
    cfg.max_blob_size = std::numeric_limits<std::size_t>::max();  // the operator sees every file, whatever its size
    cfg.read_only = !writing;
    return tierguard::storage::posix_directory::open(cfg);
}

int storage_failure(const std::string& dir, const tierguard::failure& f) {
    if (f.code() == tierguard::errc::locked)
        return refuse(dir,
                      "locked: a running process has this cache open; stop it, or run the command when it is "
                      "done (" +
                          f.context() + ")",
                      exit_locked);
    return refuse(dir, f.message());
}

// The tier over DIR, for its file names and its scrub. Opening it reads the meta file; a
// read-only one never writes (its budgets are unbounded, so nothing is evicted).
[[nodiscard]] tierguard::result<tier_type> open_tier(tierguard::storage::posix_directory storage,
                                                     std::vector<std::string>* events) {
    tierguard::disk_config cfg;
    cfg.byte_budget = std::numeric_limits<std::uint64_t>::max();
    cfg.max_entries = 0;
    cfg.max_entry_size = std::numeric_limits<std::size_t>::max();
    cfg.max_key_size = std::numeric_limits<std::uint32_t>::max();
    cfg.scrub_on_open = false;
    return tier_type::open(std::move(storage), cfg, {}, cli_policies::listener{events});
}

constexpr tierguard::frame::limits unbounded_frames{std::numeric_limits<std::uint32_t>::max(),
                                                    std::numeric_limits<std::uint32_t>::max()};

// Why the meta file is unusable, or nothing if it holds a hash secret.
[[nodiscard]] std::optional<std::string> meta_problem(const tierguard::storage::posix_directory& storage) {
    auto bytes = storage.read(meta_name);
    if (!bytes) return bytes.error().message();
    auto decoded = tierguard::frame::decode(*bytes);
    if (!decoded) return decoded.error().message();
    const auto* key = reinterpret_cast<const char*>(decoded->key.data());
    if (std::string_view(key, decoded->key.size()) != meta_name || decoded->payload.size() != 16)
        return "the frame does not hold a 16-byte hash secret under the key tierguard-meta";
    return std::nullopt;
}

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

int run_stats(const std::string& dir, const tierguard::storage::posix_directory& storage, bool json) {
    const auto now = clock_type::now();
    auto listing = storage.list();
    if (!listing) return refuse(dir, listing.error().message());
    std::uint64_t entries = 0, bytes = 0;
    std::vector<std::int64_t> ages;
    for (const tierguard::blob_info& blob : *listing) {
        if (blob.name == meta_name) continue;
        ++entries;
        bytes += blob.size;
        ages.push_back(age_seconds(now, blob.modified));
    }
    // The quarantine folder is not a blob listing; read it directly (read-only).
    std::uint64_t q_files = 0, q_bytes = 0;
    std::vector<std::int64_t> q_ages;
    std::error_code ec;
    for (fs::directory_iterator it(fs::path(dir) / tierguard::detail::quarantine_folder, ec), end; !ec && it != end;
         it.increment(ec)) {
        const auto since = tierguard::detail::quarantine_time(it->path().filename().native());
        if (!since || it->symlink_status(ec).type() != fs::file_type::regular) continue;  // never follow a link
        ++q_files;
        q_bytes += it->file_size(ec);
        q_ages.push_back(age_seconds(now, *since));
    }
    const spread entry_ages = spread::of(std::move(ages));
    const spread quarantine_ages = spread::of(std::move(q_ages));
    if (json) {
        const std::string quarantine =
            json_object().num("files", q_files).num("bytes", q_bytes).raw("age_seconds", quarantine_ages.json()).done();
        std::printf("%s\n", json_object()
                                .str("directory", storage.root().native())
                                .num("entries", entries)
                                .num("bytes", bytes)
                                .raw("age_seconds", entry_ages.json())
                                .raw("quarantine", quarantine)
                                .done()
                                .c_str());
        return exit_ok;
    }
    std::printf("directory   %s\n", storage.root().c_str());
    std::printf("entries     %llu\n", static_cast<unsigned long long>(entries));
    std::printf("bytes       %llu (%s)\n", static_cast<unsigned long long>(bytes), human_bytes(bytes).c_str());
    std::printf("ages        %s\n", entry_ages.human().c_str());
    std::printf("quarantine  %llu file(s), %s; ages %s\n", static_cast<unsigned long long>(q_files),
                human_bytes(q_bytes).c_str(), quarantine_ages.human().c_str());
    return exit_ok;
}

struct problem {
    std::string name;
    std::string kind;  // an errc name, or "misplaced"
    std::string message;
};

int run_verify(const std::string& dir, tierguard::storage::posix_directory storage, bool json) {
    const auto now = clock_type::now();
    std::vector<problem> problems;
    std::optional<tier_type> tier;  // needs an intact meta file, for the file names
    if (auto bad = meta_problem(storage)) {
        problems.push_back({std::string(meta_name), "corrupted", *bad + " (entries cannot be matched to names)"});
    }
    auto listing = storage.list();
    if (!listing) return refuse(dir, listing.error().message());
    std::sort(listing->begin(), listing->end(),
              [](const tierguard::blob_info& a, const tierguard::blob_info& b) { return a.name < b.name; });
    if (problems.empty()) {
        auto opened = open_tier(std::move(storage), nullptr);
        if (!opened) return refuse(dir, opened.error().message());
        tier.emplace(std::move(*opened));
    }
    const tierguard::storage::posix_directory& files = tier ? tier->storage() : storage;

    std::uint64_t checked = 0, intact = 0, expired = 0;
    std::map<std::uint32_t, std::uint64_t> schemas;
    for (const tierguard::blob_info& blob : *listing) {
        if (blob.name == meta_name) continue;
        ++checked;
        auto bytes = files.read(blob.name);
        if (!bytes) {
            if (bytes.error().code() == tierguard::errc::miss) {  // removed while we listed
                --checked;
                continue;
            }
            problems.push_back({blob.name, std::string(to_string(bytes.error().code())), bytes.error().message()});
            continue;
        }
        auto entry = tierguard::frame::decode(*bytes, unbounded_frames);
        if (!entry) {
            problems.push_back({blob.name, std::string(to_string(entry.error().code())), entry.error().message()});
            continue;
        }
        if (tier) {
            const std::string key(reinterpret_cast<const char*>(entry->key.data()), entry->key.size());
            if (auto name = tier->name_for(key); !name || *name != blob.name) {
                problems.push_back({blob.name, "misplaced",
                                    "holds the entry of key " + quoted(entry->key) +
                                        ", which belongs under another file name (scrub removes it)"});
                continue;
            }
        }
        ++intact;
        ++schemas[entry->head.schema_version];
        if (entry->head.expiry_ns != 0 &&
            entry->head.expiry_ns <=
                std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count())
            ++expired;
    }

    if (json) {
        std::vector<std::string> items;
        for (const problem& p : problems)
            items.push_back(json_object().str("name", p.name).str("error", p.kind).str("message", p.message).done());
        json_object versions;
        for (const auto& [version, count] : schemas) versions.num(std::to_string(version), count);
        std::printf("%s\n", json_object()
                                .str("directory", files.root().native())
                                .boolean("ok", problems.empty())
                                .num("checked", checked)
                                .num("intact", intact)
                                .num("damaged", static_cast<std::uint64_t>(problems.size()))
                                .num("expired", expired)
                                .raw("schema_versions", versions.done())
                                .raw("problems", json_array(items))
                                .done()
                                .c_str());
    } else {
        for (const problem& p : problems)
            std::printf("%-10s %s: %s\n", p.kind == "misplaced" ? "MISPLACED" : "CORRUPT", p.name.c_str(),
                        p.message.c_str());
        std::string versions;
        for (const auto& [version, count] : schemas)
            versions +=
                (versions.empty() ? "" : ", ") + std::to_string(count) + " of version " + std::to_string(version);
        std::printf("checked %llu entry file(s) in %s: %llu intact, %zu damaged, %llu expired%s%s\n",
                    static_cast<unsigned long long>(checked), files.root().c_str(),
                    static_cast<unsigned long long>(intact), problems.size(), static_cast<unsigned long long>(expired),
                    versions.empty() ? "" : "; schema versions: ", versions.c_str());
        std::printf("%s\n", problems.empty() ? "OK" : "DAMAGED: run 'tierguard-cli scrub' to quarantine the damage");
    }
    return problems.empty() ? exit_ok : exit_problems;
}

int run_scrub(const std::string& dir, tierguard::storage::posix_directory storage, bool json) {
    std::vector<std::string> events;
    auto tier = open_tier(std::move(storage), &events);
    if (!tier) return refuse(dir, tier.error().message());
    auto report = tier->scrub();
    if (!report) return refuse(dir, "scrub failed: " + report.error().message());
    const std::pair<std::string_view, std::uint64_t> fields[] = {
        {"entries_checked", report->entries_checked},
        {"temp_files_removed", report->temp_files_removed},
        {"foreign_removed", report->foreign_removed},
        {"orphans_removed", report->orphans_removed},
        {"quarantined", report->quarantined},
        {"quarantine_purged", report->quarantine_purged},
        {"version_mismatches", report->version_mismatches},
        {"expired_removed", report->expired_removed},
        {"io_errors", report->io_errors},
    };
    if (json) {
        json_object out;
        out.str("directory", tier->storage().root().native());
        for (const auto& [name, value] : fields) out.num(name, value);
        std::vector<std::string> items;
        for (const std::string& e : events) items.push_back(json_object().str("event", e).done());
        out.raw("events", json_array(items));
        std::printf("%s\n", out.done().c_str());
    } else {
        for (const std::string& e : events) std::printf("event: %s\n", e.c_str());
        std::printf("scrubbed %s\n", tier->storage().root().c_str());
        for (const auto& [name, value] : fields)
            std::printf("  %-20.*s %llu\n", static_cast<int>(name.size()), name.data(),
                        static_cast<unsigned long long>(value));
    }
    return report->io_errors == 0 ? exit_ok : exit_problems;
}

int run_purge(const std::string& dir, tierguard::storage::posix_directory storage, std::chrono::seconds older_than,
              const std::string& shown, bool json) {
    auto report = storage.clean({clock_type::now(), older_than});
    if (!report) return refuse(dir, "purge failed: " + report.error().message());
    if (json) {
        std::printf("%s\n", json_object()
                                .str("directory", storage.root().native())
                                .num("older_than_seconds", static_cast<std::int64_t>(older_than.count()))
                                .num("quarantine_purged", report->quarantine_purged)
                                .num("temp_files_removed", report->temp_files_removed)
                                .num("foreign_removed", report->foreign_removed)
                                .num("bytes_freed", report->bytes_freed)
                                .done()
                                .c_str());
    } else {
        std::printf("purged %llu quarantined file(s) older than %s from %s\n",
                    static_cast<unsigned long long>(report->quarantine_purged), shown.c_str(), storage.root().c_str());
        std::printf("also removed %llu temp file(s) and %llu foreign file(s); freed %s\n",
                    static_cast<unsigned long long>(report->temp_files_removed),
                    static_cast<unsigned long long>(report->foreign_removed), human_bytes(report->bytes_freed).c_str());
    }
    return exit_ok;
}

int run_inspect(const std::string& dir, tierguard::storage::posix_directory storage, const std::string& key,
                bool json) {
    if (auto bad = meta_problem(storage))
        return refuse(dir, "cannot compute the file name of a key: tierguard-meta is damaged: " + *bad);
    auto tier = open_tier(std::move(storage), nullptr);
    if (!tier) return refuse(dir, tier.error().message());
    auto name = tier->name_for(key);
    if (!name) return refuse(dir, name.error().message());
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

int run(const arguments& args) {
    const std::string_view name = args.command->name;
    const std::size_t wanted = name == "inspect" ? 2 : 1;
    if (args.positional.empty()) return usage_error(name, "missing DIR");
    if (args.positional.size() < wanted) return usage_error(name, "missing KEY");
    if (args.positional.size() > wanted) return usage_error(name, "too many arguments");
    std::optional<std::chrono::seconds> older_than;
    if (name == "purge-quarantine") {
        if (!args.older_than) return usage_error(name, "--older-than DURATION is required (e.g. --older-than 7d)");
        older_than = parse_duration(*args.older_than);
        if (!older_than)
            return usage_error(name, "bad duration '" + *args.older_than +
                                         "': expected a number and a unit d, h, m or s, or several (7d, 12h, 30m, "
                                         "45s, 1h30m), at most 100 years");
    } else if (args.older_than) {
        return usage_error(name, "--older-than applies to purge-quarantine only");
    }

    const std::string& dir = args.positional[0];
    if (auto refused = check_cache_dir(dir)) return *refused;
    const bool writing = name == "scrub" || name == "purge-quarantine";
    auto storage = open_storage(dir, writing);
    if (!storage) return storage_failure(dir, storage.error());
    if (name == "stats") return run_stats(dir, *storage, args.json);
    if (name == "verify") return run_verify(dir, std::move(*storage), args.json);
    if (name == "scrub") return run_scrub(dir, std::move(*storage), args.json);
    if (name == "purge-quarantine")
        return run_purge(dir, std::move(*storage), *older_than, *args.older_than, args.json);
    return run_inspect(dir, std::move(*storage), args.positional[1], args.json);
}

}  // namespace

int main(int argc, char** argv) {
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
    for (const command_info& c : commands)
        if (c.name == first) args.command = &c;
    if (args.command == nullptr) return usage_error("", "unknown command '" + std::string(first) + "'");

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
            args.json = true;
        } else if (arg == "--older-than" || arg.starts_with("--older-than=")) {
            if (arg == "--older-than" && i + 1 == argc) return usage_error(first, "--older-than needs a DURATION");
            args.older_than = arg == "--older-than" ? std::string(argv[++i]) : std::string(arg.substr(13));
        } else {
            return usage_error(first, "unknown option '" + std::string(arg) + "'");
        }
    }
    try {
        return run(args);
    } catch (const std::exception& e) {  // bad_alloc or a filesystem error: still a clean message
        std::fprintf(stderr, "tierguard-cli: %s\n", e.what());
        return exit_unusable;
    }
}
