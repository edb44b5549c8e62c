#pragma once

#include <tierguard/detail/slot_queue.hpp>
#include <tierguard/eviction/concept.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tierguard::eviction {

/// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023):
/// the memory tier's default. Scan-resistant and close to the frequency oracle on skewed
/// workloads, with hits that write at most one byte and, once an entry is hot, nothing.
///
/// A new entry enters a small FIFO (10% of the shard's bytes) unless its key was evicted
/// from it recently (a ghost queue remembers as many evicted hashes as the shard holds
/// entries); then it enters the main FIFO. Each entry has a 2-bit hit count. Leaving the
/// small FIFO, an entry that was hit moves to the main FIFO (count cleared), others are
/// evicted and remembered as ghosts: one-hit keys never displace the main FIFO. Leaving
/// the main FIFO, an entry with a count is reinserted with the count lowered by one.
///
/// Hits only raise the count (a relaxed atomic byte, saturating at 3), so gets do it
/// without the shard's lock (concurrent_hits). Eviction is O(1) amortized. Memory:
/// 5 bytes per table position, 8 bytes per ghost, about 16 bytes per entry of queues.
class s3fifo {
public:
    static constexpr bool concurrent_hits = true;

    void relocate(std::size_t positions, const std::uint32_t* moved) {
        std::unique_ptr<std::uint32_t[]> qpos(new std::uint32_t[positions]);
        std::unique_ptr<std::atomic<std::uint8_t>[]> count(new std::atomic<std::uint8_t>[positions]());
        const std::size_t buckets = std::bit_ceil(std::max<std::size_t>(positions, 64));
        const bool regrow = buckets != m_ghost.size();
        recent_hashes ghost = regrow ? m_ghost.grown(buckets) : recent_hashes();
        // Nothing below throws.
        auto carry = [&](std::uint32_t p) { count[moved[p]].store(count_of(p), std::memory_order_relaxed); };
        m_small.for_each(carry);
        m_main.for_each(carry);
        m_small.remap(moved, qpos.get());
        m_main.remap(moved, qpos.get());
        m_qpos = std::move(qpos);
        m_count = std::move(count);
        if (regrow) m_ghost = std::move(ghost);
    }

    void insert(std::uint32_t pos, std::uint64_t hash, std::size_t weight) {
        const std::size_t entries = m_small.live() + m_main.live() + 1;
        m_small.reserve(entries, m_qpos.get());
        m_main.reserve(entries, m_qpos.get());
        m_count[pos].store(0, std::memory_order_relaxed);
        if (recalls(m_ghost, hash)) {
            m_main.push(pos, m_qpos.get());
        } else {
            m_small.push(pos, m_qpos.get());
            m_small_bytes += weight;
        }
        m_bytes += weight;
    }

    /// Writes nothing once the count is saturated: a hot entry's hits leave its cache
    /// line shared between cores.
    void hit(std::uint32_t pos) noexcept {
        const std::uint8_t c = count_of(pos);
        if (c < max_count) m_count[pos].store(static_cast<std::uint8_t>(c + 1), std::memory_order_relaxed);
    }

    void erase(std::uint32_t pos, std::size_t weight) noexcept {
        const std::uint32_t q = m_qpos[pos];
        if ((q & main_flag) != 0) {
            m_main.kill(q & detail::slot_queue::index_mask);
        } else {
            m_small.kill(q);
            m_small_bytes -= weight;
        }
        m_bytes -= weight;
    }

    void move(std::uint32_t from, std::uint32_t to) noexcept {
        const std::uint32_t q = m_qpos[from];
        m_qpos[to] = q;
        ((q & main_flag) != 0 ? m_main : m_small).relink(q & detail::slot_queue::index_mask, to);
        m_count[to].store(count_of(from), std::memory_order_relaxed);
    }

