#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <atomic>
#include <cstdint>

namespace tierguard::detail {

/// Tells the core that the caller is spinning (x86 pause), so that it yields resources.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// A lock for critical sections of a few hundred nanoseconds (a shard's hash lookup):
/// it spins briefly, then sleeps in the kernel (std::atomic::wait). std::mutex sleeps
/// at the first contention, which costs microseconds per collision on a hot key; an
/// uncontended lock/unlock here is one exchange and one store. Not recursive; meets
/// Lockable, so std::lock_guard and std::unique_lock work.
class spin_mutex {
public:
    void lock() noexcept {
        for (int spins = 0;; ++spins) {
            if (try_lock()) return;
            if (spins < spin_limit) {
                cpu_relax();
            } else {
                m_state.wait(1, std::memory_order_relaxed);
            }
        }
    }

    /// Takes the lock if it is free; writes nothing if it is not.
    [[nodiscard]] bool try_lock() noexcept {
        return m_state.load(std::memory_order_relaxed) == 0 && m_state.exchange(1, std::memory_order_acquire) == 0;
    }

    void unlock() noexcept {
        m_state.store(0, std::memory_order_release);
        m_state.notify_one();
    }

private:
    static constexpr int spin_limit = 100;

    std::atomic<std::uint32_t> m_state{0};
};

}  // namespace tierguard::detail
