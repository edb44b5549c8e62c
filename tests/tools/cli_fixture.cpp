// Builds real directories for tests/tools/cli_test.sh with the library, and holds a cache's
// lock while running a command, so that the test can drive tierguard-cli's real command line.
//
//   cli_fixture make ROOT          ROOT/cache (see make_cache), ROOT/plain (not a cache),
//                                  ROOT/file (a regular file)
//   cli_fixture hold DIR CMD...    opens DIR as a cache does (exclusive lock), runs CMD, exits with its code
#include <tierguard/disk_tier.hpp>
#include <tierguard/storage/posix_directory.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using tierguard::storage::posix_directory;

struct schema_two : tierguard::disk_defaults {
    static constexpr std::uint32_t schema_version = 2;
};

// Without a scrub at open, so that a tier of one schema version leaves the other's entries be.
template <class Policies = tierguard::disk_defaults>
tierguard::disk_tier<std::string, std::string, Policies> open_tier(const fs::path& root) {
    auto dir = posix_directory::open({.root = root, .sync = tierguard::durability::none});
    if (!dir) throw std::runtime_error(dir.error().message());
    auto tier =
        tierguard::disk_tier<std::string, std::string, Policies>::open(std::move(*dir), {.scrub_on_open = false});
    if (!tier) throw std::runtime_error(tier.error().message());
    return std::move(*tier);
}

void check(const tierguard::result<void>& r) {
    if (!r) throw std::runtime_error(r.error().message());
}

// The cache the test expects, file by file:
//   intact, schema 1: alpha, beta, delta;  intact, schema 2: omega;  expired: expiring
//   damaged (a flipped payload byte): gamma;  misplaced (beta's frame under another name): 00/00/0000000000000000
//   quarantined: epsilon (now) and one file stamped 2020-01-01;  a leftover temp file in the alpha's folder
void make_cache(const fs::path& root) {
    std::string gamma_file, beta_file, alpha_file;
    {
        auto tier = open_tier(root);
        for (const char* key : {"alpha", "beta", "gamma", "delta", "epsilon"})
            check(tier.put(key, std::string("value of ") + key));
        check(tier.put("expiring", "short-lived", std::chrono::nanoseconds(1)));
        gamma_file = tier.name_for("gamma").value();
        beta_file = tier.name_for("beta").value();
        alpha_file = tier.name_for("alpha").value();

        std::ofstream(root / tier.name_for("epsilon").value(), std::ios::trunc) << "not a frame";
        if (tier.get("epsilon").error().code() != tierguard::errc::corrupted)
            throw std::runtime_error("epsilon was not quarantined");
    }
    {
        auto tier = open_tier<schema_two>(root);  // as after a deploy that bumped the schema
        check(tier.put("omega", "value of omega"));
    }

    std::fstream gamma(root / gamma_file, std::ios::in | std::ios::out | std::ios::binary);
    gamma.seekp(-5, std::ios::end);  // the last payload byte, just before the CRC
    gamma.put('#');
    gamma.close();
    fs::create_directories(root / "00/00");
    fs::copy_file(root / beta_file, root / "00/00/0000000000000000");
    std::ofstream(root / "quarantine" / "20200101T000000Z.00_00_0000000000000001.frame") << "old damage";
    std::ofstream(root / fs::path(alpha_file).parent_path() / ".tmp.1.0") << "an interrupted write";
}

int hold(const char* dir, char** command) {
    auto lock = posix_directory::open({.root = dir});
    if (!lock) {
        std::fprintf(stderr, "cli_fixture: %s\n", lock.error().message().c_str());
        return 100;
    }
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child == 0) {
        ::execv(command[0], command);
        std::perror("cli_fixture: execv");
        ::_exit(101);
    }
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) != child) return 102;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 103;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 2 ? argv[1] : "";
        if (mode == "make" && argc == 3) {
            const fs::path root = argv[2];
            fs::remove_all(root);
            make_cache(root / "cache");
            fs::create_directories(root / "plain");
            std::ofstream(root / "plain" / "notes.txt") << "not a cache";
            std::ofstream(root / "file") << "a file";
            return 0;
        }
        if (mode == "hold" && argc > 3) return hold(argv[2], argv + 3);
        std::fprintf(stderr, "usage: cli_fixture make ROOT | cli_fixture hold DIR CMD...\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cli_fixture: %s\n", e.what());
        return 1;
    }
}
