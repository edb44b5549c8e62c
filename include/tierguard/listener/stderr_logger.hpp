#pragma once

#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/detail/spin_mutex.hpp>
#include <tierguard/detail/ttl.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/result.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace tierguard::listener {

/// A stderr_logger's counters for one event kind.
struct log_counts {
    std::uint64_t logged = 0;      ///< lines written
    std::uint64_t suppressed = 0;  ///< events withheld by the rate limit (reported or not yet)
};

/// A stderr_logger's counters, per kind and in total.
struct stderr_logger_snapshot {
    std::array<log_counts, event_kind_count> per_kind{};

    /// The counters of one kind (all zero for a kind out of range).
    [[nodiscard]] log_counts of(event_kind k) const noexcept {
        const auto i = static_cast<std::size_t>(k);
        return i < per_kind.size() ? per_kind[i] : log_counts{};
    }

    /// The counters summed over every kind.
    [[nodiscard]] log_counts total() const noexcept {
        log_counts sum;
        for (const auto& c : per_kind) {
            sum.logged += c.logged;
            sum.suppressed += c.suppressed;
        }
        return sum;
    }
};

/// A listener that writes one line per event to a FILE*, rate-limited per event kind:
///
///     tierguard: <kind> in <tier> tier: <detail>[: <cause message>][ (N similar events suppressed)]
///
/// Rate limit: each kind has its own window, which opens at the first event of that kind
/// after the previous window ended and lasts `interval` on the Clock (a clock that steps
/// back opens a new one). A window writes at most `burst` lines; the events beyond are
/// counted, and the next line written for that kind reports how many there were. Counts
/// not yet reported are in snapshot() (suppressed), not in the log.
///
/// Each line is written with one fwrite (stdio locks the stream, so lines of concurrent
/// events do not interleave) and is not flushed. A line is under 1 KiB: the detail and
/// the cause's message are cut at 300 bytes each, marked "...", and control characters
/// in them become spaces, so an event is always one line.
///
/// Copies share their settings, clock and counters (the cache hands copies to its
/// tiers); a move copies, so a moved-from logger still works.
///
/// Thread-safety: on_event and snapshot may be called concurrently on any copies; they
/// take one short per-logger lock (the line is formatted and written outside it).
/// on_event never throws; an event that is not written costs no allocation, and one
/// that is written allocates only to render its cause's message().
///
/// @code
/// struct my_policies : tierguard::disk_defaults {
///     using listener = tierguard::listener::stderr_logger<>;
/// };
/// @endcode
template <class Clock = tierguard::clock::steady>
class stderr_logger {
public:
    static_assert(clock_policy<Clock>,
                  "tierguard::listener::stderr_logger: Clock does not model tierguard::clock_policy "
                  "(it needs time_point, duration and a noexcept const now()); see docs/POLICIES.md");

    using clock_type = Clock;

    /// Run-time settings; validate() says which one is out of range.
    struct config {
        /// Lines written per kind per window.
        std::uint32_t burst = 5;
        /// Length of a kind's window.
        std::chrono::nanoseconds interval = std::chrono::seconds{10};
        /// Where lines go; the caller keeps it open for the logger's lifetime.
        std::FILE* stream = stderr;
    };

    /// Checks a configuration: errc::invalid_argument naming the first bad setting.
    [[nodiscard]] static result<void> validate(const config& cfg) {
        if (cfg.burst == 0)
            return fail(errc::invalid_argument, tier::none, "stderr_logger config.burst is 0; it must be at least 1");
        if (cfg.interval <= std::chrono::nanoseconds::zero())
            return fail(errc::invalid_argument, tier::none,
                        "stderr_logger config.interval is " + std::to_string(cfg.interval.count()) +
                            " ns; it must be positive");
        if (cfg.stream == nullptr)
            return fail(errc::invalid_argument, tier::none, "stderr_logger config.stream is a null FILE*");
        return {};
    }

    /// A logger to stderr with the default settings.
    stderr_logger() : stderr_logger(config{}) {}

    /// Throws std::invalid_argument (what() is the failure's message) if validate(cfg) fails.
    explicit stderr_logger(const config& cfg, Clock clock = Clock())
        : m_state(std::make_shared<state>(checked(cfg), std::move(clock))) {}

    stderr_logger(const stderr_logger&) = default;
    stderr_logger& operator=(const stderr_logger&) = default;
    ~stderr_logger() = default;

