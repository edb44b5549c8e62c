// expect: clock_policy
// Function templates state the concept in a requires-clause, so the diagnostic names it.
#include <tierguard/clock/concept.hpp>

struct not_a_clock {};

template <tierguard::clock_policy C>
auto read(const C& c) {
    return c.now();
}

int main() {
    (void)read(not_a_clock{});
    return 0;
}
