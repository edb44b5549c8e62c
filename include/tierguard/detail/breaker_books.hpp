#pragma once

// Internals shared by the stock breakers: config checks, the rate window and the
// state machine's books. Not part of the public API.

#include <tierguard/breaker/concept.hpp>
#include <tierguard/detail/spin_mutex.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tierguard {

namespace detail {

[[nodiscard]] inline unexpected<failure> bad_breaker_config(std::string what) {
    return fail(errc::invalid_argument, tier::none, std::move(what));
}

/// errc::invalid_argument unless `value` is at least 1; `what` names the setting.
[[nodiscard]] inline result<void> check_count(std::uint32_t value, std::string_view what) {
    if (value >= 1) return {};
    return bad_breaker_config(std::string(what) + " is 0; it must be at least 1");
}

/// errc::invalid_argument unless `value` is positive; `what` names the setting.
[[nodiscard]] inline result<void> check_duration(std::chrono::nanoseconds value, std::string_view what) {
    if (value > std::chrono::nanoseconds::zero()) return {};
    return bad_breaker_config(std::string(what) + " is " + std::to_string(value.count()) + " ns; it must be positive");
}

/// errc::invalid_argument unless 0 < value <= 1 (NaN fails); `what` names the setting.
[[nodiscard]] inline result<void> check_fraction(double value, std::string_view what) {
    if (value > 0.0 && value <= 1.0) return {};
    return bad_breaker_config(std::string(what) + " is " + std::to_string(value) + "; it must be a fraction in (0, 1]");
}

/// The next open period after a failed probe: doubled, at most `cap`.
[[nodiscard]] inline constexpr std::chrono::nanoseconds doubled(std::chrono::nanoseconds period,
                                                                std::chrono::nanoseconds cap) noexcept {
    if (period > cap / 2) return cap;
    return period * 2;
}

template <class TimePoint>
[[nodiscard]] std::chrono::nanoseconds since_epoch(TimePoint t) noexcept {
    return ceil_sat<std::chrono::nanoseconds>(t.time_since_epoch());
}

enum class breaker_outcome : unsigned char { success, failure, ignored };

/// Failure rate over a rolling time window kept as a ring of fixed-width buckets, with
/// running totals: recording is O(1) amortized (a bucket is cleared once per lap), reading
/// O(1) at the newest bucket and O(buckets) after a pause. A result older than the window
/// (the clock stepped back) is dropped. Not thread-safe; the breakers guard it with their lock.
class rate_window {
public:
    struct totals {
        std::uint64_t calls = 0;
        std::uint64_t failures = 0;
    };

    rate_window(std::chrono::nanoseconds bucket_width, std::size_t buckets)
        : m_width(bucket_width.count()), m_buckets(buckets) {}

    void record(std::chrono::nanoseconds now, bool failed) noexcept {
        const std::int64_t index = bucket_index(now);
        advance(index);
        if (index <= m_head - count()) return;
        totals& b = m_buckets[slot(index)];
        ++b.calls;
        ++m_totals.calls;
        if (failed) {
            ++b.failures;
            ++m_totals.failures;
        }
    }

    /// Results and failures in the window that ends at `now`.
    [[nodiscard]] totals sum(std::chrono::nanoseconds now) const noexcept {
        const std::int64_t index = bucket_index(now);
        totals t = m_totals;
        if (!m_started || index <= m_head) return t;
        const std::int64_t aged_out_last = std::min(index - count(), m_head);
        for (std::int64_t i = m_head - count() + 1; i <= aged_out_last; ++i) {
            const totals& b = m_buckets[slot(i)];
            t.calls -= b.calls;
            t.failures -= b.failures;
        }
        return t;
    }

    void clear() noexcept {
        for (totals& b : m_buckets) b = totals{};
        m_totals = totals{};
        m_started = false;
        m_head = 0;
    }

private:
    [[nodiscard]] std::int64_t count() const noexcept { return static_cast<std::int64_t>(m_buckets.size()); }

