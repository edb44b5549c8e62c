#pragma once

#include <tierguard/result.hpp>

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tierguard {

namespace detail {

/// Writes `value` at `out` as sizeof(U) little-endian bytes, whatever the host's byte order.
template <std::unsigned_integral U>
constexpr void store_le(std::byte* out, U value) noexcept {
    for (std::size_t i = 0; i < sizeof(U); ++i) out[i] = static_cast<std::byte>((value >> (8 * i)) & 0xFFu);
}

/// Reads sizeof(U) little-endian bytes at `in`; the caller has checked that they exist.
template <std::unsigned_integral U>
[[nodiscard]] constexpr U load_le(const std::byte* in) noexcept {
    U value = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) value |= static_cast<U>(static_cast<U>(in[i]) << (8 * i));
    return value;
}

}  // namespace detail

class byte_writer;
class byte_reader;

/// The customization point through which serializer::standard stores a user's type,
/// like nlohmann's adl_serializer: specialize it in namespace tierguard with
///
/// - `static void encode(const T&, byte_writer&)`: writes every field, and
/// - `static result<T> decode(byte_reader&)`: reads them back in the same order and
///   returns the whole T or the first error, validating what it reads (ranges of enums,
///   invariants of the type).
///
/// The serializer rejects trailing bytes after decode() returns, so decode() need not call
/// byte_reader::finish(). Bump value_traits<T>::schema_version whenever the encoding
/// changes: entries written with the old encoding then become misses instead of being
/// decoded as something they are not.
///
/// @code
/// struct user_record {
///     std::uint64_t id = 0;
///     std::string email;
///     std::optional<std::string> phone_number;
///     bool email_verified = false;
/// };
///
/// template <>
/// struct tierguard::value_traits<user_record> {
///     static constexpr std::uint32_t schema_version = 2;  // phone_number added in 2
/// };
///
/// template <>
/// struct tierguard::codec<user_record> {
///     static void encode(const user_record& u, tierguard::byte_writer& w) {
///         w.u64(u.id);
///         w.string(u.email);
///         w.boolean(u.phone_number.has_value());
///         if (u.phone_number) w.string(*u.phone_number);
///         w.boolean(u.email_verified);
///     }
///     static tierguard::result<user_record> decode(tierguard::byte_reader& r) {
///         user_record u;
///         auto id = r.u64("id");
///         if (!id) return tierguard::unexpected(std::move(id).error());
///         u.id = *id;
///         auto email = r.string("email");
///         if (!email) return tierguard::unexpected(std::move(email).error());
///         u.email = std::move(*email);
///         auto has_phone = r.boolean("phone_number?");
///         if (!has_phone) return tierguard::unexpected(std::move(has_phone).error());
///         if (*has_phone) {
///             auto phone = r.string("phone_number");
///             if (!phone) return tierguard::unexpected(std::move(phone).error());
///             u.phone_number = std::move(*phone);
///         }
///         auto verified = r.boolean("email_verified");
///         if (!verified) return tierguard::unexpected(std::move(verified).error());
///         u.email_verified = *verified;
///         return u;
///     }
/// };
/// @endcode
template <class T>
struct codec;

/// True when codec<T> has been specialized with the encode and decode described there.
/// Evaluate it only after the specialization is visible.
template <class T>
concept has_codec = requires(const T& value, byte_writer& writer, byte_reader& reader) {
    // writes value's fields
    { codec<T>::encode(value, writer) } -> std::same_as<void>;
    // a whole T or an error
    { codec<T>::decode(reader) } -> std::same_as<result<T>>;
};

/// Appends little-endian fields to a byte vector: what a codec<T>::encode writes with.
///
/// Bytes already in the vector are kept. The writer never throws except for std::bad_alloc.
/// A string or byte sequence longer than a u32 length prefix can describe is not
/// written; the writer records the first such failure and status() reports it, so that
/// encode can stay a void function.
class byte_writer {
public:
    explicit byte_writer(std::vector<std::byte>& out) noexcept : m_out(&out) {}

    void u8(std::uint8_t value) { m_out->push_back(static_cast<std::byte>(value)); }
    void u16(std::uint16_t value) { put(value); }
    void u32(std::uint32_t value) { put(value); }
    void u64(std::uint64_t value) { put(value); }
    /// Two's complement, 8 bytes.
    void i64(std::int64_t value) { put(static_cast<std::uint64_t>(value)); }
    /// The IEEE-754 binary64 bit pattern, 8 bytes; NaN payloads and -0.0 survive.
    void f64(double value) {
        static_assert(std::numeric_limits<double>::is_iec559 && sizeof(double) == 8,
                      "tierguard::byte_writer::f64 needs IEEE-754 binary64 doubles");
        put(std::bit_cast<std::uint64_t>(value));
    }
    /// One byte, 0 or 1.
    void boolean(bool value) { u8(value ? 1 : 0); }
    /// A u32 byte count, then the bytes.
    void string(std::string_view value) { sized(value.data(), value.size(), "string"); }
    /// A u32 byte count, then the bytes.
    void bytes(std::span<const std::byte> value) { sized(value.data(), value.size(), "byte sequence"); }

    /// Success, or the first field that could not be written (errc::too_large).
    [[nodiscard]] result<void> status() const {
        if (m_error.empty()) return {};
        return fail(errc::too_large, tier::disk, m_error);
    }

    /// Bytes in the underlying vector, including those that were there before.
    [[nodiscard]] std::size_t size() const noexcept { return m_out->size(); }

private:
    template <std::unsigned_integral U>
    void put(U value) {
        const std::size_t at = m_out->size();
        m_out->resize(at + sizeof(U));
        detail::store_le(m_out->data() + at, value);
    }

