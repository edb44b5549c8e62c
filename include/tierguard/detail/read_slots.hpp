#pragma once

#include <tierguard/detail/spin_mutex.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

namespace tierguard::detail {

/// Numbers for the threads that are alive: a thread takes the lowest free one when it
/// first asks, and gives it back when it exits, so that live threads spread over read
/// slots however many threads came and went. Past 1024 live threads, numbers repeat.
class thread_numbers {
public:
    thread_numbers() noexcept : m_number(take()) {}
    thread_numbers(const thread_numbers&) = delete;
    thread_numbers& operator=(const thread_numbers&) = delete;
    ~thread_numbers() {
        if (m_number < bits) words()[m_number / 64].fetch_and(~(std::uint64_t{1} << (m_number % 64)));
    }

    [[nodiscard]] std::size_t number() const noexcept { return m_number; }

private:
    static constexpr std::size_t bits = 1024;

    // Trivially destructible, so still usable by threads that exit after static destruction.
    static std::atomic<std::uint64_t>* words() noexcept {
        static std::atomic<std::uint64_t> taken[bits / 64];
        return taken;
    }

    static std::size_t take() noexcept {
        for (std::size_t w = 0; w < bits / 64; ++w) {
            std::uint64_t seen = words()[w].load(std::memory_order_relaxed);
            while (seen != ~std::uint64_t{0}) {
                const auto b = static_cast<std::size_t>(std::countr_one(seen));
                if (words()[w].compare_exchange_weak(seen, seen | (std::uint64_t{1} << b))) return w * 64 + b;
            }
        }
        static std::atomic<std::size_t> overflow{bits};
        return overflow.fetch_add(1, std::memory_order_relaxed);
    }

    std::size_t m_number;
};

/// The calling thread's number (see thread_numbers).
inline std::size_t thread_number() noexcept {
    thread_local const thread_numbers mine;
    return mine.number();
}

/// Lets threads read the shards of a structure without writing a cache line that another
/// core reads, while writers change shards under their locks: the memory tier's gets.
///
/// Each thread has a slot (a few per core; threads beyond that share them). A reader
/// claims its slot with a mark naming the shard it reads, then checks the shard's
/// `writing` flag, and backs off if it is set. A writer, holding the shard's lock, sets
/// the flag, then waits until no slot names the shard. Both sides use sequentially
/// consistent operations, so either the reader sees the flag or the writer sees the mark
/// (Dekker's argument). Claiming and releasing write only the thread's own slot.
///
/// A slot also carries Local: data that only the slot's holder touches (a reader's
/// counters). A claim never waits.
template <class Local>
class read_slots {
public:
    struct alignas(64) slot {
        std::atomic<std::uint32_t> mark{free};
        Local local;
    };

    /// A claimed slot, released when this goes out of scope.
    class hold {
    public:
        explicit hold(slot& s) noexcept : m_slot(s) {}
        hold(const hold&) = delete;
        hold& operator=(const hold&) = delete;
        ~hold() { m_slot.mark.store(free, std::memory_order_release); }

    private:
        slot& m_slot;
    };

    /// At least 4 slots, 2 per hardware thread, at most 64.
    read_slots()
        : m_count(std::bit_ceil(std::clamp<std::size_t>(2 * std::size_t{std::thread::hardware_concurrency()}, 4, 64))),
          m_slots(std::make_unique<slot[]>(m_count)) {}

    /// The caller's slot, claimed for reading shard `shard`; nullptr if another thread
    /// holds the slot or a writer is changing the shard.
    [[nodiscard]] slot* claim_to_read(std::size_t shard, const std::atomic<bool>& writing) noexcept {
        slot& s = mine();
        if (!try_claim(s, reading(shard))) return nullptr;
        if (writing.load(std::memory_order_seq_cst)) {
            s.mark.store(free, std::memory_order_release);
            return nullptr;
        }
        return &s;
    }

    /// For a writer that has set `writing` for `shard`: returns once no slot reads it.
    void wait_for_readers(std::size_t shard) const noexcept {
        const std::uint32_t mark = reading(shard);
        for (std::size_t i = 0; i < m_count; ++i) {
            // A read takes a few hundred nanoseconds: spin that long before yielding.
            for (int spins = 0; m_slots[i].mark.load(std::memory_order_seq_cst) == mark; ++spins) {
                if (spins < 64) {
                    cpu_relax();
                } else {
                    std::this_thread::yield();
                }
            }
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return m_count; }
    [[nodiscard]] const Local& local(std::size_t i) const noexcept { return m_slots[i].local; }

private:
    static constexpr std::uint32_t free = 0;
    static constexpr std::uint32_t reading(std::size_t shard) noexcept { return static_cast<std::uint32_t>(shard) + 1; }

    // Marks a free slot; sequentially consistent, as claim_to_read's check needs.
    static bool try_claim(slot& s, std::uint32_t mark) noexcept {
        std::uint32_t expected = free;
        return s.mark.compare_exchange_strong(expected, mark, std::memory_order_seq_cst);
    }

    [[nodiscard]] slot& mine() noexcept { return m_slots[thread_number() & (m_count - 1)]; }

    std::size_t m_count;
    std::unique_ptr<slot[]> m_slots;
};

}  // namespace tierguard::detail
