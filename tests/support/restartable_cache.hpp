#pragma once

#include "support/scripted_storage.hpp"
#include "support/shared_memory_storage.hpp"
#include "support/test_framework.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <memory>
#include <utility>

namespace tierguard_test {

// A cache over a scripted memory storage that outlives it: opening it again is a restart.
template <class Cache>
struct restartable_cache {
    using storage = scripted_storage<shared_memory_storage>;

    tierguard::clock::manual clock;
    std::shared_ptr<tierguard::storage::memory_storage> backing =
        std::make_shared<tierguard::storage::memory_storage>();
    std::shared_ptr<typename storage::script> faults = std::make_shared<typename storage::script>();

    Cache open(typename Cache::config cfg = {}) {
        auto c = Cache::open(cfg, storage(shared_memory_storage(backing), faults), clock);
        REQUIRE(c);
        return std::move(*c);
    }
};

}  // namespace tierguard_test
