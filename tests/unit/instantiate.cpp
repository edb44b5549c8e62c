#include "instantiate_cache.hpp"
#include "support/temp_dir.hpp"
#include "support/test_framework.hpp"

TEST_CASE("a cache declared extern template works through the one explicit instantiation") {
    tierguard_test::temp_dir dir;
    tierguard_test::instantiated_cache::config cfg;
    cfg.storage.root = dir.path() / "cache";
    auto opened = tierguard_test::instantiated_cache::open(cfg);
    REQUIRE(opened);
    auto& cache = *opened;
    REQUIRE(cache.put("key", "value"));
    auto got = cache.get("key");
    REQUIRE(got);
    CHECK(got->value == "value");
    CHECK_FALSE(cache.get("other"));
}
