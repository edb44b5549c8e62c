#pragma once

#include <tierguard/detail/ttl.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tierguard::detail {

// The naming rules every storage shares, so that the in-memory reference model refuses,
// stores and quarantines exactly as the directory does.

inline constexpr std::size_t max_blob_name_length = 1024;
inline constexpr std::size_t max_blob_segment_length = 255;  // NAME_MAX of common file systems
/// The folder under the storage's root that quarantined blobs are moved to.
inline constexpr std::string_view quarantine_folder = "quarantine";
/// Prefix of the temp files a write goes through; clean() removes leftovers.
inline constexpr std::string_view temp_prefix = ".tmp.";

// [A-Za-z0-9_.-] as a table: a name is checked on every storage call, a character at a time.
inline constexpr auto blob_name_chars = [] {
    std::array<bool, 256> t{};
    for (int c = 0; c < 256; ++c)
        t[static_cast<std::size_t>(c)] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                         c == '_' || c == '-' || c == '.';
    return t;
}();

[[nodiscard]] constexpr bool is_blob_name_char(char c) noexcept {
    return blob_name_chars[static_cast<unsigned char>(c)];
}

/// True if `segment` may be one '/'-separated part of a blob name.
[[nodiscard]] constexpr bool is_blob_segment(std::string_view segment) noexcept {
    if (segment.empty() || segment.size() > max_blob_segment_length || segment.front() == '.') return false;
    for (const char c : segment)
        if (!is_blob_name_char(c)) return false;
    return true;
}

/// Why `name` is not a valid blob name, or an empty view if it is one.
[[nodiscard]] constexpr std::string_view blob_name_problem(std::string_view name) noexcept {
    if (name.empty()) return "a name must not be empty";
    if (name.size() > max_blob_name_length) return "a name is at most 1024 characters";
    if (name.front() == '/') return "a name is relative; it must not start with '/'";
    std::size_t start = 0;
    for (bool first = true;; first = false) {
        const std::size_t end = name.find('/', start);
        const std::string_view segment = name.substr(start, end == std::string_view::npos ? end : end - start);
        if (segment.empty()) return "a name must not have empty segments (\"a//b\", a trailing '/')";
        if (segment.front() == '.')
            return "a segment must not start with '.' (\".\", \"..\" and dot-names are the storage's own)";
        if (segment.size() > max_blob_segment_length) return "a segment is at most 255 characters";
        for (const char c : segment)
            if (!is_blob_name_char(c)) return "a segment holds only the characters [A-Za-z0-9_.-]";
        if (first && segment == quarantine_folder)
            return "the first segment must not be \"quarantine\", the storage's quarantine folder";
        if (end == std::string_view::npos) return {};
        start = end + 1;
    }
}

/// The folders of blob name `name` ("ab/cd" of "ab/cd/x"), empty for a name at the root.
[[nodiscard]] constexpr std::string_view blob_parent(std::string_view name) noexcept {
    const std::size_t slash = name.rfind('/');
    return slash == std::string_view::npos ? std::string_view() : name.substr(0, slash);
}

/// The last segment of blob name `name` ("x" of "ab/cd/x").
[[nodiscard]] constexpr std::string_view blob_leaf(std::string_view name) noexcept {
    const std::size_t slash = name.rfind('/');
    return slash == std::string_view::npos ? name : name.substr(slash + 1);
}

/// `text` fit for a log line: bytes outside printable ASCII become \xNN; at most 96 are shown.
[[nodiscard]] inline std::string quoted_name(std::string_view text) {
    constexpr std::size_t shown = 96;
    constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size() < shown ? text.size() + 2 : shown + 5);
    out += '"';
    for (std::size_t i = 0; i < text.size() && i < shown; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    out += text.size() > shown ? "\"..." : "\"";
    return out;
}

/// Nothing if `name` is a valid blob name, else errc::invalid_argument naming the
/// operation, the name and the rule it breaks.
[[nodiscard]] inline result<void> check_blob_name(std::string_view operation, std::string_view name, tier where) {
    const std::string_view problem = blob_name_problem(name);
    if (problem.empty()) return {};
    std::string context(operation);
    context += ": name ";
    context += quoted_name(name);
    context += " refused: ";
    context += problem;
    return fail(errc::invalid_argument, where, std::move(context));
}

