#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <concepts>
#include <cstddef>

namespace tierguard {

/// Tells the memory tier how many bytes an entry costs against its byte budget.
///
/// Called once per put; it must be cheap and must not throw. Provided: dynamic_size (the
/// default), encoded_size (structs with strings or vectors inside), unit.
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
    requires noexcept(w(k, v));                       // a put must not throw because of it
};

}  // namespace tierguard
