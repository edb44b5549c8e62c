#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <cstddef>
#include <ranges>
#include <type_traits>

namespace tierguard::weigher {

/// A container whose payload is size() * sizeof(element): std::string, std::vector<std::byte>, ...
template <class T>
concept flat_container = std::ranges::contiguous_range<const T> && std::ranges::sized_range<const T> &&
    std::is_trivially_copyable_v<std::ranges::range_value_t<const T>>;

/// The default weigher: the payload bytes of key and value.
///
/// For a contiguous container of trivially copyable elements (std::string,
/// std::vector<std::byte>, ...) that is size() * sizeof(element); for anything else
/// sizeof(T). Bookkeeping overhead is not counted, so the budget bounds payload, not
/// the process's resident memory.
struct dynamic_size {
    template <class T>
    [[nodiscard]] static constexpr std::size_t weight_of(const T& v) noexcept {
        if constexpr (flat_container<T>) {
            return std::ranges::size(v) * sizeof(std::ranges::range_value_t<T>);
        } else {
            return sizeof(T);
        }
    }

    template <class Key, class Value>
    [[nodiscard]] constexpr std::size_t operator()(const Key& key, const Value& value) const noexcept {
        return weight_of(key) + weight_of(value);
    }
};

/// Every entry weighs 1: turns the byte budget into an entry-count budget.
struct unit {
    template <class Key, class Value>
    [[nodiscard]] constexpr std::size_t operator()(const Key&, const Value&) const noexcept {
        return 1;
    }
};

}  // namespace tierguard::weigher
