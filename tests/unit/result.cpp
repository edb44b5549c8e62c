#include "support/test_framework.hpp"

#include <tierguard/result.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using tierguard::errc;
using tierguard::expected;
using tierguard::failure;
using tierguard::result;
using tierguard::tier;
using tierguard::unexpected;

result<int> good(int v) { return v; }
result<int> bad(errc code = errc::miss, std::string context = "key 42") {
    return tierguard::fail(code, tier::memory, std::move(context));
}

// A value type without a default constructor.
struct no_default {
    explicit no_default(int v) : value(v) {}
    int value;
    friend bool operator==(const no_default&, const no_default&) = default;
};

// Records every live object by address, so that a leak, a double destruction or a
// destruction of something never constructed shows up in the counters.
template <int Tag>
struct tracked {
    static inline std::set<const void*> live;
    static inline int constructions = 0;
    static inline int destructions = 0;
    static inline int anomalies = 0;  // double construction at one address, or a stray destruction

    static void reset() {
        live.clear();
        constructions = 0;
        destructions = 0;
        anomalies = 0;
    }

    explicit tracked(int v) : value(v) { on_construct(); }
    tracked(const tracked& other) : value(other.value) { on_construct(); }
    tracked(tracked&& other) noexcept : value(other.value) {
        other.value = -1;
        on_construct();
    }
    tracked& operator=(const tracked& other) {
        value = other.value;
        return *this;
    }
    tracked& operator=(tracked&& other) noexcept {
        value = other.value;
        other.value = -1;
        return *this;
    }
    ~tracked() {
        if (live.erase(this) != 1) ++anomalies;
        ++destructions;
    }

    friend bool operator==(const tracked& a, const tracked& b) { return a.value == b.value; }

    int value;

private:
    void on_construct() {
        if (!live.insert(this).second) ++anomalies;
        ++constructions;
    }
};
using tracked_value = tracked<0>;
using tracked_error = tracked<1>;

}  // namespace

TEST_CASE("result: type traits and compile-time properties", "[result]") {
    STATIC_REQUIRE(std::is_same_v<result<int>, expected<int, failure>>);
    STATIC_REQUIRE(std::is_same_v<result<int>::value_type, int>);
    STATIC_REQUIRE(std::is_same_v<result<int>::error_type, failure>);
    STATIC_REQUIRE(std::is_same_v<result<int>::unexpected_type, unexpected<failure>>);
    STATIC_REQUIRE(std::is_same_v<result<int>::rebind<long>, result<long>>);
    STATIC_REQUIRE(std::is_same_v<result<void>::value_type, void>);
    STATIC_REQUIRE(std::is_same_v<result<void>::error_type, failure>);

    // operator bool is explicit.
    STATIC_REQUIRE(!std::is_convertible_v<result<int>, bool>);
    STATIC_REQUIRE(std::is_constructible_v<bool, result<int>>);
    STATIC_REQUIRE(!std::is_convertible_v<result<void>, bool>);
    STATIC_REQUIRE(std::is_constructible_v<bool, result<void>>);

    // Value categories of the accessors.
    STATIC_REQUIRE(std::is_same_v<decltype(*std::declval<result<int>&>()), int&>);
    STATIC_REQUIRE(std::is_same_v<decltype(*std::declval<const result<int>&>()), const int&>);
    STATIC_REQUIRE(std::is_same_v<decltype(*std::declval<result<int>&&>()), int&&>);
    STATIC_REQUIRE(std::is_same_v<decltype(*std::declval<const result<int>&&>()), const int&&>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<result<int>&>().value()), int&>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<const result<int>&>().value()), const int&>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<result<int>&&>().value()), int&&>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<const result<int>&&>().value()), const int&&>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<result<int>&>().error()), failure&>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<const result<int>&>().error()), const failure&>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<result<int>&&>().error()), failure&&>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<result<int>&>().operator->()), int*>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<const result<int>&>().operator->()), const int*>);
    STATIC_REQUIRE(std::is_same_v<decltype(std::declval<result<int>&>().value_or(1)), int>);

    // Implicit where the underlying conversion is implicit, explicit otherwise.
    STATIC_REQUIRE(std::is_convertible_v<int, result<int>>);
    STATIC_REQUIRE(std::is_convertible_v<const char*, result<std::string>>);
    STATIC_REQUIRE(std::is_constructible_v<expected<no_default, failure>, int>);
    STATIC_REQUIRE(!std::is_convertible_v<int, expected<no_default, failure>>);
    STATIC_REQUIRE(!std::is_constructible_v<result<int>, std::string>);
    STATIC_REQUIRE(std::is_convertible_v<unexpected<failure>, result<int>>);
    STATIC_REQUIRE(std::is_convertible_v<const unexpected<failure>&, result<int>>);
    STATIC_REQUIRE(std::is_convertible_v<unexpected<failure>, result<void>>);
    STATIC_REQUIRE(!std::is_constructible_v<result<int>, unexpected<std::string>>);
    STATIC_REQUIRE(!std::is_convertible_v<std::in_place_t, result<int>>);

    STATIC_REQUIRE(std::is_default_constructible_v<result<int>>);
    STATIC_REQUIRE(std::is_default_constructible_v<result<void>>);
    STATIC_REQUIRE(std::is_nothrow_move_constructible_v<result<std::string>>);
}

namespace {
constexpr bool constexpr_round_trip() {
    expected<int, int> e(5);
    if (!e.has_value() || *e != 5 || e.value() != 5 || e.value_or(1) != 5) return false;
    expected<int, int> u(tierguard::unexpect, 3);
    if (u.has_value() || u.error() != 3 || u.value_or(1) != 1 || u.error_or(0) != 3) return false;
    const auto doubled = e.transform([](int v) { return v * 2; });
    if (!(doubled == 10)) return false;
    const auto chained = u.and_then([](int v) { return expected<int, int>(v + 1); });
    return chained == unexpected(3);
}
}  // namespace

TEST_CASE("result: usable in constant expressions", "[result]") { STATIC_REQUIRE(constexpr_round_trip()); }

