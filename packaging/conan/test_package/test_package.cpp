// Conan's test_package: the installed headers compile, zlib links, a cache works.
#include <tierguard/tierguard.hpp>

#include <cstdio>
#include <string>

int main() {
    tierguard::memory_tier<std::string, std::string> tier({.byte_budget = 1 << 20});
    if (!tier.put("greeting", "hello")) return 1;
    const auto hit = tier.get("greeting");
    if (!hit || *hit != "hello") return 1;
    std::printf("tierguard %d.%d.%d: ok\n", tierguard::version_major, tierguard::version_minor,
                tierguard::version_patch);
    return 0;
}
