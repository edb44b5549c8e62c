#pragma once

#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/detail/os_error.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>
#include <tierguard/storage/concept.hpp>
#include <tierguard/storage/memory_storage.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tierguard::storage {

/// A storage operation, as fault_injecting counts and scripts them.
enum class op : unsigned char { read, write, remove, list, quarantine, clean };
inline constexpr std::size_t op_count = 6;

/// A fault fault_injecting can inject, and the operations it applies to.
enum class fault : unsigned char {
    io_error,           ///< every op: errc::io_error, EIO; the inner storage is not called
    disk_full,          ///< write, quarantine: errc::disk_full, ENOSPC; the inner storage is not called
    permission_denied,  ///< every op: errc::permission_denied, EACCES; the inner storage is not called
    torn_write,         ///< write: fails with EIO part-way; see fault_control::set_torn_writes_visible
    bit_flip,           ///< read: one bit of the returned bytes flipped (the stored blob is untouched)
    truncation,         ///< read: the returned bytes cut short (the stored blob is untouched)
    vanish,             ///< list: a listed blob is removed; read: the blob is removed, the read misses
};
inline constexpr std::size_t fault_count = 7;

/// Whether `f` can be injected into operation `o` (see fault's comments).
[[nodiscard]] constexpr bool applies(fault f, op o) noexcept {
    switch (f) {
        case fault::io_error:
        case fault::permission_denied: return true;
        case fault::disk_full: return o == op::write || o == op::quarantine;
        case fault::torn_write: return o == op::write;
        case fault::bit_flip:
        case fault::truncation: return o == op::read;
        case fault::vanish: return o == op::read || o == op::list;
    }
    return false;
}

[[nodiscard]] constexpr std::string_view to_string(op o) noexcept {
    constexpr std::array<std::string_view, op_count> names{"read", "write", "remove", "list", "quarantine", "clean"};
    return names[static_cast<std::size_t>(o)];
}

[[nodiscard]] constexpr std::string_view to_string(fault f) noexcept {
    constexpr std::array<std::string_view, fault_count> names{
        "io_error", "disk_full", "permission_denied", "torn_write", "bit_flip", "truncation", "vanish"};
    return names[static_cast<std::size_t>(f)];
}

/// What each call of one operation suffers: a probability per fault kind (kinds that do
/// not apply to the operation are ignored) and an added latency. All zero: pass-through.
///
/// One uniform draw per call picks at most one fault, the kinds taking consecutive
/// slices of [0, 1) in declaration order, so rates summing past 1 starve the later
/// kinds. `vanish` on list is drawn once per listed blob instead.
struct fault_rates {
    double io_error = 0.0;
    double disk_full = 0.0;
    double permission_denied = 0.0;
    double torn_write = 0.0;
    double bit_flip = 0.0;
    double truncation = 0.0;
    double vanish = 0.0;
    /// Added to the clock on every call (the clock is advanced, never slept on).
    std::chrono::nanoseconds latency{0};

    [[nodiscard]] double of(fault f) const noexcept {
        const std::array<double, fault_count> all{io_error,   disk_full, permission_denied, torn_write, bit_flip,
                                                  truncation, vanish};
        return all[static_cast<std::size_t>(f)];
    }
};

/// How a scripted fault repeats.
enum class fault_mode : unsigned char {
    once,          ///< only the call numbered n fails
    from_then_on,  ///< call n and every later one fail (until heal())
};

/// The run-time settings a fault_injecting starts with.
struct fault_config {
    /// Seeds the decorator's own PRNG (splitmix64): the same seed, rates and call order
    /// give the same faults on every platform and standard library.
    std::uint64_t seed = 0;
    /// Rates for every operation; fault_control::set_rates changes them per operation.
    fault_rates rates{};
    /// A torn write leaves its prefix under the blob's name (see set_torn_writes_visible).
    bool torn_writes_visible = false;
};

/// Calls and injected faults since the decorator was made; a snapshot.
struct fault_counters {
    std::array<std::uint64_t, op_count> call_counts{};                            ///< by op
    std::array<std::array<std::uint64_t, fault_count>, op_count> fault_counts{};  ///< by [op][fault]

