#pragma once

#include <tierguard/detail/crc32.hpp>
#include <tierguard/result.hpp>
#include <tierguard/serializer/codec.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <vector>

/// The self-describing, checksummed envelope in which a storage tier keeps one entry:
/// key, value bytes (optionally zlib-compressed), the value type's schema version and the
/// expiry. docs/FORMAT.md documents the layout byte by byte.
///
/// @code
/// std::vector<std::byte> file;
/// if (tierguard::frame::encode(key_bytes, value_bytes, tierguard::value_traits<user_record>::schema_version,
///                              0, 6, file)) {
///     auto entry = tierguard::frame::decode(file);  // the key and inflated value, or why not
/// }
/// @endcode
namespace tierguard::frame {

/// "TGFR": the first four bytes of every frame.
inline constexpr std::array<std::byte, 4> magic{std::byte{0x54}, std::byte{0x47}, std::byte{0x46}, std::byte{0x52}};
/// The layout this header writes and the only one it reads.
inline constexpr std::uint16_t current_format_version = 1;
/// flags bit 0: the payload is a zlib stream.
inline constexpr std::uint16_t flag_zlib = 0x0001;
/// flags bit 2: a tags section follows the key. Every bit but 0 and 2 is reserved and must be 0.
inline constexpr std::uint16_t flag_tags = 0x0004;
/// The bytes of a tags section's length field.
inline constexpr std::size_t tags_length_size = 4;
/// Bytes before the key.
inline constexpr std::size_t header_size = 32;
/// The trailing CRC-32.
inline constexpr std::size_t checksum_size = 4;
/// A frame's size with an empty key and an empty payload.
inline constexpr std::size_t overhead = header_size + checksum_size;

/// What decode accepts; a frame whose header claims more is corrupted. These bound the
/// memory a decode may allocate, whatever the bytes say.
struct limits {
    std::size_t max_key = std::size_t{1} << 20;
    std::size_t max_payload = std::size_t{64} << 20;  ///< after inflate
    std::size_t max_tags = std::size_t{64} << 10;     ///< bytes of the tags section's body
};

/// The fixed-size fields of a frame, as stored.
struct header {
    std::uint16_t format_version;
    std::uint16_t flags;
    std::uint32_t schema_version;  ///< value_traits<T>::schema_version of the writer
    std::uint32_t key_length;
    std::uint32_t stored_length;  ///< payload bytes in the frame
    std::uint32_t raw_length;     ///< payload bytes after inflate
    std::int64_t expiry_ns;       ///< system_clock nanoseconds since the Unix epoch; 0 = never
    std::uint32_t tags_length;    ///< bytes of the tags section after its length field; 0 without one

    [[nodiscard]] constexpr bool compressed() const noexcept { return (flags & flag_zlib) != 0; }
    [[nodiscard]] constexpr bool tagged() const noexcept { return (flags & flag_tags) != 0; }
    /// Bytes between the key and the payload: the tags section, if any.
    [[nodiscard]] constexpr std::uint64_t tags_size() const noexcept {
        return tagged() ? tags_length_size + std::uint64_t{tags_length} : 0;
    }
    /// overhead + key_length + tags section + stored_length, without overflow.
    [[nodiscard]] constexpr std::uint64_t total_size() const noexcept {
        return std::uint64_t{overhead} + key_length + tags_size() + stored_length;
    }
};

/// A frame that passed every check: its header, its key, and its payload inflated.
struct decoded {
    header head;
    std::vector<std::byte> key;
    std::vector<std::byte> payload;
    std::vector<std::string> tags;
};

/// A frame that passed every check, as views: the key into the frame's bytes, the payload
/// into them too or, when it was compressed, into the buffer decode_view inflated it into.
struct view {
    header head;
    std::span<const std::byte> key;
    std::span<const std::byte> payload;
    std::span<const std::byte> tags;  ///< the tags section's body (see tags_of); empty without one
};

/// The tags of a tags section's body that decode_view validated: each a u16 length and its bytes.
[[nodiscard]] inline std::vector<std::string> tags_of(std::span<const std::byte> body) {
    std::vector<std::string> out;
    for (std::size_t at = 0; at + 2 <= body.size();) {
        const std::size_t n = tierguard::detail::load_le<std::uint16_t>(body.data() + at);
        const auto* text = reinterpret_cast<const char*>(body.data() + at + 2);
        out.emplace_back(text, std::min(n, body.size() - at - 2));
        at += 2 + n;
    }
    return out;
}

/// The zlib streams of a series of encode and decode calls: each call resets a stream
/// instead of setting one up (deflateInit allocates and clears about 256 KiB). A stream is
/// made on first use and ended by the destructor. One call at a time (not thread-safe).
/// Neither copyable nor movable, since a zlib stream points at itself.
class zlib_streams {
public:
    zlib_streams() = default;
    zlib_streams(const zlib_streams&) = delete;
    zlib_streams& operator=(const zlib_streams&) = delete;
    ~zlib_streams() {
        if (m_deflate_level != 0) deflateEnd(&m_deflate);
        if (m_inflate_ready) inflateEnd(&m_inflate);
    }

