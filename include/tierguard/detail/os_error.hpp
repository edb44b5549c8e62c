#pragma once

#include <tierguard/errc.hpp>

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace tierguard::detail {

/// The failure for errno `err` raised by step `step` of `operation` on `path`, in the
/// taxonomy every storage promises: ENOENT errc::miss, ENOSPC/EDQUOT errc::disk_full,
/// EACCES/EPERM/EROFS errc::permission_denied, anything else errc::io_error. The errno
/// is kept as failure::os_error() (generic category) and the context reads
/// "<operation> <path>: <step>", e.g. "write ab/cd/0123: rename into place".
[[nodiscard, gnu::cold, gnu::noinline]] inline failure os_failure(int err, std::string_view operation,
                                                                  std::string_view path, std::string_view step = {},
                                                                  tier where = tier::disk) {
    errc code = errc::io_error;
    switch (err) {
        case ENOENT: code = errc::miss; break;
        case ENOSPC:
#if defined(EDQUOT)
        case EDQUOT:
#endif
            code = errc::disk_full;
            break;
        case EACCES:
        case EPERM:
        case EROFS: code = errc::permission_denied; break;
        default: break;
    }
    std::string context;
    context.reserve(operation.size() + path.size() + step.size() + 3);
    context += operation;
    if (!path.empty()) {
        context += ' ';
        context += path;
    }
    if (!step.empty()) {
        context += ": ";
        context += step;
    }
    return failure(code, where, std::move(context), std::error_code(err, std::generic_category()));
}

}  // namespace tierguard::detail