TEST_CASE("result: has_value, operator bool, operator* and operator->", "[result]") {
    SECTION("default construction value-initializes the value") {
        const result<int> r;
        REQUIRE(r.has_value());
        REQUIRE(*r == 0);
        const result<std::string> s;
        REQUIRE(s.has_value());
        REQUIRE(s->empty());
    }
    SECTION("value state") {
        result<int> r = good(7);
        REQUIRE(r.has_value());
        REQUIRE(static_cast<bool>(r));
        bool branch_taken = false;
        if (r) branch_taken = true;
        REQUIRE(branch_taken);
        REQUIRE(*r == 7);
        *r = 8;
        REQUIRE(*r == 8);
        REQUIRE(r.value() == 8);
    }
    SECTION("error state") {
        const result<int> r = bad(errc::timeout);
        REQUIRE_FALSE(r.has_value());
        REQUIRE_FALSE(static_cast<bool>(r));
        REQUIRE(!r);
        REQUIRE(r.error().code() == errc::timeout);
        REQUIRE(r.error().where() == tier::memory);
        REQUIRE(r.error().context() == "key 42");
    }
    SECTION("operator-> reaches members, const and non-const") {
        result<std::string> s("abc");
        REQUIRE(s->size() == 3u);
        s->push_back('d');
        const result<std::string>& cs = s;
        REQUIRE(cs->size() == 4u);
        REQUIRE(*cs == "abcd");
        REQUIRE(cs.operator->() == &*s);
    }
    SECTION("error() is mutable through a non-const lvalue") {
        result<int> r = bad(errc::miss, "old");
        r.error() = failure(errc::corrupted, tier::disk, "new");
        REQUIRE(r.error().code() == errc::corrupted);
        REQUIRE(r.error().where() == tier::disk);
        REQUIRE(r.error().context() == "new");
    }
    SECTION("error() on an rvalue moves the failure out") {
        result<int> r = bad(errc::io_error, std::string(64, 'c'));
        failure taken = std::move(r).error();
        REQUIRE(taken.code() == errc::io_error);
        REQUIRE(taken.context() == std::string(64, 'c'));
    }
}

TEST_CASE("result: value() returns the value or throws bad_expected_access", "[result]") {
    SECTION("value state: every overload returns the value") {
        result<int> r = good(5);
        REQUIRE(r.value() == 5);
        REQUIRE(&r.value() == &*r);
        const result<int>& cr = r;
        REQUIRE(cr.value() == 5);
        REQUIRE(&cr.value() == &*r);
        r.value() = 6;
        REQUIRE(*r == 6);
        REQUIRE(std::move(r).value() == 6);
        REQUIRE_NOTHROW(cr.value());
    }
    SECTION("error state: throws bad_expected_access<failure> carrying the failure") {
        const std::error_code os = std::make_error_code(std::errc::no_space_on_device);
        const result<int> r = tierguard::fail(errc::disk_full, tier::disk, "writing 4096 bytes", os);
        bool thrown = false;
        try {
            (void)r.value();
        } catch (const tierguard::bad_expected_access<failure>& e) {
            thrown = true;
            const std::string what = e.what();
            INFO("what(): " << what);
            CHECK(what.find("[tierguard.disk_full]") != std::string::npos);
            CHECK(what.rfind("[tierguard.disk_full] disk tier: writing 4096 bytes", 0) == 0);
            CHECK(what.find(os.message()) != std::string::npos);
            CHECK(what == r.error().message());
            CHECK(e.error().code() == errc::disk_full);
            CHECK(e.error() == errc::disk_full);
            CHECK(e.error().where() == tier::disk);
            CHECK(e.error().context() == "writing 4096 bytes");
            CHECK(e.error().os_error() == os);
        }
        REQUIRE(thrown);
        // The failure was copied into the exception, not moved out of a const result.
        REQUIRE(r.error().context() == "writing 4096 bytes");
    }
    SECTION("every value category of value() throws") {
        result<int> r = bad(errc::expired);
        const result<int>& cr = r;
        REQUIRE_THROWS_AS(r.value(), tierguard::bad_expected_access<failure>);
        REQUIRE_THROWS_AS(cr.value(), tierguard::bad_expected_access<failure>);
        REQUIRE_THROWS_AS(std::move(cr).value(), tierguard::bad_expected_access<failure>);
        REQUIRE_THROWS_AS(std::move(r).value(), tierguard::bad_expected_access<failure>);
        // bad_expected_access is a std::exception, so generic handlers catch it.
        REQUIRE_THROWS_AS(cr.value(), std::exception);
    }
    SECTION("the thrown error can be moved out of the exception") {
        result<int> r = bad(errc::loader_failed, "loader said no");
        try {
            (void)r.value();
            FAIL("value() did not throw");
        } catch (tierguard::bad_expected_access<failure>& e) {
            failure f = std::move(e).error();
            CHECK(f.code() == errc::loader_failed);
            CHECK(f.context() == "loader said no");
        }
    }
    SECTION("an error type without message() gets a generic, non-empty what()") {
        const expected<int, int> e(tierguard::unexpect, 42);
        bool thrown = false;
        try {
            (void)e.value();
        } catch (const tierguard::bad_expected_access<int>& ex) {
            thrown = true;
            CHECK(ex.error() == 42);
            CHECK(std::string(ex.what()).empty() == false);
        }
        REQUIRE(thrown);
    }
}

