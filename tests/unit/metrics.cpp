// The latency histogram (bucket placement, quantile estimates) and the Prometheus text
// builder, whose output is checked line by line.
#include "support/test_framework.hpp"

#include <tierguard/metrics.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using std::chrono::nanoseconds;
using tierguard::histogram_snapshot;
using tierguard::latency_histogram;
using tierguard::prometheus_text;

static_assert(!std::is_copy_constructible_v<latency_histogram>);
static_assert(!std::is_move_constructible_v<latency_histogram>);
static_assert(std::is_nothrow_invocable_v<decltype(&latency_histogram::observe), latency_histogram&, nanoseconds>);
static_assert(histogram_snapshot::bounds.front() == 1us);
static_assert(histogram_snapshot::bounds[histogram_snapshot::bucket_count - 2] == 2500ms);
static_assert(histogram_snapshot::bounds.back() == nanoseconds::max());

namespace {

// Which bucket one observation of `d` lands in.
std::size_t bucket_of(nanoseconds d) {
    latency_histogram h;
    h.observe(d);
    const histogram_snapshot s = h.snapshot();
    REQUIRE(s.count == 1);
    for (std::size_t i = 0; i < histogram_snapshot::bucket_count; ++i)
        if (s.counts[i] == 1) return i;
    FAIL("no bucket counted the observation");
    return histogram_snapshot::bucket_count;
}

// str() split at '\n'; every line must end in one.
std::vector<std::string> lines(const prometheus_text& text) {
    const std::string s = text.str();
    REQUIRE((s.empty() || s.back() == '\n'));
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t nl = s.find('\n'); nl != std::string::npos; nl = s.find('\n', start)) {
        out.emplace_back(s.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

std::string gauge_text(double value) {
    prometheus_text text;
    text.gauge("g", "h", {}, value);
    const std::vector<std::string> l = lines(text);
    REQUIRE(l.size() == 3);
    REQUIRE(l[2].starts_with("g "));
    return l[2].substr(2);
}

}  // namespace

TEST_CASE("histogram: bounds ascend and bucket placement is inclusive of the upper bound", "[metrics][histogram]") {
    const auto& b = histogram_snapshot::bounds;
    for (std::size_t i = 1; i < b.size(); ++i) REQUIRE(b[i - 1] < b[i]);

    CHECK(bucket_of(0ns) == 0);
    CHECK(bucket_of(1ns) == 0);
    CHECK(bucket_of(-5ms) == 0);
    for (std::size_t i = 0; i + 1 < histogram_snapshot::bucket_count; ++i) {
        INFO("bound " << b[i].count() << " ns");
        CHECK(bucket_of(b[i]) == i);
        CHECK(bucket_of(b[i] - 1ns) == i);
        CHECK(bucket_of(b[i] + 1ns) == i + 1);
    }
    CHECK(bucket_of(3s) == histogram_snapshot::bucket_count - 1);
    CHECK(bucket_of(nanoseconds::max()) == histogram_snapshot::bucket_count - 1);
}

TEST_CASE("histogram: count and sum are exact; a negative latency counts as 0", "[metrics][histogram]") {
    latency_histogram h;
    CHECK(h.snapshot() == histogram_snapshot{});
    h.observe(1500ns);
    h.observe(2ms);
    h.observe(-7us);
    h.observe(10s);
    const histogram_snapshot s = h.snapshot();
    CHECK(s.count == 4);
    CHECK(s.sum == 1500ns + 2ms + 10s);
    CHECK(s.counts[0] == 1);   // -7 us, as 0
    CHECK(s.counts[1] == 1);   // 1.5 us in (1, 2.5] us
    CHECK(s.counts[10] == 1);  // 2 ms in (1, 2.5] ms
    CHECK(s.counts[20] == 1);  // 10 s in +Inf
}

TEST_CASE("histogram: quantiles interpolate linearly inside the bucket", "[metrics][histogram]") {
    SECTION("empty") { CHECK(histogram_snapshot{}.quantile(0.5) == 0ns); }
    SECTION("1, 2, ..., 100 us: the (25, 50] and (50, 100] us buckets hold 25 and 50 evenly spread values") {
        latency_histogram h;
        for (int us = 1; us <= 100; ++us) h.observe(std::chrono::microseconds{us});
        const histogram_snapshot s = h.snapshot();
        CHECK(s.quantile(0.5) == 50us);
        CHECK(s.quantile(0.9) == 90us);
        CHECK(s.quantile(0.99) == 99us);
        CHECK(s.quantile(1.0) == 100us);
        CHECK(s.quantile(0.4) == 40us);
        CHECK(s.quantile(0.0) == 0us);  // lower bound of the first bucket
        CHECK(s.quantile(-1.0) == 0us);
        CHECK(s.quantile(2.0) == 100us);
        CHECK(s.quantile(std::numeric_limits<double>::quiet_NaN()) == 0us);
    }
    SECTION("all in one bucket: the estimate spreads them across it, off by at most its width") {
        latency_histogram h;
        for (int i = 0; i < 1000; ++i) h.observe(3us);
        const histogram_snapshot s = h.snapshot();
        CHECK(s.quantile(0.0) == 2500ns);
        CHECK(s.quantile(0.5) == 3750ns);
        CHECK(s.quantile(0.99) == 4975ns);
        CHECK(s.quantile(1.0) == 5us);
    }
    SECTION("empty buckets are skipped") {
        latency_histogram h;
        h.observe(1us);
        h.observe(200ms);  // (100, 250] ms
        const histogram_snapshot s = h.snapshot();
        CHECK(s.quantile(0.5) == 1us);
        CHECK(s.quantile(0.51) == 103ms);  // 100 ms + 2% of the 150 ms wide bucket
        CHECK(s.quantile(1.0) == 250ms);
        CHECK(s.quantile(0.0) == 0ns);
    }
    SECTION("the +Inf bucket answers the highest finite bound") {
        latency_histogram h;
        h.observe(1us);
        h.observe(30s);
        h.observe(40s);
        const histogram_snapshot s = h.snapshot();
        CHECK(s.quantile(0.99) == 2500ms);
        CHECK(s.quantile(0.1) == 300ns);
    }
}

TEST_CASE("prometheus: names are checked against the format's grammar", "[metrics][prometheus]") {
    CHECK(prometheus_text::valid_metric_name("tierguard_hits_total"));
    CHECK(prometheus_text::valid_metric_name("_x"));
    CHECK(prometheus_text::valid_metric_name("job:rate5m"));
    CHECK(prometheus_text::valid_metric_name("A9"));
    CHECK_FALSE(prometheus_text::valid_metric_name(""));
    CHECK_FALSE(prometheus_text::valid_metric_name("9a"));
    CHECK_FALSE(prometheus_text::valid_metric_name("a-b"));
    CHECK_FALSE(prometheus_text::valid_metric_name("a b"));
    CHECK_FALSE(prometheus_text::valid_metric_name("caf\xc3\xa9"));

    CHECK(prometheus_text::valid_label_name("tier"));
    CHECK(prometheus_text::valid_label_name("_x1"));
    CHECK_FALSE(prometheus_text::valid_label_name(""));
    CHECK_FALSE(prometheus_text::valid_label_name("__name__"));
    CHECK_FALSE(prometheus_text::valid_label_name("a:b"));
    CHECK_FALSE(prometheus_text::valid_label_name("1a"));
    CHECK_FALSE(prometheus_text::valid_label_name("a.b"));
    static_assert(prometheus_text::valid_metric_name("a_total") && !prometheus_text::valid_label_name("a:b"));
}

TEST_CASE("prometheus: an empty builder writes nothing", "[metrics][prometheus]") {
    CHECK(prometheus_text{}.str().empty());
    CHECK(prometheus_text::content_type == "text/plain; version=0.0.4; charset=utf-8");
}

TEST_CASE("prometheus: a counter", "[metrics][prometheus]") {
    prometheus_text text;
    text.counter("tierguard_hits_total", "Lookups that found a live entry.", {}, 0);
    text.counter("tierguard_hits_total", "ignored: the first help wins", {{"tier", "disk"}},
                 std::numeric_limits<std::uint64_t>::max());
    CHECK(lines(text) == std::vector<std::string>{
                             "# HELP tierguard_hits_total Lookups that found a live entry.",
                             "# TYPE tierguard_hits_total counter",
                             "tierguard_hits_total 0",
                             "tierguard_hits_total{tier=\"disk\"} 18446744073709551615",
                         });
}

TEST_CASE("prometheus: a gauge, and numbers spelt exactly", "[metrics][prometheus]") {
    prometheus_text text;
    text.gauge("tierguard_bytes", "Bytes held.", {{"tier", "memory"}, {"shard", "3"}}, 1048576.0);
    CHECK(lines(text) == std::vector<std::string>{
                             "# HELP tierguard_bytes Bytes held.",
                             "# TYPE tierguard_bytes gauge",
                             "tierguard_bytes{tier=\"memory\",shard=\"3\"} 1048576",
                         });

    CHECK(gauge_text(0.0) == "0");
    CHECK(gauge_text(-0.0) == "0");
    CHECK(gauge_text(1.0) == "1");
    CHECK(gauge_text(-2.5) == "-2.5");
    CHECK(gauge_text(0.5) == "0.5");
    CHECK(gauge_text(0.1 + 0.2) == "0.30000000000000004");
    CHECK(gauge_text(1234567.125) == "1234567.125");
    CHECK(gauge_text(123456789012345.0) == "123456789012345");
    CHECK(gauge_text(1e15) == "1e+15");
    CHECK(gauge_text(1e20) == "1e+20");
    CHECK(gauge_text(0.0001) == "0.0001");
    CHECK(gauge_text(1e-05) == "1e-05");
    CHECK(gauge_text(2.5e-06) == "2.5e-06");
    CHECK(gauge_text(std::numeric_limits<double>::min()) == "2.2250738585072014e-308");
    CHECK(gauge_text(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(gauge_text(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(gauge_text(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("prometheus: label values and help text are escaped", "[metrics][prometheus]") {
    prometheus_text text;
    text.gauge("g", "back\\slash, new\nline, \"quotes\" stay", {{"path", "C:\\tmp\n\"x\""}, {"empty", ""}}, 1);
    CHECK(lines(text) == std::vector<std::string>{
                             "# HELP g back\\\\slash, new\\nline, \"quotes\" stay",
                             "# TYPE g gauge",
                             "g{path=\"C:\\\\tmp\\n\\\"x\\\"\",empty=\"\"} 1",
                         });
}

TEST_CASE("prometheus: a histogram with labels", "[metrics][prometheus]") {
    latency_histogram h;
    h.observe(1us);     // le 1e-06
    h.observe(3us);     // le 5e-06
    h.observe(3us);     // le 5e-06
    h.observe(200us);   // le 0.00025
    h.observe(2500ms);  // le 2.5
    h.observe(3s);      // le +Inf
    prometheus_text text;
    text.histogram("tierguard_get_duration_seconds", "Latency of get().", {{"tier", "disk \"a\""}}, h.snapshot());
    const std::string l = "tierguard_get_duration_seconds_bucket{tier=\"disk \\\"a\\\"\",le=";
    CHECK(lines(text) == std::vector<std::string>{
                             "# HELP tierguard_get_duration_seconds Latency of get().",
                             "# TYPE tierguard_get_duration_seconds histogram",
                             l + "\"1e-06\"} 1",
                             l + "\"2.5e-06\"} 1",
                             l + "\"5e-06\"} 3",
                             l + "\"1e-05\"} 3",
                             l + "\"2.5e-05\"} 3",
                             l + "\"5e-05\"} 3",
                             l + "\"0.0001\"} 3",
                             l + "\"0.00025\"} 4",
                             l + "\"0.0005\"} 4",
                             l + "\"0.001\"} 4",
                             l + "\"0.0025\"} 4",
                             l + "\"0.005\"} 4",
                             l + "\"0.01\"} 4",
                             l + "\"0.025\"} 4",
                             l + "\"0.05\"} 4",
                             l + "\"0.1\"} 4",
                             l + "\"0.25\"} 4",
                             l + "\"0.5\"} 4",
                             l + "\"1\"} 4",
                             l + "\"2.5\"} 5",
                             l + "\"+Inf\"} 6",
                             "tierguard_get_duration_seconds_sum{tier=\"disk \\\"a\\\"\"} 5.500207",
                             "tierguard_get_duration_seconds_count{tier=\"disk \\\"a\\\"\"} 6",
                         });
}

TEST_CASE("prometheus: a histogram without labels", "[metrics][prometheus]") {
    prometheus_text text;
    text.histogram("d_seconds", "", {}, histogram_snapshot{});
    const std::vector<std::string> l = lines(text);
    REQUIRE(l.size() == 2 + histogram_snapshot::bucket_count + 2);
    CHECK(l[0] == "# HELP d_seconds ");
    CHECK(l[2] == "d_seconds_bucket{le=\"1e-06\"} 0");
    CHECK(l[22] == "d_seconds_bucket{le=\"+Inf\"} 0");
    CHECK(l[23] == "d_seconds_sum 0");
    CHECK(l[24] == "d_seconds_count 0");
}

TEST_CASE("prometheus: interleaved samples are grouped per family, in first-seen order", "[metrics][prometheus]") {
    latency_histogram h;
    h.observe(2s);
    prometheus_text text;
    text.counter("b_total", "B.", {{"tier", "memory"}}, 1);
    text.gauge("a", "A.", {}, 2);
    text.histogram("c_seconds", "C.", {{"op", "get"}}, h.snapshot());
    text.counter("b_total", "B.", {{"tier", "disk"}}, 3);
    text.gauge("a", "A.", {{"x", "y"}}, 4);
    text.histogram("c_seconds", "C.", {{"op", "put"}}, histogram_snapshot{});
    text.counter("b_total", "B.", {{"tier", "both"}}, 5);

    const std::vector<std::string> l = lines(text);
    std::vector<std::string> headers;
    for (const std::string& line : l)
        if (line.starts_with("#")) headers.push_back(line);
    CHECK(headers == std::vector<std::string>{"# HELP b_total B.", "# TYPE b_total counter", "# HELP a A.",
                                              "# TYPE a gauge", "# HELP c_seconds C.", "# TYPE c_seconds histogram"});
    REQUIRE(l.size() == 6 + 3 + 2 + 2 * (histogram_snapshot::bucket_count + 2));
    CHECK(l[2] == "b_total{tier=\"memory\"} 1");
    CHECK(l[3] == "b_total{tier=\"disk\"} 3");
    CHECK(l[4] == "b_total{tier=\"both\"} 5");
    CHECK(l[7] == "a 2");
    CHECK(l[8] == "a{x=\"y\"} 4");
    CHECK(l[11] == "c_seconds_bucket{op=\"get\",le=\"1e-06\"} 0");
    CHECK(l[30] == "c_seconds_bucket{op=\"get\",le=\"2.5\"} 1");
    CHECK(l[32] == "c_seconds_sum{op=\"get\"} 2");
    CHECK(l[33] == "c_seconds_count{op=\"get\"} 1");
    CHECK(l[34] == "c_seconds_bucket{op=\"put\",le=\"1e-06\"} 0");
    CHECK(l.back() == "c_seconds_count{op=\"put\"} 0");
}
