#pragma once

#include <tierguard/listener/concept.hpp>

namespace tierguard::listener {

/// Drops every event; the counters in stats() still count them.
struct none {
    void on_event(const event&) noexcept {}
};

}  // namespace tierguard::listener