TEST_CASE("result: value_or and error_or", "[result]") {
    SECTION("value_or on an lvalue copies and leaves the source intact") {
        const result<std::string> v("held");
        REQUIRE(v.value_or("fallback") == "held");
        REQUIRE(*v == "held");
        const result<std::string> e = tierguard::fail(errc::miss, tier::memory);
        REQUIRE(e.value_or("fallback") == "fallback");
        REQUIRE(good(3).value_or(9) == 3);
        const result<int> b = bad();
        REQUIRE(b.value_or(9) == 9);
        REQUIRE(b.value_or(9L) == 9);  // converting fallback
    }
    SECTION("value_or on an rvalue moves the value out") {
        result<std::unique_ptr<int>> r(std::make_unique<int>(11));
        std::unique_ptr<int> p = std::move(r).value_or(nullptr);
        REQUIRE(p != nullptr);
        REQUIRE(*p == 11);
        REQUIRE(r.has_value());
        REQUIRE(*r == nullptr);  // moved from

        result<std::unique_ptr<int>> e = tierguard::fail(errc::miss, tier::memory);
        std::unique_ptr<int> q = std::move(e).value_or(std::make_unique<int>(12));
        REQUIRE(q != nullptr);
        REQUIRE(*q == 12);
        REQUIRE(good(4).value_or(0) == 4);
        REQUIRE(bad().value_or(5) == 5);
    }
    SECTION("error_or") {
        const failure fallback(errc::timeout, tier::remote, "fallback");
        const result<int> v = good(1);
        REQUIRE(v.error_or(fallback).code() == errc::timeout);
        REQUIRE(v.error_or(fallback).context() == "fallback");
        const result<int> e = bad(errc::corrupted);
        REQUIRE(e.error_or(fallback).code() == errc::corrupted);
        REQUIRE(e.error_or(fallback).context() == "key 42");

        const expected<int, int> iv(3);
        const expected<int, int> ie(tierguard::unexpect, 7);
        REQUIRE(iv.error_or(0) == 0);
        REQUIRE(ie.error_or(0) == 7);
    }
}

TEST_CASE("result: and_then", "[result][monadic]") {
    int calls = 0;
    auto to_text = [&calls](int v) {
        ++calls;
        return result<std::string>(std::to_string(v * 10));
    };

    SECTION("value state: calls f with the value and returns its result") {
        auto r = good(2).and_then(to_text);
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<std::string>>);
        REQUIRE(calls == 1);
        REQUIRE(r.has_value());
        REQUIRE(*r == "20");
    }
    SECTION("value state: f's failure is propagated") {
        auto r = good(2).and_then([&calls](int v) -> result<int> {
            ++calls;
            return tierguard::fail(errc::too_large, tier::disk, std::to_string(v));
        });
        REQUIRE(calls == 1);
        REQUIRE_FALSE(r.has_value());
        REQUIRE(r.error().code() == errc::too_large);
        REQUIRE(r.error().context() == "2");
    }
    SECTION("error state: f is not called and the failure is carried over") {
        auto r = bad(errc::timeout, "slow").and_then(to_text);
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<std::string>>);
        REQUIRE(calls == 0);
        REQUIRE_FALSE(r.has_value());
        REQUIRE(r.error().code() == errc::timeout);
        REQUIRE(r.error().where() == tier::memory);
        REQUIRE(r.error().context() == "slow");
    }
    SECTION("lvalue: f receives a mutable reference to the held value") {
        result<int> r = good(1);
        auto out = r.and_then([&calls](int& v) {
            ++calls;
            v = 9;
            return result<int>(v + 1);
        });
        REQUIRE(calls == 1);
        REQUIRE(*r == 9);
        REQUIRE(*out == 10);
    }
    SECTION("const lvalue: f receives a const reference") {
        const result<int> r = good(4);
        auto out = r.and_then([&calls](const int& v) {
            ++calls;
            return result<const int*>(&v);
        });
        REQUIRE(calls == 1);
        REQUIRE(*out == &*r);
        const result<int> e = bad();
        auto eout = e.and_then([&calls](const int& v) {
            ++calls;
            return result<const int*>(&v);
        });
        REQUIRE(calls == 1);
        REQUIRE_FALSE(eout.has_value());
    }
    SECTION("rvalue: f can take a move-only value by value") {
        result<std::unique_ptr<int>> r(std::make_unique<int>(3));
        auto out = std::move(r).and_then([&calls](std::unique_ptr<int> p) {
            ++calls;
            return result<int>(*p * 2);
        });
        REQUIRE(calls == 1);
        REQUIRE(*out == 6);
        REQUIRE(*r == nullptr);
    }
    SECTION("chains short-circuit at the first failure") {
        int second = 0;
        auto r = good(1)
                     .and_then([&calls](int v) -> result<int> {
                         ++calls;
                         return tierguard::fail(errc::corrupted, tier::disk, std::to_string(v));
                     })
                     .and_then([&second](int v) {
                         ++second;
                         return result<int>(v);
                     });
        REQUIRE(calls == 1);
        REQUIRE(second == 0);
        REQUIRE(r.error().code() == errc::corrupted);
    }
}

TEST_CASE("result: transform", "[result][monadic]") {
    int calls = 0;

    SECTION("value state: maps the value and changes its type") {
        auto r = good(3).transform([&calls](int v) {
            ++calls;
            return v * 1.5;
        });
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<double>>);
        REQUIRE(calls == 1);
        REQUIRE(r.has_value());
        REQUIRE(*r == 4.5);
    }
    SECTION("error state: f is not called and the failure is carried over") {
        auto r = bad(errc::expired, "ttl").transform([&calls](int v) {
            ++calls;
            return std::to_string(v);
        });
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<std::string>>);
        REQUIRE(calls == 0);
        REQUIRE_FALSE(r.has_value());
        REQUIRE(r.error().code() == errc::expired);
        REQUIRE(r.error().context() == "ttl");
    }
    SECTION("to void: value state calls f, result<void> succeeds") {
        int seen = 0;
        auto r = good(8).transform([&](int v) {
            ++calls;
            seen = v;
        });
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<void>>);
        REQUIRE(calls == 1);
        REQUIRE(seen == 8);
        REQUIRE(r.has_value());
    }
    SECTION("to void: error state does not call f") {
        auto r = bad(errc::io_error).transform([&calls](int) { ++calls; });
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<void>>);
        REQUIRE(calls == 0);
        REQUIRE_FALSE(r.has_value());
        REQUIRE(r.error().code() == errc::io_error);
    }
    SECTION("from void") {
        const result<void> ok;
        auto r = ok.transform([&calls] {
            ++calls;
            return 42;
        });
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<int>>);
        REQUIRE(calls == 1);
        REQUIRE(*r == 42);

        const result<void> err = tierguard::fail(errc::circuit_open, tier::remote);
        auto e = err.transform([&calls] {
            ++calls;
            return 42;
        });
        REQUIRE(calls == 1);
        REQUIRE_FALSE(e.has_value());
        REQUIRE(e.error().code() == errc::circuit_open);
        REQUIRE(e.error().where() == tier::remote);
    }
    SECTION("void to void") {
        auto r = result<void>().transform([&calls] { ++calls; });
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<void>>);
        REQUIRE(calls == 1);
        REQUIRE(r.has_value());
        auto e = result<void>(tierguard::fail(errc::timeout, tier::remote)).transform([&calls] { ++calls; });
        REQUIRE(calls == 1);
        REQUIRE(e.error() == errc::timeout);
    }
    SECTION("lvalue: f sees the held object, not a copy") {
        result<std::string> r("abc");
        auto p = r.transform([](std::string& s) { return &s; });
        REQUIRE(*p == &*r);
    }
    SECTION("rvalue of a move-only value") {
        result<std::unique_ptr<int>> r(std::make_unique<int>(5));
        auto out = std::move(r).transform([&calls](std::unique_ptr<int> p) {
            ++calls;
            return std::make_unique<long>(*p + 1);
        });
        STATIC_REQUIRE(std::is_same_v<decltype(out), result<std::unique_ptr<long>>>);
        REQUIRE(calls == 1);
        REQUIRE(**out == 6);
        REQUIRE(*r == nullptr);
    }
}

