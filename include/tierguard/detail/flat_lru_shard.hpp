#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace tierguard::detail {

/// One shard of the memory tier, entries stored in its hash table: not thread-safe by
/// itself (the tier holds its lock).
///
/// Layout, chosen so that a get-hit costs one random memory access (its slot):
///  - m_tags: open addressing with linear probing; one byte per slot, 0 = empty, else
///    0x80 | 7 bits of the hash that neither the shard index nor the home position use,
///    so a probe rejects almost every other key without touching its slot. At 1 byte per
///    slot the array stays in L1/L2. Deletion shifts back, no tombstones.
///  - m_slots: parallel to m_tags; a slot holds the entry itself (key and value, or a
///    pointer to them: see `in_place`), its expiry, full hash and weight.
///  - m_qpos: parallel to m_tags; the index of each slot's live item in the LRU queue.
///    Kept apart from the slots, so that marking an entry used writes no line a lookup
///    reads.
///  - m_queue: the LRU order as an append-only log of slot positions, with m_alive, a
///    bitmap over the log's indices. A use clears its old item's bit and appends a new
///    one: an item is live iff its bit is set, so the oldest live item is the least
///    recently used entry: exact LRU. Skipping dead items reads only the dense bitmap.
///    Slots move (backward-shift deletion, growth), and moving one patches its queue
///    item. Compaction, when the log reaches 8 times the live entries (+64), rewrites
///    the live slots' qpos: 1/7 of a qpos write per use, amortized.
/// Positions returned by find(), lru() and for_each_lru() are valid until the next
/// insert or remove. Every operation gives the strong guarantee; find, at, remove, lru
/// and clear do not throw.
///
/// Concurrency (the tier's protocol): find() and at() read only m_tags, m_slots and the
/// fields that locate them, which only insert, remove, clear and grow change; touch()
/// writes none of those. So lookups may run beside touch() but not beside a change.
template <class Key, class Value, class TimePoint>
class flat_lru_shard {
public:
    struct entry {
        Key key;
        Value value;
    };

    /// Entries whose moves cannot throw live in the slots. Others live in a heap node
    /// each, with a pointer in the slot: slots move, and a move that throws half-way
    /// through a deletion or growth could not be undone.
    static constexpr bool in_place =
        std::is_nothrow_move_constructible_v<Key> && std::is_nothrow_move_constructible_v<Value>;
    using stored = std::conditional_t<in_place, entry, std::unique_ptr<entry>>;

    struct slot {
        std::uint64_t hash;
        union {
            stored held;  // alive iff the slot's tag is not 0
        };
        TimePoint expiry;
        std::size_t weight;

        slot() noexcept {}
        ~slot() {}

        [[nodiscard]] entry& data() noexcept {
            if constexpr (in_place) {
                return held;
            } else {
                return *held;
            }
        }
        [[nodiscard]] const entry& data() const noexcept {
            if constexpr (in_place) {
                return held;
            } else {
                return *held;
            }
        }
    };

    static constexpr std::uint32_t npos = 0xffffffffU;

    flat_lru_shard() = default;
    flat_lru_shard(const flat_lru_shard&) = delete;
    flat_lru_shard& operator=(const flat_lru_shard&) = delete;
    ~flat_lru_shard() { destroy_all(); }

    /// Position of the live slot holding a key equal to `key`, or npos.
    template <class K, class Equal>
    [[nodiscard]] std::uint32_t find(std::uint64_t hash, const K& key, const Equal& eq) const noexcept {
        if (m_cap == 0) return npos;
        const std::uint8_t t = tag(hash);
        for (std::size_t pos = hash & m_mask;; pos = (pos + 1) & m_mask) {
            const std::uint8_t b = m_tags[pos];
            if (b == 0) return npos;
            if (b == t) {
                const slot& s = m_slots.get()[pos];
                if (s.hash == hash && eq(key, s.data().key)) return static_cast<std::uint32_t>(pos);
            }
        }
    }

    /// Starts loading the slot a find(hash) will most likely read, so that the caller can
    /// do it before taking the lock and the miss is not paid while holding it. Safe to
    /// call concurrently with anything: it reads two atomics, and a prefetch never faults,
    /// so a table that grew meanwhile costs only a useless hint.
    void prefetch(std::uint64_t hash) const noexcept {
#if defined(__GNUC__)
        const auto base = m_hint_base.load(std::memory_order_relaxed);
        const auto first = base + (hash & m_hint_mask.load(std::memory_order_relaxed)) * sizeof(slot);
        __builtin_prefetch(reinterpret_cast<const void*>(first));
        __builtin_prefetch(reinterpret_cast<const void*>(first + sizeof(slot) - 1));
#else
        (void)hash;
#endif
    }

    [[nodiscard]] slot& at(std::uint32_t pos) noexcept { return m_slots.get()[pos]; }
    [[nodiscard]] const slot& at(std::uint32_t pos) const noexcept { return m_slots.get()[pos]; }

