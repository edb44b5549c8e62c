// expect-first: tierguard::cache: Policies::clock does not model tierguard::clock_policy
// expect-errors: 1
// A clock missing a member is reported once, by the cache (issue 17): not again by the
// breaker, the memory tier and the disk tier it would reach, nor as "no type named
// time_point" before the cache's sentence.
#include <tierguard/cache.hpp>

#include <chrono>
#include <string>

struct clock_without_time_point {
    using duration = std::chrono::system_clock::duration;
    [[nodiscard]] std::chrono::system_clock::time_point now() const noexcept {
        return std::chrono::system_clock::now();
    }
};

struct policies : tierguard::cache_defaults {
    using clock = clock_without_time_point;
};

int main() {
    auto c = tierguard::cache<std::string, std::string, policies>::open({});
    if (!c) return 1;
    (void)c->put("k", "v");
    return c->get("k") ? 0 : 1;
}
