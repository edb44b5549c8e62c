#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tierguard::detail::segment {

__extension__ using uint128 = unsigned __int128;  // __extension__: -Wpedantic knows no __int128

/// Where a record lives, packed into 64 bits: segment slot (15 bits), a recently-read
/// bit, offset and size in alignment units (24 bits each, so segments up to 128 MiB).
/// 0 is never a location: a record's offset is past the segment header.
struct location {
    static constexpr unsigned slot_bits = 15;
    static constexpr std::uint64_t max_slots = std::uint64_t{1} << slot_bits;
    static constexpr std::uint64_t max_units = std::uint64_t{1} << 24;
    static constexpr std::uint64_t read_bit = std::uint64_t{1} << 48;

    [[nodiscard]] static constexpr std::uint64_t pack(std::uint32_t slot, std::size_t offset,
                                                      std::size_t size) noexcept {
        return (std::uint64_t{slot} << 49) | (std::uint64_t{offset / 8} << 24) | std::uint64_t{size / 8};
    }
    [[nodiscard]] static constexpr std::uint32_t slot(std::uint64_t loc) noexcept {
        return static_cast<std::uint32_t>(loc >> 49);
    }
    [[nodiscard]] static constexpr std::size_t offset(std::uint64_t loc) noexcept {
        return static_cast<std::size_t>((loc >> 24) & (max_units - 1)) * 8;
    }
    [[nodiscard]] static constexpr std::size_t size(std::uint64_t loc) noexcept {
        return static_cast<std::size_t>(loc & (max_units - 1)) * 8;
    }
    /// The location without its read bit: two records are the same iff these are equal.
    [[nodiscard]] static constexpr std::uint64_t place(std::uint64_t loc) noexcept { return loc & ~read_bit; }
};

/// segment_log's index: 64-bit name hash -> location, open addressing with linear probing
/// and backward-shift deletion, 16 bytes a slot. Several slots may share a hash (two names
/// colliding); the caller tells them apart by the names stored in the records. Grows by
/// half when 4/5 full, so it holds between 20 and 30 bytes per entry once past a few
/// entries. Not thread-safe.
class hash_index {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    struct slot {
        std::uint64_t hash = 0;
        std::uint64_t loc = 0;  ///< 0: empty
    };

    hash_index() : m_slots(16) {}

    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    [[nodiscard]] std::size_t capacity() const noexcept { return m_slots.size(); }
    /// Bytes of memory the slots take.
    [[nodiscard]] std::size_t memory_bytes() const noexcept { return m_slots.capacity() * sizeof(slot); }

    /// Calls f(position) for each slot holding `hash` until f returns true; returns that
    /// position, or npos.
    template <class F>
    std::size_t find_if(std::uint64_t hash, F&& f) const {
        for (std::size_t i = home(hash);; i = next(i)) {
            const slot& s = m_slots[i];
            if (s.loc == 0) return npos;
            if (s.hash == hash && f(i)) return i;
        }
    }

    [[nodiscard]] const slot& at(std::size_t pos) const noexcept { return m_slots[pos]; }
    void set_loc(std::size_t pos, std::uint64_t loc) noexcept { m_slots[pos].loc = loc; }

    void insert(std::uint64_t hash, std::uint64_t loc) {
        if ((m_size + 1) * 5 > m_slots.size() * 4) grow();
        place(hash, loc);
        ++m_size;
    }

    void erase(std::size_t pos) noexcept {
        // Backward shift: pull later members of the cluster into the hole when their
        // home allows, so that no lookup stops early at it.
        std::size_t hole = pos;
        for (std::size_t i = next(hole);; i = next(i)) {
            slot& s = m_slots[i];
            if (s.loc == 0) break;
            const std::size_t h = home(s.hash);
            if (distance(h, i) >= distance(hole, i)) {
                m_slots[hole] = s;
                hole = i;
            }
        }
        m_slots[hole] = slot{};
        --m_size;
    }

    void clear() {
        std::vector<slot>(16).swap(m_slots);
        m_size = 0;
    }

    /// Calls f(position) for every occupied slot; f must not insert or erase.
    template <class F>
    void for_each(F&& f) const {
        for (std::size_t i = 0; i < m_slots.size(); ++i)
            if (m_slots[i].loc != 0) f(i);
    }

    /// Erases every entry for which pred(slot) is true; returns how many.
    template <class P>
    std::size_t erase_if(P&& pred) {
        std::vector<slot> kept;
        for (const slot& s : m_slots)
            if (s.loc != 0 && !pred(s)) kept.push_back(s);
        const std::size_t erased = m_size - kept.size();
        if (erased == 0) return 0;
        std::vector<slot>(m_slots.size()).swap(m_slots);
        m_size = 0;
        for (const slot& s : kept) {
            place(s.hash, s.loc);
            ++m_size;
        }
        return erased;
    }

private:
    [[nodiscard]] std::size_t home(std::uint64_t hash) const noexcept {
        return static_cast<std::size_t>((static_cast<uint128>(hash) * m_slots.size()) >> 64);
    }
    [[nodiscard]] std::size_t next(std::size_t i) const noexcept { return i + 1 == m_slots.size() ? 0 : i + 1; }
    [[nodiscard]] std::size_t distance(std::size_t from, std::size_t to) const noexcept {
        return to >= from ? to - from : to + m_slots.size() - from;
    }

    void place(std::uint64_t hash, std::uint64_t loc) noexcept {
        std::size_t i = home(hash);
        while (m_slots[i].loc != 0) i = next(i);
        m_slots[i] = slot{hash, loc};
    }

    void grow() {
        std::vector<slot> old(m_slots.size() + m_slots.size() / 2);
        old.swap(m_slots);
        for (const slot& s : old)
            if (s.loc != 0) place(s.hash, s.loc);
    }

    std::vector<slot> m_slots;
    std::size_t m_size = 0;
};

}  // namespace tierguard::detail::segment
