// expect-first: tierguard::cache: Policies::breaker must be a template of the clock: `template <class Clock> using
// breaker = expect-errors: 1 A breaker slot written as a plain alias (issue 17): the one error names the form the slot
// takes, instead of "not a class template" inside the cache.
#include <tierguard/cache.hpp>

#include <string>

struct policies : tierguard::cache_defaults {
    using breaker = tierguard::breaker::consecutive_failures<tierguard::clock::system>;
};

int main() {
    auto c = tierguard::cache<std::string, std::string, policies>::open({});
    if (!c) return 1;
    (void)c->put("k", "v");
    return c->get("k") ? 0 : 1;
}
