// Shared by the consumer projects: uses the library the way a user's first program would.
#include <tierguard/tierguard.hpp>

#include <cstdio>
#include <string>

int main() {
    tierguard::memory_tier<std::string, std::string> tier({.byte_budget = 1 << 20});
    if (!tier.put("greeting", "hello")) return 1;
    const auto hit = tier.get("greeting");
    const auto miss = tier.get("absent");
    if (!hit || *hit != "hello" || miss || miss.error().code() != tierguard::errc::miss) return 1;
    std::printf("consumer: ok (tierguard %d.%d.%d)\n", tierguard::version_major, tierguard::version_minor,
                tierguard::version_patch);
    return 0;
}
