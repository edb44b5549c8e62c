#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tierguard::detail {

/// A FIFO of table positions with O(1) removal from the middle, for eviction policies:
/// an append-only log of positions and a bitmap of the live items. Removing an item
/// clears its bit; the front skips dead items. Each live position p records its item's
/// index in `qpos[p]` (with this queue's `flag` bit or'ed in, so that policies with two
/// queues can share one qpos array). When the log is full it is compacted in place,
/// which rewrites the live items' qpos. reserve() keeps its capacity at least twice the
/// live entries plus 64, so push() never allocates and each push is O(1) amortized.
class slot_queue {
public:
    static constexpr std::uint32_t npos = 0xffffffffU;
    static constexpr std::uint32_t index_mask = 0x7fffffffU;

    explicit slot_queue(std::uint32_t flag = 0) noexcept : m_flag(flag) {}

    /// Makes room for pushes while `entries` positions are live in all queues sharing
    /// qpos; may throw std::bad_alloc, and then changes nothing.
    void reserve(std::size_t entries, std::uint32_t* qpos) {
        const std::size_t want = 2 * entries + 64;
        if (want <= m_cap) return;
        const std::size_t cap = std::max(want, 2 * m_cap);
        std::unique_ptr<std::uint32_t[]> items(new std::uint32_t[cap]);
        std::unique_ptr<std::uint64_t[]> alive(new std::uint64_t[(cap + 63) / 64]());
        std::size_t out = 0;
        for (std::size_t i = m_head; i < m_size; ++i) {
            if (live_at(i)) place(items.get(), alive.get(), out++, m_items[i], qpos);
        }
        m_items = std::move(items);
        m_alive = std::move(alive);
        m_cap = cap;
        m_size = out;
        m_head = 0;
    }

    /// Appends pos as the newest item.
    void push(std::uint32_t pos, std::uint32_t* qpos) noexcept {
        if (m_size == m_cap) compact(qpos);
        place(m_items.get(), m_alive.get(), m_size++, pos, qpos);
        ++m_live;
    }

    /// Removes the item at `index` (qpos without the flag).
    void kill(std::uint32_t index) noexcept {
        m_alive[index / 64] &= ~(std::uint64_t{1} << (index % 64));
        --m_live;
    }

    /// The position of the oldest live item, or npos.
    [[nodiscard]] std::uint32_t front() noexcept {
        for (; m_head < m_size; ++m_head) {
            if (live_at(m_head)) return m_items[m_head];
        }
        return npos;
    }

    /// True if `index` is the newest item.
    [[nodiscard]] bool is_back(std::uint32_t index) const noexcept { return index + std::size_t{1} == m_size; }

    /// The item at `index` now names position pos (its slot moved).
    void relink(std::uint32_t index, std::uint32_t pos) noexcept { m_items[index] = pos; }

    /// The table was rebuilt: each live item's position p becomes moved[p], recorded in
    /// the new qpos array. Compacts as well.
    void remap(const std::uint32_t* moved, std::uint32_t* qpos) noexcept {
        std::size_t out = 0;
        for (std::size_t i = m_head; i < m_size; ++i) {
            if (live_at(i)) m_items[out++] = moved[m_items[i]];
        }
        restart(out, qpos);
    }

    /// Calls f(position) for each live item, oldest first.
    template <class F>
    void for_each(F&& f) const {
        for (std::size_t i = m_head; i < m_size; ++i) {
            if (live_at(i)) f(m_items[i]);
        }
    }

    void clear() noexcept {
        std::fill_n(m_alive.get(), (m_size + 63) / 64, std::uint64_t{0});
        m_size = m_head = m_live = 0;
    }

    [[nodiscard]] std::size_t live() const noexcept { return m_live; }

private:
    [[nodiscard]] bool live_at(std::size_t i) const noexcept { return ((m_alive[i / 64] >> (i % 64)) & 1U) != 0; }

    void place(std::uint32_t* items, std::uint64_t* alive, std::size_t i, std::uint32_t pos,
               std::uint32_t* qpos) const noexcept {
        items[i] = pos;
        alive[i / 64] |= std::uint64_t{1} << (i % 64);
        qpos[pos] = static_cast<std::uint32_t>(i) | m_flag;
    }

    void compact(std::uint32_t* qpos) noexcept {
        std::size_t out = 0;
        for (std::size_t i = m_head; i < m_size; ++i) {
            if (live_at(i)) m_items[out++] = m_items[i];
        }
        restart(out, qpos);
    }

    // The log holds `n` items, all live, in m_items[0, n).
    void restart(std::size_t n, std::uint32_t* qpos) noexcept {
        std::fill_n(m_alive.get(), (m_size + 63) / 64, std::uint64_t{0});
        for (std::size_t i = 0; i < n; ++i) place(m_items.get(), m_alive.get(), i, m_items[i], qpos);
        m_size = n;
        m_head = 0;
    }

    std::unique_ptr<std::uint32_t[]> m_items;
    std::unique_ptr<std::uint64_t[]> m_alive;
    std::size_t m_cap = 0;
    std::size_t m_size = 0;
    std::size_t m_head = 0;  // items before it are dead
    std::size_t m_live = 0;
    std::uint32_t m_flag;
};

}  // namespace tierguard::detail