    /// A reset deflate stream at `level` (1..9), or nullptr if zlib refuses one. Throws std::bad_alloc.
    [[nodiscard]] z_stream* deflater(int level) {
        if (m_deflate_level == level) return deflateReset(&m_deflate) == Z_OK ? &m_deflate : nullptr;
        if (m_deflate_level != 0) deflateEnd(&m_deflate);
        m_deflate = {};
        m_deflate_level = 0;
        const int rc = deflateInit(&m_deflate, level);
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        if (rc != Z_OK) return nullptr;
        m_deflate_level = level;
        return &m_deflate;
    }

    /// A reset inflate stream, or nullptr if zlib refuses one. Throws std::bad_alloc.
    [[nodiscard]] z_stream* inflater() {
        if (m_inflate_ready) return inflateReset(&m_inflate) == Z_OK ? &m_inflate : nullptr;
        const int rc = inflateInit(&m_inflate);
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        m_inflate_ready = rc == Z_OK;
        return m_inflate_ready ? &m_inflate : nullptr;
    }

private:
    z_stream m_deflate{};
    z_stream m_inflate{};
    int m_deflate_level = 0;  // 0: no deflate stream yet
    bool m_inflate_ready = false;
};

/// The frame's checksum: zlib's CRC-32 of `bytes` (carry-less multiply where the CPU has it,
/// with the same result).
[[nodiscard]] inline std::uint32_t checksum(std::span<const std::byte> bytes) noexcept {
    return tierguard::detail::crc32_update(0, bytes);
}

/// zlib's CRC-32 of a whole frame whose checksum is right: the CRC-32 of any bytes followed
/// by their own CRC-32, little-endian, is this constant (and only that checksum gives it).
inline constexpr std::uint32_t intact_frame_crc = 0x2144DF1CU;

namespace detail {

[[nodiscard]] inline unexpected<failure> corrupted(std::string context) {
    return fail(errc::corrupted, tier::disk, "frame: " + std::move(context));
}

// Deflates `in` into exactly the bytes at `out` (out.size() < in.size()) through `stream`,
// a deflate stream just reset; returns the compressed size, or 0 when the stream does not
// fit, i.e. compression would not shrink it.
[[nodiscard]] inline result<std::size_t> deflate_into(std::span<const std::byte> in, std::span<std::byte> out,
                                                      z_stream& stream) {
    // zlib's API is not const-correct; it never writes through next_in.
    stream.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(in.data()));
    stream.avail_in = static_cast<uInt>(in.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&stream, Z_FINISH);
    if (rc == Z_STREAM_END) return std::size_t{stream.total_out};
    if (rc == Z_OK || rc == Z_BUF_ERROR) return std::size_t{0};
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    return fail(errc::serialization_failed, tier::disk, "frame: deflate failed (" + std::to_string(rc) + ")");
}

// Inflates a zlib stream that must produce exactly raw_length bytes into `out`, through
// `stream`, an inflate stream just reset. The buffer starts small and doubles up to
// raw_length, never beyond: a header that lies about raw_length costs what the stream
// really holds, and a stream that holds more (a decompression bomb) is stopped once
// raw_length bytes are out. Z_FINISH lets zlib skip its window when the buffer suffices.
[[nodiscard]] inline result<void> inflate_exact(std::span<const std::byte> in, std::uint32_t raw_length,
                                                z_stream& stream, std::vector<std::byte>& out) {
    constexpr std::size_t first_chunk = std::size_t{64} << 10;
    const std::size_t initial = std::min<std::size_t>(raw_length, std::max(first_chunk, 4 * in.size()));
    out.reserve(initial);
    out.resize(initial);
    std::byte spare{};  // zlib refuses a null next_out, which an empty vector's data() may be

    stream.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(in.data()));
    stream.avail_in = static_cast<uInt>(in.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.empty() ? &spare : out.data());
    stream.avail_out = static_cast<uInt>(out.size());

