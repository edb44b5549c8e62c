// One default cache through the umbrella header: the TU issue 18 measures.
#include <tierguard/tierguard.hpp>

#include <string>

int main() {
    using cache_type = tierguard::cache<std::string, std::string>;
    cache_type::config cfg;
    cfg.storage.root = "/tmp/tierguard-compile-time";
    auto c = cache_type::open(cfg);
    if (!c) return 1;
    if (!c->put("key", "value")) return 1;
    return c->get("key") ? 0 : 1;
}
