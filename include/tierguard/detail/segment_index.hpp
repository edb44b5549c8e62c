#pragma once

#include <tierguard/detail/build_requirements.hpp>
#include <tierguard/detail/mapped_allocator.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tierguard::detail::segment {

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

/// segment_log's index: name hash -> (location, blob size), open addressing with linear
/// probing and backward-shift deletion, 16 bytes a slot: a 32-bit tag of the 64-bit hash,
/// the blob's size and its location. Several slots may share a tag (two names colliding,
/// about one lookup in 2^32 / entries); the caller tells them apart by the names stored in
/// the records. Grows by half when 4/5 full, so it holds between 20 and 30 bytes per entry
/// once past a few entries; it also keeps the sum of the blob sizes. Not thread-safe.
class hash_index {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    struct slot {
        std::uint32_t tag = 0;
        std::uint32_t size = 0;  ///< the blob's size in bytes
        std::uint64_t loc = 0;   ///< 0: empty
    };

    /// The 32 bits of a 64-bit hash a slot keeps.
    [[nodiscard]] static constexpr std::uint32_t tag_of(std::uint64_t hash) noexcept {
        return static_cast<std::uint32_t>(hash ^ (hash >> 32));
    }

    hash_index() : m_slots(16) {}

    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    [[nodiscard]] std::size_t capacity() const noexcept { return m_slots.size(); }
    /// Bytes of memory the slots take.
    [[nodiscard]] std::size_t memory_bytes() const noexcept { return m_slots.capacity() * sizeof(slot); }
    /// The sum of the sizes of the blobs held.
    [[nodiscard]] std::uint64_t blob_bytes() const noexcept { return m_bytes; }

    /// Calls f(position) for each slot whose tag is `hash`'s until f returns true; returns
    /// that position, or npos.
    template <class F>
    std::size_t find_if(std::uint64_t hash, F&& f) const {
        const std::uint32_t tag = tag_of(hash);
        for (std::size_t i = home(tag);; i = next(i)) {
            const slot& s = m_slots[i];
            if (s.loc == 0) return npos;
            if (s.tag == tag && f(i)) return i;
        }
    }

    [[nodiscard]] const slot& at(std::size_t pos) const noexcept { return m_slots[pos]; }
    /// Moves the blob at `pos` (same size, or the read bit changed).
    void set_loc(std::size_t pos, std::uint64_t loc) noexcept { m_slots[pos].loc = loc; }
    /// Points `pos` at another blob of that name.
    void set(std::size_t pos, std::uint64_t loc, std::uint32_t size) noexcept {
        m_bytes = m_bytes - m_slots[pos].size + size;
        m_slots[pos].loc = loc;
        m_slots[pos].size = size;
    }

    void insert(std::uint64_t hash, std::uint64_t loc, std::uint32_t size = 0) {
        if ((m_size + 1) * 5 > m_slots.size() * 4) grow();
        place(slot{tag_of(hash), size, loc});
        ++m_size;
        m_bytes += size;
    }

    void erase(std::size_t pos) noexcept {
        // Backward shift: pull later members of the cluster into the hole when their
        // home allows, so that no lookup stops early at it.
        m_bytes -= m_slots[pos].size;
        std::size_t hole = pos;
        for (std::size_t i = next(hole);; i = next(i)) {
            slot& s = m_slots[i];
            if (s.loc == 0) break;
            const std::size_t h = home(s.tag);
            if (distance(h, i) >= distance(hole, i)) {
                m_slots[hole] = s;
                hole = i;
            }
        }
        m_slots[hole] = slot{};
        --m_size;
    }

    void clear() {
        table(16).swap(m_slots);
        m_size = 0;
        m_bytes = 0;
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
        table kept;
        for (const slot& s : m_slots)
            if (s.loc != 0 && !pred(s)) kept.push_back(s);
        const std::size_t erased = m_size - kept.size();
        if (erased == 0) return 0;
        table(m_slots.size()).swap(m_slots);
        m_size = 0;
        m_bytes = 0;
        for (const slot& s : kept) {
            place(s);
            ++m_size;
            m_bytes += s.size;
        }
        return erased;
    }

private:
    // Freed tables (the smaller ones a growing index leaves behind) go back to the system.
    using table = std::vector<slot, mapped_allocator<slot>>;

    // The tag scrambled (an odd multiplier permutes 32-bit values), scaled to the table.
    [[nodiscard]] std::size_t home(std::uint32_t tag) const noexcept {
        const std::uint64_t mixed = static_cast<std::uint32_t>(tag * 0x9e3779b1U);
        return static_cast<std::size_t>((mixed * m_slots.size()) >> 32);
    }
    [[nodiscard]] std::size_t next(std::size_t i) const noexcept { return i + 1 == m_slots.size() ? 0 : i + 1; }
    [[nodiscard]] std::size_t distance(std::size_t from, std::size_t to) const noexcept {
        return to >= from ? to - from : to + m_slots.size() - from;
    }

    void place(const slot& s) noexcept {
        std::size_t i = home(s.tag);
        while (m_slots[i].loc != 0) i = next(i);
        m_slots[i] = s;
    }

    void grow() {
        table old(m_slots.size() + m_slots.size() / 2);
        old.swap(m_slots);
        for (const slot& s : old)
            if (s.loc != 0) place(s);
    }

    table m_slots;
    std::size_t m_size = 0;
    std::uint64_t m_bytes = 0;
};

}  // namespace tierguard::detail::segment
