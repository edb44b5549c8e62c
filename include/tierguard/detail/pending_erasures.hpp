#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tierguard::detail {

/// Keys whose copy in a storage tier is older than the cache's truth: a put or erase
/// that reached memory but not the storage (its breaker was open, or the write failed).
/// Until the storage copy is removed, a read of the storage must treat the key as a
/// miss. Bounded: past `limit` keys it stops recording and says the whole storage tier
/// is untrusted (the cache then clears it when the tier is back).
template <class Key, class Hash, class Equal>
class pending_erasures {
public:
    explicit pending_erasures(std::size_t limit) : m_limit(limit) {}

    void add(const Key& key) {
        std::lock_guard lock(m_mutex);
        if (m_overflowed) return;
        if (m_keys.size() >= m_limit) {
            m_overflowed = true;
            m_keys.clear();
        } else {
            m_keys.insert(key);
        }
        m_count.store(m_overflowed ? 1 : m_keys.size(), std::memory_order_release);
    }

    void remove(const Key& key) {
        if (m_count.load(std::memory_order_acquire) == 0) return;
        std::lock_guard lock(m_mutex);
        m_keys.erase(key);
        m_count.store(m_overflowed ? 1 : m_keys.size(), std::memory_order_release);
    }

    /// True if the storage copy of `key` must not be served. Lock-free while empty.
    [[nodiscard]] bool contains(const Key& key) const {
        if (m_count.load(std::memory_order_acquire) == 0) return false;
        std::lock_guard lock(m_mutex);
        return m_overflowed || m_keys.contains(key);
    }

    /// True if nothing is pending (no key, no overflow). Lock-free.
    [[nodiscard]] bool empty() const noexcept { return m_count.load(std::memory_order_acquire) == 0; }

    /// Recorded keys, for metrics (0 after an overflow until reset).
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(m_mutex);
        return m_keys.size();
    }

    [[nodiscard]] bool overflowed() const {
        std::lock_guard lock(m_mutex);
        return m_overflowed;
    }

    /// The recorded keys, and whether the limit was passed. The caller removes the
    /// storage copies first, then calls remove() or clear_overflow(), so that no read
    /// sees a storage copy in between.
    [[nodiscard]] std::pair<std::vector<Key>, bool> snapshot() const {
        std::lock_guard lock(m_mutex);
        return {std::vector<Key>(m_keys.begin(), m_keys.end()), m_overflowed};
    }

    /// The storage tier could not be cleared: none of it may be served until it is.
    void distrust_all() {
        std::lock_guard lock(m_mutex);
        m_overflowed = true;
        m_keys.clear();
        m_count.store(1, std::memory_order_release);
    }

    /// After the whole storage tier was cleared: nothing is pending any more.
    void clear_overflow() {
        std::lock_guard lock(m_mutex);
        m_overflowed = false;
        m_keys.clear();
        m_count.store(0, std::memory_order_release);
    }

private:
    mutable std::mutex m_mutex;
    std::unordered_set<Key, Hash, Equal> m_keys;
    std::size_t m_limit;
    bool m_overflowed = false;
    std::atomic<std::size_t> m_count{0};
};

}  // namespace tierguard::detail
