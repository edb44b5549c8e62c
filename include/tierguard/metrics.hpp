#pragma once

#include <tierguard/detail/build_requirements.hpp>

/// Latency histograms and a Prometheus text exposition builder, for a cache's metrics.

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace tierguard {

/// A latency_histogram's counts at one instant; a plain value, free to copy and compare.
///
/// Bucket i counts observations d with bounds[i-1] < d <= bounds[i] (bounds[-1] being 0),
/// the way Prometheus's `le` reads. The last bound, nanoseconds::max(), stands for +Inf.
struct histogram_snapshot {
    static constexpr std::size_t bucket_count = 21;

    /// Upper bounds, inclusive: 1, 2.5, 5, 10, 25, 50, 100, 250, 500 us, 1, 2.5, 5, 10, 25,
    /// 50, 100, 250, 500 ms, 1, 2.5 s, +Inf.
    static constexpr std::array<std::chrono::nanoseconds, bucket_count> bounds{
        std::chrono::nanoseconds{1'000},         std::chrono::nanoseconds{2'500},
        std::chrono::nanoseconds{5'000},         std::chrono::nanoseconds{10'000},
        std::chrono::nanoseconds{25'000},        std::chrono::nanoseconds{50'000},
        std::chrono::nanoseconds{100'000},       std::chrono::nanoseconds{250'000},
        std::chrono::nanoseconds{500'000},       std::chrono::nanoseconds{1'000'000},
        std::chrono::nanoseconds{2'500'000},     std::chrono::nanoseconds{5'000'000},
        std::chrono::nanoseconds{10'000'000},    std::chrono::nanoseconds{25'000'000},
        std::chrono::nanoseconds{50'000'000},    std::chrono::nanoseconds{100'000'000},
        std::chrono::nanoseconds{250'000'000},   std::chrono::nanoseconds{500'000'000},
        std::chrono::nanoseconds{1'000'000'000}, std::chrono::nanoseconds{2'500'000'000},
        std::chrono::nanoseconds::max(),
    };

    /// Observations per bucket, not cumulative.
    std::array<std::uint64_t, bucket_count> counts{};
    /// Total observations; always the sum of `counts`.
    std::uint64_t count = 0;
    /// Sum of all observed latencies.
    std::chrono::nanoseconds sum{};

    /// Estimates the q-quantile (q in [0, 1], clamped; NaN reads as 0) by linear
    /// interpolation inside the bucket that holds it, assuming its observations spread
    /// evenly between the bucket's bounds, as Prometheus's histogram_quantile() does. The
    /// error is therefore at most that bucket's width. Answers 2.5 s, the highest finite
    /// bound, when the quantile falls in the +Inf bucket, and 0 for an empty histogram.
    /// q = 0 answers the lower bound of the first non-empty bucket. O(bucket_count).
    [[nodiscard]] std::chrono::nanoseconds quantile(double q) const noexcept {
        if (count == 0) return std::chrono::nanoseconds::zero();
        q = q > 0.0 ? std::min(q, 1.0) : 0.0;
        const double rank = q * static_cast<double>(count);
        std::uint64_t below = 0;
        for (std::size_t i = 0; i < bucket_count; ++i) {
            const std::uint64_t here = counts[i];
            if (here != 0 && static_cast<double>(below + here) >= rank) {
                if (i == bucket_count - 1) return bounds[i - 1];
                const double lower = i == 0 ? 0.0 : static_cast<double>(bounds[i - 1].count());
                const double upper = static_cast<double>(bounds[i].count());
                const double fraction =
                    std::clamp((rank - static_cast<double>(below)) / static_cast<double>(here), 0.0, 1.0);
                return std::chrono::nanoseconds{std::llround(lower + (upper - lower) * fraction)};
            }
            below += here;
        }
        return bounds[bucket_count - 2];  // unreachable while count is the sum of counts
    }

    friend bool operator==(const histogram_snapshot&, const histogram_snapshot&) = default;
};

/// A histogram of operation latencies over histogram_snapshot::bounds.
///
/// Lock-free: observe() is two relaxed atomic adds, safe from any number of threads at once
/// and alongside snapshot(). Neither copyable nor movable (it holds atomics in place); copy
/// its snapshot() instead. Counts wrap after 2^64 observations; the sum is meaningful up to
/// 2^63 ns in total (292 years).
class latency_histogram {
public:
    latency_histogram() noexcept = default;
    latency_histogram(const latency_histogram&) = delete;
    latency_histogram& operator=(const latency_histogram&) = delete;

    /// Records one latency; a negative one counts as 0. O(log bucket_count), never throws
    /// or allocates. Thread-safe.
    void observe(std::chrono::nanoseconds latency) noexcept {
        if (latency < std::chrono::nanoseconds::zero()) latency = std::chrono::nanoseconds::zero();
        const auto& b = histogram_snapshot::bounds;
        const auto i = static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), latency) - b.begin());
        m_counts[i].fetch_add(1, std::memory_order_relaxed);
        m_sum_ns.fetch_add(static_cast<std::uint64_t>(latency.count()), std::memory_order_relaxed);
    }

    /// The counts so far. Exact once no observe() is in flight (e.g. after joining the
    /// observing threads); during concurrent observe() calls each bucket is read once, so
    /// `count` still equals the sum of `counts`, but `sum` may include or miss observations
    /// in flight. Thread-safe.
    [[nodiscard]] histogram_snapshot snapshot() const noexcept {
        histogram_snapshot s;
        for (std::size_t i = 0; i < histogram_snapshot::bucket_count; ++i) {
            s.counts[i] = m_counts[i].load(std::memory_order_relaxed);
            s.count += s.counts[i];
        }
        s.sum = std::chrono::nanoseconds{static_cast<std::int64_t>(m_sum_ns.load(std::memory_order_relaxed))};
        return s;
    }

