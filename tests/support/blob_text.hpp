#pragma once

#include <tierguard/errc.hpp>

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace tierguard_test {

/// The bytes of `text`, as a storage takes a blob.
inline std::vector<std::byte> bytes_of(std::string_view text) {
    std::vector<std::byte> out(text.size());
    if (!text.empty()) std::memcpy(out.data(), text.data(), text.size());
    return out;
}

/// A blob as text, for comparisons and messages.
inline std::string text_of(const std::vector<std::byte>& bytes) {
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

/// The error code of a result, or errc{} for a value.
template <class R>
tierguard::errc errc_of(const R& r) {
    return r ? tierguard::errc{} : r.error().code();
}

}  // namespace tierguard_test
