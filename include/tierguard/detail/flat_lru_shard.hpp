#pragma once

#include <tierguard/detail/build_requirements.hpp>
#include <tierguard/eviction/concept.hpp>
#include <tierguard/eviction/lru.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace tierguard::detail {

/// One shard of the memory tier, entries stored in its hash table, eviction order kept
/// by an eviction policy: not thread-safe by itself (the tier holds its lock).
///
/// Layout, chosen so that a get-hit costs one random memory access (its slot):
///  - m_tags: open addressing with linear probing; one byte per slot, 0 = empty, else
///    0x80 | 7 bits of the hash that neither the shard index nor the home position use,
///    so a probe rejects almost every other key without touching its slot. At 1 byte per
///    slot the array stays in L1/L2. Deletion shifts back, no tombstones.
///  - m_slots: parallel to m_tags; a slot holds the entry itself (key and value, or a
///    pointer to them: see `in_place`), its expiry, full hash and weight.
///  - m_policy (an eviction_policy): names entries by slot position and keeps its own
///    per-position data and queues, apart from the slots, so that a hit's bookkeeping
///    writes no line a lookup reads. Moving a slot (backward-shift deletion, growth)
///    tells the policy.
/// Positions returned by find(), victim() and for_each_in_order() are valid until the
/// next insert or remove. Every operation gives the strong guarantee; find, at, hit
/// (for policies with concurrent_hits), remove, victim and clear do not throw.
///
/// Concurrency (the tier's protocol): find() and at() read only m_tags, m_slots and the
/// fields that locate them, which only insert, remove, clear and grow change; hit()
/// writes none of those. So lookups may run beside hit() but not beside a change.
template <class Key, class Value, class TimePoint, class Eviction = eviction::lru>
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

    /// Tells the eviction policy that the live slot at pos was read.
    void hit(std::uint32_t pos) noexcept(noexcept(std::declval<Eviction&>().hit(pos))) { m_policy.hit(pos); }

    /// Adds a new entry and returns its position; the caller has made room and checked
    /// the key is absent.
    std::uint32_t insert(std::uint64_t hash, Key&& key, Value&& value, TimePoint expiry, std::size_t weight) {
        if ((m_live + 1) * max_load_den > m_cap * max_load_num) grow();
        std::size_t pos = hash & m_mask;
        while (m_tags[pos] != 0) pos = (pos + 1) & m_mask;
        slot& s = at(static_cast<std::uint32_t>(pos));
        if constexpr (in_place) {
            ::new (static_cast<void*>(&s.held)) stored{std::move(key), std::move(value)};
        } else {
            ::new (static_cast<void*>(&s.held)) stored(new entry{std::move(key), std::move(value)});
        }
        try {
            m_policy.insert(static_cast<std::uint32_t>(pos), hash, weight);
        } catch (...) {
            s.held.~stored();
            throw;
        }
        m_tags[pos] = tag(hash);
        s.hash = hash;
        s.expiry = expiry;
        s.weight = weight;
        ++m_live;
        m_bytes += weight;
        return static_cast<std::uint32_t>(pos);
    }

    /// Removes a live slot.
    void remove(std::uint32_t pos) noexcept {
        slot& s = at(pos);
        m_policy.erase(pos, s.weight);
        s.held.~stored();
        --m_live;
        m_bytes -= s.weight;
        unplace(pos);
    }

    /// The live slot the eviction policy gives up next, or npos when empty.
    [[nodiscard]] std::uint32_t victim() noexcept { return m_live == 0 ? npos : m_policy.victim(*this); }

    void clear() noexcept {
        destroy_all();
        std::fill_n(m_tags.get(), m_cap, std::uint8_t{0});
        m_policy.clear();
        m_live = 0;
        m_bytes = 0;
    }

    /// Calls f(position) for each live slot, in the order the policy would consider
    /// evicting them (least recently used first for eviction::lru).
    template <class F>
    void for_each_in_order(F&& f) const {
        m_policy.for_each(f);
    }

    /// Removes every live slot for which pred(const slot&) holds; returns how many.
    template <class Pred>
    std::size_t remove_if(Pred&& pred) {
        std::size_t n = 0;
        // A removal pulls later slots back, into positions at or after pos (or, past the
        // table's end, into ones already seen): pos is checked again, nothing is skipped.
        for (std::size_t pos = 0; pos < m_cap;) {
            if (m_tags[pos] != 0 && pred(std::as_const(at(static_cast<std::uint32_t>(pos))))) {
                remove(static_cast<std::uint32_t>(pos));
                ++n;
            } else {
                ++pos;
            }
        }
        return n;
    }

    /// For the eviction policy.
    [[nodiscard]] std::uint64_t hash_at(std::uint32_t pos) const noexcept { return at(pos).hash; }
    [[nodiscard]] std::size_t weight_at(std::uint32_t pos) const noexcept { return at(pos).weight; }

    [[nodiscard]] std::size_t live() const noexcept { return m_live; }
    [[nodiscard]] std::size_t bytes() const noexcept { return m_bytes; }

private:
    // Grow past this load. Growth doubles the table, so the load stays in (7/16, 7/8].
    static constexpr std::size_t max_load_num = 7;
    static constexpr std::size_t max_load_den = 8;

    // Bits 40..46: the shard index takes the top bits, the home position the low ones.
    static constexpr std::uint8_t tag(std::uint64_t hash) noexcept {
        return static_cast<std::uint8_t>(0x80U | ((hash >> 40) & 0x7fU));
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
                m_policy.move(static_cast<std::uint32_t>(next), static_cast<std::uint32_t>(pos));
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
        std::unique_ptr<std::uint32_t[]> moved(new std::uint32_t[m_cap]);
        for (std::size_t i = 0; i < m_cap; ++i) {
            if (m_tags[i] == 0) continue;
            std::size_t pos = at(static_cast<std::uint32_t>(i)).hash & mask;
            while (tags[pos] != 0) pos = (pos + 1) & mask;
            tags[pos] = m_tags[i];
            moved[i] = static_cast<std::uint32_t>(pos);
        }
        m_policy.relocate(cap, moved.get());
        // Nothing below throws.
        for (std::size_t i = 0; i < m_cap; ++i) {
            if (m_tags[i] != 0) move_slot(at(static_cast<std::uint32_t>(i)), slots.get()[moved[i]]);
        }
        m_slots = std::move(slots);
        m_tags = std::move(tags);
        m_cap = cap;
        m_mask = mask;
        m_hint_base.store(reinterpret_cast<std::uintptr_t>(m_slots.get()), std::memory_order_relaxed);
        m_hint_mask.store(mask, std::memory_order_relaxed);
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
    // What hit() writes, on cache lines of its own.
    alignas(64) Eviction m_policy;
    std::size_t m_live = 0;
    std::size_t m_bytes = 0;
};

}  // namespace tierguard::detail
