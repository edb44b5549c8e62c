#pragma once

#include <tierguard/detail/slot_queue.hpp>
#include <tierguard/eviction/concept.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace tierguard::eviction {

/// Least recently used first: exact LRU within a shard. Gets and puts count as use.
///
/// A hit moves the entry to the back of the queue, which writes shared state, so hits
/// take the shard's lock: a get under contention skips the bookkeeping rather than wait
/// for it (concurrent_hits is false). Memory: 4 bytes per table position plus about
/// 8 bytes per entry. A one-time scan of many keys flushes the whole cache; prefer
/// s3fifo unless the workload is strictly recency-driven.
class lru {
public:
    static constexpr bool concurrent_hits = false;

    void relocate(std::size_t positions, const std::uint32_t* moved) {
        std::unique_ptr<std::uint32_t[]> qpos(new std::uint32_t[positions]);
        m_queue.remap(moved, qpos.get());
        m_qpos = std::move(qpos);
    }

    void insert(std::uint32_t pos, std::uint64_t, std::size_t) {
        m_queue.reserve(m_queue.live() + 1, m_qpos.get());
        m_queue.push(pos, m_qpos.get());
    }

    /// Writes nothing if pos already is the most recently used entry (a hot key asked
    /// twice in a row).
    void hit(std::uint32_t pos) noexcept {
        if (m_queue.is_back(m_qpos[pos])) return;
        m_queue.kill(m_qpos[pos]);
        m_queue.push(pos, m_qpos.get());
    }

    void erase(std::uint32_t pos, std::size_t) noexcept { m_queue.kill(m_qpos[pos]); }

    void move(std::uint32_t from, std::uint32_t to) noexcept {
        m_qpos[to] = m_qpos[from];
        m_queue.relink(m_qpos[to], to);
    }

    template <class View>
    [[nodiscard]] std::uint32_t victim(const View&) noexcept {
        return m_queue.front();
    }

    template <class F>
    void for_each(F&& f) const {
        m_queue.for_each(f);
    }

    void clear() noexcept { m_queue.clear(); }

private:
    detail::slot_queue m_queue;
    std::unique_ptr<std::uint32_t[]> m_qpos;  // position -> index of its queue item
};

static_assert(eviction_policy<lru>);

}  // namespace tierguard::eviction
