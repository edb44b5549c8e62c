#pragma once

#include <tierguard/detail/crc32.hpp>
#include <tierguard/serializer/codec.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

// The bytes of segment_log's files (docs/FORMAT.md, "Segment files"): the segment header,
// the record header, and a scanner that walks a segment's records, resynchronizing after
// damage. Little-endian throughout, like the frame.

namespace tierguard::detail::segment {

/// "TGSG": the first four bytes of every segment file.
inline constexpr std::array<std::byte, 4> segment_magic{std::byte{0x54}, std::byte{0x47}, std::byte{0x53},
                                                        std::byte{0x47}};
/// "TGSR": the first four bytes of every record.
inline constexpr std::array<std::byte, 4> record_magic{std::byte{0x54}, std::byte{0x47}, std::byte{0x53},
                                                       std::byte{0x52}};
inline constexpr std::uint16_t format_version = 1;
inline constexpr std::size_t segment_header_size = 32;
inline constexpr std::size_t record_header_size = 20;
/// Records start at multiples of this (the index keeps offsets and lengths in its units).
inline constexpr std::size_t alignment = 8;
/// Record flag bit 0: a tombstone (the name was removed); no blob follows.
inline constexpr std::uint16_t flag_tombstone = 0x0001;
/// Largest name a record holds (detail::max_blob_name_length).
inline constexpr std::size_t max_name = 1024;

[[nodiscard]] constexpr std::size_t aligned(std::size_t n) noexcept { return (n + alignment - 1) & ~(alignment - 1); }

/// The record's size on disk, padding included.
[[nodiscard]] constexpr std::size_t record_size(std::size_t name_length, std::size_t blob_length) noexcept {
    return aligned(record_header_size + name_length + blob_length);
}

[[nodiscard]] inline std::uint32_t crc_update(std::uint32_t crc, const std::byte* data, std::size_t n) noexcept {
    return crc32_update(crc, {data, n});
}

/// A segment header: magic, version, flags (0), sequence number, creation time, the
/// previous segment's length, CRC.
struct segment_header {
    std::uint64_t sequence = 0;
    std::int64_t created_ns = 0;  ///< system_clock nanoseconds since the Unix epoch
    /// Bytes segment `sequence - 1` held when this one was made: where its last record
    /// ends, since no record goes into a segment once a newer one exists. 0 = not known
    /// (the log's first segment, or one tierguard 0.1 made).
    std::uint32_t previous_length = 0;
};

inline void encode_segment_header(const segment_header& h, std::byte* out) noexcept {
    std::memset(out, 0, segment_header_size);
    std::memcpy(out, segment_magic.data(), 4);
    store_le(out + 4, format_version);
    store_le(out + 8, h.sequence);
    store_le(out + 16, static_cast<std::uint64_t>(h.created_ns));
    store_le(out + 24, h.previous_length);
    store_le(out + 28, crc_update(0, out, 28));
}

/// Longest name a damaged record head is repaired for (repair_record): the search tries
/// 255 values at each byte of header and name, a CRC over both for each.
inline constexpr std::size_t max_repaired_name = 256;

/// The header, or nothing if the bytes are not a valid version-1 segment header.
[[nodiscard]] inline std::optional<segment_header> decode_segment_header(std::span<const std::byte> in) noexcept {
    if (in.size() < segment_header_size || std::memcmp(in.data(), segment_magic.data(), 4) != 0) return std::nullopt;
    if (load_le<std::uint32_t>(in.data() + 28) != crc_update(0, in.data(), 28)) return std::nullopt;
    if (load_le<std::uint16_t>(in.data() + 4) != format_version || load_le<std::uint16_t>(in.data() + 6) != 0)
        return std::nullopt;
    return segment_header{load_le<std::uint64_t>(in.data() + 8),
                          static_cast<std::int64_t>(load_le<std::uint64_t>(in.data() + 16)),
                          load_le<std::uint32_t>(in.data() + 24)};
}

/// The header that one changed byte of `in` would make valid, if exactly one such change
/// does and it names `sequence`: a header damaged by a single flipped byte is read, never
/// guessed (the CRC tells every single-byte change apart).
[[nodiscard]] inline std::optional<segment_header> repair_segment_header(std::span<const std::byte> in,
                                                                         std::uint64_t sequence) {
    if (in.size() < segment_header_size) return std::nullopt;
    std::array<std::byte, segment_header_size> copy{};
    std::memcpy(copy.data(), in.data(), segment_header_size);
    std::optional<segment_header> found;
    for (std::size_t p = 0; p < segment_header_size; ++p) {
        const std::byte was = copy[p];
        for (unsigned b = 0; b < 256; ++b) {
            copy[p] = static_cast<std::byte>(b);
            if (copy[p] == was) continue;
            const auto h = decode_segment_header(copy);
            if (!h || h->sequence != sequence) continue;
            if (found) return std::nullopt;
            found = h;
        }
        copy[p] = was;
    }
    return found;
}

/// The header of segment `sequence` from the file's first bytes: as written, else repaired
/// (`repaired` set), else nothing.
[[nodiscard]] inline std::optional<segment_header> read_segment_header(std::span<const std::byte> in,
                                                                       std::uint64_t sequence, bool& repaired) {
    repaired = false;
    if (auto h = decode_segment_header(in)) return h;
    auto h = repair_segment_header(in, sequence);
    repaired = h.has_value();
    return h;
}

/// Appends one record (header, name, blob, zero padding) to `out`.
inline void append_record(std::vector<std::byte>& out, std::string_view name, std::span<const std::byte> blob,
                          std::uint16_t flags) {
    const std::size_t at = out.size();
    out.resize(at + record_size(name.size(), blob.size()));
    std::byte* p = out.data() + at;
    std::memcpy(p, record_magic.data(), 4);
    store_le(p + 4, flags);
    store_le(p + 6, static_cast<std::uint16_t>(name.size()));
    store_le(p + 8, static_cast<std::uint32_t>(blob.size()));
    std::memcpy(p + record_header_size, name.data(), name.size());
    if (!blob.empty()) std::memcpy(p + record_header_size + name.size(), blob.data(), blob.size());
    std::uint32_t head = crc_update(0, p, 12);
    head = crc_update(head, p + record_header_size, name.size());
    store_le(p + 12, head);
    std::uint32_t all = crc_update(0, p, 16);
    all = crc_update(all, p + record_header_size, name.size() + blob.size());
    store_le(p + 16, all);
}

/// A record's header fields and name, once they passed the header CRC.
struct record_head {
    std::uint16_t flags = 0;
    std::string_view name;
    std::size_t blob_length = 0;

