#pragma once

#include <tierguard/result.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <ranges>
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
    if (std::endian::native == std::endian::little && !std::is_constant_evaluated()) {
        U value;  // one load: GCC does not always merge the loop's bytes into one
        std::memcpy(&value, in, sizeof(U));
        return value;
    }
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
///         w.write(u.id, u.email, u.phone_number, u.email_verified);
///     }
///     static tierguard::result<user_record> decode(tierguard::byte_reader& r) {
///         using tierguard::field;
///         user_record u;
///         auto ok = r.read_fields(field("id", u.id), field("email", u.email),
///                                 field("phone_number", u.phone_number), field("email_verified", u.email_verified));
///         if (!ok) return tierguard::unexpected(std::move(ok).error());
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

/// The values of the enumeration E that byte_writer::write and byte_reader::read accept:
/// an enum is written as its underlying integer and must pass this check when read back.
/// Specialize it with the first and last enumerator of a contiguous range, or, for a
/// sparse enumeration, with `static constexpr bool contains(E)`. Enums without it are
/// not codec values (std::byte needs none: every byte is valid).
///
/// @code
/// template <> struct tierguard::enum_range<role> {
///     static constexpr role first = role::customer;
///     static constexpr role last = role::admin;
/// };
/// @endcode
template <class E>
struct enum_range;

namespace detail {

template <class T>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;
template <class T>
inline constexpr bool is_duration = false;
template <class Rep, class Period>
inline constexpr bool is_duration<std::chrono::duration<Rep, Period>> = true;
template <class T>
inline constexpr bool is_time_point = false;
template <class Clock, class Duration>
inline constexpr bool is_time_point<std::chrono::time_point<Clock, Duration>> = true;

template <class E>
concept ranged_enum = std::is_enum_v<E> &&(
    requires {
        { enum_range<E>::first } -> std::convertible_to<E>;
        { enum_range<E>::last } -> std::convertible_to<E>;
    } ||
    requires(E e) {
        { enum_range<E>::contains(e) } -> std::same_as<bool>;
    });

template <class T>
concept codec_string = std::same_as<T, std::string> || std::same_as<T, std::string_view>;

template <class T>
concept codec_map = std::ranges::sized_range<const T> && requires {
    typename T::key_type;
    typename T::mapped_type;
};

template <class T>
concept codec_sequence = std::ranges::sized_range<const T> && !codec_string<T> && !codec_map<T>;

template <class T>
using range_element = std::remove_cvref_t<std::ranges::range_value_t<const T>>;

template <class E>
concept one_byte = sizeof(E) == 1 && !std::same_as<E, bool> && (std::is_integral_v<E> || std::same_as<E, std::byte>);

// Elements of one byte each (char, std::uint8_t, std::byte...), copied in one go; the
// encoding is the same as element by element.
template <class T>
concept byte_sequence = std::ranges::contiguous_range<const T> && one_byte<range_element<T>>;

// What byte_writer::write can encode: see there.
template <class T>
consteval bool writable() {
    if constexpr (has_codec<T> || std::same_as<T, bool> || std::same_as<T, std::byte> || codec_string<T>) {
        return true;
    } else if constexpr (std::is_integral_v<T> || std::is_floating_point_v<T>) {
        return sizeof(T) <= 8;
    } else if constexpr (std::is_enum_v<T>) {
        return ranged_enum<T>;
    } else if constexpr (is_duration<T>) {
        return writable<typename T::rep>();
    } else if constexpr (is_time_point<T>) {
        return writable<typename T::duration>();
    } else if constexpr (is_optional<T>) {
        return writable<typename T::value_type>();
    } else if constexpr (codec_map<T>) {
        return writable<typename T::key_type>() && writable<typename T::mapped_type>();
    } else if constexpr (codec_sequence<T>) {
        return writable<range_element<T>>();
    } else {
        return false;
    }
}

// A container byte_reader::read can fill: default-constructible, and it takes elements at its end or by insert.
template <class C>
concept appendable = std::default_initializable<C> && requires(C& c, range_element<C>&& v) {
    c.emplace_back(std::move(v));
};
template <class C>
concept insertable = std::default_initializable<C> && requires(C& c, range_element<C>&& v) {
    c.insert(std::move(v));
};

// What byte_reader::read can decode: see there.
template <class T>
consteval bool readable() {
    if constexpr (!writable<T>() || std::same_as<T, std::string_view>) {
        return false;
    } else if constexpr (has_codec<T>) {
        return true;
    } else if constexpr (is_duration<T>) {
        return readable<typename T::rep>();
    } else if constexpr (is_time_point<T>) {
        return readable<typename T::duration>();
    } else if constexpr (is_optional<T>) {
        return readable<typename T::value_type>();
    } else if constexpr (codec_map<T>) {
        return std::default_initializable<T> && readable<typename T::key_type>() &&
               readable<typename T::mapped_type>() &&
               requires(T & m, typename T::key_type && k, typename T::mapped_type && v) {
            m.emplace(std::move(k), std::move(v));
        };
    } else if constexpr (codec_sequence<T>) {
        return (appendable<T> || insertable<T>)&&readable<range_element<T>>();
    } else {
        return true;
    }
}

// The fewest bytes a value of T encodes to (0 when a codec decides); bounds the element
// count a corrupt prefix can claim.
template <class T>
consteval std::size_t min_encoded_size() {
    if constexpr (has_codec<T>) {
        return 0;
    } else if constexpr (std::is_enum_v<T> && !std::same_as<T, std::byte>) {
        return sizeof(std::underlying_type_t<T>);
    } else if constexpr (std::is_floating_point_v<T>) {
        return 8;
    } else if constexpr (std::is_arithmetic_v<T> || std::same_as<T, std::byte>) {
        return sizeof(T);
    } else if constexpr (is_duration<T>) {
        return min_encoded_size<typename T::rep>();
    } else if constexpr (is_time_point<T>) {
        return min_encoded_size<typename T::duration>();
    } else if constexpr (is_optional<T>) {
        return 1;
    } else {
        return 4;  // a string, sequence or map: its u32 count
    }
}

template <class T>
concept codec_writable = writable<std::remove_cvref_t<T>>();
template <class T>
concept codec_readable = readable<T>();

}  // namespace detail