    // Kept a window's length inside int64's range, so that index +/- count() cannot overflow.
    [[nodiscard]] std::int64_t bucket_index(std::chrono::nanoseconds now) const noexcept {
        const std::int64_t t = now.count();
        const std::int64_t margin = count() + 1;
        return std::clamp(t >= 0 ? t / m_width : -((-(t + 1)) / m_width) - 1,
                          std::numeric_limits<std::int64_t>::min() + margin,
                          std::numeric_limits<std::int64_t>::max() - margin);
    }

    [[nodiscard]] std::size_t slot(std::int64_t index) const noexcept {
        return static_cast<std::size_t>(((index % count()) + count()) % count());
    }

    // Moves the newest bucket to `index`, clearing the buckets that fall out of the window.
    void advance(std::int64_t index) noexcept {
        if (m_started && index <= m_head) return;
        const std::int64_t from = !m_started || sub_sat(index, m_head) >= count() ? index - count() + 1 : m_head + 1;
        for (std::int64_t i = from; i <= index; ++i) {
            totals& b = m_buckets[slot(i)];
            m_totals.calls -= b.calls;
            m_totals.failures -= b.failures;
            b = totals{};
        }
        m_started = true;
        m_head = index;
    }

    std::int64_t m_width;
    std::vector<totals> m_buckets;
    totals m_totals;
    bool m_started = false;
    std::int64_t m_head = 0;
};

/// The state machine's memory shared by the stock breakers: state and its history,
/// counters, the corrupted-run rule, the open period and its backoff, the failure ring.
/// Not thread-safe; the breakers guard it with their lock.
class breaker_books {
public:
    breaker_books(std::uint32_t corruption_threshold, std::chrono::nanoseconds initial_open_period,
                  std::chrono::nanoseconds max_open_period, std::chrono::nanoseconds now) noexcept
        : m_corruption_threshold(corruption_threshold),
          m_initial_open_period(initial_open_period),
          m_max_open_period(max_open_period) {
        reset(now);
    }

    [[nodiscard]] breaker_state state() const noexcept { return m_state; }
    [[nodiscard]] bool forced() const noexcept { return m_forced; }
    [[nodiscard]] std::uint32_t consecutive_failures() const noexcept { return m_consecutive_failures; }

    /// Sorts a reported failure into success, counted failure or ignored, applying the
    /// corrupted-run rule, and counts it.
    [[nodiscard]] breaker_outcome classify(errc code, std::chrono::nanoseconds now) noexcept {
        if (code == errc::corrupted) {
            remember(code, now);
            if (m_corrupted_run < m_corruption_threshold) ++m_corrupted_run;
            if (m_corrupted_run >= m_corruption_threshold) {
                count_failure();
                return breaker_outcome::failure;
            }
            ++m_ignored;
            return breaker_outcome::ignored;
        }
        m_corrupted_run = 0;
        if (counts_as_failure(code)) {
            remember(code, now);
            count_failure();
            return breaker_outcome::failure;
        }
        count_success();
        return breaker_outcome::success;
    }

    void count_success() noexcept {
        m_corrupted_run = 0;
        m_consecutive_failures = 0;
        ++m_successes;
    }

    void count_allow(bool allowed) noexcept { ++(allowed ? m_admitted : m_rejected); }

    /// While open: when the open period ends (never while forced open).
    [[nodiscard]] std::chrono::nanoseconds open_until() const noexcept {
        return m_forced ? std::chrono::nanoseconds::max() : m_open_until;
    }

    /// Ends an elapsed open period: open -> half-open, dated when the period ended.
    /// Returns true if it did.
    bool refresh(std::chrono::nanoseconds now) noexcept {
        if (m_state != breaker_state::open || m_forced || now < m_open_until) return false;
        enter(breaker_state::half_open, m_open_until);
        return true;
    }