    /// Marks a live slot as just used. Writes nothing if it already is the most recently
    /// used one (a hot key asked twice in a row), so such a get leaves the queue's lines
    /// shared between cores.
    void touch(std::uint32_t pos) {
        if (m_qpos[pos] + std::size_t{1} == m_queue.size()) return;
        make_queue_room();
        kill(m_qpos[pos]);
        m_qpos[pos] = append(pos);
    }

    /// True if pos holds a live entry whose hash's low 32 bits are `check`: whether a
    /// position noted earlier (before other inserts and removes) still names that entry.
    [[nodiscard]] bool holds(std::uint32_t pos, std::uint32_t check) const noexcept {
        return pos < m_cap && m_tags[pos] != 0 && static_cast<std::uint32_t>(at(pos).hash) == check;
    }

    /// Adds a new entry; the caller has made room and checked the key is absent.
    void insert(std::uint64_t hash, Key&& key, Value&& value, TimePoint expiry, std::size_t weight) {
        if ((m_live + 1) * max_load_den > m_cap * max_load_num) grow();
        make_queue_room();
        std::size_t pos = hash & m_mask;
        while (m_tags[pos] != 0) pos = (pos + 1) & m_mask;
        slot& s = at(static_cast<std::uint32_t>(pos));
        if constexpr (in_place) {
            ::new (static_cast<void*>(&s.held)) stored{std::move(key), std::move(value)};
        } else {
            ::new (static_cast<void*>(&s.held)) stored(new entry{std::move(key), std::move(value)});
        }
        m_tags[pos] = tag(hash);
        s.hash = hash;
        s.expiry = expiry;
        s.weight = weight;
        m_qpos[pos] = append(static_cast<std::uint32_t>(pos));
        ++m_live;
        m_bytes += weight;
    }

    /// Removes a live slot.
    void remove(std::uint32_t pos) noexcept {
        slot& s = at(pos);
        kill(m_qpos[pos]);
        s.held.~stored();
        --m_live;
        m_bytes -= s.weight;
        unplace(pos);
    }

    /// The least recently used live slot, or npos when empty. Drops dead queue items.
    [[nodiscard]] std::uint32_t lru() noexcept {
        for (; m_head < m_queue.size(); ++m_head) {
            if (alive(m_head)) return m_queue[m_head];
        }
        return npos;
    }

    void clear() noexcept {
        destroy_all();
        std::fill_n(m_tags.get(), m_cap, std::uint8_t{0});
        m_queue.clear();
        m_alive.clear();
        m_head = 0;
        m_queue_limit = min_queue;
        m_live = 0;
        m_bytes = 0;
    }

    /// Calls f(position) for each live slot, least recently used first.
    template <class F>
    void for_each_lru(F&& f) const {
        for (std::size_t i = m_head; i < m_queue.size(); ++i) {
            if (alive(i)) f(m_queue[i]);
        }
    }

    /// Removes every live slot for which pred(const slot&) holds; returns how many.
    template <class Pred>
    std::size_t remove_if(Pred&& pred) {
        std::size_t n = 0;
        // A removal moves slots and patches their queue items, never the queue's order.
        for (std::size_t i = m_head; i < m_queue.size(); ++i) {
            if (alive(i) && pred(std::as_const(at(m_queue[i])))) {
                remove(m_queue[i]);
                ++n;
            }
        }
        return n;
    }

    [[nodiscard]] std::size_t live() const noexcept { return m_live; }
    [[nodiscard]] std::size_t bytes() const noexcept { return m_bytes; }

private:
    // Grow past this load. Growth doubles the table, so the load stays in (7/16, 7/8].
    static constexpr std::size_t max_load_num = 7;
    static constexpr std::size_t max_load_den = 8;
    static constexpr std::size_t min_queue = 64;

    // Bits 40..46: the shard index takes the top bits, the home position the low ones.
    static constexpr std::uint8_t tag(std::uint64_t hash) noexcept {
        return static_cast<std::uint8_t>(0x80U | ((hash >> 40) & 0x7fU));
    }

    [[nodiscard]] bool alive(std::size_t i) const noexcept { return ((m_alive[i / 64] >> (i % 64)) & 1U) != 0; }
    void kill(std::size_t i) noexcept { m_alive[i / 64] &= ~(std::uint64_t{1} << (i % 64)); }

    // Compacts the log if it is full, then reserves room for one append (which may
    // throw; nothing visible changes if it does).
    void make_queue_room() {
        if (m_queue.size() >= m_queue_limit) compact();
        if (m_queue.size() == m_queue.capacity()) m_queue.reserve(2 * m_queue.size() + min_queue);
        if (m_queue.size() == 64 * m_alive.size() && m_alive.size() == m_alive.capacity())
            m_alive.reserve(2 * m_alive.size() + 1);
    }

    // Appends a live item for pos; make_queue_room() has reserved the space.
    std::uint32_t append(std::uint32_t pos) noexcept {
        const std::size_t i = m_queue.size();
        m_queue.push_back(pos);
        if (i % 64 == 0) m_alive.push_back(0);
        m_alive[i / 64] |= std::uint64_t{1} << (i % 64);
        return static_cast<std::uint32_t>(i);
    }