/// A destination for byte_reader::read_fields: the field's name (for errors) and where
/// its value goes.
template <class T>
struct field_ref {
    std::string_view name;
    T& target;
};

/// `field("email", u.email)`: names a member for byte_reader::read_fields.
template <class T>
[[nodiscard]] constexpr field_ref<T> field(std::string_view name, T& target) noexcept {
    return {name, target};
}

/// Appends little-endian fields to a byte vector: what a codec<T>::encode writes with.
///
/// Bytes already in the vector are kept. The writer never throws except for std::bad_alloc
/// (and what a codec<T>::encode it calls throws). A string, byte sequence, sequence or map
/// longer than a u32 count can describe is not written, and an element of a sequence or map
/// that encodes to no bytes is refused; the writer records the first such failure and
/// status() reports it, so that encode can stay a void function.
///
/// The primitives and their encodings are listed in docs/POLICIES.md; write() encodes
/// whole values (integers, enums, strings, durations, time points, optionals, sequences,
/// maps, and types with a codec of their own) through them.
class byte_writer {
public:
    explicit byte_writer(std::vector<std::byte>& out) noexcept : m_out(&out) {}
    /// A writer that stores nothing and only counts the bytes the encoding would take
    /// (size()); it allocates nothing unless it records a failure.
    byte_writer() noexcept = default;

    void u8(std::uint8_t value) { put(value); }
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
    void string(std::string_view value) { sized(value.data(), value.size(), "string of"); }
    /// A u32 byte count, then the bytes.
    void bytes(std::span<const std::byte> value) { sized(value.data(), value.size(), "byte sequence of"); }

    /// Writes each value in turn, by its type:
    ///
    /// - a type with a codec<T> specialization: what its encode writes (nested codecs);
    /// - bool: boolean(); std::byte: u8(); other integers: their own width, little-endian,
    ///   two's complement; float and double: f64();
    /// - an enum with an enum_range: its underlying integer;
    /// - std::string, std::string_view: string();
    /// - std::chrono::duration: its count() in its own Rep and Period (a reader must use
    ///   the same duration type); std::chrono::time_point: its time_since_epoch();
    /// - std::optional: boolean(has_value()), then the value if there is one;
    /// - a map (a sized range with key_type and mapped_type, as std::map and
    ///   std::unordered_map): a u32 entry count, then key and value of each entry in
    ///   iteration order;
    /// - any other sized range (std::vector, std::deque, std::list, std::set, std::span...):
    ///   a u32 element count, then the elements.
    ///
    /// Each element of a sequence or map must encode to at least one byte.
    template <class... T>
    void write(const T&... values) {
        (write_one(values), ...);
    }

    /// Success, or the first field that could not be written (errc::too_large, or
    /// errc::serialization_failed for an element that encodes to nothing).
    [[nodiscard]] result<void> status() const {
        if (m_error.empty()) return {};
        return fail(m_error_code, tier::disk, m_error);
    }