TEST_CASE("result: or_else", "[result][monadic]") {
    int calls = 0;

    SECTION("value state: f is not called and the value is kept") {
        auto r = good(4).or_else([&calls](const failure&) {
            ++calls;
            return result<int>(99);
        });
        STATIC_REQUIRE(std::is_same_v<decltype(r), result<int>>);
        REQUIRE(calls == 0);
        REQUIRE(*r == 4);
    }
    SECTION("error state: f recovers") {
        auto r = bad(errc::miss).or_else([&calls](const failure& f) {
            ++calls;
            CHECK(f.is_miss());
            return result<int>(99);
        });
        REQUIRE(calls == 1);
        REQUIRE(r.has_value());
        REQUIRE(*r == 99);
    }
    SECTION("error state: f replaces the failure") {
        auto r = bad(errc::miss).or_else([&calls](const failure& f) -> result<int> {
            ++calls;
            return tierguard::fail(errc::loader_failed, tier::none, "after " + std::string(to_string(f.code())));
        });
        REQUIRE(calls == 1);
        REQUIRE(r.error().code() == errc::loader_failed);
        REQUIRE(r.error().where() == tier::none);
        REQUIRE(r.error().context() == "after miss");
    }
    SECTION("rvalue: f receives the failure as an rvalue") {
        result<int> src = bad(errc::corrupted, std::string(100, 'x'));
        auto r = std::move(src).or_else([&calls](failure&& f) -> result<int> {
            ++calls;
            return tierguard::unexpected<failure>(std::move(f));
        });
        REQUIRE(calls == 1);
        REQUIRE(r.error().context() == std::string(100, 'x'));
    }
    SECTION("rvalue of a move-only value passes the value through") {
        result<std::unique_ptr<int>> src(std::make_unique<int>(1));
        auto r = std::move(src).or_else([&calls](failure&&) {
            ++calls;
            return result<std::unique_ptr<int>>(nullptr);
        });
        REQUIRE(calls == 0);
        REQUIRE(*r != nullptr);
        REQUIRE(**r == 1);
        REQUIRE(*src == nullptr);
    }
}

TEST_CASE("result: transform_error", "[result][monadic]") {
    int calls = 0;
    auto name_of = [&calls](const failure& f) {
        ++calls;
        return std::string(to_string(f.code()));
    };

    SECTION("value state: f is not called; the error type changes") {
        auto r = good(5).transform_error(name_of);
        STATIC_REQUIRE(std::is_same_v<decltype(r), expected<int, std::string>>);
        REQUIRE(calls == 0);
        REQUIRE(r.has_value());
        REQUIRE(*r == 5);
    }
    SECTION("error state: maps the failure") {
        auto r = bad(errc::timeout).transform_error(name_of);
        STATIC_REQUIRE(std::is_same_v<decltype(r), expected<int, std::string>>);
        REQUIRE(calls == 1);
        REQUIRE_FALSE(r.has_value());
        REQUIRE(r.error() == "timeout");
    }
    SECTION("to std::error_code") {
        auto r = bad(errc::permission_denied).transform_error([](const failure& f) { return f.error_code(); });
        STATIC_REQUIRE(std::is_same_v<decltype(r), expected<int, std::error_code>>);
        REQUIRE(r.error() == errc::permission_denied);
    }
    SECTION("move-only value passes through an rvalue") {
        result<std::unique_ptr<int>> src(std::make_unique<int>(2));
        auto r = std::move(src).transform_error(name_of);
        STATIC_REQUIRE(std::is_same_v<decltype(r), expected<std::unique_ptr<int>, std::string>>);
        REQUIRE(calls == 0);
        REQUIRE(**r == 2);
    }
    SECTION("void value") {
        auto ok = result<void>().transform_error(name_of);
        STATIC_REQUIRE(std::is_same_v<decltype(ok), expected<void, std::string>>);
        REQUIRE(calls == 0);
        REQUIRE(ok.has_value());
        const result<void> err = tierguard::fail(errc::disk_full, tier::disk);
        auto mapped = err.transform_error(name_of);
        REQUIRE(calls == 1);
        REQUIRE_FALSE(mapped.has_value());
        REQUIRE(mapped.error() == "disk_full");
    }
}

