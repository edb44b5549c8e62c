#pragma once

// Text <-> bytes for tests that store strings as blobs.
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace tierguard_test {

inline std::vector<std::byte> bytes_of(std::string_view text) {
    std::vector<std::byte> out(text.size());
    if (!text.empty()) std::memcpy(out.data(), text.data(), text.size());
    return out;
}

inline std::string text_of(const std::vector<std::byte>& bytes) {
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace tierguard_test
