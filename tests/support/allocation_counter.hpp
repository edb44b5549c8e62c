#pragma once

// Replaces the global allocation functions to count heap allocations, so that tests
// can show a lookup allocates nothing or a hostile header is refused without
// allocating what it claims. Include it in exactly one source file of a test binary.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace tierguard_test {
/// Allocations made by this thread, and the largest single one.
inline thread_local std::size_t allocations = 0;
inline thread_local std::size_t largest_allocation = 0;

inline void* counted_malloc(std::size_t size) noexcept {
    ++allocations;
    largest_allocation = std::max(largest_allocation, size);
    return std::malloc(size == 0 ? 1 : size);
}
}  // namespace tierguard_test

// GCC cannot tell these replacements pair malloc with free on purpose.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t size) {
    if (void* p = tierguard_test::counted_malloc(size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return tierguard_test::counted_malloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return tierguard_test::counted_malloc(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
