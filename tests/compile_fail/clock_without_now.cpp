// expect: Policies::clock does not model tierguard::clock_policy
// A clock policy without now() is rejected by name, not deep inside the tier.
#include <tierguard/memory_tier.hpp>

#include <chrono>
#include <string>

struct clock_without_now {
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;
};

struct policies : tierguard::memory_defaults {
    using clock = clock_without_now;
};

int main() {
    tierguard::memory_tier<std::string, std::string, policies> tier;
    return static_cast<int>(tier.size());
}
