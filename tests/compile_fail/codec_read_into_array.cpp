// expect: tierguard::byte_reader::read: cannot decode this type: .*std::array are written only
// A std::array has no emplace_back or insert: it can be written as a sequence, not read back.
#include <tierguard/serializer/codec.hpp>

#include <array>
#include <cstddef>

int main() {
    const std::array<std::byte, 1> in{};
    tierguard::byte_reader r(in);
    return r.read<std::array<int, 3>>("values") ? 0 : 1;
}
