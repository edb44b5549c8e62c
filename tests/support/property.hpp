#pragma once

#include "test_framework.hpp"

#include <rapidcheck.h>

#include <string>
#include <utility>

namespace tierguard_test {

/// Runs a rapidcheck property inside a Catch2 test case. rapidcheck prints the seed
/// of every run ("Using configuration: seed=..."); a failure prints the shrunk
/// counterexample, and RC_PARAMS="seed=<n>" replays it. RC_PARAMS="max_success=<n>"
/// raises the number of cases for a soak. Used instead of rapidcheck/catch.h, which
/// only builds against Catch2 2.x.
template <class Testable>
void check_property(const std::string& description, Testable&& testable) {
    INFO("property: " << description << " (replay with RC_PARAMS=\"seed=<seed printed above>\")");
    const bool passed = rc::check(description, std::forward<Testable>(testable));
    REQUIRE(passed);
}

}  // namespace tierguard_test