    void compact() noexcept {
        std::size_t out = 0;
        for (std::size_t i = m_head; i < m_queue.size(); ++i) {
            if (alive(i)) {
                const std::uint32_t pos = m_queue[i];
                m_queue[out] = pos;
                m_qpos[pos] = static_cast<std::uint32_t>(out);
                ++out;
            }
        }
        reset_queue(out);
    }

    // After compaction: the log holds `n` items, all live.
    void reset_queue(std::size_t n) noexcept {
        m_queue.resize(n);
        m_alive.assign((n + 63) / 64, ~std::uint64_t{0});  // no larger than before: no allocation
        if (n % 64 != 0) m_alive.back() = (std::uint64_t{1} << (n % 64)) - 1;
        m_head = 0;
        m_queue_limit = 8 * m_live + min_queue;
    }

    void unplace(std::size_t pos) noexcept {
        // Backward-shift deletion: pull later members of the probe run into the hole.
        for (std::size_t next = (pos + 1) & m_mask; m_tags[next] != 0; next = (next + 1) & m_mask) {
            const std::size_t home = at(static_cast<std::uint32_t>(next)).hash & m_mask;
            // Move next into the hole unless its home lies cyclically in (pos, next].
            const bool stays = pos <= next ? (pos < home && home <= next) : (pos < home || home <= next);
            if (!stays) {
                move_slot(at(static_cast<std::uint32_t>(next)), m_slots.get()[pos]);
                m_tags[pos] = m_tags[next];
                m_qpos[pos] = m_qpos[next];
                m_queue[m_qpos[pos]] = static_cast<std::uint32_t>(pos);
                pos = next;
            }
        }
        m_tags[pos] = 0;
    }

    // Moves a live slot into an empty one (src's entry is destroyed).
    static void move_slot(slot& src, slot& dst) noexcept {
        ::new (static_cast<void*>(&dst.held)) stored(std::move(src.held));
        src.held.~stored();
        dst.hash = src.hash;
        dst.expiry = src.expiry;
        dst.weight = src.weight;
    }

    void grow() {
        const std::size_t cap = m_cap == 0 ? 16 : 2 * m_cap;
        const std::size_t mask = cap - 1;
        slot_ptr slots(static_cast<slot*>(::operator new (cap * sizeof(slot), std::align_val_t{64})));
        std::uninitialized_default_construct_n(slots.get(), cap);
        std::unique_ptr<std::uint8_t[]> tags(new std::uint8_t[cap]());
        std::unique_ptr<std::uint32_t[]> qpos(new std::uint32_t[cap]);
        // Nothing below throws. Reinserting in LRU order compacts the queue as well.
        std::size_t out = 0;
        for (std::size_t i = m_head; i < m_queue.size(); ++i) {
            if (!alive(i)) continue;
            slot& src = at(m_queue[i]);
            std::size_t pos = src.hash & mask;
            while (tags[pos] != 0) pos = (pos + 1) & mask;
            move_slot(src, slots.get()[pos]);
            tags[pos] = tag(src.hash);
            qpos[pos] = static_cast<std::uint32_t>(out);
            m_queue[out++] = static_cast<std::uint32_t>(pos);
        }
        m_slots = std::move(slots);
        m_tags = std::move(tags);
        m_qpos = std::move(qpos);
        m_cap = cap;
        m_mask = mask;
        m_hint_base.store(reinterpret_cast<std::uintptr_t>(m_slots.get()), std::memory_order_relaxed);
        m_hint_mask.store(mask, std::memory_order_relaxed);
        reset_queue(out);
    }

    void destroy_all() noexcept {
        for (std::size_t i = 0; i < m_cap; ++i) {
            if (m_tags[i] != 0) at(static_cast<std::uint32_t>(i)).held.~stored();
        }
    }

    // Slots are trivially destructible apart from `held`, which destroy_all() handles.
    struct slot_deleter {
        void operator()(slot* p) const noexcept { ::operator delete (p, std::align_val_t{64}); }
    };
    using slot_ptr = std::unique_ptr<slot, slot_deleter>;

    // What lookups read; only insert, remove, clear and grow write it.
    std::unique_ptr<std::uint8_t[]> m_tags;
    slot_ptr m_slots;  // 64-byte aligned, so a slot spans as few cache lines as its size allows
    std::size_t m_cap = 0;
    std::size_t m_mask = 0;
    std::atomic<std::uintptr_t> m_hint_base{0};  // m_slots and m_mask, for prefetch()
    std::atomic<std::size_t> m_hint_mask{0};
    // What touch() writes, on cache lines of its own.
    alignas(64) std::unique_ptr<std::uint32_t[]> m_qpos;
    std::vector<std::uint32_t> m_queue;  // slot positions, least recently used first
    std::vector<std::uint64_t> m_alive;  // bit i: m_queue[i] is live
    std::size_t m_head = 0;              // items before it are dead
    std::size_t m_queue_limit = min_queue;
    std::size_t m_live = 0;
    std::size_t m_bytes = 0;
};

}  // namespace tierguard::detail