namespace stamp_detail {
inline void append_digits(std::string& out, unsigned value, int width) {
    char buf[10];
    for (int i = width - 1; i >= 0; --i) {
        buf[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
    out.append(buf, static_cast<std::size_t>(width));
}

[[nodiscard]] constexpr std::optional<unsigned> parse_digits(std::string_view text) noexcept {
    unsigned value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value;
}
}  // namespace stamp_detail

/// `t` in UTC to the second, as "20261123T104501Z" (ISO 8601 basic format), clamped to
/// the years 0000 to 9999 so that the text always has 16 characters.
[[nodiscard]] inline std::string utc_stamp(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto secs = floor<seconds>(t);
    const auto day = floor<days>(secs);
    const year_month_day date(day);
    if (date.year() < year(0)) return "00000101T000000Z";
    if (date.year() > year(9999)) return "99991231T235959Z";
    const hh_mm_ss time(secs - day);
    std::string out;
    out.reserve(16);
    stamp_detail::append_digits(out, static_cast<unsigned>(static_cast<int>(date.year())), 4);
    stamp_detail::append_digits(out, static_cast<unsigned>(date.month()), 2);
    stamp_detail::append_digits(out, static_cast<unsigned>(date.day()), 2);
    out += 'T';
    stamp_detail::append_digits(out, static_cast<unsigned>(time.hours().count()), 2);
    stamp_detail::append_digits(out, static_cast<unsigned>(time.minutes().count()), 2);
    stamp_detail::append_digits(out, static_cast<unsigned>(time.seconds().count()), 2);
    out += 'Z';
    return out;
}

/// The time a utc_stamp() text stands for; nullopt for anything else.
[[nodiscard]] inline std::optional<std::chrono::system_clock::time_point> parse_utc_stamp(std::string_view text) {
    using namespace std::chrono;
    if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') return std::nullopt;
    const auto y = stamp_detail::parse_digits(text.substr(0, 4));
    const auto mo = stamp_detail::parse_digits(text.substr(4, 2));
    const auto d = stamp_detail::parse_digits(text.substr(6, 2));
    const auto h = stamp_detail::parse_digits(text.substr(9, 2));
    const auto mi = stamp_detail::parse_digits(text.substr(11, 2));
    const auto s = stamp_detail::parse_digits(text.substr(13, 2));
    if (!y || !mo || !d || !h || !mi || !s || *h > 23 || *mi > 59 || *s > 60) return std::nullopt;
    const year_month_day date{year(static_cast<int>(*y)), month(*mo), day(*d)};
    if (!date.ok()) return std::nullopt;
    const sys_seconds at = sys_days(date) + hours(*h) + minutes(*mi) + seconds(*s);
    return system_clock::time_point(ceil_sat<system_clock::duration>(at.time_since_epoch()));
}

/// `reason` cut down to a file-name fragment: lower-case [a-z0-9_-], every run of other
/// characters one '_', no '_' at either end, at most 64 characters, "unspecified" if
/// nothing is left.
[[nodiscard]] inline std::string reduce_reason(std::string_view reason) {
    constexpr std::size_t longest = 64;
    std::string out;
    bool gap = false;
    for (const char raw : reason) {
        char c = raw;
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-') {
            if (gap && !out.empty()) out += '_';
            gap = false;
            out += c;
        } else {
            gap = true;
        }
        if (out.size() >= longest) break;
    }
    out.resize(out.size() < longest ? out.size() : longest);
    while (!out.empty() && out.back() == '_') out.pop_back();
    if (out.empty()) out = "unspecified";
    return out;
}

/// The file name a quarantined blob gets: "<utc_stamp(now)>.<name, '/' as '_'>.<reduced reason>",
/// e.g. "20261123T104501Z.ab_cd_0123.bad_checksum". The name part is cut to 160 characters
/// so that the whole stays a single valid file name.
[[nodiscard]] inline std::string quarantine_name(std::string_view name, std::string_view reason,
                                                 std::chrono::system_clock::time_point now) {
    constexpr std::size_t longest_name = 160;
    std::string out = utc_stamp(now);
    out += '.';
    for (std::size_t i = 0; i < name.size() && i < longest_name; ++i) out += name[i] == '/' ? '_' : name[i];
    out += '.';
    out += reduce_reason(reason);
    return out;
}

/// The time a quarantine_name() carries; nullopt for a file name quarantine() does not make.
[[nodiscard]] inline std::optional<std::chrono::system_clock::time_point> quarantine_time(std::string_view file_name) {
    if (file_name.size() < 18 || file_name[16] != '.') return std::nullopt;
    return parse_utc_stamp(file_name.substr(0, 16));
}

}  // namespace tierguard::detail
