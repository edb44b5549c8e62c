// expect: Policies::eviction does not model tierguard::eviction_policy
// An eviction policy that cannot name a victim: the tier must refuse it with a sentence
// that names the slot, not an error deep inside the shard.
#include <tierguard/memory_tier.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

struct no_victim {
    static constexpr bool concurrent_hits = false;
    void relocate(std::size_t, const std::uint32_t*) {}
    void insert(std::uint32_t, std::uint64_t, std::size_t) {}
    void hit(std::uint32_t) noexcept {}
    void erase(std::uint32_t, std::size_t) noexcept {}
    void move(std::uint32_t, std::uint32_t) noexcept {}
    template <class F>
    void for_each(F&&) const {}
    void clear() noexcept {}
};

struct policies : tierguard::memory_defaults {
    using eviction = no_victim;
};

int main() {
    tierguard::memory_tier<std::string, std::string, policies> tier;
    return static_cast<int>(tier.size());
}