    const std::string claimed = "raw_length " + std::to_string(raw_length);
    for (;;) {
        const int rc = inflate(&stream, Z_FINISH);
        if (rc == Z_STREAM_END) break;
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        if (rc == Z_NEED_DICT) return corrupted("zlib stream needs a preset dictionary");
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return corrupted("bad zlib stream (" + std::string(stream.msg != nullptr ? stream.msg : "") + ")");
        if (stream.avail_out != 0)
            return corrupted("zlib stream ends early: " + std::to_string(stream.total_out) + " bytes inflated, " +
                             claimed);
        if (out.size() == raw_length)
            return corrupted("zlib stream inflates to more than " + claimed + " (stopped there)");
        const std::size_t done = out.size();
        const std::size_t next = std::min<std::size_t>(raw_length, 2 * done);
        out.reserve(next);
        out.resize(next);
        stream.next_out = reinterpret_cast<Bytef*>(out.data() + done);
        stream.avail_out = static_cast<uInt>(next - done);
    }
    if (stream.total_out != raw_length)
        return corrupted("zlib stream inflates to " + std::to_string(stream.total_out) + " bytes, " + claimed);
    if (stream.avail_in != 0)
        return corrupted(std::to_string(stream.avail_in) + " bytes follow the end of the zlib stream in the payload");
    return {};
}

// The checks decode_header and decode share, in decode's order, up to the checksum.
[[nodiscard]] inline result<header> parse_header(std::span<const std::byte> bytes) {
    if (bytes.size() < overhead)
        return corrupted(std::to_string(bytes.size()) + " bytes is shorter than the " + std::to_string(overhead) +
                         "-byte minimum frame");
    if (!std::equal(magic.begin(), magic.end(), bytes.begin())) return corrupted("bad magic (not a TGFR frame)");
    const std::byte* p = bytes.data();
    header head{};
    head.format_version = tierguard::detail::load_le<std::uint16_t>(p + 4);
    head.flags = tierguard::detail::load_le<std::uint16_t>(p + 6);
    head.schema_version = tierguard::detail::load_le<std::uint32_t>(p + 8);
    head.key_length = tierguard::detail::load_le<std::uint32_t>(p + 12);
    head.stored_length = tierguard::detail::load_le<std::uint32_t>(p + 16);
    head.raw_length = tierguard::detail::load_le<std::uint32_t>(p + 20);
    head.expiry_ns = static_cast<std::int64_t>(tierguard::detail::load_le<std::uint64_t>(p + 24));
    head.tags_length = 0;
    if (head.format_version != current_format_version)
        return fail(errc::version_mismatch, tier::disk,
                    "frame: format_version " + std::to_string(head.format_version) + ", this build reads only " +
                        std::to_string(current_format_version));
    if ((head.flags & ~(flag_zlib | flag_tags)) != 0)
        return corrupted("flags " + std::to_string(head.flags) +
                         " set reserved bits (only bit 0, zlib, and bit 2, tags, are defined)");
    if (head.tagged()) {
        const std::uint64_t length_at = std::uint64_t{header_size} + head.key_length;
        if (length_at + tags_length_size + checksum_size > bytes.size())
            return corrupted("the tags section's length field at offset " + std::to_string(length_at) +
                             " lies past the end of the " + std::to_string(bytes.size()) + "-byte frame");
        head.tags_length = tierguard::detail::load_le<std::uint32_t>(p + length_at);
    }
    if (head.total_size() != bytes.size())
        return corrupted("length fields say " + std::to_string(head.total_size()) + " bytes, file has " +
                         std::to_string(bytes.size()));
    return head;
}