TEST_CASE("result<void>", "[result][void]") {
    int calls = 0;

    SECTION("default construction is success") {
        const result<void> r;
        REQUIRE(r.has_value());
        REQUIRE(static_cast<bool>(r));
        REQUIRE_NOTHROW(r.value());
        STATIC_REQUIRE(std::is_void_v<decltype(*r)>);
        STATIC_REQUIRE(std::is_void_v<decltype(r.value())>);
        const result<void> ip(std::in_place);
        REQUIRE(ip.has_value());
    }
    SECTION("construction from unexpected is an error; value() throws") {
        const result<void> r = tierguard::fail(errc::permission_denied, tier::disk, "open /cache/x",
                                               std::make_error_code(std::errc::permission_denied));
        REQUIRE_FALSE(r.has_value());
        REQUIRE_FALSE(static_cast<bool>(r));
        REQUIRE(r.error().code() == errc::permission_denied);
        REQUIRE(r.error().os_error() == std::errc::permission_denied);
        REQUIRE_THROWS_AS(r.value(), tierguard::bad_expected_access<failure>);
        bool thrown = false;
        try {
            r.value();
        } catch (const tierguard::bad_expected_access<failure>& e) {
            thrown = true;
            CHECK(std::string(e.what()).find("[tierguard.permission_denied] disk tier: open /cache/x") == 0u);
            CHECK(e.error().context() == "open /cache/x");
        }
        REQUIRE(thrown);
        result<void> moved = tierguard::fail(errc::io_error, tier::disk, "rvalue");
        REQUIRE_THROWS_AS(std::move(moved).value(), tierguard::bad_expected_access<failure>);
    }
    SECTION("unexpect constructor builds the failure in place") {
        const result<void> r(tierguard::unexpect, errc::io_error, tier::disk, "fsync");
        REQUIRE(r.error().code() == errc::io_error);
        REQUIRE(r.error().context() == "fsync");
    }
    SECTION("assignment from unexpected, emplace, swap") {
        result<void> r;
        r = tierguard::fail(errc::timeout, tier::remote);
        REQUIRE(r.error() == errc::timeout);
        const unexpected<failure> lv = tierguard::fail(errc::corrupted, tier::disk);
        r = lv;
        REQUIRE(r.error() == errc::corrupted);
        r.emplace();
        REQUIRE(r.has_value());

        result<void> e = tierguard::fail(errc::miss, tier::memory);
        r.swap(e);
        REQUIRE_FALSE(r.has_value());
        REQUIRE(r.error().is_miss());
        REQUIRE(e.has_value());
        swap(r, e);
        REQUIRE(r.has_value());
        REQUIRE(e.error().is_miss());
    }
    SECTION("error_or") {
        const failure fb(errc::invalid_argument, tier::none);
        REQUIRE(result<void>().error_or(fb).code() == errc::invalid_argument);
        const result<void> e = tierguard::fail(errc::disk_full, tier::disk);
        REQUIRE(e.error_or(fb).code() == errc::disk_full);
    }
    SECTION("equality") {
        using ev = expected<void, int>;
        REQUIRE(ev() == ev());
        REQUIRE(ev(tierguard::unexpect, 1) == ev(tierguard::unexpect, 1));
        REQUIRE(ev(tierguard::unexpect, 1) != ev(tierguard::unexpect, 2));
        REQUIRE(ev() != ev(tierguard::unexpect, 0));
        REQUIRE(ev(tierguard::unexpect, 0) != ev());
        REQUIRE(ev(tierguard::unexpect, 3) == unexpected(3));
        REQUIRE(ev(tierguard::unexpect, 3) != unexpected(4));
        REQUIRE(ev() != unexpected(0));
        REQUIRE(result<void>(tierguard::fail(errc::timeout, tier::remote)) == unexpected(errc::timeout));
    }
    SECTION("and_then") {
        auto ok = result<void>().and_then([&calls] {
            ++calls;
            return result<int>(7);
        });
        STATIC_REQUIRE(std::is_same_v<decltype(ok), result<int>>);
        REQUIRE(calls == 1);
        REQUIRE(*ok == 7);

        auto err = result<void>(tierguard::fail(errc::expired, tier::disk, "e")).and_then([&calls] {
            ++calls;
            return result<int>(7);
        });
        REQUIRE(calls == 1);
        REQUIRE(err.error().code() == errc::expired);
        REQUIRE(err.error().context() == "e");

        const result<void> cok;
        auto v = cok.and_then([&calls]() -> result<void> {
            ++calls;
            return tierguard::fail(errc::loader_failed, tier::none);
        });
        REQUIRE(calls == 2);
        REQUIRE(v.error() == errc::loader_failed);
    }
    SECTION("or_else") {
        auto ok = result<void>().or_else([&calls](const failure&) {
            ++calls;
            return result<void>(tierguard::fail(errc::miss, tier::memory));
        });
        STATIC_REQUIRE(std::is_same_v<decltype(ok), result<void>>);
        REQUIRE(calls == 0);
        REQUIRE(ok.has_value());

        result<void> e = tierguard::fail(errc::circuit_open, tier::remote);
        auto recovered = e.or_else([&calls](failure& f) {
            ++calls;
            CHECK(f == errc::circuit_open);
            return result<void>();
        });
        REQUIRE(calls == 1);
        REQUIRE(recovered.has_value());

        auto replaced = std::move(e).or_else([&calls](failure&& f) -> result<void> {
            ++calls;
            return tierguard::fail(errc::timeout, f.where());
        });
        REQUIRE(calls == 2);
        REQUIRE(replaced.error() == errc::timeout);
        REQUIRE(replaced.error().where() == tier::remote);
    }
}

