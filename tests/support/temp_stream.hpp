#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace tierguard_test {

/// A tmpfile() to hand a logger as its stream, read back line by line; closed (and so
/// deleted) when the object goes.
class temp_stream {
public:
    temp_stream() : m_file(std::tmpfile()) {
        if (m_file == nullptr) throw std::runtime_error("tmpfile failed");
    }
    temp_stream(const temp_stream&) = delete;
    temp_stream& operator=(const temp_stream&) = delete;
    ~temp_stream() { std::fclose(m_file); }

    [[nodiscard]] std::FILE* get() const noexcept { return m_file; }

    /// Everything written so far; leaves the position at the end for further writes.
    [[nodiscard]] std::string text() const {
        std::fflush(m_file);
        std::rewind(m_file);
        std::string out;
        char buf[4096];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, m_file)) > 0;) out.append(buf, n);
        std::fseek(m_file, 0, SEEK_END);  // a read must be followed by a seek before a write
        return out;
    }

    /// The lines written so far, without their '\n'; a last line without one is kept.
    [[nodiscard]] std::vector<std::string> lines() const {
        const std::string all = text();
        std::vector<std::string> out;
        std::size_t begin = 0;
        for (std::size_t end; (end = all.find('\n', begin)) != std::string::npos; begin = end + 1)
            out.push_back(all.substr(begin, end - begin));
        if (begin < all.size()) out.push_back(all.substr(begin));
        return out;
    }

private:
    std::FILE* m_file;
};

}  // namespace tierguard_test
