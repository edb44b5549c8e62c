#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include <sys/stat.h>

namespace tierguard_test {

/// A fresh directory under the system's temp folder, removed with everything in it
/// when the object goes, after giving every folder back its owner's permissions (tests
/// chmod some to 000). Its `path()/"cache"` does not exist yet: a storage creates it.
class temp_dir {
public:
    temp_dir() : temp_dir(std::filesystem::temp_directory_path()) {}
    /// Under `base` instead (e.g. /dev/shm, for a test that reopens a directory thousands of times).
    explicit temp_dir(const std::filesystem::path& base) {
        std::string pattern = (base / "tierguard-test-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
        m_path = pattern;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        unlock(m_path);
        std::error_code ignored;
        std::filesystem::remove_all(m_path, ignored);
    }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return m_path; }

private:
    static void unlock(const std::filesystem::path& dir) {
        ::chmod(dir.c_str(), 0700);
        std::error_code ec;
        for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            if (it->symlink_status(ec).type() == std::filesystem::file_type::directory) unlock(it->path());
        }
    }

    std::filesystem::path m_path;
};

}  // namespace tierguard_test