    /// Bytes in the underlying vector, including those that were there before; for a
    /// counting writer, the bytes counted.
    [[nodiscard]] std::size_t size() const noexcept { return m_out ? m_out->size() : m_count; }

private:
    void append(const void* data, std::size_t size) {
        if (!m_out) {
            m_count += size;
            return;
        }
        const auto* first = static_cast<const std::byte*>(data);
        m_out->insert(m_out->end(), first, first + size);
    }

    template <std::unsigned_integral U>
    void put(U value) {
        std::byte raw[sizeof(U)];
        detail::store_le(raw, value);
        append(raw, sizeof(U));
    }

    void record(errc code, std::string message) {
        if (!m_error.empty()) return;
        m_error_code = code;
        m_error = std::move(message);
    }

    // The u32 count of a string, byte sequence, sequence or map; false if it does not fit.
    bool count(std::size_t size, std::string_view what, std::string_view unit = "bytes") {
        if (size > std::numeric_limits<std::uint32_t>::max()) {
            std::string message = "byte_writer: a ";
            message += what;
            message += ' ' + std::to_string(size) + ' ';
            message += unit;
            message += " exceeds the 4294967295 a u32 count can describe";
            record(errc::too_large, std::move(message));
            return false;
        }
        put(static_cast<std::uint32_t>(size));
        return true;
    }

    void sized(const void* data, std::size_t size, std::string_view what) {
        if (count(size, what)) append(data, size);
    }

    // Writes an element of a sequence or map; one whose encoding can be empty (a codec's)
    // must take at least a byte, or a reader could not bound a corrupt count.
    template <class E>
    void element(const E& value) {
        const std::size_t before = size();
        write_one(value);
        if constexpr (detail::min_encoded_size<E>() == 0) {
            if (size() == before)
                record(errc::serialization_failed,
                       "byte_writer: an element of a sequence or map encodes to no bytes; each must take at least one");
        }
    }

    template <class T>
    void write_one(const T& value) {
        if constexpr (!detail::codec_writable<T>) {
            static_assert(
                detail::codec_writable<T>,
                "tierguard::byte_writer::write: no encoding for this type: an enum needs a "
                "tierguard::enum_range<E>, a class a tierguard::codec<T> (visible here); integers, floats, bool, "
                "std::byte, std::string, std::chrono durations and time points, std::optional, and sequences "
                "and maps of these are built in (docs/POLICIES.md)");
        } else if constexpr (has_codec<T>) {
            codec<T>::encode(value, *this);
        } else if constexpr (std::same_as<T, bool>) {
            boolean(value);
        } else if constexpr (std::same_as<T, std::byte>) {
            u8(std::to_integer<std::uint8_t>(value));
        } else if constexpr (std::is_integral_v<T>) {
            put(static_cast<std::make_unsigned_t<T>>(value));
        } else if constexpr (std::is_floating_point_v<T>) {
            f64(static_cast<double>(value));
        } else if constexpr (std::is_enum_v<T>) {
            write_one(static_cast<std::underlying_type_t<T>>(value));
        } else if constexpr (detail::codec_string<T>) {
            string(value);
        } else if constexpr (detail::is_duration<T>) {
            write_one(value.count());
        } else if constexpr (detail::is_time_point<T>) {
            write_one(value.time_since_epoch());
        } else if constexpr (detail::is_optional<T>) {
            boolean(value.has_value());
            if (value) write_one(*value);
        } else if constexpr (detail::codec_map<T>) {
            if (!count(std::ranges::size(value), "map of", "entries")) return;
            for (const auto& [key, mapped] : value) {
                element(key);
                element(mapped);
            }
        } else if constexpr (detail::byte_sequence<T>) {
            sized(std::ranges::data(value), std::ranges::size(value), "sequence of");
        } else {
            if (!count(std::ranges::size(value), "sequence of", "elements")) return;
            for (const auto& item : value) element(static_cast<const detail::range_element<T>&>(item));
        }
    }

    std::vector<std::byte>* m_out = nullptr;
    std::size_t m_count = 0;
    errc m_error_code = errc::too_large;
    std::string m_error;
};

/// Reads little-endian fields from a byte span: what a codec<T>::decode reads with.
///
/// Every read checks that its bytes are there and returns the value or
/// errc::serialization_failed naming the field (the `field` argument) and the offset; a
/// failed read consumes nothing. Length-prefixed reads check the length against the
/// bytes that remain before allocating, so a corrupt length cannot cause a large
/// allocation. Never throws except for std::bad_alloc (and what a codec<T>::decode it
/// calls throws). The span must outlive the reader.
class byte_reader {
public:
    explicit byte_reader(std::span<const std::byte> in) noexcept : m_in(in) {}

