// expect: degradation_policy
// A degradation policy without degraded_budget() is rejected, naming the concept.
#include <tierguard/cache.hpp>

#include <string>

struct half_a_policy {
    static constexpr tierguard::degraded_mode mode = tierguard::degraded_mode::bypass;
    struct config {};
    static tierguard::result<void> validate(const config&) { return {}; }
    explicit half_a_policy(const config&) {}
};

struct policies : tierguard::cache_defaults {
    using storage = tierguard::no_storage;
    using degradation = half_a_policy;
};

int main() {
    auto c = tierguard::cache<std::string, std::string, policies>::open({});
    return c ? 0 : 1;
}
