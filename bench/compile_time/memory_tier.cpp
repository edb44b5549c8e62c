// A TU that uses the memory tier alone.
#include <tierguard/memory_tier.hpp>

#include <string>

int main() {
    tierguard::memory_tier<std::string, std::string, tierguard::memory_defaults> tier;
    if (!tier.put("key", "value")) return 1;
    return tier.get("key") ? 0 : 1;
}