    /// Reads a T as byte_writer::write wrote it, validating as it goes: a bool byte is 0 or
    /// 1; an enum passes its enum_range; a float is a value a float can hold; a sequence or
    /// map count is refused when its elements could not fit in the bytes that remain (so
    /// nothing of that size is allocated); a std::map or std::set holds no key twice; a nested
    /// codec's decode succeeds. An error in a part of the value (an element, an entry, a
    /// nested record's field) names the field and the part: `field 'roles' element 2: ...`.
    /// Sequences are read back into containers that take elements by emplace_back
    /// (std::vector, std::deque, std::list) or by insert
    /// (std::set, std::unordered_set); maps by emplace(key, value).
    template <class T>
    [[nodiscard]] result<T> read(std::string_view field) {
        const std::size_t start = m_offset;
        result<T> value = read_one<T>(field);
        if (!value) m_offset = start;
        return value;
    }

    /// Reads each field in order into its target (`read_fields(field("id", u.id),
    /// field("email", u.email))`); stops at the first error, which it returns, having
    /// consumed nothing. Targets before the failed one have been assigned.
    template <class... T>
    [[nodiscard]] result<void> read_fields(field_ref<T>... fields) {
        const std::size_t start = m_offset;
        result<void> status;
        (void)((read_into(fields, status)) && ...);
        if (!status) m_offset = start;
        return status;
    }

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
    template <class T>
    bool read_into(field_ref<T>& f, result<void>& status) {
        auto value = read_one<T>(f.name);
        if (!value) {
            status = unexpected(std::move(value).error());
            return false;
        }
        f.target = std::move(*value);
        return true;
    }

    // The failure of a part of `field` (an element, an entry, a nested record), under the
    // field's name.
    [[nodiscard]] static unexpected<failure> within(std::string_view field, std::string_view part,
                                                    const failure& inner) {
        if (field.empty() && part.empty()) return unexpected(inner);
        constexpr std::string_view prefix = "byte_reader: ";
        std::string_view rest = inner.context();
        if (rest.starts_with(prefix)) rest.remove_prefix(prefix.size());
        std::string context(prefix);
        if (!field.empty()) {
            context += "field '";
            context += field;
            context += '\'';
            if (!part.empty()) context += ' ';
        }
        context += part;
        context += ": ";
        context += rest;
        return fail(inner.code(), inner.where(), std::move(context), inner.os_error());
    }

    // A u32 count of elements that each take at least `each` bytes, refused when they could
    // not fit in what remains.
    [[nodiscard]] result<std::size_t> count(std::string_view field, std::size_t each) {
        auto n = get<std::uint32_t>(field);
        if (!n) return unexpected(std::move(n).error());
        if (*n > remaining() / each) {
            m_offset -= 4;
            return error(field, "counts " + std::to_string(*n) + " elements of at least " + std::to_string(each) +
                                    " bytes, only " + std::to_string(remaining() - 4) + " bytes follow");
        }
        return static_cast<std::size_t>(*n);
    }