// A tags section's body must be whole tags, each a u16 length (1 or more) and its bytes.
[[nodiscard]] inline result<void> check_tags(std::span<const std::byte> body) {
    for (std::size_t at = 0; at < body.size();) {
        if (body.size() - at < 2)
            return corrupted("tags section ends inside a tag's length at offset " + std::to_string(at));
        const std::size_t n = tierguard::detail::load_le<std::uint16_t>(body.data() + at);
        if (n == 0) return corrupted("empty tag at offset " + std::to_string(at) + " of the tags section");
        if (body.size() - at - 2 < n)
            return corrupted("tag of " + std::to_string(n) + " bytes at offset " + std::to_string(at) +
                             " runs past the tags section's " + std::to_string(body.size()) + " bytes");
        at += 2 + n;
    }
    return {};
}

// The body of the tags section for `tags`, or why they cannot be stored.
[[nodiscard]] inline result<std::vector<std::byte>> tags_body(std::span<const std::string> tags, const limits& lim) {
    std::vector<std::byte> body;
    for (const std::string& tag : tags) {
        if (tag.empty() || tag.size() > std::numeric_limits<std::uint16_t>::max())
            return fail(errc::invalid_argument, tier::disk,
                        "frame: a tag of " + std::to_string(tag.size()) + " bytes (a tag has 1 to 65535 bytes)");
        const std::size_t at = body.size();
        body.resize(at + 2 + tag.size());
        tierguard::detail::store_le(body.data() + at, static_cast<std::uint16_t>(tag.size()));
        std::memcpy(body.data() + at + 2, tag.data(), tag.size());
    }
    if (body.size() > lim.max_tags)
        return fail(errc::too_large, tier::disk,
                    "frame: tags of " + std::to_string(body.size()) + " bytes exceed the limit of " +
                        std::to_string(lim.max_tags));
    return body;
}

}  // namespace detail

