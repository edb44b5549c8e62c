#pragma once

#include <tierguard/serializer/codec.hpp>
#include <tierguard/serializer/standard.hpp>
#include <tierguard/weigher/dynamic_size.hpp>

#include <concepts>
#include <cstddef>
#include <limits>

namespace tierguard::weigher {

/// A value that says what it weighs, in bytes: `std::size_t weight() const noexcept`.
template <class T>
concept self_weighing = requires(const T& v) {
    { v.weight() }
    noexcept->std::convertible_to<std::size_t>;
};

/// Weighs an entry by what it holds, not by its sizeof: the weigher for structs with
/// strings, vectors or maps inside, which weigher::dynamic_size counts as sizeof(T).
///
/// Key and value each weigh, in this order of choice:
///
/// 1. their member weight(), for a type that models self_weighing;
/// 2. the size of their encoding through byte_writer::write, for a type with a
///    tierguard::codec<T> and for the other types write() takes (std::vector<std::string>,
///    std::map, std::optional...): what serializer::standard stores for a codec type;
/// 3. otherwise as dynamic_size weighs them, which for std::string, byte vectors and
///    trivially copyable types is also the size of their serializer::standard encoding.
///
/// The encoding is counted by a byte_writer that stores nothing: one pass over the value
/// per put, outside the shard lock, with no allocation. If a codec's encode throws, the
/// entry weighs SIZE_MAX, so the memory tier refuses it (too_large) rather than
/// under-count it. Like dynamic_size, it counts payload, not the memory's bookkeeping.
///
/// @code
/// struct profile_policies : tierguard::memory_defaults {
///     using weigher = tierguard::weigher::encoded_size;
/// };
/// @endcode
struct encoded_size {
    template <class T>
        requires self_weighing<T> || serializer::standard_serializable<T> || detail::codec_writable<T>
    [[nodiscard]] static std::size_t weight_of(const T& value) noexcept {
        if constexpr (self_weighing<T>) {
            return static_cast<std::size_t>(value.weight());
        } else if constexpr (has_codec<T> || !serializer::standard_serializable<T>) {
            try {
                byte_writer counter;
                counter.write(value);
                return counter.size();
            } catch (...) {
                return std::numeric_limits<std::size_t>::max();
            }
        } else {
            return dynamic_size::weight_of(value);
        }
    }

    template <class Key, class Value>
        requires requires(const Key& k, const Value& v) {
            weight_of(k);
            weight_of(v);
        }
    [[nodiscard]] std::size_t operator()(const Key& key, const Value& value) const noexcept {
        const std::size_t k = weight_of(key);
        const std::size_t v = weight_of(value);
        return v > std::numeric_limits<std::size_t>::max() - k ? std::numeric_limits<std::size_t>::max() : k + v;
    }
};

}  // namespace tierguard::weigher