    [[nodiscard]] std::uint64_t calls(op o) const noexcept { return call_counts[static_cast<std::size_t>(o)]; }
    [[nodiscard]] std::uint64_t calls() const noexcept {
        std::uint64_t sum = 0;
        for (const auto n : call_counts) sum += n;
        return sum;
    }
    [[nodiscard]] std::uint64_t injected(op o, fault f) const noexcept {
        return fault_counts[static_cast<std::size_t>(o)][static_cast<std::size_t>(f)];
    }
    [[nodiscard]] std::uint64_t injected(fault f) const noexcept {
        std::uint64_t sum = 0;
        for (const auto& by_fault : fault_counts) sum += by_fault[static_cast<std::size_t>(f)];
        return sum;
    }
    [[nodiscard]] std::uint64_t injected() const noexcept {
        std::uint64_t sum = 0;
        for (const auto& by_fault : fault_counts)
            for (const auto n : by_fault) sum += n;
        return sum;
    }
};

}  // namespace tierguard::storage

namespace tierguard::detail {

/// The state a storage::fault_injecting and its fault_control handles share.
struct fault_state {
    using op = storage::op;
    using fault = storage::fault;
    using fault_mode = storage::fault_mode;
    using fault_rates = storage::fault_rates;
    using fault_config = storage::fault_config;
    using fault_counters = storage::fault_counters;

    struct scripted {
        std::optional<op> which;  // nullopt: the global call counter
        std::uint64_t n;
        fault what;
        fault_mode mode;
    };
    // What to do to one call.
    struct decision {
        std::optional<fault> what;
        std::uint64_t entropy = 0;  // sizes a torn prefix, picks a bit or a length
        std::chrono::nanoseconds latency{0};
    };

    std::mutex mutex;
    std::uint64_t rng;
    std::array<fault_rates, storage::op_count> rates;
    bool torn_writes_visible;
    std::vector<scripted> scripts;
    fault_counters counters;

    explicit fault_state(const fault_config& cfg) : rng(cfg.seed), torn_writes_visible(cfg.torn_writes_visible) {
        rates.fill(cfg.rates);
    }

    // splitmix64 (Steele, Lea, Flood 2014): fully specified, so portable. Caller holds the lock.
    std::uint64_t next() noexcept {
        std::uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    // Uniform in [0, 1), 53 bits.
    double next_unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    decision decide(op o) {
        const auto i = static_cast<std::size_t>(o);
        std::lock_guard lock(mutex);
        const std::uint64_t nth_of_op = ++counters.call_counts[i];
        const std::uint64_t nth = counters.calls();
        decision d;
        d.latency = rates[i].latency;
        const double u = next_unit();  // drawn on every call, so scripts do not shift the sequence
        for (const scripted& s : scripts) {
            const std::uint64_t count = s.which ? nth_of_op : nth;
            if ((s.which && *s.which != o) || !storage::applies(s.what, o)) continue;
            if (s.mode == fault_mode::once ? count == s.n : count >= s.n) {
                d.what = s.what;
                break;
            }
        }
        if (!d.what) {
            double edge = 0.0;
            for (std::size_t k = 0; k < storage::fault_count; ++k) {
                const auto f = static_cast<fault>(k);
                if (!storage::applies(f, o) || (o == op::list && f == fault::vanish)) continue;
                edge += rates[i].of(f);
                if (u < edge) {
                    d.what = f;
                    break;
                }
            }
        }
        if (d.what) d.entropy = next();
        return d;
    }

    // Which of `count` listed blobs vanish; all of them if `scripted_vanish`.
    std::vector<bool> vanishing(std::size_t count, bool scripted_vanish) {
        std::lock_guard lock(mutex);
        std::vector<bool> out(count, scripted_vanish);
        const double p = rates[static_cast<std::size_t>(op::list)].vanish;
        if (!scripted_vanish && p > 0.0)
            for (std::size_t k = 0; k < count; ++k) out[k] = next_unit() < p;
        return out;
    }

    void note(op o, fault f, std::uint64_t n = 1) {
        std::lock_guard lock(mutex);
        counters.fault_counts[static_cast<std::size_t>(o)][static_cast<std::size_t>(f)] += n;
    }
};

}  // namespace tierguard::detail

namespace tierguard::storage {

/// A handle on a fault_injecting's faults and counters. It shares the decorator's state,
/// so it stays valid, and keeps acting on the same decorator, after that decorator is
/// moved (into a disk_tier or a cache) or destroyed. Copyable; every member is
/// thread-safe (one mutex).
class fault_control {
public:
    explicit fault_control(std::shared_ptr<detail::fault_state> state) noexcept : m_state(std::move(state)) {}

    /// Sets the rates (and latency) of every operation.
    void set_rates(const fault_rates& rates) {
        std::lock_guard lock(m_state->mutex);
        m_state->rates.fill(rates);
    }
    /// Sets the rates (and latency) of one operation.
    void set_rates(op o, const fault_rates& rates) {
        std::lock_guard lock(m_state->mutex);
        m_state->rates[static_cast<std::size_t>(o)] = rates;
    }