    template <class T>
    [[nodiscard]] result<T> read_one(std::string_view field) {
        if constexpr (!detail::codec_readable<T>) {
            static_assert(
                detail::codec_readable<T>,
                "tierguard::byte_reader::read: cannot decode this type: an enum needs a "
                "tierguard::enum_range<E>, a class a tierguard::codec<T> (visible here); a sequence must take "
                "elements by emplace_back or insert and a map by emplace (std::span, std::string_view and "
                "std::array are written only); see docs/POLICIES.md");
        } else if constexpr (has_codec<T>) {
            result<T> value = codec<T>::decode(*this);
            if (!value) return within(field, {}, value.error());
            return value;
        } else if constexpr (std::same_as<T, bool>) {
            return boolean(field);
        } else if constexpr (std::same_as<T, std::byte>) {
            return get<std::uint8_t>(field).transform([](std::uint8_t v) { return std::byte{v}; });
        } else if constexpr (std::is_integral_v<T>) {
            return get<std::make_unsigned_t<T>>(field).transform([](auto v) { return static_cast<T>(v); });
        } else if constexpr (std::same_as<T, double>) {
            return f64(field);
        } else if constexpr (std::is_floating_point_v<T>) {
            auto wide = f64(field);
            if (!wide) return unexpected(std::move(wide).error());
            // Out of the narrower type's range the conversion is undefined; inexact means it was not written as T.
            if (std::isfinite(*wide) && (std::fabs(*wide) > std::numeric_limits<T>::max() ||
                                         static_cast<double>(static_cast<T>(*wide)) != *wide)) {
                m_offset -= 8;
                char shown[32];
                std::snprintf(shown, sizeof shown, "%.9g", *wide);
                return error(field, "holds " + std::string(shown) + ", which a float cannot hold exactly");
            }
            return static_cast<T>(*wide);
        } else if constexpr (std::is_enum_v<T>) {
            using underlying = std::underlying_type_t<T>;
            auto raw = read_one<underlying>(field);
            if (!raw) return unexpected(std::move(raw).error());
            const T value = static_cast<T>(*raw);
            if constexpr (requires { enum_range<T>::contains(value); }) {
                if (enum_range<T>::contains(value)) return value;
                m_offset -= sizeof(underlying);
                return error(field, "holds " + std::to_string(*raw) + ", which enum_range::contains refuses");
            } else {
                constexpr auto first = static_cast<underlying>(enum_range<T>::first);
                constexpr auto last = static_cast<underlying>(enum_range<T>::last);
                if (first <= *raw && *raw <= last) return value;
                m_offset -= sizeof(underlying);
                return error(field, "holds " + std::to_string(*raw) + ", outside the enum_range " +
                                        std::to_string(first) + ".." + std::to_string(last));
            }
        } else if constexpr (std::same_as<T, std::string>) {
            return string(field);
        } else if constexpr (detail::is_duration<T>) {
            return read_one<typename T::rep>(field).transform([](auto ticks) { return T(ticks); });
        } else if constexpr (detail::is_time_point<T>) {
            return read_one<typename T::duration>(field).transform([](auto since) { return T(since); });
        } else if constexpr (detail::is_optional<T>) {
            auto present = boolean(field);
            if (!present) return unexpected(std::move(present).error());
            if (!*present) return T();
            return read_one<typename T::value_type>(field).transform([](auto&& v) { return T(std::move(v)); });
        } else if constexpr (detail::codec_map<T>) {
            using key_type = typename T::key_type;
            using mapped_type = typename T::mapped_type;
            constexpr std::size_t each = std::max<std::size_t>(detail::min_encoded_size<key_type>(), 1) +
                                         std::max<std::size_t>(detail::min_encoded_size<mapped_type>(), 1);
            auto n = count(field, each);
            if (!n) return unexpected(std::move(n).error());
            T out;
            for (std::size_t i = 0; i < *n; ++i) {
                auto key = read_one<key_type>("");
                if (!key) return within(field, "entry " + std::to_string(i) + " key", key.error());
                auto mapped = read_one<mapped_type>("");
                if (!mapped) return within(field, "entry " + std::to_string(i) + " value", mapped.error());
                const auto placed = out.emplace(std::move(*key), std::move(*mapped));
                if constexpr (requires { placed.second; }) {
                    if (!placed.second) return error(field, "repeats a key at entry " + std::to_string(i));
                }
            }
            return out;
        } else if constexpr (detail::byte_sequence<T> && detail::appendable<T>) {
            auto span = sized(field);
            if (!span) return unexpected(std::move(span).error());
            T out;
            if constexpr (requires { out.reserve(span->size()); }) out.reserve(span->size());
            for (const std::byte b : *span) out.emplace_back(std::bit_cast<detail::range_element<T>>(b));
            return out;
        } else {
            using element_type = detail::range_element<T>;
            constexpr std::size_t each = std::max<std::size_t>(detail::min_encoded_size<element_type>(), 1);
            auto n = count(field, each);
            if (!n) return unexpected(std::move(n).error());
            T out;
            if constexpr (requires { out.reserve(*n); }) out.reserve(*n);
            for (std::size_t i = 0; i < *n; ++i) {
                auto item = read_one<element_type>("");
                if (!item) return within(field, "element " + std::to_string(i), item.error());
                if constexpr (detail::appendable<T>) {
                    out.emplace_back(std::move(*item));
                } else {
                    const auto placed = out.insert(std::move(*item));
                    if constexpr (requires { placed.second; }) {
                        if (!placed.second) return error(field, "repeats element " + std::to_string(i));
                    }
                }
            }
            return out;
        }
    }

    // An empty field is a part of an enclosing one (an element), which within() names.
    [[nodiscard]] unexpected<failure> error(std::string_view field, std::string_view what) const {
        std::string context = "byte_reader: ";
        if (!field.empty()) {
            context += "field '";
            context += field;
            context += "' ";
        }
        context += "at offset " + std::to_string(m_offset) + ' ';
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