TEST_CASE("result: move-only value type", "[result]") {
    using ptr_result = result<std::unique_ptr<int>>;
    STATIC_REQUIRE(!std::is_copy_constructible_v<ptr_result>);
    STATIC_REQUIRE(!std::is_copy_assignable_v<ptr_result>);
    STATIC_REQUIRE(std::is_move_constructible_v<ptr_result>);
    STATIC_REQUIRE(std::is_move_assignable_v<ptr_result>);

    SECTION("construct and move out with *std::move(r)") {
        ptr_result r(std::make_unique<int>(1));
        REQUIRE(r.has_value());
        REQUIRE(**r == 1);
        std::unique_ptr<int> p = *std::move(r);
        REQUIRE(p != nullptr);
        REQUIRE(*p == 1);
        REQUIRE(r.has_value());
        REQUIRE(*r == nullptr);
    }
    SECTION("move out with std::move(r).value()") {
        ptr_result r(std::make_unique<int>(2));
        std::unique_ptr<int> p = std::move(r).value();
        REQUIRE(*p == 2);
        REQUIRE(*r == nullptr);
    }
    SECTION("move construction and assignment of the result") {
        ptr_result a(std::make_unique<int>(3));
        const int* raw = a->get();
        ptr_result b = std::move(a);
        REQUIRE(b->get() == raw);
        ptr_result c = tierguard::fail(errc::miss, tier::memory);
        c = std::move(b);
        REQUIRE(c.has_value());
        REQUIRE(c->get() == raw);
        c = tierguard::fail(errc::corrupted, tier::disk);
        REQUIRE(c.error() == errc::corrupted);
    }
    SECTION("assignment and emplace") {
        ptr_result r = tierguard::fail(errc::miss, tier::memory);
        r = std::make_unique<int>(8);
        REQUIRE(**r == 8);
        r = std::make_unique<int>(9);
        REQUIRE(**r == 9);
        std::unique_ptr<int>& ref = r.emplace(new int(10));
        REQUIRE(&ref == &*r);
        REQUIRE(**r == 10);
    }
    SECTION("move-only value stays put in the error path of value()") {
        const ptr_result r = tierguard::fail(errc::too_large, tier::memory);
        REQUIRE_THROWS_AS(r.value(), tierguard::bad_expected_access<failure>);
    }
}

TEST_CASE("result: non-default-constructible value type", "[result]") {
    using nd = expected<no_default, failure>;
    STATIC_REQUIRE(!std::is_default_constructible_v<nd>);
    STATIC_REQUIRE(std::is_copy_constructible_v<nd>);

    nd a(std::in_place, 4);
    REQUIRE(a.has_value());
    REQUIRE(a->value == 4);
    nd b = no_default(5);
    REQUIRE(b->value == 5);
    nd c(6);  // explicit converting construction
    REQUIRE(c->value == 6);
    nd e = tierguard::fail(errc::miss, tier::memory);
    REQUIRE_FALSE(e.has_value());
    REQUIRE(e.value_or(no_default(1)).value == 1);
    REQUIRE(a.value_or(no_default(1)).value == 4);
    REQUIRE(a.transform([](const no_default& n) { return n.value * 2; }) == 8);
    REQUIRE(a == no_default(4));

    e = no_default(7);
    REQUIRE(e->value == 7);
    e = tierguard::fail(errc::timeout, tier::remote);
    REQUIRE(e.error() == errc::timeout);
    no_default& ref = e.emplace(8);
    REQUIRE(ref.value == 8);
    REQUIRE(e.value().value == 8);
    b = a;
    REQUIRE(b->value == 4);
}

TEST_CASE("result: equality", "[result]") {
    // Comparisons with an expected on the right-hand side are parenthesized so that
    // Catch2 does not decompose them: with C++20's reversed candidates, clang picks
    // expected's `operator==(const expected&, const T2&)` (constrained only by
    // !is_expected<T2>) for `ExprLhs<...> == expected` and fails to compile its body.
    using ei = expected<int, int>;
    const ei v1(1);
    const ei v1b(1);
    const ei v2(2);
    const ei e1(tierguard::unexpect, 1);
    const ei e1b(tierguard::unexpect, 1);
    const ei e2(tierguard::unexpect, 2);

    SECTION("expected == expected") {
        REQUIRE((v1 == v1b));
        REQUIRE_FALSE((v1 != v1b));
        REQUIRE((v1 != v2));
        REQUIRE((e1 == e1b));
        REQUIRE((e1 != e2));
        // A value and an error never compare equal, even with equal payloads.
        REQUIRE((v1 != e1));
        REQUIRE((e1 != v1));
        REQUIRE_FALSE((v1 == e1));
        // Across value types.
        REQUIRE((v1 == expected<long, int>(1L)));
        REQUIRE((v1 != expected<long, int>(2L)));
        REQUIRE((e1 == expected<long, int>(tierguard::unexpect, 1)));
    }
    SECTION("expected == value") {
        REQUIRE(v1 == 1);
        REQUIRE((1 == v1));
        REQUIRE(v1 != 2);
        REQUIRE((2 != v1));
        REQUIRE(e1 != 1);  // error state never equals a value
        REQUIRE_FALSE(e1 == 1);
        REQUIRE(good(3) == 3);
        REQUIRE(bad() != 3);
        REQUIRE(result<std::string>("x") == std::string("x"));
        REQUIRE(result<std::string>("x") != std::string("y"));
    }
    SECTION("expected == unexpected") {
        REQUIRE(e1 == unexpected(1));
        REQUIRE((unexpected(1) == e1));
        REQUIRE(e1 != unexpected(2));
        REQUIRE(v1 != unexpected(1));  // value state never equals an error
        REQUIRE_FALSE(v1 == unexpected(1));
        // A result compares against an unexpected errc through failure == errc.
        REQUIRE(bad(errc::timeout) == unexpected(errc::timeout));
        REQUIRE(bad(errc::timeout) != unexpected(errc::miss));
        REQUIRE(good(1) != unexpected(errc::miss));
    }
    SECTION("unexpected == unexpected") {
        REQUIRE(unexpected(1) == unexpected(1));
        REQUIRE(unexpected(1) != unexpected(2));
        REQUIRE(unexpected(1) == unexpected(1L));
    }
}

TEST_CASE("result: swap", "[result]") {
    using es = expected<std::string, int>;
    SECTION("value with value") {
        es a("a");
        es b("b");
        a.swap(b);
        REQUIRE(*a == "b");
        REQUIRE(*b == "a");
        swap(a, b);
        REQUIRE(*a == "a");
        REQUIRE(*b == "b");
    }
    SECTION("value with error") {
        es a("a");
        es b(tierguard::unexpect, 5);
        a.swap(b);
        REQUIRE(a.error() == 5);
        REQUIRE(*b == "a");
        swap(a, b);
        REQUIRE(*a == "a");
        REQUIRE(b.error() == 5);
    }
    SECTION("error with error") {
        es a(tierguard::unexpect, 1);
        es b(tierguard::unexpect, 2);
        swap(a, b);
        REQUIRE(a.error() == 2);
        REQUIRE(b.error() == 1);
    }
    SECTION("results") {
        result<int> a = good(1);
        result<int> b = bad(errc::disk_full);
        using std::swap;
        swap(a, b);
        REQUIRE(a.error() == errc::disk_full);
        REQUIRE(*b == 1);
    }
}