    /// The nth call (1-based, counted since the decorator was made) of operation `o`
    /// fails with `f`; with fault_mode::from_then_on, every later call of `o` too.
    /// Scripts win over rates; of several that match a call, the first added wins.
    /// Throws std::invalid_argument if n is 0 or `f` does not apply to `o`.
    void script(op o, std::uint64_t n, fault f, fault_mode mode = fault_mode::once) {
        if (!applies(f, o))
            throw std::invalid_argument("[tierguard.fault_injecting.script] fault " + std::string(to_string(f)) +
                                        " does not apply to operation " + std::string(to_string(o)));
        add({o, n, f, mode});
    }

    /// The nth storage call of any operation (1-based, since the decorator was made) fails
    /// with `f`; with fault_mode::from_then_on, every later call too. A call whose
    /// operation `f` does not apply to passes through (e.g. bit_flip at a write): sweep
    /// with io_error or permission_denied to fail every call. Throws std::invalid_argument if n is 0.
    void fail_call(std::uint64_t n, fault f, fault_mode mode = fault_mode::once) { add({std::nullopt, n, f, mode}); }

    /// A torn write leaves its prefix under the blob's name (true), or leaves the inner
    /// storage untouched (false, the default). posix_directory writes a temp file and
    /// renames it into place, so a write that dies part-way never exposes a prefix: a
    /// visible torn write models a storage that is not atomic, or damage at rest, and
    /// lets a test check that the reader detects it.
    void set_torn_writes_visible(bool visible) {
        std::lock_guard lock(m_state->mutex);
        m_state->torn_writes_visible = visible;
    }

    /// Turns every fault off: zero rates and latency for every operation, no scripts.
    /// Counters, the PRNG and torn-write visibility are kept.
    void heal() {
        std::lock_guard lock(m_state->mutex);
        m_state->rates.fill(fault_rates{});
        m_state->scripts.clear();
    }

    /// Calls and faults injected so far. A fault counts once it took effect: a bit flip
    /// or truncation needs a non-empty blob read, a read's vanish a blob that was there;
    /// list's vanish counts one per vanished blob.
    [[nodiscard]] fault_counters counters() const {
        std::lock_guard lock(m_state->mutex);
        return m_state->counters;
    }

private:
    void add(detail::fault_state::scripted s) {
        if (s.n == 0) throw std::invalid_argument("[tierguard.fault_injecting.script] calls are numbered from 1");
        std::lock_guard lock(m_state->mutex);
        m_state->scripts.push_back(s);
    }

    std::shared_ptr<detail::fault_state> m_state;
};

/// A storage decorator that injects disk faults into any storage: for testing code
/// against a failing disk.
///
/// Errors are mapped as every storage maps them (detail::os_failure): EIO errc::io_error,
/// ENOSPC errc::disk_full, EACCES errc::permission_denied, the errno kept in
/// failure::os_error(), the context ending in "injected". Faults come from scripts
/// (fault_control::script, fail_call) and from seeded rates (fault_rates); latency
/// advances `Clock`, which must have advance(duration) (clock::manual shares its time
/// line between copies, so a test holds one). Silent corruption (bit_flip, truncation)
/// alters only what a read returns; damage at rest is what a visible torn write leaves.
///
/// @code
/// tierguard::clock::manual clock;
/// tierguard::storage::fault_injecting<tierguard::storage::memory_storage> disk(
///     tierguard::storage::memory_storage(), {.seed = 42, .rates = {.io_error = 0.01}}, clock);
/// auto ctl = disk.control();          // still valid after `disk` is moved into a tier
/// ctl.script(op::write, 7, fault::disk_full);
/// @endcode
///
/// Injected failures come before the inner storage checks the name. Movable (the state
/// is shared with control()), not copyable if Inner is not.
/// Thread-safe if Inner is. The fault sequence is reproducible for a given seed when the
/// calls come in the same order (one thread, or a deterministic schedule).
template <class Inner, class Clock = tierguard::clock::manual>
class fault_injecting {
    static_assert(storage_policy<Inner>,
                  "tierguard::storage::fault_injecting: Inner does not model tierguard::storage_policy (read, write, "
                  "remove, list, quarantine, clean); see docs/POLICIES.md");
    static_assert(clock_policy<Clock>,
                  "tierguard::storage::fault_injecting: Clock does not model tierguard::clock_policy; see "
                  "docs/POLICIES.md");
    static_assert(
        requires(Clock & c, typename Clock::duration d) { c.advance(d); },
        "tierguard::storage::fault_injecting: Clock needs advance(duration) to add latency (use "
        "tierguard::clock::manual); see docs/POLICIES.md");

public:
    using inner_type = Inner;
    using clock_type = Clock;
    /// As shared as Inner (a disk_tier over a shared storage keeps no index).
    static constexpr bool shared = detail::shared_storage<Inner>;
    /// Whether Inner answers contains() and held_blobs() from an index of its own
    /// (segment_log): the decorator then forwards them (see contains()).
    static constexpr bool inner_indexed = requires(const Inner& i, std::string_view n) {
        { i.contains(n) } -> std::same_as<bool>;
        i.held_blobs();
    };

