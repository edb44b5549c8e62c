// expect: Policies::weigher does not model tierguard::weigher_policy
// A weigher that may throw would break the tier's guarantees under its lock.
#include <tierguard/memory_tier.hpp>

#include <cstddef>
#include <string>

struct throwing_weigher {
    std::size_t operator()(const std::string& k, const std::string& v) const { return k.size() + v.size(); }
};

struct policies : tierguard::memory_defaults {
    using weigher = throwing_weigher;
};

int main() {
    tierguard::memory_tier<std::string, std::string, policies> tier;
    return static_cast<int>(tier.size());
}
