// libFuzzer target: frame::decode must refuse or accept any input without crashing,
// reading out of bounds or allocating beyond its limits, and whatever it accepts must
// survive a re-encode unchanged.
#include <tierguard/frame.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

namespace {

namespace frame = tierguard::frame;

[[noreturn]] void mismatch(const char* what) {
    std::fprintf(stderr, "fuzz_frame_decoder: round trip mismatch: %s\n", what);
    std::abort();
}

bool same_header(const frame::header& a, const frame::header& b) {
    return a.format_version == b.format_version && a.flags == b.flags && a.schema_version == b.schema_version &&
           a.key_length == b.key_length && a.stored_length == b.stored_length && a.raw_length == b.raw_length &&
           a.expiry_ns == b.expiry_ns && a.tags_length == b.tags_length;
}

// Decodes one frame and checks what decode promises about it.
void check(std::span<const std::byte> input) {
    const auto decoded = frame::decode(input);
    const auto header = frame::decode_header(input);
    if (!decoded) {
        const auto code = decoded.error().code();
        if (code != tierguard::errc::corrupted && code != tierguard::errc::version_mismatch)
            mismatch("decode failed with a code other than corrupted or version_mismatch");
        return;
    }
    if (!header || !same_header(*header, decoded->head)) mismatch("decode_header disagrees with decode");

    const auto& head = decoded->head;
    // Stored raw, the same inputs must give back the very same bytes.
    const int level = head.compressed() ? 9 : 0;
    std::vector<std::byte> again;
    if (!frame::encode(decoded->key, decoded->payload, head.schema_version, head.expiry_ns, level, again,
                       frame::limits{}, decoded->tags))
        mismatch("a decoded entry could not be re-encoded");
    if (!head.compressed() && !std::equal(again.begin(), again.end(), input.begin(), input.end()))
        mismatch("re-encoding an uncompressed frame changed its bytes");

    const auto back = frame::decode(again);
    if (!back) mismatch("a re-encoded frame does not decode");
    if (back->key != decoded->key) mismatch("key");
    if (back->payload != decoded->payload) mismatch("payload");
    if (back->tags != decoded->tags) mismatch("tags");
    if (back->head.schema_version != head.schema_version) mismatch("schema_version");
    if (back->head.expiry_ns != head.expiry_ns) mismatch("expiry_ns");
    if (back->head.raw_length != head.raw_length) mismatch("raw_length");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
    check(input);
    // A mutation almost never keeps the CRC valid, so most inputs would stop at the
    // checksum. Check each input a second time with its CRC fixed, so that the length,
    // limit and inflate checks behind it are fuzzed too.
    if (size >= frame::overhead) {
        std::vector<std::byte> sealed(input.begin(), input.end());
        const std::size_t crc_at = size - frame::checksum_size;
        tierguard::detail::store_le(sealed.data() + crc_at, frame::checksum(std::span(sealed).first(crc_at)));
        check(sealed);
    }
    return 0;
}