    [[nodiscard]] bool tombstone() const noexcept { return (flags & flag_tombstone) != 0; }
    [[nodiscard]] std::size_t size() const noexcept { return record_size(name.size(), blob_length); }
};

/// The head of the record at the start of `in`, or nothing if the bytes there are not a
/// record header and name that pass the header CRC (the blob is neither needed nor read).
[[nodiscard]] inline std::optional<record_head> parse_head(std::span<const std::byte> in) noexcept {
    if (in.size() < record_header_size || std::memcmp(in.data(), record_magic.data(), 4) != 0) return std::nullopt;
    const std::byte* p = in.data();
    record_head h;
    h.flags = load_le<std::uint16_t>(p + 4);
    const std::size_t name_length = load_le<std::uint16_t>(p + 6);
    h.blob_length = load_le<std::uint32_t>(p + 8);
    if (name_length == 0 || name_length > max_name || (h.flags & ~flag_tombstone) != 0) return std::nullopt;
    if (in.size() < record_header_size + name_length) return std::nullopt;
    std::uint32_t crc = crc_update(0, p, 12);
    crc = crc_update(crc, p + record_header_size, name_length);
    if (crc != load_le<std::uint32_t>(p + 12)) return std::nullopt;
    if (h.tombstone() && h.blob_length != 0) return std::nullopt;
    h.name = std::string_view(reinterpret_cast<const char*>(p + record_header_size), name_length);
    return h;
}

/// A whole record whose head passed its CRC.
struct record_view {
    record_head head;
    std::span<const std::byte> blob;  ///< as stored; sound only if `intact`
    bool intact = false;              ///< the whole-record CRC matches too (or was not checked)
};

/// Parses the record at the start of `in`: nothing if its head fails (parse_head) or the
/// bytes end before its blob does (a torn record); otherwise the record, with `intact`
/// false if the blob fails the whole-record CRC. With `check_blob` false that CRC is not
/// computed (`intact` true): for a caller whose blob carries a checksum of its own over all
/// its bytes, which it checks.
[[nodiscard]] inline std::optional<record_view> parse_record(std::span<const std::byte> in,
                                                             bool check_blob = true) noexcept {
    const auto head = parse_head(in);
    if (!head) return std::nullopt;
    const std::size_t body = record_header_size + head->name.size();
    if (in.size() - body < head->blob_length) return std::nullopt;
    record_view r{*head, in.subspan(body, head->blob_length), true};
    if (!check_blob) return r;
    std::uint32_t crc = crc_update(0, in.data(), 16);
    crc = crc_update(crc, in.data() + record_header_size, head->name.size() + head->blob_length);
    r.intact = crc == load_le<std::uint32_t>(in.data() + 16);
    return r;
}

/// A record rebuilt from the damaged bytes at the start of `in`: `bytes` holds them with one
/// byte changed so that head and whole-record CRC both pass (`view` points into it).
struct repaired_record {
    std::vector<std::byte> bytes;
    record_view view;
};

/// The record one changed byte in the header or name at the start of `in` would make
/// intact, if exactly one change does and the record then takes `expected_size` bytes (0:
/// any size that fits in `in`). Both CRCs must pass, so a record is rebuilt only from a
/// single damaged byte, never guessed; names over max_repaired_name are not tried.
[[nodiscard]] inline std::optional<repaired_record> repair_record(std::span<const std::byte> in,
                                                                  std::size_t expected_size) {
    if (in.size() < record_header_size) return std::nullopt;
    const std::size_t stored_name = load_le<std::uint16_t>(in.data() + 6);
    const std::size_t head_end = std::min(in.size(), record_header_size + max_repaired_name);
    std::vector<std::byte> head(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(head_end));
    std::optional<std::pair<std::size_t, std::byte>> found;
    for (std::size_t p = 0; p < head_end; ++p) {
        // Past the stored name only a change of the length field itself (bytes 6, 7) matters.
        if (p >= record_header_size + stored_name) break;
        const std::byte was = head[p];
        for (unsigned b = 0; b < 256; ++b) {
            head[p] = static_cast<std::byte>(b);
            if (head[p] == was) continue;
            const auto h = parse_head(head);
            if (!h || h->size() > in.size() || (expected_size != 0 && h->size() != expected_size)) continue;
            if (p >= record_header_size + h->name.size()) continue;
            std::vector<std::byte> rec(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(h->size()));
            rec[p] = head[p];
            const auto r = parse_record(rec);
            if (!r || !r->intact) continue;
            if (found) return std::nullopt;
            found.emplace(p, head[p]);
        }
        head[p] = was;
    }
    if (!found) return std::nullopt;
    head[found->first] = found->second;
    const std::size_t size = parse_head(head)->size();
    repaired_record out{std::vector<std::byte>(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(size)), {}};
    out.bytes[found->first] = found->second;
    out.view = *parse_record(out.bytes);
    return out;
}

/// Walks the records of `data` (a whole segment file, header included) from
/// segment_header_size, telling `v` what it meets, in order: v.record(offset, view) for an
/// intact record; v.damaged_record(offset, view) for one whose head is sound but whose blob
/// fails the CRC; v.unreadable(from, to) for bytes holding no trustworthy header, followed
/// by an intact record at `to`; v.torn(from, end) for a tail that no intact record follows
/// (a record cut short, or whatever a crash left). After a header that fails its CRC it looks
/// for the next aligned offset holding an intact record; none means the tail is torn. First,
/// though, a record that one changed byte of its header or name would make intact
/// (repair_record) is reported as v.damaged_record with its rebuilt view: a single flipped
/// byte costs its own record's name, not the stretch.
/// Returns the end of the valid part (where the next record would go; past data.size()
/// when the last record's padding is missing).
template <class Visitor>
std::size_t scan_records(std::span<const std::byte> data, Visitor& v) {
    std::size_t off = segment_header_size;
    while (off < data.size()) {
        const auto r = parse_record(data.subspan(off));
        if (r) {
            if (r->intact)
                v.record(off, *r);
            else
                v.damaged_record(off, *r);
            off += r->head.size();
            continue;
        }
        if (parse_head(data.subspan(off))) {  // a sound head whose blob the end cuts: a torn write
            v.torn(off, data.size());
            return off;
        }
        std::size_t next = off + alignment;
        for (; next + record_header_size <= data.size(); next += alignment) {
            const auto candidate = parse_record(data.subspan(next));
            if (candidate && candidate->intact) break;
        }
        const bool tail = next + record_header_size > data.size();
        if (const auto fixed =
                repair_record(data.subspan(off, (tail ? data.size() : next) - off), tail ? 0 : next - off)) {
            v.damaged_record(off, fixed->view);
            off += fixed->view.head.size();
            continue;
        }
        if (tail) {
            v.torn(off, data.size());
            return off;
        }
        v.unreadable(off, next);
        off = next;
    }
    return off;
}

}  // namespace tierguard::detail::segment