TEST_CASE("result: emplace and assignment", "[result]") {
    SECTION("emplace on a value replaces it and returns a reference") {
        result<std::string> r("old");
        std::string& ref = r.emplace(3, 'z');
        REQUIRE(&ref == &*r);
        REQUIRE(*r == "zzz");
    }
    SECTION("emplace on an error switches to the value state") {
        result<std::string> r = tierguard::fail(errc::miss, tier::memory);
        r.emplace("new");
        REQUIRE(r.has_value());
        REQUIRE(*r == "new");
    }
    SECTION("assignment from a value") {
        result<int> r = good(1);
        r = 2;
        REQUIRE(*r == 2);
        r = bad();
        r = 3;
        REQUIRE(r.has_value());
        REQUIRE(*r == 3);
        result<std::string> s = tierguard::fail(errc::miss, tier::memory);
        s = "text";
        REQUIRE(*s == "text");
    }
    SECTION("assignment from unexpected, rvalue and lvalue") {
        result<int> r = good(1);
        r = tierguard::fail(errc::io_error, tier::disk, "read");
        REQUIRE_FALSE(r.has_value());
        REQUIRE(r.error().code() == errc::io_error);
        REQUIRE(r.error().context() == "read");
        const unexpected<failure> u = tierguard::fail(errc::corrupted, tier::disk, "crc");
        r = u;
        REQUIRE(r.error().code() == errc::corrupted);
        REQUIRE(r.error().context() == "crc");
        REQUIRE(u.error().context() == "crc");  // lvalue source untouched

        expected<int, int> i(4);
        i = unexpected(6);
        REQUIRE(i.error() == 6);
        i = unexpected(7);  // error to error
        REQUIRE(i.error() == 7);
    }
    SECTION("copy and move assignment between states") {
        result<std::string> a("a");
        const result<std::string> e = tierguard::fail(errc::timeout, tier::remote, "t");
        a = e;
        REQUIRE(a.error().context() == "t");
        a = result<std::string>("b");
        REQUIRE(*a == "b");
        result<std::string> c = tierguard::fail(errc::miss, tier::memory);
        c = a;
        REQUIRE(*c == "b");
        REQUIRE(*a == "b");
    }
}

TEST_CASE("result: in_place and unexpect constructors", "[result]") {
    const result<std::string> s(std::in_place, 3, 'x');
    REQUIRE(*s == "xxx");
    const result<std::vector<int>> v(std::in_place, {1, 2, 3});
    REQUIRE(v->size() == 3u);
    REQUIRE((*v)[2] == 3);
    const result<std::vector<int>> v2(std::in_place, {4, 5}, std::allocator<int>());
    REQUIRE(*v2 == std::vector<int>{4, 5});
    const result<int> zero(std::in_place);
    REQUIRE(*zero == 0);

    const result<int> e(tierguard::unexpect, errc::corrupted, tier::disk, "bad crc");
    REQUIRE_FALSE(e.has_value());
    REQUIRE(e.error().code() == errc::corrupted);
    REQUIRE(e.error().where() == tier::disk);
    REQUIRE(e.error().context() == "bad crc");
    REQUIRE_FALSE(static_cast<bool>(e.error().os_error()));

    // unexpect works even when the value and error types are the same.
    const expected<int, int> same(tierguard::unexpect, 4);
    REQUIRE_FALSE(same.has_value());
    REQUIRE(same.error() == 4);
    const expected<int, int> same_value(std::in_place, 4);
    REQUIRE(same_value.has_value());
    REQUIRE(*same_value == 4);
}

TEST_CASE("tierguard::fail and unexpected", "[result]") {
    SECTION("fail fills every field") {
        const std::error_code os = std::make_error_code(std::errc::no_space_on_device);
        auto u = tierguard::fail(errc::disk_full, tier::disk, "ctx", os);
        STATIC_REQUIRE(std::is_same_v<decltype(u), unexpected<failure>>);
        REQUIRE(u.error().code() == errc::disk_full);
        REQUIRE(u.error().where() == tier::disk);
        REQUIRE(u.error().context() == "ctx");
        REQUIRE(u.error().os_error() == os);
    }
    SECTION("fail's defaults: empty context, no OS error") {
        auto u = tierguard::fail(errc::miss, tier::memory);
        REQUIRE(u.error().context().empty());
        REQUIRE_FALSE(static_cast<bool>(u.error().os_error()));
        REQUIRE(u.error().is_miss());
    }
    SECTION("fail converts to any result") {
        const result<double> d = tierguard::fail(errc::timeout, tier::remote);
        const result<std::vector<int>> vec = tierguard::fail(errc::timeout, tier::remote);
        const result<void> vd = tierguard::fail(errc::timeout, tier::remote);
        REQUIRE(d.error() == errc::timeout);
        REQUIRE(vec.error() == errc::timeout);
        REQUIRE(vd.error() == errc::timeout);
    }
    SECTION("unexpected accessors") {
        unexpected<std::string> u(std::in_place, 3, 'a');
        REQUIRE(u.error() == "aaa");
        const unexpected<std::string>& cu = u;
        REQUIRE(cu.error() == "aaa");
        u.error() += "b";
        std::string taken = std::move(u).error();
        REQUIRE(taken == "aaab");
        unexpected deduced(5);
        STATIC_REQUIRE(std::is_same_v<decltype(deduced), unexpected<int>>);
        REQUIRE(deduced.error() == 5);
    }
}