/// Builds the frame of one entry into `out` (replacing its contents).
///
/// compression_level 0 stores the payload as is; 1..9 deflates it at that zlib level and
/// keeps the result only if it is smaller than the payload. Errors: errc::too_large if the
/// key or payload exceeds `lim` or 4 GiB - 1 bytes, errc::invalid_argument for a level
/// outside 0..9; `out` is then empty. Deflates through `zlib`. Throws only std::bad_alloc.
/// Non-empty `tags` add a tags section (flag_tags): each tag 1 to 65535 bytes
/// (errc::invalid_argument), all within lim.max_tags (errc::too_large); no tags, no section,
/// so an untagged frame is byte for byte what earlier versions wrote.
[[nodiscard]] inline result<void> encode(std::span<const std::byte> key, std::span<const std::byte> payload,
                                         std::uint32_t schema_version, std::int64_t expiry_ns, int compression_level,
                                         std::vector<std::byte>& out, zlib_streams& zlib, const limits& lim = {},
                                         std::span<const std::string> tags = {}) {
    out.clear();
    constexpr std::size_t u32_max = std::numeric_limits<std::uint32_t>::max();
    if (key.size() > lim.max_key || key.size() > u32_max)
        return fail(errc::too_large, tier::disk,
                    "frame: key of " + std::to_string(key.size()) + " bytes exceeds the limit of " +
                        std::to_string(std::min(lim.max_key, u32_max)));
    if (payload.size() > lim.max_payload || payload.size() > u32_max)
        return fail(errc::too_large, tier::disk,
                    "frame: payload of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                        std::to_string(std::min(lim.max_payload, u32_max)));
    if (compression_level < 0 || compression_level > 9)
        return fail(errc::invalid_argument, tier::disk,
                    "frame: compression level " + std::to_string(compression_level) + " is not in 0..9");

    auto tag_bytes = detail::tags_body(tags, lim);
    if (!tag_bytes) return unexpected(std::move(tag_bytes).error());
    const std::size_t tags_at = header_size + key.size();
    const std::size_t payload_at = tags_at + (tags.empty() ? 0 : tags_length_size + tag_bytes->size());
    out.resize(payload_at + payload.size() + checksum_size);
    std::size_t stored = 0;
    const std::uint16_t tag_flag = tags.empty() ? 0 : flag_tags;
    std::uint16_t flags = 0;
    if (compression_level > 0 && payload.size() > 1) {
        z_stream* stream = zlib.deflater(compression_level);
        if (stream == nullptr) {
            out.clear();
            return fail(errc::serialization_failed, tier::disk, "frame: deflateInit failed");
        }
        auto packed = detail::deflate_into(payload, std::span(out).subspan(payload_at, payload.size() - 1), *stream);
        if (!packed) {
            out.clear();
            return unexpected(std::move(packed).error());
        }
        if (*packed != 0) {
            stored = *packed;
            flags = flag_zlib;
        }
    }
    if (flags == 0) {
        std::copy(payload.begin(), payload.end(), out.begin() + static_cast<std::ptrdiff_t>(payload_at));
        stored = payload.size();
    }
    out.resize(payload_at + stored + checksum_size);

    std::byte* p = out.data();
    std::copy(magic.begin(), magic.end(), p);
    tierguard::detail::store_le(p + 4, current_format_version);
    tierguard::detail::store_le(p + 6, static_cast<std::uint16_t>(flags | tag_flag));
    tierguard::detail::store_le(p + 8, schema_version);
    tierguard::detail::store_le(p + 12, static_cast<std::uint32_t>(key.size()));
    tierguard::detail::store_le(p + 16, static_cast<std::uint32_t>(stored));
    tierguard::detail::store_le(p + 20, static_cast<std::uint32_t>(payload.size()));
    tierguard::detail::store_le(p + 24, static_cast<std::uint64_t>(expiry_ns));
    std::copy(key.begin(), key.end(), p + header_size);
    if (tag_flag != 0) {
        tierguard::detail::store_le(p + tags_at, static_cast<std::uint32_t>(tag_bytes->size()));
        std::copy(tag_bytes->begin(), tag_bytes->end(), p + tags_at + tags_length_size);
    }
    const std::size_t crc_at = payload_at + stored;
    tierguard::detail::store_le(p + crc_at, checksum(std::span(out).first(crc_at)));
    return {};
}

/// As encode above, with zlib streams of its own.
[[nodiscard]] inline result<void> encode(std::span<const std::byte> key, std::span<const std::byte> payload,
                                         std::uint32_t schema_version, std::int64_t expiry_ns, int compression_level,
                                         std::vector<std::byte>& out, const limits& lim = {},
                                         std::span<const std::string> tags = {}) {
    zlib_streams zlib;
    return encode(key, payload, schema_version, expiry_ns, compression_level, out, zlib, lim, tags);
}

/// Reads a frame's header for inspection: checks the minimum size, the magic, the format
/// version (errc::version_mismatch), the flags, and that the lengths add up to exactly
/// bytes.size(); everything else is errc::corrupted. Does NOT verify the checksum or the
/// limits, so the header may describe a damaged frame: use decode to read an entry.
[[nodiscard]] inline result<header> decode_header(std::span<const std::byte> bytes) {
    return detail::parse_header(bytes);
}

/// Validates a whole frame; returns its header, key and payload as views. A compressed
/// payload is inflated into `inflated` (its contents replaced), through `zlib`.
///
/// Checks, in this order: size >= overhead, magic, format version (errc::version_mismatch),
/// flags, lengths adding up to exactly bytes.size(), the CRC-32, the key and raw payload
/// lengths against `lim`, and the payload: stored as is (stored_length == raw_length) or a
/// zlib stream that inflates to exactly raw_length bytes and not one more. Every other
/// failure is errc::corrupted with a context saying what was wrong. Nothing is allocated
/// beyond `lim` whatever the bytes claim, and inflating never writes past raw_length, so a
/// decompression bomb costs at most raw_length bytes. The schema version is returned, not
/// checked: that is the caller's (errc::version_mismatch). `bytes_crc`: zlib's CRC-32 of all
/// of `bytes`, where the caller computed it (while copying them): the frame's checksum is then
/// checked from it (a CRC-32 followed by itself, little-endian, always gives
/// intact_frame_crc), not computed again. Throws only std::bad_alloc.
[[nodiscard]] inline result<view> decode_view(std::span<const std::byte> bytes, std::vector<std::byte>& inflated,
                                              zlib_streams& zlib, const limits& lim = {},
                                              std::optional<std::uint32_t> bytes_crc = std::nullopt) {
    auto parsed = detail::parse_header(bytes);
    if (!parsed) return unexpected(std::move(parsed).error());
    const header head = *parsed;

    if (bytes_crc != intact_frame_crc) {
        const std::size_t crc_at = bytes.size() - checksum_size;
        const std::uint32_t stored_crc = tierguard::detail::load_le<std::uint32_t>(bytes.data() + crc_at);
        if (const std::uint32_t actual = checksum(bytes.first(crc_at)); actual != stored_crc)
            return detail::corrupted("checksum mismatch (stored " + std::to_string(stored_crc) + ", computed " +
                                     std::to_string(actual) + ")");
    }
    if (head.key_length > lim.max_key)
        return detail::corrupted("key_length " + std::to_string(head.key_length) + " exceeds the limit of " +
                                 std::to_string(lim.max_key));
    if (head.raw_length > lim.max_payload)
        return detail::corrupted("raw_length " + std::to_string(head.raw_length) + " exceeds the limit of " +
                                 std::to_string(lim.max_payload));

    if (head.tags_length > lim.max_tags)
        return detail::corrupted("tags_length " + std::to_string(head.tags_length) + " exceeds the limit of " +
                                 std::to_string(lim.max_tags));
    const auto tags =
        bytes.subspan(header_size + head.key_length + (head.tagged() ? tags_length_size : 0), head.tags_length);
    if (head.tagged() && tags.empty()) return detail::corrupted("the tags flag is set but the tags section is empty");
    if (auto ok = detail::check_tags(tags); !ok) return unexpected(std::move(ok).error());

    if (!head.compressed() && head.stored_length != head.raw_length)
        return detail::corrupted("uncompressed payload: stored_length " + std::to_string(head.stored_length) +
                                 " differs from raw_length " + std::to_string(head.raw_length));

    const auto key = bytes.subspan(header_size, head.key_length);
    const auto stored = bytes.subspan(header_size + head.key_length + head.tags_size(), head.stored_length);
    if (!head.compressed()) return view{head, key, stored, tags};
    z_stream* stream = zlib.inflater();
    if (stream == nullptr) return detail::corrupted("inflateInit failed");
    if (auto ok = detail::inflate_exact(stored, head.raw_length, *stream, inflated); !ok)
        return unexpected(std::move(ok).error());
    return view{head, key, inflated, tags};
}

/// As decode_view, with zlib streams of its own, returning copies of the key and payload.
[[nodiscard]] inline result<decoded> decode(std::span<const std::byte> bytes, const limits& lim = {}) {
    zlib_streams zlib;
    std::vector<std::byte> inflated;
    auto entry = decode_view(bytes, inflated, zlib, lim);
    if (!entry) return unexpected(std::move(entry).error());
    decoded out{entry->head, std::vector<std::byte>(entry->key.begin(), entry->key.end()), {}, tags_of(entry->tags)};
    if (entry->head.compressed())
        out.payload = std::move(inflated);
    else
        out.payload.assign(entry->payload.begin(), entry->payload.end());
    return out;
}

}  // namespace tierguard::frame