    /// Wraps `inner`; `clock` receives the latency (keep a copy of a clock::manual to see it).
    explicit fault_injecting(Inner inner, const fault_config& cfg = {}, Clock clock = Clock())
        : m_inner(std::move(inner)), m_clock(std::move(clock)), m_state(std::make_shared<detail::fault_state>(cfg)) {}

    /// Inner's read, or an injected io_error / permission_denied / vanish (errc::miss, ENOENT,
    /// the blob removed), or the blob with a bit flipped or cut short.
    [[nodiscard]] result<std::vector<std::byte>> read(std::string_view name) {
        return faulted_read(name, [&] { return m_inner.read(name); });
    }

    /// Inner's peek (a read that does not mark the blob as read), where Inner has one
    /// (segment_log), with the faults of read(): it counts and is scripted as op::read, so
    /// a verifying pass suffers what it suffered when it read through read().
    [[nodiscard]] result<std::vector<std::byte>> peek(std::string_view name) const requires
        requires(const Inner& i, std::string_view n) {
        { i.peek(n) } -> std::same_as<result<std::vector<std::byte>>>;
    }
    {
        return faulted_read(name, [&] { return m_inner.peek(name); });
    }

    /// Inner's contains() and held_blobs(), where Inner has both (segment_log): never
    /// faulted nor counted, as take_evicted(). They answer from Inner's own index in memory
    /// (segment_log reads a record header only when two names share a hash tag) and have
    /// no error to report; the disk I/O they stand for is the read that follows, which is
    /// faulted. A disk tier over the decorator then keeps no index of its own, as over Inner.
    [[nodiscard]] bool contains(std::string_view name) const requires inner_indexed { return m_inner.contains(name); }
    [[nodiscard]] auto held_blobs() const requires inner_indexed { return m_inner.held_blobs(); }

    /// Inner's write, or an injected io_error / disk_full / permission_denied (inner untouched),
    /// or a torn write: EIO, after a strict prefix was written if torn writes are visible.
    result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return faulted_write(name, bytes, [&](std::span<const std::byte> b) { return m_inner.write(name, b); });
    }

    /// As write(name, bytes), through Inner's write(name, bytes, expiry), where Inner has one
    /// (storage::redis: the server drops the blob after `expiry`); a torn prefix gets the
    /// same expiry.
    result<void> write(std::string_view name, std::span<const std::byte> bytes,
                       std::chrono::milliseconds expiry) requires
        requires(Inner& i, std::string_view n, std::span<const std::byte> b, std::chrono::milliseconds e) {
        i.write(n, b, e);
    }
    {
        return faulted_write(name, bytes, [&](std::span<const std::byte> b) { return m_inner.write(name, b, expiry); });
    }

    /// Inner's remove, or an injected io_error / permission_denied (the blob stays).
    result<void> remove(std::string_view name) {
        const auto d = begin(op::remove);
        if (auto f = failing(d, op::remove, name)) return unexpected(std::move(*f));
        return m_inner.remove(name);
    }

    /// Inner's listing, or an injected io_error / permission_denied. Blobs chosen to vanish
    /// are listed, then removed from the inner storage before list() returns.
    [[nodiscard]] result<std::vector<blob_info>> list() {
        const auto d = begin(op::list);
        if (auto f = failing(d, op::list, {})) return unexpected(std::move(*f));
        auto listing = m_inner.list();
        if (!listing) return listing;
        const auto gone = m_state->vanishing(listing->size(), d.what == fault::vanish);
        std::uint64_t vanished = 0;
        for (std::size_t k = 0; k < gone.size(); ++k)
            if (gone[k] && m_inner.remove((*listing)[k].name)) ++vanished;
        if (vanished != 0) m_state->note(op::list, fault::vanish, vanished);
        return listing;
    }

