#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace tierguard {

/// The failure taxonomy: every way a cache operation can come back without a value.
///
/// Codes start at 1 so that a default-constructed std::error_code never compares
/// equal to one of them. `miss` is the only code that does not mean something went
/// wrong; everything else is a failure the caller (or the operator) can act on.
enum class errc : int {
    miss = 1,              ///< the key is not cached; nothing went wrong
    expired,               ///< the entry existed but its TTL has passed
    corrupted,             ///< stored bytes failed validation (checksum, magic, lengths)
    version_mismatch,      ///< stored entry was written with another schema/format version
    io_error,              ///< the operating system reported an I/O failure
    disk_full,             ///< no space left on the device or quota exceeded
    permission_denied,     ///< the OS refused access (EACCES, EPERM, EROFS)
    circuit_open,          ///< the tier's breaker rejected the call
    timeout,               ///< the tier did not answer in time
    too_large,             ///< the entry exceeds what the tier may hold
    invalid_argument,      ///< a bad key, value or configuration value
    serialization_failed,  ///< the value could not be encoded or decoded
    loader_failed,         ///< the user's loader reported an error
    locked,                ///< another process (or instance) holds the cache directory
    closed,                ///< the cache or tier was closed (close()); open a new one
};

/// The number of errc codes (they run from 1 to errc_count).
inline constexpr std::size_t errc_count = static_cast<std::size_t>(errc::closed);

/// Stable, searchable name of a code, e.g. "too_large".
[[nodiscard]] constexpr std::string_view to_string(errc code) noexcept {
    switch (code) {
        case errc::miss: return "miss";
        case errc::expired: return "expired";
        case errc::corrupted: return "corrupted";
        case errc::version_mismatch: return "version_mismatch";
        case errc::io_error: return "io_error";
        case errc::disk_full: return "disk_full";
        case errc::permission_denied: return "permission_denied";
        case errc::circuit_open: return "circuit_open";
        case errc::timeout: return "timeout";
        case errc::too_large: return "too_large";
        case errc::invalid_argument: return "invalid_argument";
        case errc::serialization_failed: return "serialization_failed";
        case errc::loader_failed: return "loader_failed";
        case errc::locked: return "locked";
        case errc::closed: return "closed";
    }
    return "unknown";
}

namespace detail {
class errc_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "tierguard"; }

    [[nodiscard]] std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::miss: return "key not found in cache";
            case errc::expired: return "cache entry expired";
            case errc::corrupted: return "cache entry corrupted";
            case errc::version_mismatch: return "cache entry has another schema or format version";
            case errc::io_error: return "I/O error in a cache tier";
            case errc::disk_full: return "no space left for the cache tier";
            case errc::permission_denied: return "permission denied in a cache tier";
            case errc::circuit_open: return "circuit breaker open for the cache tier";
            case errc::timeout: return "cache tier timed out";
            case errc::too_large: return "entry too large for the cache tier";
            case errc::invalid_argument: return "invalid argument";
            case errc::serialization_failed: return "serialization failed";
            case errc::loader_failed: return "loader failed";
            case errc::locked: return "cache directory is locked by another process";
            case errc::closed: return "the cache or tier was closed";
        }
        return "unknown tierguard error";
    }
};
}  // namespace detail

/// The category of tierguard::errc; compares equal across translation units.
[[nodiscard]] inline const std::error_category& errc_category() noexcept {
    static const detail::errc_category instance;
    return instance;
}

/// Found by ADL: lets `std::error_code ec = errc::disk_full;` compile.
[[nodiscard]] inline std::error_code make_error_code(errc code) noexcept {
    return {static_cast<int>(code), errc_category()};
}

/// Which tier produced a result or a failure.
enum class tier : unsigned char {
    none = 0,  ///< not attributable to a tier (a bad argument)
    memory,
    disk,
    remote,
    loader,  ///< get_or_load()'s loader: the value it returned, or its failure
};

