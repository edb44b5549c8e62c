#pragma once

#include <tierguard/storage/concept.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace tierguard_test {

/// "ok", or the failure's message: for INFO() beside a check on a result.
template <class R>
std::string why(const R& r) {
    return r ? std::string("ok") : r.error().message();
}

/// The names of a listing, sorted.
inline std::vector<std::string> names_of(const std::vector<tierguard::blob_info>& blobs) {
    std::vector<std::string> out;
    for (const auto& b : blobs) out.push_back(b.name);
    std::sort(out.begin(), out.end());
    return out;
}

/// 2026-11-23 10:45:01.5 UTC: a time with a fraction of a second, for quarantine stamps.
inline const std::chrono::system_clock::time_point t0 =
    std::chrono::sys_days(std::chrono::year(2026) / std::chrono::November / 23) + std::chrono::hours(10) +
    std::chrono::minutes(45) + std::chrono::milliseconds(1500);

}  // namespace tierguard_test
