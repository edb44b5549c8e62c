// A Listener of your own: the cache's events (a corrupted file, a breaker opening and
// closing, degraded mode) forwarded to the application's logger with a level each.
// Listeners are called synchronously, maybe under a tier's lock: they must be quick and
// must not throw (tierguard::listener_policy requires a noexcept on_event).
#include "scratch_dir.hpp"

#include <tierguard/tierguard.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

// Stands in for the application's logger (spdlog, syslog, a structured log pipeline).
class app_logger {
public:
    enum class level { info, warning, error };
    void write(level lvl, std::string_view component, std::string_view message) {
        static constexpr const char* names[] = {"INFO", "WARN", "ERROR"};
        std::printf("[%s] %.*s: %.*s\n", names[static_cast<int>(lvl)], static_cast<int>(component.size()),
                    component.data(), static_cast<int>(message.size()), message.data());
        ++lines;
    }
    int lines = 0;
};

// The Listener: a pointer to the logger (listeners are copied into the cache), and a level per kind.
struct log_forwarder {
    app_logger* log;

    void on_event(const tierguard::event& e) noexcept {
        using kind = tierguard::event_kind;
        auto lvl = app_logger::level::info;
        if (e.kind == kind::corrupted || e.kind == kind::io_error || e.kind == kind::disk_full)
            lvl = app_logger::level::error;
        else if (e.kind == kind::quarantined || e.kind == kind::degraded_entered ||
                 e.kind == kind::breaker_state_changed)
            lvl = app_logger::level::warning;
        try {
            std::string message(to_string(e.kind));
            message += ' ';
            message += e.detail;
            if (e.cause != nullptr) message += " (" + e.cause->context() + ")";
            log->write(lvl, "cache", message);
        } catch (...) {  // a lost log line must never reach the cache
        }
    }
};
static_assert(tierguard::listener_policy<log_forwarder>);

struct logged_policies : tierguard::cache_defaults {
    using clock = tierguard::clock::manual;  // to pass the breaker's recovery time without waiting
    using listener = log_forwarder;
};

int run(const std::filesystem::path& root) {
    using namespace std::chrono_literals;
    app_logger log;
    tierguard::clock::manual clock;
    tierguard::cache<std::string, std::string, logged_policies>::config cfg;
    cfg.storage.root = root;
    cfg.breaker.recovery_time = 30s;
    auto cache = tierguard::cache<std::string, std::string, logged_policies>::open(cfg, clock, log_forwarder{&log});
    if (!cache) return std::printf("%s\n", cache.error().message().c_str()), 1;

    (void)cache->put("ada", "profile of ada");
    cache->memory().clear();  // so that the next get reads the disk
    std::ofstream(root / cache->disk().name_for("ada").value(), std::ios::trunc) << "flipped bits";
    (void)cache->get("ada");  // logs corrupted, then quarantined

    cache->breaker().force_open();  // an operator takes the disk out (or failures open it)
    (void)cache->get("grace");      // logs the breaker change and degraded mode
    cache->breaker().force_closed();
    clock.advance(1min);
    (void)cache->put("grace", "profile of grace");  // the next disk call logs the way back

    std::printf("logged %d line(s)\n", log.lines);
    return log.lines >= 7 && !cache->degraded() ? 0 : 1;
}

int main() { return run_in_scratch_dir("cache", run); }