private:
    static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
    std::array<std::atomic<std::uint64_t>, histogram_snapshot::bucket_count> m_counts{};
    std::atomic<std::uint64_t> m_sum_ns{0};
};

namespace detail {

[[nodiscard]] constexpr bool prometheus_name_char(char c, bool first, bool colon) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

inline void append_number(std::string& out, std::uint64_t value) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, r.ptr);
}

// The shortest text that reads back as the same double, in fixed notation unless the value
// is below 1e-4 or from 1e15 in magnitude: integral values print as integers, and
// histogram bounds the way Go's strconv.FormatFloat(v, 'g', -1, 64) prints them (0.0001,
// 1e-05), so `le` labels match those of Prometheus's own client. NaN, +Inf, -Inf spelt as
// the format wants; -0 prints as 0.
inline void append_number(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
    } else if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
    } else {
        if (value == 0.0) value = 0.0;
        const double magnitude = std::fabs(value);
        const auto format = magnitude != 0.0 && (magnitude < 1e-4 || magnitude >= 1e15) ? std::chars_format::scientific
                                                                                        : std::chars_format::fixed;
        char buf[32];
        const auto r = std::to_chars(buf, buf + sizeof buf, value, format);
        out.append(buf, r.ptr);
    }
}

// Escapes backslash and newline, and double quote too when `quote`.
inline void append_escaped(std::string& out, std::string_view text, bool quote) {
    for (const char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '"' && quote) {
            out += "\\\"";
        } else {
            out += c;
        }
    }
}

}  // namespace detail

/// Builds a Prometheus text exposition (format version 0.0.4).
///
/// Samples of one family may be added at any point and in any order; str() writes each
/// family once, with its `# HELP` and `# TYPE` lines and its samples in the order they were
/// added, families in the order they were first seen. A family's first call sets its help
/// text. Not thread-safe: build it from one thread, e.g. inside a scrape handler.
///
/// Preconditions, checked by assert() in debug builds (a release build writes the names as
/// given and the exposition is then invalid, which `promtool check metrics` reports):
/// - metric names match [a-zA-Z_:][a-zA-Z0-9_:]* (valid_metric_name), counter names end in
///   `_total`, and one name is used with one kind only;
/// - label names match [a-zA-Z_][a-zA-Z0-9_]* without a leading `__` (valid_label_name),
///   are unique within a sample, and histograms do not take `le`.
/// Not checked: that no two samples of a family have the same labels, and that a histogram
/// `x` does not clash with another family named `x_bucket`, `x_sum` or `x_count`.
class prometheus_text {
public:
    /// One label of a sample. Values are any UTF-8 text; they are escaped on output.
    struct label {
        std::string_view name;
        std::string_view value;
    };

    /// The HTTP Content-Type of str()'s text.
    static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

    /// Whether `name` is a valid metric name.
    [[nodiscard]] static constexpr bool valid_metric_name(std::string_view name) noexcept {
        if (name.empty()) return false;
        for (std::size_t i = 0; i < name.size(); ++i)
            if (!detail::prometheus_name_char(name[i], i == 0, true)) return false;
        return true;
    }

