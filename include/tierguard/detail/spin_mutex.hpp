#pragma once

#include <atomic>
#include <cstdint>

namespace tierguard::detail {

/// A lock for critical sections of a few hundred nanoseconds (a shard's hash lookup):
/// it spins briefly, then sleeps in the kernel (std::atomic::wait). std::mutex sleeps
/// at the first contention, which costs microseconds per collision on a hot key; an
/// uncontended lock/unlock here is one exchange and one store. Not recursive; meets
/// BasicLockable, so std::lock_guard works.
class spin_mutex {
public:
    void lock() noexcept {
        for (int spins = 0;; ++spins) {
            if (m_state.load(std::memory_order_relaxed) == 0 && m_state.exchange(1, std::memory_order_acquire) == 0)
                return;
            if (spins < spin_limit) {
                relax();
            } else {
                m_state.wait(1, std::memory_order_relaxed);
            }
        }
    }

    void unlock() noexcept {
        m_state.store(0, std::memory_order_release);
        m_state.notify_one();
    }

private:
    static constexpr int spin_limit = 100;

    static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    std::atomic<std::uint32_t> m_state{0};
};

}  // namespace tierguard::detail