    /// Opens from closed: the open period starts again at its initial length.
    void trip(std::chrono::nanoseconds now) noexcept { open_for(m_initial_open_period, now); }

    /// Opens after a failed probe: the open period doubles, up to its cap.
    void reopen(std::chrono::nanoseconds now) noexcept { open_for(doubled(m_open_period, m_max_open_period), now); }

    /// Closes after successful probes: the backoff starts over.
    void close(std::chrono::nanoseconds now) noexcept {
        m_open_period = m_initial_open_period;
        m_consecutive_failures = 0;
        m_corrupted_run = 0;
        enter(breaker_state::closed, now);
    }

    void force_open(std::chrono::nanoseconds now) noexcept {
        m_forced = true;
        enter(breaker_state::open, now);
    }

    void force_closed(std::chrono::nanoseconds now) noexcept {
        m_forced = false;
        close(now);
    }

    void reset(std::chrono::nanoseconds now) noexcept {
        m_state = breaker_state::closed;
        m_forced = false;
        m_state_since = now;
        m_open_until = now;
        m_open_period = m_initial_open_period;
        m_consecutive_failures = 0;
        m_corrupted_run = 0;
        m_state_changes = m_opens = m_admitted = m_rejected = m_successes = m_failures = m_ignored = 0;
        m_ring_next = m_ring_size = 0;
    }

    /// Fills everything but the rate fields.
    void fill(breaker_snapshot& s, std::chrono::nanoseconds now) const {
        s.state = m_state;
        s.forced_open = m_forced;
        s.consecutive_failures = m_consecutive_failures;
        s.state_changes = m_state_changes;
        s.opens = m_opens;
        s.admitted = m_admitted;
        s.rejected = m_rejected;
        s.successes = m_successes;
        s.failures = m_failures;
        s.ignored = m_ignored;
        s.now = now;
        s.time_in_state = now > m_state_since ? sub_sat(now, m_state_since) : std::chrono::nanoseconds::zero();
        s.open_period = m_open_period;
        s.until_half_open = m_state == breaker_state::open && !m_forced && m_open_until > now
                                ? sub_sat(m_open_until, now)
                                : std::chrono::nanoseconds::zero();
        s.recent_failures.clear();
        s.recent_failures.reserve(m_ring_size);
        const std::size_t first = (m_ring_next + m_ring.size() - m_ring_size) % m_ring.size();
        for (std::size_t i = 0; i < m_ring_size; ++i) s.recent_failures.push_back(m_ring[(first + i) % m_ring.size()]);
    }

private:
    void count_failure() noexcept {
        if (m_consecutive_failures < std::numeric_limits<std::uint32_t>::max()) ++m_consecutive_failures;
        ++m_failures;
    }

    void remember(errc code, std::chrono::nanoseconds now) noexcept {
        m_ring[m_ring_next] = breaker_failure{code, now};
        m_ring_next = (m_ring_next + 1) % m_ring.size();
        if (m_ring_size < m_ring.size()) ++m_ring_size;
    }

    void open_for(std::chrono::nanoseconds period, std::chrono::nanoseconds now) noexcept {
        m_open_period = period;
        m_open_until = add_sat(now, period);
        enter(breaker_state::open, now);
    }

    void enter(breaker_state next, std::chrono::nanoseconds at) noexcept {
        if (next == m_state) return;
        m_state = next;
        m_state_since = at;
        ++m_state_changes;
        if (next == breaker_state::open) ++m_opens;
    }

    std::uint32_t m_corruption_threshold;
    std::chrono::nanoseconds m_initial_open_period;
    std::chrono::nanoseconds m_max_open_period;