    /// Inner's quarantine (a rename), or an injected io_error / disk_full / permission_denied.
    result<void> quarantine(std::string_view name, std::string_view reason, std::chrono::system_clock::time_point now) {
        const auto d = begin(op::quarantine);
        if (auto f = failing(d, op::quarantine, name)) return unexpected(std::move(*f));
        return m_inner.quarantine(name, reason, now);
    }

    /// Inner's clean, or an injected io_error / permission_denied.
    result<clean_report> clean(const clean_options& options) {
        const auto d = begin(op::clean);
        if (auto f = failing(d, op::clean, {})) return unexpected(std::move(*f));
        return m_inner.clean(options);
    }

    /// Inner's take_evicted(), where Inner has one (segment_log): never faulted, so that a
    /// disk tier over the decorator follows the blobs the inner storage evicts.
    [[nodiscard]] auto take_evicted() requires requires(Inner& i) { i.take_evicted(); }
    { return m_inner.take_evicted(); }

    /// The handle that sets faults and reads counters; valid after this decorator moves.
    [[nodiscard]] fault_control control() const { return fault_control(m_state); }

    /// The wrapped storage, to inspect or to damage behind the decorator's back.
    [[nodiscard]] Inner& inner() noexcept { return m_inner; }
    [[nodiscard]] const Inner& inner() const noexcept { return m_inner; }

private:
    // A read through `read_inner()`, or the fault injected into it.
    template <class ReadInner>
    result<std::vector<std::byte>> faulted_read(std::string_view name, ReadInner read_inner) const {
        const auto d = begin(op::read);
        if (d.what == fault::vanish) {
            if (m_inner.remove(name)) m_state->note(op::read, fault::vanish);
            return unexpected(os_failure(ENOENT, op::read, name));
        }
        if (auto f = failing(d, op::read, name)) return unexpected(std::move(*f));
        auto bytes = read_inner();
        if (!bytes || bytes->empty() || !d.what) return bytes;
        if (*d.what == fault::bit_flip) {
            const std::uint64_t bit = d.entropy % (std::uint64_t{bytes->size()} * 8);
            (*bytes)[bit / 8] ^= static_cast<std::byte>(1U << (bit % 8));
        } else {
            bytes->resize(static_cast<std::size_t>(d.entropy % bytes->size()));
        }
        m_state->note(op::read, *d.what);
        return bytes;
    }

    // A write through `write_inner(bytes)`, or the fault injected into it.
    template <class WriteInner>
    result<void> faulted_write(std::string_view name, std::span<const std::byte> bytes, WriteInner write_inner) {
        const auto d = begin(op::write);
        if (auto f = failing(d, op::write, name)) return unexpected(std::move(*f));
        if (d.what != fault::torn_write) return write_inner(bytes);
        m_state->note(op::write, fault::torn_write);
        bool visible = false;
        {
            std::lock_guard lock(m_state->mutex);
            visible = m_state->torn_writes_visible;
        }
        if (visible && !bytes.empty()) {
            const auto prefix = bytes.first(static_cast<std::size_t>(d.entropy % bytes.size()));
            if (auto ok = write_inner(prefix); !ok) return ok;
        }
        return unexpected(os_failure(EIO, op::write, name));
    }

    detail::fault_state::decision begin(op o) const {
        auto d = m_state->decide(o);
        if (d.latency != std::chrono::nanoseconds::zero())
            m_clock.advance(std::chrono::duration_cast<typename Clock::duration>(d.latency));
        return d;
    }

    [[nodiscard]] static failure os_failure(int err, op o, std::string_view name) {
        return detail::os_failure(err, to_string(o), name, "injected");
    }

    // The failure for a fault that fails the call before the inner storage is reached.
    [[nodiscard]] std::optional<failure> failing(const detail::fault_state::decision& d, op o,
                                                 std::string_view name) const {
        if (!d.what) return std::nullopt;
        int err = 0;
        switch (*d.what) {
            case fault::io_error: err = EIO; break;
            case fault::disk_full: err = ENOSPC; break;
            case fault::permission_denied: err = EACCES; break;
            default: return std::nullopt;
        }
        m_state->note(o, *d.what);
        return os_failure(err, o, name);
    }

    mutable Inner m_inner;                        // mutable: a vanish at peek() removes the blob
    [[no_unique_address]] mutable Clock m_clock;  // mutable: peek() adds latency
    std::shared_ptr<detail::fault_state> m_state;
};

static_assert(storage_policy<fault_injecting<memory_storage>>);

}  // namespace tierguard::storage