    void sized(const void* data, std::size_t size, std::string_view what) {
        if (size > std::numeric_limits<std::uint32_t>::max()) {
            if (m_error.empty()) {
                m_error = "byte_writer: a ";
                m_error += what;
                m_error +=
                    " of " + std::to_string(size) + " bytes exceeds the 4 GiB - 1 a u32 length prefix can describe";
            }
            return;
        }
        put(static_cast<std::uint32_t>(size));
        const auto* first = static_cast<const std::byte*>(data);
        m_out->insert(m_out->end(), first, first + size);
    }

    std::vector<std::byte>* m_out;
    std::string m_error;
};

/// Reads little-endian fields from a byte span: what a codec<T>::decode reads with.
///
/// Every read checks that its bytes are there and returns the value or
/// errc::serialization_failed naming the field (the `field` argument) and the offset; a
/// failed read consumes nothing. Length-prefixed reads check the length against the
/// bytes that remain before allocating, so a corrupt length cannot cause a large
/// allocation. Never throws except for std::bad_alloc. The span must outlive the reader.
class byte_reader {
public:
    explicit byte_reader(std::span<const std::byte> in) noexcept : m_in(in) {}

    [[nodiscard]] result<std::uint8_t> u8(std::string_view field = "u8") { return get<std::uint8_t>(field); }
    [[nodiscard]] result<std::uint16_t> u16(std::string_view field = "u16") { return get<std::uint16_t>(field); }
    [[nodiscard]] result<std::uint32_t> u32(std::string_view field = "u32") { return get<std::uint32_t>(field); }
    [[nodiscard]] result<std::uint64_t> u64(std::string_view field = "u64") { return get<std::uint64_t>(field); }

    [[nodiscard]] result<std::int64_t> i64(std::string_view field = "i64") {
        return get<std::uint64_t>(field).transform([](std::uint64_t v) { return static_cast<std::int64_t>(v); });
    }

    [[nodiscard]] result<double> f64(std::string_view field = "f64") {
        return get<std::uint64_t>(field).transform([](std::uint64_t v) { return std::bit_cast<double>(v); });
    }

    /// Fails for any byte other than 0 or 1.
    [[nodiscard]] result<bool> boolean(std::string_view field = "bool") {
        if (m_in.size() - m_offset >= 1 && std::to_integer<unsigned>(m_in[m_offset]) > 1)
            return error(field, "holds " + std::to_string(std::to_integer<unsigned>(m_in[m_offset])) +
                                    ", a bool must be 0 or 1");
        return get<std::uint8_t>(field).transform([](std::uint8_t v) { return v == 1; });
    }

    [[nodiscard]] result<std::string> string(std::string_view field = "string") {
        auto span = sized(field);
        if (!span) return unexpected(std::move(span).error());
        return std::string(reinterpret_cast<const char*>(span->data()), span->size());
    }

    [[nodiscard]] result<std::vector<std::byte>> bytes(std::string_view field = "bytes") {
        auto span = sized(field);
        if (!span) return unexpected(std::move(span).error());
        return std::vector<std::byte>(span->begin(), span->end());
    }

    /// Success only if every byte has been read: trailing bytes mean the data was written
    /// by another encoding (or was damaged), so the decoded value cannot be trusted.
    [[nodiscard]] result<void> finish() const {
        if (m_offset == m_in.size()) return {};
        return fail(errc::serialization_failed, tier::disk,
                    "byte_reader: " + std::to_string(m_in.size() - m_offset) + " unread bytes at offset " +
                        std::to_string(m_offset) + " of " + std::to_string(m_in.size()));
    }

    /// Bytes consumed so far.
    [[nodiscard]] std::size_t offset() const noexcept { return m_offset; }
    /// Bytes not yet consumed.
    [[nodiscard]] std::size_t remaining() const noexcept { return m_in.size() - m_offset; }

private:
    [[nodiscard]] unexpected<failure> error(std::string_view field, std::string_view what) const {
        std::string context = "byte_reader: field '";
        context += field;
        context += "' at offset " + std::to_string(m_offset) + ' ';
        context += what;
        return fail(errc::serialization_failed, tier::disk, std::move(context));
    }

    [[nodiscard]] result<void> need(std::string_view field, std::size_t count) const {
        if (remaining() >= count) return {};
        return error(field, "needs " + std::to_string(count) + " bytes, " + std::to_string(remaining()) +
                                " remain of " + std::to_string(m_in.size()));
    }

    template <std::unsigned_integral U>
    [[nodiscard]] result<U> get(std::string_view field) {
        if (auto ok = need(field, sizeof(U)); !ok) return unexpected(std::move(ok).error());
        const U value = detail::load_le<U>(m_in.data() + m_offset);
        m_offset += sizeof(U);
        return value;
    }

    // The bytes of a u32-length-prefixed field; consumes nothing on failure.
    [[nodiscard]] result<std::span<const std::byte>> sized(std::string_view field) {
        if (auto ok = need(field, 4); !ok) return unexpected(std::move(ok).error());
        const std::size_t length = detail::load_le<std::uint32_t>(m_in.data() + m_offset);
        if (remaining() - 4 < length)
            return error(field, "has length " + std::to_string(length) + ", only " + std::to_string(remaining() - 4) +
                                    " bytes follow");
        const auto span = m_in.subspan(m_offset + 4, length);
        m_offset += 4 + length;
        return span;
    }

    std::span<const std::byte> m_in;
    std::size_t m_offset = 0;
};

}  // namespace tierguard
