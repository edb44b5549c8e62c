#include "support/test_framework.hpp"

#include <tierguard/errc.hpp>
#include <tierguard/version.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#ifndef TIERGUARD_PROJECT_VERSION
#error "tests/CMakeLists.txt must define TIERGUARD_PROJECT_VERSION for unit.errc"
#endif

namespace {

using tierguard::errc;
using tierguard::failure;
using tierguard::tier;

// The codes this test pins by name and number. Codes added after loader_failed are
// found by all_codes() below and get every per-code check as well.
constexpr std::array known_codes{
    errc::miss,          errc::expired,   errc::corrupted,         errc::version_mismatch,
    errc::io_error,      errc::disk_full, errc::permission_denied, errc::circuit_open,
    errc::timeout,       errc::too_large, errc::invalid_argument,  errc::serialization_failed,
    errc::loader_failed,
};

// Every code, found by walking the values from 1 until to_string() no longer knows
// one. A code missing from to_string's switch is caught at compile time by -Wswitch.
std::vector<errc> all_codes() {
    std::vector<errc> codes;
    for (int v = 1; v < 1000 && tierguard::to_string(static_cast<errc>(v)) != "unknown"; ++v) {
        codes.push_back(static_cast<errc>(v));
    }
    return codes;
}

constexpr std::array all_tiers{tier::none, tier::memory, tier::disk, tier::remote, tier::loader};

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("errc: compile-time properties", "[errc]") {
    STATIC_REQUIRE(std::is_error_code_enum_v<errc>);
    STATIC_REQUIRE(!std::is_error_condition_enum_v<errc>);
    STATIC_REQUIRE(std::is_convertible_v<errc, std::error_code>);
    STATIC_REQUIRE(std::is_same_v<std::underlying_type_t<errc>, int>);
    STATIC_REQUIRE(known_codes.size() == 13u);
    // Codes start at 1 and are dense, in declaration order.
    STATIC_REQUIRE(static_cast<int>(errc::miss) == 1);
    STATIC_REQUIRE(static_cast<int>(errc::loader_failed) == 13);
    STATIC_REQUIRE(tierguard::to_string(errc::disk_full) == "disk_full");
    STATIC_REQUIRE(tierguard::to_string(tier::disk) == "disk");
}

TEST_CASE("errc: codes are dense and start at 1", "[errc]") {
    for (std::size_t i = 0; i < known_codes.size(); ++i) {
        INFO("code " << tierguard::to_string(known_codes[i]));
        CHECK(static_cast<int>(known_codes[i]) == static_cast<int>(i) + 1);
    }
    // The walk from 1 finds every pinned code, in order, with no gap before loader_failed.
    const std::vector<errc> codes = all_codes();
    REQUIRE(codes.size() >= known_codes.size());
    for (std::size_t i = 0; i < known_codes.size(); ++i) CHECK(codes[i] == known_codes[i]);
    CHECK(tierguard::to_string(static_cast<errc>(0)) == "unknown");
}

TEST_CASE("errc: every code converts to a std::error_code in the tierguard category", "[errc]") {
    const std::vector<errc> codes = all_codes();
    std::set<std::string> messages;
    for (const errc code : codes) {
        INFO("code " << tierguard::to_string(code));
        const std::error_code ec = code;  // implicit conversion
        CHECK(ec.value() == static_cast<int>(code));
        CHECK(&ec.category() == &tierguard::errc_category());
        CHECK(ec.category() == tierguard::errc_category());
        CHECK(std::string(ec.category().name()) == "tierguard");
        CHECK(static_cast<bool>(ec));  // a real error, never the "no error" value
        CHECK(ec == code);
        CHECK(code == ec);
        CHECK(ec == tierguard::make_error_code(code));
        CHECK(ec == make_error_code(code));  // found by ADL

        const std::string message = ec.message();
        CHECK_FALSE(message.empty());
        CHECK(message != ec.category().message(0));  // not the fallback text
        CHECK(message == tierguard::errc_category().message(static_cast<int>(code)));
        messages.insert(message);

        for (const errc other : codes) {
            if (other != code) CHECK(ec != other);
        }
    }
    CHECK(messages.size() == codes.size());
}

TEST_CASE("errc: implicit conversion at an assignment", "[errc]") {
    std::error_code ec = tierguard::errc::disk_full;
    REQUIRE(ec == tierguard::errc::disk_full);
    REQUIRE(ec != tierguard::errc::io_error);
    REQUIRE(ec.value() == 6);
    ec = tierguard::errc::timeout;
    REQUIRE(ec == tierguard::errc::timeout);
    REQUIRE(std::string(ec.category().name()) == "tierguard");
}

TEST_CASE("errc: the category is a singleton distinct from the standard ones", "[errc]") {
    REQUIRE(&tierguard::errc_category() == &tierguard::errc_category());
    REQUIRE(tierguard::errc_category() != std::generic_category());
    REQUIRE(tierguard::errc_category() != std::system_category());

    // Same number, other category: not equal.
    const std::error_code timeout = tierguard::errc::timeout;
    REQUIRE(timeout != std::error_code(static_cast<int>(errc::timeout), std::generic_category()));
    REQUIRE(timeout != std::make_error_code(std::errc::timed_out));
    REQUIRE(timeout != std::errc::timed_out);

    // A value outside the enum still gets a (fallback) message.
    const std::string unknown = tierguard::errc_category().message(0);
    REQUIRE_FALSE(unknown.empty());
    REQUIRE(unknown == tierguard::errc_category().message(999));
}

TEST_CASE("errc: a default std::error_code equals no code", "[errc]") {
    const std::vector<errc> codes = all_codes();
    const std::error_code none;
    REQUIRE_FALSE(static_cast<bool>(none));
    for (const errc code : codes) {
        INFO("code " << tierguard::to_string(code));
        CHECK(none != code);
        CHECK_FALSE(none == code);
    }
    // Even in tierguard's own category, 0 is "no error" and matches no code.
    const std::error_code zero(0, tierguard::errc_category());
    REQUIRE_FALSE(static_cast<bool>(zero));
    for (const errc code : codes) CHECK(zero != code);
}

TEST_CASE("errc: to_string names are distinct and stable", "[errc]") {
    const std::vector<errc> codes = all_codes();
    SECTION("exact names") {
        CHECK(tierguard::to_string(errc::miss) == "miss");
        CHECK(tierguard::to_string(errc::expired) == "expired");
        CHECK(tierguard::to_string(errc::corrupted) == "corrupted");
        CHECK(tierguard::to_string(errc::version_mismatch) == "version_mismatch");
        CHECK(tierguard::to_string(errc::io_error) == "io_error");
        CHECK(tierguard::to_string(errc::disk_full) == "disk_full");
        CHECK(tierguard::to_string(errc::permission_denied) == "permission_denied");
        CHECK(tierguard::to_string(errc::circuit_open) == "circuit_open");
        CHECK(tierguard::to_string(errc::timeout) == "timeout");
        CHECK(tierguard::to_string(errc::too_large) == "too_large");
        CHECK(tierguard::to_string(errc::invalid_argument) == "invalid_argument");
        CHECK(tierguard::to_string(errc::serialization_failed) == "serialization_failed");
        CHECK(tierguard::to_string(errc::loader_failed) == "loader_failed");
    }
    SECTION("distinct, searchable identifiers") {
        std::set<std::string_view> names;
        for (const errc code : codes) {
            const std::string_view name = tierguard::to_string(code);
            INFO("name " << std::string(name));
            CHECK_FALSE(name.empty());
            CHECK(name != "unknown");
            CHECK(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos);
            names.insert(name);
        }
        CHECK(names.size() == codes.size());
    }
    SECTION("a value outside the enum") {
        CHECK(tierguard::to_string(static_cast<errc>(0)) == "unknown");
        CHECK(tierguard::to_string(static_cast<errc>(100)) == "unknown");
    }
    SECTION("tier names") {
        CHECK(tierguard::to_string(tier::none) == "none");
        CHECK(tierguard::to_string(tier::memory) == "memory");
        CHECK(tierguard::to_string(tier::disk) == "disk");
        CHECK(tierguard::to_string(tier::remote) == "remote");
        CHECK(tierguard::to_string(tier::loader) == "loader");
        std::set<std::string_view> names;
        for (const tier t : all_tiers) names.insert(tierguard::to_string(t));
        CHECK(names.size() == all_tiers.size());
    }
}

TEST_CASE("failure: carries code, tier, context and OS error", "[errc][failure]") {
    const std::vector<errc> codes = all_codes();
    SECTION("all fields") {
        const std::error_code os = std::make_error_code(std::errc::no_space_on_device);
        const failure f(errc::disk_full, tier::disk, "writing shard 3", os);
        CHECK(f.code() == errc::disk_full);
        CHECK(f.where() == tier::disk);
        CHECK(f.context() == "writing shard 3");
        CHECK(f.os_error() == os);
        CHECK(f.os_error() == std::errc::no_space_on_device);
        CHECK(f.os_error() == std::error_code(ENOSPC, std::generic_category()));
        CHECK(f.error_code() == errc::disk_full);
        CHECK(f.error_code().category() == tierguard::errc_category());
        CHECK_FALSE(f.is_miss());
    }
    SECTION("defaults: empty context, empty OS error") {
        const failure f(errc::miss, tier::memory);
        CHECK(f.code() == errc::miss);
        CHECK(f.where() == tier::memory);
        CHECK(f.context().empty());
        CHECK_FALSE(static_cast<bool>(f.os_error()));
        CHECK(f.os_error() == std::error_code());
    }
    SECTION("copy and move keep every field") {
        const failure f(errc::io_error, tier::disk, std::string(80, 'k'), std::make_error_code(std::errc::io_error));
        const failure copy = f;  // NOLINT(performance-unnecessary-copy-initialization)
        CHECK(copy.code() == errc::io_error);
        CHECK(copy.where() == tier::disk);
        CHECK(copy.context() == std::string(80, 'k'));
        CHECK(copy.os_error() == std::errc::io_error);
        failure source = f;
        const failure moved = std::move(source);
        CHECK(moved.code() == errc::io_error);
        CHECK(moved.where() == tier::disk);
        CHECK(moved.context() == std::string(80, 'k'));
        CHECK(moved.os_error() == std::errc::io_error);
        CHECK(moved.message() == f.message());
    }
    SECTION("error_code() for every code") {
        for (const errc code : codes) {
            const failure f(code, tier::none);
            INFO("code " << tierguard::to_string(code));
            CHECK(f.error_code() == code);
            CHECK(f.error_code().value() == static_cast<int>(code));
        }
    }
}

TEST_CASE("failure: message()", "[errc][failure]") {
    const std::vector<errc> codes = all_codes();
    SECTION("with a context") {
        const failure f(errc::too_large, tier::memory, "entry weighs 2048 bytes, a shard holds 1024");
        CHECK(f.message() == "[tierguard.too_large] memory tier: entry weighs 2048 bytes, a shard holds 1024");
    }
    SECTION("without a context the category's message is used") {
        const failure f(errc::miss, tier::memory);
        const std::string category_message = tierguard::errc_category().message(static_cast<int>(errc::miss));
        CHECK(f.message() == "[tierguard.miss] memory tier: " + category_message);
    }
    SECTION("the OS error's message is appended when present") {
        const std::error_code os = std::make_error_code(std::errc::no_space_on_device);
        const failure f(errc::disk_full, tier::disk, "writing 4096 bytes", os);
        const std::string msg = f.message();
        INFO("message: " << msg);
        REQUIRE_FALSE(os.message().empty());
        CHECK(starts_with(msg, "[tierguard.disk_full] disk tier:"));
        CHECK(msg.find(os.message()) != std::string::npos);
        CHECK(msg == "[tierguard.disk_full] disk tier: writing 4096 bytes (" + os.message() + ")");

        const failure no_context(errc::permission_denied, tier::disk, "",
                                 std::make_error_code(std::errc::permission_denied));
        const std::string msg2 = no_context.message();
        INFO("message: " << msg2);
        CHECK(starts_with(msg2, "[tierguard.permission_denied] disk tier: "));
        CHECK(msg2.find(std::make_error_code(std::errc::permission_denied).message()) != std::string::npos);
        CHECK(msg2.find(tierguard::errc_category().message(static_cast<int>(errc::permission_denied))) !=
              std::string::npos);
    }
    SECTION("tier::none has no tier part (issue 17, trial 10: it read \"none tier: ...\")") {
        const failure f(errc::closed, tier::none, "the cache was closed");
        CHECK(f.message() == "[tierguard.closed] the cache was closed");
    }
    SECTION("no OS error: nothing appended") {
        const failure f(errc::timeout, tier::remote, "GET took 2s");
        CHECK(f.message() == "[tierguard.timeout] remote tier: GET took 2s");
    }
    SECTION("every code and tier starts with the stable id") {
        for (const errc code : codes) {
            for (const tier t : all_tiers) {
                const failure f(code, t);
                // "loader:", not "loader tier:"; no tier part for tier::none
                const std::string where = t == tier::none     ? ""
                                          : t == tier::loader ? "loader: "
                                                              : std::string(tierguard::to_string(t)) + " tier: ";
                const std::string prefix = "[tierguard." + std::string(tierguard::to_string(code)) + "] " + where;
                const std::string msg = f.message();
                INFO("message: " << msg << ", expected prefix: " << prefix);
                CHECK(starts_with(msg, prefix));
                CHECK(msg.size() > prefix.size());
            }
        }
    }
}

TEST_CASE("failure: comparison with errc and is_miss", "[errc][failure]") {
    const std::vector<errc> codes = all_codes();
    const failure f(errc::disk_full, tier::disk);
    CHECK(f == errc::disk_full);
    CHECK(errc::disk_full == f);
    CHECK(f != errc::io_error);
    CHECK(errc::io_error != f);
    CHECK_FALSE(f == errc::miss);

    for (const errc code : codes) {
        const failure g(code, tier::memory);
        INFO("code " << tierguard::to_string(code));
        CHECK(g == code);
        CHECK(g.is_miss() == (code == errc::miss));
        for (const errc other : codes) {
            if (other != code) CHECK(g != other);
        }
    }
}

TEST_CASE("version constants equal the CMake project version", "[version]") {
    STATIC_REQUIRE(tierguard::version_major >= 0);
    STATIC_REQUIRE(tierguard::version_minor >= 0);
    STATIC_REQUIRE(tierguard::version_patch >= 0);
    const std::string from_header = std::to_string(tierguard::version_major) + "." +
                                    std::to_string(tierguard::version_minor) + "." +
                                    std::to_string(tierguard::version_patch);
    const std::string from_cmake = TIERGUARD_PROJECT_VERSION;
    INFO("version.hpp says " << from_header << ", CMake project() says " << from_cmake);
    REQUIRE(from_header == from_cmake);
}