    breaker_state m_state = breaker_state::closed;
    bool m_forced = false;
    std::chrono::nanoseconds m_state_since{};
    std::chrono::nanoseconds m_open_until{};
    std::chrono::nanoseconds m_open_period{};
    std::uint32_t m_consecutive_failures = 0;
    std::uint32_t m_corrupted_run = 0;
    std::uint64_t m_state_changes = 0;
    std::uint64_t m_opens = 0;
    std::uint64_t m_admitted = 0;
    std::uint64_t m_rejected = 0;
    std::uint64_t m_successes = 0;
    std::uint64_t m_failures = 0;
    std::uint64_t m_ignored = 0;
    std::array<breaker_failure, breaker_failure_history> m_ring{};
    std::size_t m_ring_next = 0;
    std::size_t m_ring_size = 0;
};

/// The stock breakers' shared machine: the lock, the clock, the books and the rate
/// window, and the operations of breaker_policy built on them. A breaker derives from
/// it and supplies the half-open policy through these hooks (called under the lock):
///   bool admit_probe(t)          may a half-open call go through?
///   void half_opened(t) const    a half-open period began (the open period ended; its
///                                state is mutable, as state() const may make this happen)
///   void probe_ignored(t)        an admitted half-open call came back ignored
///   bool probe_succeeded(t)      a half-open call succeeded; true closes the breaker
///   bool should_trip(t)          a counted failure while closed; true opens it
///   void cleared(t)              reset() ran: forget probe state
template <class Derived, class Clock>
class breaker_machine {
public:
    breaker_machine(const breaker_machine&) = delete;
    breaker_machine& operator=(const breaker_machine&) = delete;

    /// True if a call may be made now: always while closed, never while open, and as the
    /// breaker's probe policy says while half-open. Each true must be followed by one
    /// on_success() or on_failure(). Thread-safe.
    [[nodiscard]] bool allow() noexcept {
        std::lock_guard lock(m_mutex);
        const auto t = now();
        refresh(t);
        bool allowed = false;
        switch (m_books.state()) {
            case breaker_state::closed: allowed = true; break;
            case breaker_state::open: allowed = false; break;
            case breaker_state::half_open: allowed = self().admit_probe(t); break;
        }
        m_books.count_allow(allowed);
        return allowed;
    }

    /// An allowed call succeeded: ends a failure run; counts a probe. Thread-safe.
    void on_success() noexcept {
        std::lock_guard lock(m_mutex);
        const auto t = now();
        refresh(t);
        m_books.count_success();
        succeeded(t);
        publish();
    }

    /// An allowed call failed with `code`; counted as counts_as_failure() and the
    /// corrupted-run rule say (an ignored result does not enter the rate window). Thread-safe.
    void on_failure(errc code) noexcept {
        std::lock_guard lock(m_mutex);
        const auto t = now();
        refresh(t);
        switch (m_books.classify(code, t)) {
            case breaker_outcome::success: succeeded(t); break;
            case breaker_outcome::ignored:
                if (m_books.state() == breaker_state::half_open) self().probe_ignored(t);
                break;
            case breaker_outcome::failure: failed(t); break;
        }
        publish();
    }

    /// The state, after the open -> half-open transition if the open period is over.
    /// Thread-safe. While closed it takes no lock and reads no clock; while open, within
    /// the open period, it reads the clock but takes no lock.
    [[nodiscard]] breaker_state state() const noexcept {
        if (m_closed.load(std::memory_order_acquire)) return breaker_state::closed;
        const auto t = now();
        if (t.count() < m_open_until.load(std::memory_order_relaxed)) return breaker_state::open;
        std::lock_guard lock(m_mutex);
        refresh(t);
        return m_books.state();
    }

    /// State and counters; the rate covers the window since the last close. Allocates the
    /// failure list. Thread-safe.
    [[nodiscard]] breaker_snapshot snapshot() const {
        breaker_snapshot s;
        std::lock_guard lock(m_mutex);
        const auto t = now();
        refresh(t);
        m_books.fill(s, t);
        const auto totals = m_rate.sum(t);
        s.window_calls = totals.calls;
        s.window_failures = totals.failures;
        s.failure_rate =
            totals.calls == 0 ? 0.0 : static_cast<double>(totals.failures) / static_cast<double>(totals.calls);
        return s;
    }

