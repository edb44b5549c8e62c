#pragma once

#include <tierguard/result.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

namespace tierguard {

/// Per-type facts a user may specialize. Bumping schema_version when T's encoding
/// changes turns every entry written with the old version into a miss that is removed
/// and counted (errc::version_mismatch), with no manual flush.
///
/// @code
/// template <> struct tierguard::value_traits<user_record> {
///     static constexpr std::uint32_t schema_version = 2;
/// };
/// @endcode
template <class T>
struct value_traits {
    static constexpr std::uint32_t schema_version = 1;
};

namespace detail {

/// The schema version a storage tier writes and requires: Policies::schema_version when
/// the policies set one, else value_traits<Value>::schema_version.
template <class Policies, class Value>
inline constexpr std::uint32_t schema_version_of = [] {
    if constexpr (requires { Policies::schema_version; }) {
        return static_cast<std::uint32_t>(Policies::schema_version);
    } else {
        return value_traits<Value>::schema_version;
    }
}();

}  // namespace detail

/// Turns values into bytes and back: the Serializer policy of a storage tier.
///
/// decode() validates everything it reads and returns either a whole T or an error
/// (errc::serialization_failed naming what was wrong); it never yields a partially
/// filled object. Neither function throws for bad input.
///
/// @code
/// std::vector<std::byte> bytes;
/// if (tierguard::serializer::standard{}.encode(std::string("hi"), bytes)) {
///     auto back = tierguard::serializer::standard{}.decode(bytes, std::type_identity<std::string>{});
/// }
/// @endcode
template <class S, class T>
concept serializer_policy = std::default_initializable<S> &&
    requires(const S& s, const T& value, std::vector<std::byte>& out, std::span<const std::byte> in) {
    // appends the encoding of value to out
    { s.encode(value, out) } -> std::same_as<result<void>>;
    // a whole T from exactly these bytes, or an error
    { s.decode(in, std::type_identity<T>{}) } -> std::same_as<result<T>>;
};

}  // namespace tierguard