    /// Writes the event's line unless its kind's window is full; ignores a kind out of
    /// range. Never throws. Thread-safe.
    void on_event(const event& e) noexcept {
        const auto k = static_cast<std::size_t>(e.kind);
        if (k >= event_kind_count) return;
        std::uint64_t reported = 0;
        {
            std::lock_guard lock(m_state->mutex);
            if (!m_state->admit(k, reported)) return;
        }
        write_line(m_state->cfg.stream, e, reported);
    }

    /// The counters of every copy of this logger. Thread-safe.
    [[nodiscard]] stderr_logger_snapshot snapshot() const noexcept {
        std::lock_guard lock(m_state->mutex);
        return m_state->counts;
    }

    /// The settings it was built with.
    [[nodiscard]] const config& settings() const noexcept { return m_state->cfg; }

private:
    static constexpr std::size_t max_field = 300;
    static constexpr std::size_t line_capacity = 1024;

    struct window {
        typename Clock::time_point start{};
        std::uint32_t lines = 0;
        std::uint64_t unreported = 0;
        bool open = false;
    };

    struct state {
        state(const config& c, Clock clk) : cfg(c), clock(std::move(clk)) {}

        // True if kind k may write a line now; `reported` is then the count to report.
        bool admit(std::size_t k, std::uint64_t& reported) noexcept {
            window& w = windows[k];
            const auto t = clock.now();  // read under the lock, so windows only open forwards
            if (!w.open || t < w.start || detail::elapsed_sat(w.start, t) >= cfg.interval) {
                w.start = t;
                w.lines = 0;
                w.open = true;
            }
            if (w.lines >= cfg.burst) {
                ++w.unreported;
                ++counts.per_kind[k].suppressed;
                return false;
            }
            ++w.lines;
            ++counts.per_kind[k].logged;
            reported = std::exchange(w.unreported, 0);
            return true;
        }

        const config cfg;
        const Clock clock;
        detail::spin_mutex mutex;
        std::array<window, event_kind_count> windows{};
        stderr_logger_snapshot counts;
    };

    static const config& checked(const config& cfg) {
        if (auto ok = validate(cfg); !ok) throw std::invalid_argument(ok.error().message());
        return cfg;
    }

    static int clipped(std::string_view s) noexcept { return static_cast<int>(std::min(s.size(), max_field)); }
    static const char* chars(std::string_view s) noexcept { return s.data() != nullptr ? s.data() : ""; }
    static const char* ellipsis(std::string_view s) noexcept { return s.size() > max_field ? "..." : ""; }

    static void write_line(std::FILE* out, const event& e, std::uint64_t reported) noexcept {
        std::string message;
        std::string_view cause;
        if (e.cause != nullptr) {
            try {
                message = e.cause->message();
                cause = message;
            } catch (...) {
                cause = to_string(e.cause->code());  // out of memory: the code's name still says what
            }
        }
        const std::string_view kind = to_string(e.kind);
        const std::string_view where = to_string(e.where);

        std::array<char, 64> suffix{};  // fits the largest count
        if (reported > 0)
            std::snprintf(suffix.data(), suffix.size(), " (%llu similar events suppressed)",
                          static_cast<unsigned long long>(reported));

        // The fields are clipped, so the line never reaches the buffer's end; were it to,
        // snprintf cuts it and the newline still fits.
        std::array<char, line_capacity> line;
        const int n = std::snprintf(line.data(), line.size(), "tierguard: %.*s in %.*s tier: %.*s%s%s%.*s%s%s",
                                    clipped(kind), chars(kind), clipped(where), chars(where), clipped(e.detail),
                                    chars(e.detail), ellipsis(e.detail), e.cause != nullptr ? ": " : "", clipped(cause),
                                    chars(cause), ellipsis(cause), suffix.data());
        if (n < 0) return;
        auto len = std::min(static_cast<std::size_t>(n), line.size() - 1);
        for (std::size_t i = 0; i < len; ++i) {
            const auto c = static_cast<unsigned char>(line[i]);
            if (c < 0x20 || c == 0x7f) line[i] = ' ';
        }
        line[len++] = '\n';  // len <= capacity - 1, so the newline fits
        static_cast<void>(std::fwrite(line.data(), 1, len, out));
    }

    std::shared_ptr<state> m_state;
};

static_assert(listener_policy<stderr_logger<>>);

}  // namespace tierguard::listener