    /// Opens now and stays open, rejecting every call, until force_closed() or reset().
    /// Thread-safe.
    void force_open() noexcept {
        std::lock_guard lock(m_mutex);
        m_books.force_open(now());
        publish();
    }

    /// Closes now and resumes normal operation: the rate window, the failure run and the
    /// backoff start over; counters and the failure history are kept. Thread-safe.
    void force_closed() noexcept {
        std::lock_guard lock(m_mutex);
        m_books.force_closed(now());
        m_rate.clear();
        publish();
    }

    /// Back to a new breaker's state: closed, every counter zero, no history. Thread-safe.
    void reset() noexcept {
        std::lock_guard lock(m_mutex);
        const auto t = now();
        m_books.reset(t);
        m_rate.clear();
        self().cleared(t);
        publish();
    }

protected:
    breaker_machine(Clock clock, std::uint32_t corruption_threshold, std::chrono::nanoseconds initial_open_period,
                    std::chrono::nanoseconds max_open_period, std::chrono::nanoseconds bucket_width,
                    std::size_t buckets)
        : m_clock(std::move(clock)),
          m_books(corruption_threshold, initial_open_period, max_open_period, now()),
          m_rate(bucket_width, buckets) {
        publish();
    }
    ~breaker_machine() = default;

    [[nodiscard]] std::chrono::nanoseconds now() const noexcept { return since_epoch(m_clock.now()); }

    /// Results and failures in the rate window ending at `t` (under the lock).
    [[nodiscard]] rate_window::totals window(std::chrono::nanoseconds t) const noexcept { return m_rate.sum(t); }

    [[nodiscard]] std::uint32_t failure_run() const noexcept { return m_books.consecutive_failures(); }

private:
    [[nodiscard]] Derived& self() noexcept { return static_cast<Derived&>(*this); }
    [[nodiscard]] const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

    // Under the lock, after anything that may close or open the breaker: what state()
    // may answer without it. Only calls close or open it; time only ends an open period.
    void publish() noexcept {
        const breaker_state st = m_books.state();
        m_open_until.store(st == breaker_state::open ? m_books.open_until().count() : never_open,
                           std::memory_order_relaxed);
        m_closed.store(st == breaker_state::closed, std::memory_order_release);
    }

    void refresh(std::chrono::nanoseconds t) const noexcept {
        if (m_books.refresh(t)) self().half_opened(t);
    }

    void succeeded(std::chrono::nanoseconds t) noexcept {
        m_rate.record(t, false);
        if (m_books.state() == breaker_state::half_open && self().probe_succeeded(t)) {
            m_books.close(t);
            m_rate.clear();
        }
    }

    void failed(std::chrono::nanoseconds t) noexcept {
        m_rate.record(t, true);
        switch (m_books.state()) {
            case breaker_state::closed:
                if (self().should_trip(t)) m_books.trip(t);
                break;
            case breaker_state::half_open: m_books.reopen(t); break;
            case breaker_state::open: break;
        }
    }

    Clock m_clock;
    // mutable: state() and snapshot() make the time-driven open -> half-open transition they report.
    mutable spin_mutex m_mutex;
    mutable breaker_books m_books;
    mutable rate_window m_rate;
    // Published by publish(), for state() without the lock: m_books.state() == closed,
    // and while open the end of the open period (ns since the clock's epoch).
    static constexpr std::chrono::nanoseconds::rep never_open =
        std::numeric_limits<std::chrono::nanoseconds::rep>::min();
    std::atomic<bool> m_closed{false};
    std::atomic<std::chrono::nanoseconds::rep> m_open_until{never_open};
};

}  // namespace detail
}  // namespace tierguard
