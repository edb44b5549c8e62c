#pragma once

#include <tierguard/hash.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace tierguard::detail {

/// The disk tier's index (entries of a few words; the memory tier uses flat_lru_shard):
/// not thread-safe by itself (the tier holds its lock).
///
/// Layout, chosen so that a get-hit touches two cache lines and writes nothing shared:
///  - m_buckets: open addressing with linear probing; each bucket packs the upper 32
///    bits of the key's hash (a tag that rejects most mismatches without touching the
///    node) and the node's index + 1 (0 = empty). Deletion shifts back, no tombstones.
///  - m_nodes: an arena of nodes whose indices never move while they live, so the
///    buckets and the LRU queue can name them by index.
///  - m_queue: the LRU order as an append-only log of (stamp, node). A hit gives the
///    node a fresh stamp and appends one item, instead of unlinking a list node (which
///    touches two more random cache lines). An item is live iff its stamp is still
///    its node's stamp (kept in a dense array beside the nodes; 0 = free), so the oldest live item is the least
///    recently used entry: exact LRU. Dead items are skipped on eviction and compacted away when they outnumber the
///    live ones, so the log stays O(entries) and each hit O(1) amortized.
template <class Key, class Value, class TimePoint>
class lru_shard {
public:
    struct entry {
        Key key;
        Value value;
    };
    struct node {
        std::uint64_t hash = 0;
        TimePoint expiry{};
        std::size_t weight = 0;
        std::optional<entry> data;
    };

    static constexpr std::uint32_t npos = 0xffffffffU;

    /// Index of the live node holding a key equal to `key`, or npos.
    template <class K, class Equal>
    [[nodiscard]] std::uint32_t find(std::uint64_t hash, const K& key, const Equal& eq) const noexcept {
        if (m_buckets.empty()) return npos;
        const std::uint64_t tag = hash >> 32;
        for (std::size_t pos = hash & m_mask;; pos = (pos + 1) & m_mask) {
            const std::uint64_t b = m_buckets[pos];
            if (b == 0) return npos;
            if ((b >> 32) == tag) {
                const auto idx = static_cast<std::uint32_t>(b) - 1;
                const node& n = m_nodes[idx];
                if (n.hash == hash && eq(key, n.data->key)) return idx;
            }
        }
    }

    [[nodiscard]] node& at(std::uint32_t idx) noexcept { return m_nodes[idx]; }
    [[nodiscard]] const node& at(std::uint32_t idx) const noexcept { return m_nodes[idx]; }

    /// Marks a node as just used.
    void touch(std::uint32_t idx) {
        m_stamps[idx] = ++m_clock;
        push_queue(m_stamps[idx], idx);
    }

    /// Adds a new entry; the caller has made room and checked the key is absent.
    std::uint32_t insert(std::uint64_t hash, Key&& key, Value&& value, TimePoint expiry, std::size_t weight) {
        if ((m_live + 1) * 8 > m_buckets.size() * 7) grow();
        std::uint32_t idx;
        if (!m_free.empty()) {
            idx = m_free.back();
            m_free.pop_back();
        } else {
            idx = static_cast<std::uint32_t>(m_nodes.size());
            m_nodes.emplace_back();
            m_stamps.push_back(0);
        }
        node& n = m_nodes[idx];
        n.data.emplace(entry{std::move(key), std::move(value)});
        n.hash = hash;
        n.expiry = expiry;
        n.weight = weight;
        place(hash, idx);
        ++m_live;
        m_bytes += weight;
        touch(idx);
        return idx;
    }

    /// Removes a live node; returns its entry so a caller may move the value out.
    entry remove(std::uint32_t idx) {
        node& n = m_nodes[idx];
        unplace(n.hash, idx);
        entry out = std::move(*n.data);
        n.data.reset();
        m_stamps[idx] = 0;
        m_free.push_back(idx);
        --m_live;
        m_bytes -= n.weight;
        return out;
    }

    /// The least recently used live node, or npos when empty. Drops dead queue items.
    [[nodiscard]] std::uint32_t lru() noexcept {
        while (m_head < m_queue.size()) {
            const auto [stamp, idx] = m_queue[m_head];
            if (m_stamps[idx] == stamp) return idx;
            ++m_head;
        }
        return npos;
    }

    void clear() noexcept {
        m_buckets.assign(m_buckets.size(), 0);
        m_nodes.clear();
        m_stamps.clear();
        m_free.clear();
        m_queue.clear();
        m_head = 0;
        m_live = 0;
        m_bytes = 0;
    }

    /// Calls f(index) for each live node, oldest use first.
    template <class F>
    void for_each_lru(F&& f) const {
        for (std::size_t i = m_head; i < m_queue.size(); ++i) {
            const auto [stamp, idx] = m_queue[i];
            if (m_stamps[idx] == stamp) f(idx);
        }
    }

    [[nodiscard]] std::size_t live() const noexcept { return m_live; }
    [[nodiscard]] std::size_t bytes() const noexcept { return m_bytes; }

private:
    void place(std::uint64_t hash, std::uint32_t idx) noexcept {
        std::size_t pos = hash & m_mask;
        while (m_buckets[pos] != 0) pos = (pos + 1) & m_mask;
        m_buckets[pos] = ((hash >> 32) << 32) | (std::uint64_t{idx} + 1);
    }

    void unplace(std::uint64_t hash, std::uint32_t idx) noexcept {
        std::size_t pos = hash & m_mask;
        while (static_cast<std::uint32_t>(m_buckets[pos]) != idx + 1) pos = (pos + 1) & m_mask;
        // Backward-shift deletion: pull later members of the probe run into the hole.
        for (std::size_t next = (pos + 1) & m_mask;; next = (next + 1) & m_mask) {
            const std::uint64_t b = m_buckets[next];
            if (b == 0) break;
            const std::size_t home = m_nodes[static_cast<std::uint32_t>(b) - 1].hash & m_mask;
            // Move b into the hole unless its home lies cyclically in (pos, next].
            const bool stays = pos <= next ? (pos < home && home <= next) : (pos < home || home <= next);
            if (!stays) {
                m_buckets[pos] = b;
                pos = next;
            }
        }
        m_buckets[pos] = 0;
    }

    void grow() {
        const std::size_t size = m_buckets.empty() ? 16 : m_buckets.size() * 2;
        m_buckets.assign(size, 0);
        m_mask = size - 1;
        for (std::uint32_t i = 0; i < m_nodes.size(); ++i) {
            if (m_nodes[i].data) place(m_nodes[i].hash, i);
        }
    }

    void push_queue(std::uint64_t stamp, std::uint32_t idx) {
        if (m_queue.size() - m_head >= 2 * m_live + 32) compact();
        m_queue.emplace_back(stamp, idx);
    }

    void compact() {
        std::size_t out = 0;
        for (std::size_t i = m_head; i < m_queue.size(); ++i) {
            if (m_stamps[m_queue[i].second] == m_queue[i].first) m_queue[out++] = m_queue[i];
        }
        m_queue.resize(out);
        m_head = 0;
    }

    std::vector<std::uint64_t> m_buckets;
    std::size_t m_mask = 0;
    std::vector<node> m_nodes;
    std::vector<std::uint64_t> m_stamps;  // per node: its last use, 0 = free; dense, so compaction stays in cache
    std::vector<std::uint32_t> m_free;
    std::vector<std::pair<std::uint64_t, std::uint32_t>> m_queue;
    std::size_t m_head = 0;
    std::uint64_t m_clock = 0;
    std::size_t m_live = 0;
    std::size_t m_bytes = 0;
};

}  // namespace tierguard::detail
