// expect-first: tierguard::cache: Policies::serializer cannot store Value in the storage tier \(specialize
// tierguard::codec<Value> expect-errors: 1 A Value the serializer cannot store is reported where the user wrote
// cache<...>, naming cache and Value (issue 17), not by the disk_tier the cache builds.
#include <tierguard/cache.hpp>

#include <string>
#include <vector>

struct session {
    std::string user;
    std::vector<std::string> roles;
};

int main() {
    auto c = tierguard::cache<std::string, session>::open({});
    if (!c) return 1;
    (void)c->put("k", session{"ann", {"admin"}});
    return c->get("k") ? 0 : 1;
}