TEST_CASE("result: no leaks or double destruction across state changes", "[result][lifetime]") {
    tracked_value::reset();
    tracked_error::reset();
    using te = expected<tracked_value, tracked_error>;
    {
        te a(std::in_place, 1);
        te b(tierguard::unexpect, 2);
        REQUIRE(tracked_value::live.size() == 1u);
        REQUIRE(tracked_error::live.size() == 1u);

        a = b;  // value -> error (copy)
        REQUIRE_FALSE(a.has_value());
        REQUIRE(a.error().value == 2);
        REQUIRE(tracked_value::live.empty());
        REQUIRE(tracked_error::live.size() == 2u);

        a = tracked_value(3);  // error -> value (converting assignment)
        REQUIRE(a->value == 3);
        REQUIRE(tracked_value::live.size() == 1u);
        REQUIRE(tracked_error::live.size() == 1u);

        a = tracked_value(4);  // value -> value assigns in place
        REQUIRE(a->value == 4);
        REQUIRE(tracked_value::live.size() == 1u);

        b = a;  // error -> value (copy)
        REQUIRE(b->value == 4);
        REQUIRE(tracked_value::live.size() == 2u);
        REQUIRE(tracked_error::live.empty());

        a = unexpected<tracked_error>(std::in_place, 5);  // value -> error (unexpected rvalue)
        REQUIRE(a.error().value == 5);
        REQUIRE(tracked_value::live.size() == 1u);
        REQUIRE(tracked_error::live.size() == 1u);

        const unexpected<tracked_error> u(std::in_place, 6);
        a = u;  // error -> error (unexpected lvalue)
        REQUIRE(a.error().value == 6);
        REQUIRE(tracked_error::live.size() == 2u);  // a's error and u

        swap(a, b);  // error <-> value
        REQUIRE(a->value == 4);
        REQUIRE(b.error().value == 6);
        REQUIRE(tracked_value::live.size() == 1u);
        REQUIRE(tracked_error::live.size() == 2u);

        b.emplace(7);  // error -> value via emplace
        REQUIRE(b->value == 7);
        REQUIRE(tracked_value::live.size() == 2u);
        REQUIRE(tracked_error::live.size() == 1u);  // only u

        te c = std::move(a);  // move construction
        REQUIRE(c->value == 4);
        REQUIRE(tracked_value::live.size() == 3u);  // a keeps a moved-from value

        te d(tierguard::unexpect, 8);
        d = std::move(c);  // error -> value (move)
        REQUIRE(d->value == 4);
        REQUIRE(tracked_error::live.size() == 1u);

        auto mapped = d.transform([](const tracked_value& t) { return tracked_value(t.value + 1); });
        REQUIRE(mapped->value == 5);
        auto remapped = te(tierguard::unexpect, 9).transform_error([](tracked_error&& t) { return std::move(t); });
        REQUIRE(remapped.error().value == 9);
        auto chained = d.and_then([](tracked_value& t) { return te(tierguard::unexpect, t.value); });
        REQUIRE(chained.error().value == 4);

        using tv = expected<void, tracked_error>;
        tv v;
        v = unexpected<tracked_error>(std::in_place, 10);
        REQUIRE(v.error().value == 10);
        v = unexpected<tracked_error>(std::in_place, 11);
        REQUIRE(v.error().value == 11);
        v.emplace();
        REQUIRE(v.has_value());
        tv v2(tierguard::unexpect, 12);
        swap(v, v2);
        REQUIRE(v.error().value == 12);
        REQUIRE(v2.has_value());
    }
    INFO("value constructions " << tracked_value::constructions << ", destructions " << tracked_value::destructions);
    INFO("error constructions " << tracked_error::constructions << ", destructions " << tracked_error::destructions);
    CHECK(tracked_value::live.empty());
    CHECK(tracked_error::live.empty());
    CHECK(tracked_value::anomalies == 0);
    CHECK(tracked_error::anomalies == 0);
    CHECK(tracked_value::constructions == tracked_value::destructions);
    CHECK(tracked_error::constructions == tracked_error::destructions);
    CHECK(tracked_value::constructions > 0);
    CHECK(tracked_error::constructions > 0);
}

TEST_CASE("result: bad_expected_access does not leak the error", "[result][lifetime]") {
    tracked_error::reset();
    {
        const expected<int, tracked_error> e(tierguard::unexpect, 1);
        REQUIRE_THROWS_AS(e.value(), tierguard::bad_expected_access<tracked_error>);
        try {
            (void)e.value();
        } catch (const tierguard::bad_expected_access<tracked_error>& ex) {
            CHECK(ex.error().value == 1);
        }
        REQUIRE(tracked_error::live.size() == 1u);
    }
    CHECK(tracked_error::live.empty());
    CHECK(tracked_error::anomalies == 0);
    CHECK(tracked_error::constructions == tracked_error::destructions);
}

namespace {
// Copying throws when armed: an assignment that switches state must keep the old member.
struct throws_on_copy {
    bool armed = true;
    throws_on_copy() = default;
    throws_on_copy(const throws_on_copy& other) : armed(other.armed) {
        if (armed) throw std::runtime_error("copy");
    }
    throws_on_copy& operator=(const throws_on_copy&) = default;
};
}  // namespace

TEST_CASE("result: an assignment that throws leaves the old state (never empty)", "[result]") {
    using et = expected<throws_on_copy, int>;
    const throws_on_copy source;
    SECTION("error state, value assignment throws: still the error") {
        et e(tierguard::unexpect, 7);
        REQUIRE_THROWS_AS(e = source, std::runtime_error);
        REQUIRE_FALSE(e.has_value());
        REQUIRE(e.error() == 7);
    }
    SECTION("value state, emplace throws: still the old value") {
        throws_on_copy quiet;
        quiet.armed = false;
        et e(quiet);
        REQUIRE_THROWS_AS(e.emplace(source), std::runtime_error);
        REQUIRE(e.has_value());
        REQUIRE_FALSE(e->armed);
    }
    SECTION("error state, emplace throws: still the error") {
        et e(tierguard::unexpect, 8);
        REQUIRE_THROWS_AS(e.emplace(source), std::runtime_error);
        REQUIRE_FALSE(e.has_value());
        REQUIRE(e.error() == 8);
    }
}