    template <class View>
    [[nodiscard]] std::uint32_t victim(const View& view) noexcept {
        for (;;) {
            if (m_small.live() != 0 && (m_main.live() == 0 || m_small_bytes * 10 >= m_bytes)) {
                const std::uint32_t pos = m_small.front();
                if (count_of(pos) == 0) {
                    m_ghost.note(view.hash_at(pos), ++m_serial);
                    return pos;
                }
                m_small.kill(m_qpos[pos]);
                m_small_bytes -= view.weight_at(pos);
                m_count[pos].store(0, std::memory_order_relaxed);
                m_main.push(pos, m_qpos.get());
                continue;
            }
            const std::uint32_t pos = m_main.front();
            const std::uint8_t c = count_of(pos);
            if (c == 0) return pos;
            m_count[pos].store(static_cast<std::uint8_t>(c - 1), std::memory_order_relaxed);
            m_main.kill(m_qpos[pos] & detail::slot_queue::index_mask);
            m_main.push(pos, m_qpos.get());
        }
    }

    /// The small FIFO, oldest first, then the main FIFO, oldest first.
    template <class F>
    void for_each(F&& f) const {
        m_small.for_each(f);
        m_main.for_each(f);
    }

    void clear() noexcept {
        m_small.clear();
        m_main.clear();
        m_small_bytes = m_bytes = 0;
    }

private:
    static constexpr std::uint8_t max_count = 3;
    static constexpr std::uint32_t main_flag = 0x80000000U;

    [[nodiscard]] std::uint8_t count_of(std::uint32_t pos) const noexcept {
        return m_count[pos].load(std::memory_order_relaxed);
    }

    // The ghost queue: a direct-mapped table of (32-bit fingerprint, serial number of the
    // eviction that noted it). A hash is recalled if its fingerprint is still in its
    // bucket and fewer evictions than the shard has entries happened since. A later hash
    // may overwrite an earlier one in the same bucket: that one is forgotten early.
    class recent_hashes {
    public:
        [[nodiscard]] bool recalls(std::uint64_t hash, std::uint32_t now, std::size_t horizon) const noexcept {
            if (m_size == 0) return false;
            const std::uint64_t g = m_table[bucket(hash)];
            const auto age = static_cast<std::uint32_t>(now - static_cast<std::uint32_t>(g));
            return g != 0 && static_cast<std::uint32_t>(g >> 32) == fingerprint(hash) && age < horizon;
        }
        void note(std::uint64_t hash, std::uint32_t now) noexcept {
            m_table[bucket(hash)] = (std::uint64_t{fingerprint(hash)} << 32) | now;
        }
        // A table of n buckets (a power of two, larger than now) that keeps every hash:
        // bucket b's may belong to b or b + m_size..., so it is copied to each.
        [[nodiscard]] recent_hashes grown(std::size_t n) const {
            recent_hashes out;
            out.m_table.reset(new std::uint64_t[n]());
            out.m_size = n;
            for (std::size_t b = 0; m_size != 0 && b < n; ++b) out.m_table[b] = m_table[b & (m_size - 1)];
            return out;
        }
        [[nodiscard]] std::size_t size() const noexcept { return m_size; }

    private:
        static std::uint32_t fingerprint(std::uint64_t hash) noexcept { return static_cast<std::uint32_t>(hash >> 16); }
        [[nodiscard]] std::size_t bucket(std::uint64_t hash) const noexcept { return hash & (m_size - 1); }

        std::unique_ptr<std::uint64_t[]> m_table;
        std::size_t m_size = 0;
    };

    [[nodiscard]] bool recalls(const recent_hashes& r, std::uint64_t hash) const noexcept {
        return r.recalls(hash, m_serial, m_small.live() + m_main.live());
    }

    detail::slot_queue m_small;
    detail::slot_queue m_main{main_flag};
    std::unique_ptr<std::uint32_t[]> m_qpos;               // position -> its queue item (main_flag: in main)
    std::unique_ptr<std::atomic<std::uint8_t>[]> m_count;  // position -> hit count, 0..max_count
    recent_hashes m_ghost;                                 // evicted from the small FIFO unread: the ghost queue
    std::uint32_t m_serial = 0;                            // evictions from the small FIFO
    std::size_t m_small_bytes = 0;
    std::size_t m_bytes = 0;
};

static_assert(eviction_policy<s3fifo>);

}  // namespace tierguard::eviction
