#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <cstddef>
#include <limits>
#include <new>

#include <sys/mman.h>

namespace tierguard::detail {

/// An allocator for large buffers that come and go: segment_log's whole-segment reads (at
/// open, scrub, eviction, listing) and its index's table. A request of at least a mebibyte
/// is an anonymous mapping, given back to the system when freed. Through malloc, glibc
/// keeps such freed buffers resident (up to twice its mmap threshold, which rises to the
/// largest buffer freed): tens of megabytes after an open of a large log.
template <class T>
struct mapped_allocator {
    using value_type = T;
    static constexpr std::size_t mapped_from = std::size_t{1} << 20;

    mapped_allocator() noexcept = default;
    template <class U>
    mapped_allocator(const mapped_allocator<U>&) noexcept {}

    [[nodiscard]] T* allocate(std::size_t n) {
        if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
        const std::size_t bytes = n * sizeof(T);
        if (bytes < mapped_from) return static_cast<T*>(::operator new(bytes));
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < mapped_from) {
            ::operator delete(p);
        } else {
            ::munmap(p, bytes);
        }
    }
    friend bool operator==(const mapped_allocator&, const mapped_allocator&) noexcept { return true; }
};

}  // namespace tierguard::detail
