// expect: tierguard::byte_writer::write: no encoding for this type: an enum needs a tierguard::enum_range<E>
// An enum is read back only through its range check, so writing one without an enum_range
// stops the build with a sentence naming the fix, not pages of unmet constraints.
#include <tierguard/serializer/codec.hpp>

#include <cstdint>
#include <vector>

enum class role : std::uint8_t { customer, admin };

int main() {
    std::vector<std::byte> out;
    tierguard::byte_writer w(out);
    w.write(std::vector<role>{role::admin});
}