[[nodiscard]] constexpr std::string_view to_string(tier t) noexcept {
    switch (t) {
        case tier::none: return "none";
        case tier::memory: return "memory";
        case tier::disk: return "disk";
        case tier::remote: return "remote";
        case tier::loader: return "loader";
    }
    return "unknown";
}

/// What went wrong, where, and why: the error type of every tierguard::result.
///
/// Carries the taxonomy code, the tier that failed, the operating system's error
/// where there was one (errno mapped to std::generic_category), and a short context
/// string for a log line. Cheap to move; copying copies the context string.
class failure {
public:
    failure(errc code, tier where, std::string context = {}, std::error_code os_error = {})
        : m_code(code), m_tier(where), m_os_error(os_error), m_context(std::move(context)) {}

    [[nodiscard]] errc code() const noexcept { return m_code; }
    [[nodiscard]] tier where() const noexcept { return m_tier; }
    /// The OS error behind the failure, or an empty error_code.
    [[nodiscard]] std::error_code os_error() const noexcept { return m_os_error; }
    [[nodiscard]] const std::string& context() const noexcept { return m_context; }
    /// The code as a std::error_code in tierguard's category.
    [[nodiscard]] std::error_code error_code() const noexcept { return make_error_code(m_code); }
    /// True only for a plain miss: the caller may treat every other code as a fault.
    [[nodiscard]] bool is_miss() const noexcept { return m_code == errc::miss; }

    /// One log line that starts with a stable id, e.g.
    /// "[tierguard.too_large] memory tier: entry weighs 2048 bytes, a shard holds 1024", or
    /// "[tierguard.loader_failed] loader: timeout: database did not answer"; no tier part for
    /// tier::none ("[tierguard.closed] the cache was closed").
    [[nodiscard]] std::string message() const {
        std::string out = "[tierguard.";
        out += to_string(m_code);
        out += "] ";
        if (m_tier != tier::none) {
            out += to_string(m_tier);
            out += m_tier == tier::loader ? ": " : " tier: ";
        }
        out += m_context.empty() ? errc_category().message(static_cast<int>(m_code)) : m_context;
        if (m_os_error) {
            out += " (";
            out += m_os_error.message();
            out += ')';
        }
        return out;
    }

    friend bool operator==(const failure& f, errc code) noexcept { return f.m_code == code; }
    /// Same code, tier, OS error and context.
    friend bool operator==(const failure& a, const failure& b) noexcept {
        return a.m_code == b.m_code && a.m_tier == b.m_tier && a.m_os_error == b.m_os_error &&
               a.m_context == b.m_context;
    }

private:
    errc m_code;
    tier m_tier;
    std::error_code m_os_error;
    std::string m_context;
};

/// Whether a storage's failure to open is a run-time fault, which a cache rides out (it
/// opens degraded and attaches the storage when its breaker's probe succeeds), rather than
/// a misconfiguration, which fails cache::open.
///
/// Run-time faults: io_error, disk_full, timeout, corrupted, and a permission_denied that
/// carries the OS's own refusal (EACCES, EPERM, EROFS: an unreadable folder, a file system
/// remounted read-only). Misconfiguration: every other failure, among them
/// invalid_argument (a bad setting, a root that is not a directory), locked (another
/// process holds the directory), miss (a read-only open of a directory that does not
/// exist), and the permission_denied of tierguard's own safety checks (a root that is a
/// symbolic link, owned by another user, or writable by group or others).
[[nodiscard]] inline bool is_runtime_fault(const failure& f) noexcept {
    switch (f.code()) {
        case errc::io_error:
        case errc::disk_full:
        case errc::timeout:
        case errc::corrupted: return true;
        case errc::permission_denied: {
            const std::error_code os = f.os_error();
            return os.category() == std::generic_category() &&
                   (os.value() == EACCES || os.value() == EPERM || os.value() == EROFS);
        }
        default: return false;
    }
}

}  // namespace tierguard

template <>
struct std::is_error_code_enum<tierguard::errc> : std::true_type {};
