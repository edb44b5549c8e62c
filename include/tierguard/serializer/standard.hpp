#pragma once

#include <tierguard/result.hpp>
#include <tierguard/serializer/codec.hpp>
#include <tierguard/serializer/concept.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace tierguard {

namespace detail {

template <class T>
inline constexpr bool standard_byte_container = false;
template <>
inline constexpr bool standard_byte_container<std::string> = true;
template <>
inline constexpr bool standard_byte_container<std::vector<std::byte>> = true;
template <>
inline constexpr bool standard_byte_container<std::vector<char>> = true;
template <>
inline constexpr bool standard_byte_container<std::vector<unsigned char>> = true;

// Pointers are trivially copyable, but an address is meaningless in another process.
template <class T>
inline constexpr bool standard_memcpy_value =
    std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T> && !std::is_array_v<T>;

template <class T>
inline constexpr bool standard_always_false = false;

// Returned by the overloads that exist only to fail with a readable static_assert; not a
// result, so serializer_policy<standard, T> is false for such a T.
struct standard_unsupported {};

// Restores the output vector's size unless the encoding completed.
class standard_rollback {
public:
    explicit standard_rollback(std::vector<std::byte>& out) noexcept : m_out(out), m_size(out.size()) {}
    standard_rollback(const standard_rollback&) = delete;
    standard_rollback& operator=(const standard_rollback&) = delete;
    ~standard_rollback() {
        if (!m_committed) m_out.resize(m_size);
    }
    void commit() noexcept { m_committed = true; }

private:
    std::vector<std::byte>& m_out;
    std::size_t m_size;
    bool m_committed = false;
};

}  // namespace detail

namespace serializer {

/// Whether serializer::standard can store T (see standard for the three ways).
template <class T>
concept standard_serializable = has_codec<T> || detail::standard_byte_container<T> || detail::standard_memcpy_value<T>;

/// The default serializer: models serializer_policy for every T that satisfies
/// standard_serializable, chosen in this order:
///
/// 1. a specialization of tierguard::codec<T>: encoded through a byte_writer, decoded through
///    a byte_reader that must be exhausted afterwards (trailing bytes are an error);
/// 2. std::string, std::vector<std::byte>, std::vector<char>, std::vector<unsigned char>
///    (and so std::vector<std::uint8_t>): the raw bytes, any length;
/// 3. trivially copyable types other than pointers: the object representation, exactly
///    sizeof(T) bytes; a different size is refused. This layout is the host's (byte order,
///    padding, ABI): fine for a cache directory written and read on one machine, not for
///    sharing between platforms. A bool is refused unless its byte is 0 or 1.
///
/// Guarantees: decode returns a whole T or errc::serialization_failed saying what was wrong,
/// never a partially decoded object; encode appends to `out` and, on failure, leaves `out`
/// as it was (also if a codec throws). Nothing throws for bad input; std::bad_alloc and
/// exceptions thrown by a user's codec propagate. Stateless and thread-safe.
///
/// Any other T fails to compile with a static_assert naming the three options.
struct standard {
    template <class T>
        requires standard_serializable<T>
    [[nodiscard]] result<void> encode(const T& value, std::vector<std::byte>& out) const {
        detail::standard_rollback guard(out);
        if constexpr (has_codec<T>) {
            byte_writer writer(out);
            codec<T>::encode(value, writer);
            if (auto ok = writer.status(); !ok) return ok;
        } else if constexpr (detail::standard_byte_container<T>) {
            const auto* first = reinterpret_cast<const std::byte*>(value.data());
            out.insert(out.end(), first, first + value.size());
        } else {
            const std::size_t at = out.size();
            out.resize(at + sizeof(T));
            std::memcpy(out.data() + at, &value, sizeof(T));
        }
        guard.commit();
        return {};
    }

    template <class T>
        requires standard_serializable<T>
    [[nodiscard]] result<T> decode(std::span<const std::byte> in, std::type_identity<T>) const {
        if constexpr (has_codec<T>) {
            byte_reader reader(in);
            result<T> value = codec<T>::decode(reader);
            if (!value) return value;
            if (auto ok = reader.finish(); !ok) return unexpected(std::move(ok).error());
            return value;
        } else if constexpr (detail::standard_byte_container<T>) {
            const auto* first = reinterpret_cast<const typename T::value_type*>(in.data());
            return T(first, first + in.size());
        } else {
            if (in.size() != sizeof(T))
                return fail(errc::serialization_failed, tier::disk,
                            "serializer::standard: a trivially copyable value of " + std::to_string(sizeof(T)) +
                                " bytes cannot be decoded from " + std::to_string(in.size()) + " bytes");
            if constexpr (std::is_same_v<std::remove_cv_t<T>, bool>) {
                if (std::to_integer<unsigned>(in[0]) > 1)
                    return fail(errc::serialization_failed, tier::disk,
                                "serializer::standard: a bool is stored as 0 or 1, found " +
                                    std::to_string(std::to_integer<unsigned>(in[0])));
            }
            std::array<std::byte, sizeof(T)> raw;
            std::memcpy(raw.data(), in.data(), sizeof(T));
            return std::bit_cast<T>(raw);
        }
    }

    template <class T>
        requires(!standard_serializable<T>)
    [[nodiscard]] detail::standard_unsupported encode(const T&, std::vector<std::byte>&) const {
        static_assert(detail::standard_always_false<T>,
                      "tierguard::serializer::standard cannot serialize this type: specialize tierguard::codec<T> "
                      "(see tierguard/serializer/codec.hpp), or use std::string, a std::vector of bytes, or a "
                      "trivially copyable type that is not a pointer");
        return {};
    }

    template <class T>
        requires(!standard_serializable<T>)
    [[nodiscard]] detail::standard_unsupported decode(std::span<const std::byte>, std::type_identity<T>) const {
        static_assert(detail::standard_always_false<T>,
                      "tierguard::serializer::standard cannot deserialize this type: specialize tierguard::codec<T> "
                      "(see tierguard/serializer/codec.hpp), or use std::string, a std::vector of bytes, or a "
                      "trivially copyable type that is not a pointer");
        return {};
    }
};

static_assert(serializer_policy<standard, std::string>);
static_assert(serializer_policy<standard, std::vector<std::byte>>);
static_assert(serializer_policy<standard, std::vector<char>>);
static_assert(serializer_policy<standard, std::vector<unsigned char>>);
static_assert(serializer_policy<standard, std::vector<std::uint8_t>>);
static_assert(serializer_policy<standard, int>);
static_assert(serializer_policy<standard, double>);
static_assert(serializer_policy<standard, bool>);
static_assert(!serializer_policy<standard, const char*>);
static_assert(!serializer_policy<standard, std::vector<std::string>>);

}  // namespace serializer
}  // namespace tierguard
