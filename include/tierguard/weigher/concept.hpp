#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <concepts>
#include <cstddef>

namespace tierguard {

/// Tells the memory tier how many bytes an entry costs against its byte budget.
///
/// Called once per put, under the shard lock; it must be cheap and must not throw.
///
/// @code
/// struct image_weigher {
///     std::size_t operator()(const std::string& key, const image& img) const noexcept {
///         return key.size() + img.pixels.size();
///     }
/// };
/// @endcode
template <class W, class Key, class Value>
concept weigher_policy = std::default_initializable<W> && requires(const W& w, const Key& k, const Value& v) {
    { w(k, v) } -> std::convertible_to<std::size_t>;  // bytes the entry costs
    requires noexcept(w(k, v));                       // called under a lock: must not throw
};

}  // namespace tierguard
