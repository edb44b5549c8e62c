// libFuzzer target: a segment file of any content. The scanner must walk it without
// reading out of bounds, report records in increasing, aligned, non-overlapping order,
// and every record it calls intact must be exactly what append_record writes for its
// name, blob and flags. Then the same bytes, as the only segment of a segment_log, must
// open (or fail cleanly), list, and read back each listed blob as that record's blob.
#include <tierguard/detail/segment_format.hpp>
#include <tierguard/storage/segment_log.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

namespace seg = tierguard::detail::segment;

[[noreturn]] void broken(const char* what) {
    std::fprintf(stderr, "fuzz_segment_scanner: %s\n", what);
    std::abort();
}

struct checker {
    std::span<const std::byte> data;
    std::size_t next = seg::segment_header_size;         // no report may start before this
    std::map<std::string, std::vector<std::byte>> last;  // name -> blob of its last intact record

    void at(std::size_t off) {
        if (off < next || off % seg::alignment != 0 || off >= data.size()) broken("report out of order or unaligned");
    }
    void record(std::size_t off, const seg::record_view& r) {
        at(off);
        std::vector<std::byte> again;
        seg::append_record(again, r.head.name, r.blob, r.head.flags);
        const std::size_t body = seg::record_header_size + r.head.name.size() + r.blob.size();
        if (off + body > data.size() || std::memcmp(again.data(), data.data() + off, body) != 0)
            broken("an intact record does not re-encode to its bytes");
        next = off + r.head.size();
        if (r.head.tombstone())
            last.erase(std::string(r.head.name));
        else
            last[std::string(r.head.name)].assign(r.blob.begin(), r.blob.end());
    }
    void damaged_record(std::size_t off, const seg::record_view& r) {
        at(off);
        next = off + r.head.size();
        last.erase(std::string(r.head.name));
    }
    void unreadable(std::size_t from, std::size_t to) {
        at(from);
        if (to <= from || to % seg::alignment != 0) broken("bad unreadable range");
        next = to;
        last.clear();
    }
    void torn(std::size_t from, std::size_t end) {
        at(from);
        if (end != data.size()) broken("a torn tail must run to the end");
        next = end;
    }
};

const std::filesystem::path& root() {
    static const std::filesystem::path dir = [] {
        std::string pattern = "/tmp/tierguard-fuzz-segment-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) broken("mkdtemp failed");
        return std::filesystem::path(pattern) / "cache";
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    const std::span<const std::byte> data(reinterpret_cast<const std::byte*>(bytes), size);
    checker c{data, seg::segment_header_size, {}};
    if (size >= seg::segment_header_size) (void)seg::scan_records(data, c);

    // The same bytes as a segment_log's only segment.
    std::error_code ec;
    std::filesystem::remove_all(root(), ec);
    std::filesystem::create_directories(root(), ec);
    {
        std::ofstream out(root() / "0000000000000001.seg", std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes), static_cast<std::streamsize>(size));
    }
    auto log = tierguard::storage::segment_log::open({.root = root(), .sync = tierguard::durability::none});
    if (!log) return 0;
    const auto listing = log->list();
    if (!listing) return 0;
    const auto header = seg::decode_segment_header(data);
    const bool header_ok = (header && header->sequence == 1) || seg::repair_segment_header(data, 1).has_value();
    for (const auto& blob : *listing) {
        const auto got = log->read(blob.name);
        if (!got) continue;  // corrupted or too large: never a value
        const auto it = c.last.find(blob.name);
        if (!header_ok || it == c.last.end() || *got != it->second)
            broken("segment_log returned a blob the scan did not end with");
    }
    return 0;
}