    /// Whether `name` is a valid label name a user may set (not reserved by a leading `__`).
    [[nodiscard]] static constexpr bool valid_label_name(std::string_view name) noexcept {
        if (name.empty() || name.starts_with("__")) return false;
        for (std::size_t i = 0; i < name.size(); ++i)
            if (!detail::prometheus_name_char(name[i], i == 0, false)) return false;
        return true;
    }

    /// Adds a counter sample `name{labels} value`. `name` must end in `_total`.
    void counter(std::string_view name, std::string_view help, std::initializer_list<label> labels,
                 std::uint64_t value) {
        assert(name.ends_with("_total"));
        std::string& out = sample(family_for(name, help, kind::counter), name, {}, labels);
        detail::append_number(out, value);
        out += '\n';
    }

    /// Adds a gauge sample `name{labels} value`; NaN and infinities are allowed.
    void gauge(std::string_view name, std::string_view help, std::initializer_list<label> labels, double value) {
        std::string& out = sample(family_for(name, help, kind::gauge), name, {}, labels);
        detail::append_number(out, value);
        out += '\n';
    }

    /// Adds a histogram's samples: `name_bucket{labels,le="..."}` for every bound, cumulative
    /// and in seconds, ending with le="+Inf"; then `name_sum` in seconds and `name_count`.
    /// Name it in seconds, e.g. `tierguard_get_duration_seconds`.
    void histogram(std::string_view name, std::string_view help, std::initializer_list<label> labels,
                   const histogram_snapshot& h) {
        family& f = family_for(name, help, kind::histogram);
        const std::string bucket = std::string(name) + "_bucket";
        std::uint64_t cumulative = 0;
        std::string le;
        for (std::size_t i = 0; i < histogram_snapshot::bucket_count; ++i) {
            cumulative += h.counts[i];
            le.clear();
            if (i == histogram_snapshot::bucket_count - 1) {
                le = "+Inf";
            } else {
                detail::append_number(le, seconds(h.bounds[i]));
            }
            std::string& out = sample(f, bucket, label{"le", le}, labels);
            detail::append_number(out, cumulative);
            out += '\n';
        }
        std::string& sum = sample(f, std::string(name) + "_sum", {}, labels);
        detail::append_number(sum, seconds(h.sum));
        sum += '\n';
        std::string& count = sample(f, std::string(name) + "_count", {}, labels);
        detail::append_number(count, h.count);
        count += '\n';
    }

    /// The exposition: every line ends in '\n'; empty if nothing was added. O(size).
    [[nodiscard]] std::string str() const {
        std::string out;
        for (const family& f : m_families) {
            out += "# HELP ";
            out += f.name;
            out += ' ';
            detail::append_escaped(out, f.help, false);
            out += "\n# TYPE ";
            out += f.name;
            out += f.type == kind::counter ? " counter\n" : f.type == kind::gauge ? " gauge\n" : " histogram\n";
            out += f.samples;
        }
        return out;
    }

private:
    enum class kind : unsigned char { counter, gauge, histogram };

    struct family {
        std::string name;
        std::string help;
        kind type;
        std::string samples;
    };

    static double seconds(std::chrono::nanoseconds d) noexcept { return static_cast<double>(d.count()) / 1e9; }

    // Linear in the number of families, which an exposition keeps small.
    family& family_for(std::string_view name, std::string_view help, kind type) {
        assert(valid_metric_name(name));
        for (family& f : m_families) {
            if (f.name == name) {
                assert(f.type == type);
                return f;
            }
        }
        return m_families.emplace_back(family{std::string(name), std::string(help), type, {}});
    }

    // Writes `name{labels,extra} ` and returns where the value goes.
    static std::string& sample(family& f, std::string_view name, label extra, std::initializer_list<label> labels) {
        std::string& out = f.samples;
        out += name;
        if (labels.size() != 0 || !extra.name.empty()) {
            char sep = '{';
            for (const label& l : labels) {
                assert(valid_label_name(l.name));
                assert(l.name != extra.name);
                assert(std::count_if(labels.begin(), labels.end(), [&](const label& o) { return o.name == l.name; }) ==
                       1);
                out += sep;
                append_label(out, l);
                sep = ',';
            }
            if (!extra.name.empty()) {
                out += sep;
                append_label(out, extra);
            }
            out += '}';
        }
        out += ' ';
        return out;
    }

    static void append_label(std::string& out, const label& l) {
        out += l.name;
        out += "=\"";
        detail::append_escaped(out, l.value, true);
        out += '"';
    }

    std::vector<family> m_families;
};

}  // namespace tierguard
