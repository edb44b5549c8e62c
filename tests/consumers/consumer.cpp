// Shared by the consumer projects: uses the library the way a user's first program would.
#include <tierguard/tierguard.hpp>

#include <cstdio>
#include <cstring>
#include <string>

int main() {
    tierguard::memory_tier<std::string, std::string> tier({.byte_budget = 1 << 20});
    if (!tier.put("greeting", "hello")) return 1;
    const auto hit = tier.get("greeting");
    const auto miss = tier.get("absent");
    if (!hit || *hit != "hello" || miss || miss.error().code() != tierguard::errc::miss) return 1;
    char version[40];
    std::snprintf(version, sizeof version, "%d.%d.%d", tierguard::version_major, tierguard::version_minor,
                  tierguard::version_patch);
#ifdef TIERGUARD_EXPECTED_VERSION
    // The version the build system reported for the package this program was built against.
    if (std::strcmp(version, TIERGUARD_EXPECTED_VERSION) != 0) {
        std::printf("consumer: version.hpp says %s, the build system found %s\n", version, TIERGUARD_EXPECTED_VERSION);
        return 1;
    }
#endif
    std::printf("consumer: ok (tierguard %s)\n", version);
    return 0;
}
