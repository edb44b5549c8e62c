#pragma once

// Opt-in: needs hiredis (link tierguard::redis, or pkg-config tierguard-redis).

#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/redis_url.hpp>
#include <tierguard/detail/siphash.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>
#include <tierguard/storage/concept.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace tierguard::storage {

namespace redis_detail {
struct reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

struct context_deleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

/// One command: its arguments, the name first.
using command = std::span<const std::string_view>;

[[nodiscard]] inline timeval to_timeval(std::chrono::milliseconds ms) noexcept {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
    return tv;
}

/// The code of a failure with errno `err` on a Redis connection: a timeout for the
/// EAGAIN that SO_RCVTIMEO/SO_SNDTIMEO give (and a connect's ETIMEDOUT), else io_error.
/// ENOENT (no socket file) is an io_error here, never a miss.
[[nodiscard]] constexpr errc connection_errc(int err) noexcept {
    return err == EAGAIN || err == EWOULDBLOCK || err == ETIMEDOUT ? errc::timeout : errc::io_error;
}

/// hiredis's error text as it reads (quotes kept), other bytes as \xNN, at most 96 shown.
[[nodiscard]] inline std::string printable(std::string_view text) {
    constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < text.size() && i < 96; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15U];
        }
    }
    if (text.size() > 96) out += "...";
    return out;
}

/// The code of an error reply: OOM (maxmemory reached) disk_full, NOAUTH/WRONGPASS/NOPERM
/// and a refused AUTH permission_denied, WRONGTYPE (a key under the prefix that is not a
/// string) corrupted, anything else io_error.
[[nodiscard]] constexpr errc reply_errc(std::string_view text) noexcept {
    if (text.starts_with("OOM")) return errc::disk_full;
    if (text.starts_with("NOAUTH") || text.starts_with("WRONGPASS") || text.starts_with("NOPERM") ||
        text.starts_with("ERR invalid password") || text.starts_with("ERR invalid username-password") ||
        text.starts_with("ERR AUTH") || text.starts_with("ERR Client sent AUTH"))
        return errc::permission_denied;
    if (text.starts_with("WRONGTYPE")) return errc::corrupted;
    return errc::io_error;
}

/// `text` with the glob characters of SCAN's MATCH escaped.
[[nodiscard]] inline std::string glob_escaped(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 4);
    for (const char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

/// The rendezvous weight of `name` on the endpoint whose id hashes to `endpoint_hash`.
[[nodiscard]] inline std::uint64_t rendezvous_weight(std::uint64_t endpoint_hash, std::string_view name) noexcept {
    return detail::siphash24({endpoint_hash, 0x7469657267756172ULL},
                             std::span(reinterpret_cast<const std::byte*>(name.data()), name.size()));
}
}  // namespace redis_detail

/// Named byte blobs in one or more Redis servers: the storage of a shared remote tier.
///
/// Blob "ab/cd/0123" is the string key "<prefix>ab/cd/0123" (prefix "tg:v<schema>:" by
/// default, so a schema bump never reads old bytes); a quarantined blob moves to
/// "<prefix>quarantine/<detail::quarantine_name()>" with an expiry of config::quarantine_expiry.
/// Guarantees:
///  - Values are opaque; a write is one SET (atomic: readers see the old blob or the new
///    one). write(name, bytes, expiry) sets a Redis expiry (SET ... PX), so Redis drops an
///    entry whose TTL has passed by itself.
///  - Several servers: each name goes to one endpoint by rendezvous hashing over the
///    endpoints' ids (see endpoint_for), never to another one when its endpoint is down (a
///    copy written elsewhere would go stale when the endpoint comes back). Each endpoint
///    has its own connection pool and health: after a failed connection, calls to that
///    endpoint fail fast with errc::circuit_open until a backoff (config::backoff_min,
///    doubling up to backoff_max, timed by Clock) has passed; then the next call tries
///    again. An endpoint is never given up for good; one that is down costs only its keys.
///  - Errors map to the taxonomy (tier::remote): refused, reset, closed connections and
///    protocol garbage errc::io_error (the errno kept where there is one), a timeout
///    (connect or command) errc::timeout, an OOM reply errc::disk_full, NOAUTH / WRONGPASS
///    errc::permission_denied, a non-string value under the prefix errc::corrupted, an
///    absent blob errc::miss (ENOENT). A connection that failed is closed (a late reply
///    could otherwise answer the next command), with every idle one of its endpoint.
///  - Never a SIGPIPE: hiredis 0.14 writes with write(2), which raises SIGPIPE on a
///    connection the server closed. This storage never lets hiredis write: it formats each
///    command with hiredis and sends it itself with send(MSG_NOSIGNAL) (where the system has
///    no MSG_NOSIGNAL, the socket gets SO_NOSIGPIPE), then lets hiredis read the replies.
///    No signal mask or disposition is touched.
///  - Distributed invalidation: write and remove overloads that PUBLISH a notice in the same
///    round trip, publish(), and subscribe() to hear every endpoint's notices with a link
///    state (docs/REMOTE.md, "Distributed invalidation").
///  - Nothing is connected by open(): a server that is down does not keep a cache from
///    starting. Host names are resolved by hiredis at connect time (getaddrinfo, blocking,
///    not bounded by connect_timeout): prefer addresses or unix sockets.
/// Every operation is thread-safe: threads share each endpoint's pool of at most
/// config::pool_size connections (a thread waits up to command_timeout for one). None
/// throws for a storage failure (only bad_alloc). A moved-from object may only be
/// destroyed or assigned to.
template <class Clock = tierguard::clock::steady>
class basic_redis {
public:
    /// Seen by every process: a disk_tier over it keeps no index (see disk_tier::shared).
    static constexpr bool shared = true;
    static_assert(
        clock_policy<Clock>,
        "tierguard::storage::basic_redis: Clock does not model tierguard::clock_policy; see docs/POLICIES.md");

    struct config {
        /// Server URLs: "redis://[[user]:password@]host[:port][/db]" (port 6379, db 0 by
        /// default) or "unix://[[user]:password@]/path[?db=N]". At least one.
        std::vector<std::string> endpoints{};
        /// Part of the default key prefix: entries of another schema are never read.
        std::uint32_t schema_version = 1;
        /// Prefix of every key; empty: "tg:v<schema_version>:". Printable ASCII, no space.
        std::string key_prefix{};
        /// Longest wait for a connection to be made (TCP handshake or socket connect).
        std::chrono::milliseconds connect_timeout{250};
        /// Longest wait for each send or read of a command (SO_SNDTIMEO / SO_RCVTIMEO: a
        /// value read in several pieces may take one per piece), and for a free pooled connection.
        std::chrono::milliseconds command_timeout{250};
        /// Connections per endpoint, the most open at once.
        std::size_t pool_size = 8;
        /// Wait before the first retry of an endpoint whose connection failed; it doubles
        /// with each further failure up to backoff_max. A reply (even an error) ends the run.
        std::chrono::milliseconds backoff_min{100};
        std::chrono::milliseconds backoff_max{5000};
        /// Largest blob write() stores and read() returns.
        std::size_t max_blob_size = std::size_t{64} << 20;
        /// Most blobs list() returns; past it, list() fails with errc::too_large.
        std::size_t list_limit = 1'000'000;
        /// Keys SCAN is asked for per step (COUNT), each step one short round trip.
        std::size_t scan_count = 1000;
        /// Redis expiry of a quarantined blob (seed 001: 7 days); clean() purges earlier.
        std::chrono::milliseconds quarantine_expiry = std::chrono::hours{24 * 7};
        /// Keepalive of each connection of a subscription (subscribe()): a PING this often;
        /// no answer within command_timeout counts that endpoint's subscription lost.
        std::chrono::milliseconds invalidation_ping_interval{1000};
    };

    /// An endpoint's health, for metrics and logs.
    struct endpoint_status {
        std::string id;                          ///< detail::redis_address::id
        std::uint32_t consecutive_failures = 0;  ///< connection failures since the last reply
        bool backing_off = false;                ///< calls fail fast with circuit_open now
        std::size_t open_connections = 0;
    };

    /// Checks the config and parses the endpoints; connects to nothing. Errors:
    /// errc::invalid_argument naming the bad setting or URL (never showing a password).
    [[nodiscard]] static result<basic_redis> open(config cfg, Clock clock = Clock{}) {
        auto bad = [](std::string what) {
            return fail(errc::invalid_argument, tier::remote, "storage::redis: " + std::move(what));
        };
        if (cfg.endpoints.empty()) return bad("config.endpoints is empty; name at least one server");
        if (cfg.connect_timeout.count() <= 0 || cfg.command_timeout.count() <= 0)
            return bad("config.connect_timeout and config.command_timeout must be at least 1 ms");
        if (cfg.pool_size == 0) return bad("config.pool_size is 0; it must be at least 1");
        if (cfg.backoff_min.count() < 0 || cfg.backoff_max < cfg.backoff_min)
            return bad("config.backoff_min must be >= 0 and <= config.backoff_max");
        if (cfg.max_blob_size == 0 || cfg.max_blob_size > (std::size_t{512} << 20))
            return bad("config.max_blob_size must be from 1 byte to 512 MiB (Redis's largest string)");
        if (cfg.scan_count == 0 || cfg.list_limit == 0) return bad("config.scan_count and list_limit must be >= 1");
        if (cfg.quarantine_expiry.count() <= 0) return bad("config.quarantine_expiry must be at least 1 ms");
        if (cfg.invalidation_ping_interval.count() <= 0)
            return bad("config.invalidation_ping_interval must be at least 1 ms");
        if (cfg.key_prefix.empty()) cfg.key_prefix = "tg:v" + std::to_string(cfg.schema_version) + ":";
        for (const char c : cfg.key_prefix)
            if (c <= ' ' || c > '~')
                return bad("config.key_prefix " + detail::quoted_name(cfg.key_prefix) +
                           " holds a space or a character outside printable ASCII");
        std::vector<std::unique_ptr<endpoint>> endpoints;
        for (const auto& url : cfg.endpoints) {
            auto address = detail::parse_redis_url(url);
            if (!address) return unexpected(std::move(address).error());
            for (const auto& other : endpoints)
                if (other->address.id == address->id) return bad("config.endpoints names " + address->id + " twice");
            endpoints.push_back(std::make_unique<endpoint>(std::move(*address)));
        }
        return basic_redis(std::move(cfg), std::move(clock), std::move(endpoints));
    }

    basic_redis(basic_redis&&) noexcept = default;
    basic_redis& operator=(basic_redis&&) noexcept = default;
    basic_redis(const basic_redis&) = delete;
    basic_redis& operator=(const basic_redis&) = delete;
    ~basic_redis() = default;

    /// The whole blob (GET); errc::miss if absent, errc::too_large past max_blob_size.
    [[nodiscard]] result<std::vector<std::byte>> read(std::string_view name) const {
        if (auto ok = detail::check_blob_name("read", name, tier::remote); !ok)
            return unexpected(std::move(ok).error());
        const std::string key = key_of(name);
        const std::array<std::string_view, 2> get{"GET", key};
        auto reply = one(endpoint_of(name), "read", name, get, expect(REDIS_REPLY_STRING) | expect(REDIS_REPLY_NIL));
        if (!reply) return unexpected(std::move(reply).error());
        const redisReply& r = **reply;
        if (r.type == REDIS_REPLY_NIL) return missing("read", name);
        if (r.type == REDIS_REPLY_ERROR) return reply_failure(endpoint_of(name), "read", name, r);
        if (r.len > m_config.max_blob_size)
            return fail(errc::too_large, tier::remote,
                        "read " + std::string(name) + ": value of " + std::to_string(r.len) +
                            " bytes exceeds max_blob_size (" + std::to_string(m_config.max_blob_size) + ")");
        const auto* bytes = reinterpret_cast<const std::byte*>(r.str);
        return std::vector<std::byte>(bytes, bytes + r.len);
    }

    /// Stores `bytes` under `name` (SET), replacing any previous blob and its expiry.
    result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return set("write", name, bytes, {}, nullptr);
    }

    /// As write, and Redis removes the blob after `expiry` (SET ... PX); an expiry under
    /// 1 ms is errc::invalid_argument.
    result<void> write(std::string_view name, std::span<const std::byte> bytes, std::chrono::milliseconds expiry) {
        auto px = px_of(name, expiry);
        if (!px) return unexpected(std::move(px).error());
        return set("write", name, bytes, *px, nullptr);
    }

    /// Removes the blob (DEL); errc::miss if there was none.
    result<void> remove(std::string_view name) { return del(name, nullptr); }

    // -----------------------------------------------------------------------------------
    // Invalidation: a pub/sub channel of the cache's own, invalidation_channel(). The bytes
    // of a notice are opaque here: the cache builds them (sender, operation, encoded key).

    /// A notice's bytes: what the cache publishes and what subscribe()'s on_notice receives.
    using notice_bytes = std::span<const std::byte>;

    /// The channel of invalidation notices: "<key_prefix>invalidate", so a cache of another
    /// schema version or prefix never hears them. Redis's pub/sub ignores the database
    /// number: caches of one server with the same prefix hear each other whatever their db.
    [[nodiscard]] std::string invalidation_channel() const { return m_config.key_prefix + "invalidate"; }

    /// As write(name, bytes), and PUBLISH `notice` on invalidation_channel(): both commands
    /// sent in one write on one connection of name's endpoint, both replies read (one round
    /// trip). A failed SET is classified as by write(); the notice is published even then
    /// (Redis runs the PUBLISH anyway: a needless erasure elsewhere, never a missed one). A
    /// PUBLISH that fails after the SET succeeded fails the call with the PUBLISH's error
    /// (its message says the SET succeeded): the cache must take it as a failed write.
    /// A timeout says nothing about whether the pair ran: Redis may run both later, never
    /// one without the other unless it crashes between them.
    result<void> write(std::string_view name, std::span<const std::byte> bytes, notice_bytes notice) {
        return set("write", name, bytes, {}, &notice);
    }

    /// As write(name, bytes, expiry), and PUBLISH `notice` as write(name, bytes, notice) does.
    result<void> write(std::string_view name, std::span<const std::byte> bytes, std::chrono::milliseconds expiry,
                       notice_bytes notice) {
        auto px = px_of(name, expiry);
        if (!px) return unexpected(std::move(px).error());
        return set("write", name, bytes, *px, &notice);
    }

    /// As remove(name), and PUBLISH `notice` in the same round trip. The notice is published
    /// whether or not the blob existed (errc::miss): another process may still hold a copy.
    result<void> remove(std::string_view name, notice_bytes notice) { return del(name, &notice); }

    /// PUBLISHes `notice` (e.g. "flush everything" after a clear) on the first endpoint that
    /// takes it, in config order. One is enough: a subscription whose link is up listens on
    /// every endpoint, and one whose link is down must flush when it comes back anyway. Fails
    /// only if every endpoint failed, with the last endpoint's failure.
    result<void> publish(notice_bytes notice) {
        const std::string channel = invalidation_channel();
        const std::array<std::string_view, 3> args{"PUBLISH", channel, chars_of(notice)};
        result<void> out;
        for (const auto& ep : m_endpoints) {
            auto reply = one(*ep, "publish", {}, args, expect(REDIS_REPLY_INTEGER));
            if (reply && (*reply)->type != REDIS_REPLY_ERROR) return {};
            out = reply ? reply_failure(*ep, "publish", {}, **reply) : unexpected(std::move(reply).error());
        }
        return out;
    }

    class subscription;

    /// Called with each notice's bytes (valid during the call only).
    using notice_handler = std::function<void(notice_bytes)>;
    /// Called with false as soon as any endpoint's subscription is lost or stops answering,
    /// with true once every endpoint's is confirmed (SUBSCRIBE answered) again.
    using link_handler = std::function<void(bool up)>;
    /// Called with the reason each time an endpoint's subscription fails or is lost (then
    /// retried after the backoff): for a log line or an event.
    using error_handler = std::function<void(const failure&)>;

    /// Subscribes to invalidation_channel() on every endpoint (a notice goes out on its key's
    /// endpoint, so each must be heard), on one background thread with one connection per
    /// endpoint of its own (outside the pool). The link starts down: the first on_link call
    /// is on_link(true), once every endpoint's SUBSCRIBE is confirmed; then on_link(false) as
    /// soon as one is lost (closed, garbage, an error reply) or unresponsive (no answer to the
    /// keepalive PING, sent every config::invalidation_ping_interval, within
    /// config::command_timeout: a hung server is noticed within the sum of the two), and
    /// on_link(true) when all are back. Notices published while the link was down are lost:
    /// on_link(true) is the cue to flush what they might have erased. A lost endpoint is
    /// reconnected after config::backoff_min, doubling up to backoff_max while it keeps
    /// failing (timed by the steady clock, whatever Clock is: this thread waits on sockets).
    /// Callbacks run on the subscription's thread, one at a time, never after the handle is
    /// destroyed; they must not block long (a slow callback delays notices and keepalives),
    /// must not stop or destroy the handle, and should not throw (an exception counts every
    /// endpoint's subscription lost: a notice may have gone unhandled). Errors: errc::invalid_argument for an empty
    /// handler, errc::io_error if the thread or its wake-up pipe cannot be made; failures of the connections are not
    /// errors of this call: see subscription::last_error().
    [[nodiscard]] result<subscription> subscribe(notice_handler on_notice, link_handler on_link,
                                                 error_handler on_error = {}) const;

    /// Every blob of every endpoint (SCAN over the prefix, then STRLEN and OBJECT IDLETIME
    /// per key in one pipelined round trip per step). `modified` is the last access as Redis
    /// knows it (now minus the idle time; the epoch under an LFU maxmemory-policy), Redis
    /// keeping no write time. Keys under the prefix that are no blob name, or no string, are
    /// left out. errc::too_large past config::list_limit blobs; an endpoint's failure fails
    /// the whole listing.
    [[nodiscard]] result<std::vector<blob_info>> list() const {
        std::vector<blob_info> out;
        const std::string pattern = redis_detail::glob_escaped(m_config.key_prefix) + "*";
        for (const auto& ep : m_endpoints) {
            const std::size_t before = out.size();
            auto scanned = scan(
                *ep, "list", pattern, [&] { out.resize(before); },
                [&](connection& c, std::span<const std::string> keys) -> result<void> {
                    std::vector<std::string_view> names;
                    for (const auto& key : keys) {
                        const std::string_view name = std::string_view(key).substr(m_config.key_prefix.size());
                        if (detail::blob_name_problem(name).empty()) names.push_back(name);
                    }
                    if (names.empty()) return {};
                    if (out.size() + names.size() > m_config.list_limit)
                        return fail(errc::too_large, tier::remote,
                                    "list: more than config.list_limit (" + std::to_string(m_config.list_limit) +
                                        ") blobs under prefix " + m_config.key_prefix);
                    std::vector<std::string> storage;
                    storage.reserve(names.size());
                    std::vector<std::array<std::string_view, 3>> args;
                    args.reserve(names.size() * 2);
                    for (const auto name : names) {
                        storage.push_back(key_of(name));
                        args.push_back({"STRLEN", storage.back(), {}});
                        args.push_back({"OBJECT", "IDLETIME", storage.back()});
                    }
                    std::vector<redis_detail::command> commands;
                    for (std::size_t i = 0; i < args.size(); ++i)
                        commands.emplace_back(args[i].data(), i % 2 == 0 ? 2 : 3);
                    auto replies = roundtrip(c, "list", {}, commands);
                    if (!replies) return unexpected(std::move(replies).error());
                    const auto now = std::chrono::system_clock::now();
                    for (std::size_t i = 0; i < names.size(); ++i) {
                        const redisReply& size = *(*replies)[2 * i];
                        const redisReply& idle = *(*replies)[2 * i + 1];
                        // No integer size: not a string. A nil idle time: gone since the SCAN. An error
                        // (an LFU maxmemory-policy keeps no idle time): listed, its time unknown.
                        if (size.type != REDIS_REPLY_INTEGER || idle.type == REDIS_REPLY_NIL) continue;
                        const auto modified = idle.type == REDIS_REPLY_INTEGER
                                                  ? now - std::chrono::seconds(idle.integer)
                                                  : std::chrono::system_clock::time_point{};
                        out.push_back(
                            blob_info{std::string(names[i]), static_cast<std::uint64_t>(size.integer), modified});
                    }
                    return {};
                });
            if (!scanned) return unexpected(std::move(scanned).error());
        }
        return out;
    }

    /// Renames the blob to its quarantine key, which expires after quarantine_expiry
    /// (RENAME then PEXPIRE, pipelined; on the blob's own endpoint). errc::miss if absent.
    result<void> quarantine(std::string_view name, std::string_view reason, std::chrono::system_clock::time_point now) {
        if (auto ok = detail::check_blob_name("quarantine", name, tier::remote); !ok) return ok;
        const std::string key = key_of(name);
        const std::string target = m_config.key_prefix + std::string(detail::quarantine_folder) + "/" +
                                   detail::quarantine_name(name, reason, now);
        const std::string expiry = std::to_string(m_config.quarantine_expiry.count());
        const std::array<std::string_view, 3> rename{"RENAME", key, target};
        const std::array<std::string_view, 3> pexpire{"PEXPIRE", target, expiry};
        const std::array<redis_detail::command, 2> commands{rename, pexpire};
        const std::array<unsigned, 2> expected{expect(REDIS_REPLY_STATUS), expect(REDIS_REPLY_INTEGER)};
        auto replies = call(endpoint_of(name), "quarantine", name, commands, expected);
        if (!replies) return unexpected(std::move(replies).error());
        const redisReply& r = *(*replies)[0];
        if (r.type == REDIS_REPLY_ERROR && std::string_view(r.str, r.len).starts_with("ERR no such key"))
            return missing("quarantine", name);
        if (r.type == REDIS_REPLY_ERROR) return reply_failure(endpoint_of(name), "quarantine", name, r);
        return {};
    }

    /// Deletes the quarantined blobs older than options.now - quarantine_max_age (by the
    /// time in their names), on every endpoint; Redis expires the others by itself. Nothing
    /// else is touched: keys under the prefix that are not blobs may belong to someone.
    result<clean_report> clean(const clean_options& options) {
        clean_report report;
        const auto oldest = options.now - options.quarantine_max_age;
        const std::string folder = m_config.key_prefix + std::string(detail::quarantine_folder) + "/";
        const std::string pattern = redis_detail::glob_escaped(folder) + "*";
        for (const auto& ep : m_endpoints) {
            const clean_report before = report;
            auto scanned = scan(
                *ep, "clean", pattern, [&] { report = before; },
                [&](connection& c, std::span<const std::string> keys) -> result<void> {
                    std::vector<std::array<std::string_view, 2>> args;
                    for (const auto& key : keys) {
                        const auto since = detail::quarantine_time(std::string_view(key).substr(folder.size()));
                        if (!since || *since >= oldest) continue;
                        args.push_back({"STRLEN", key});
                        args.push_back({"DEL", key});
                    }
                    if (args.empty()) return {};
                    std::vector<redis_detail::command> commands(args.begin(), args.end());
                    auto replies = roundtrip(c, "clean", {}, commands);
                    if (!replies) return unexpected(std::move(replies).error());
                    for (std::size_t i = 0; i + 1 < replies->size(); i += 2) {
                        const redisReply& size = *(*replies)[i];
                        const redisReply& del = *(*replies)[i + 1];
                        if (del.type != REDIS_REPLY_INTEGER || del.integer != 1) continue;
                        ++report.quarantine_purged;
                        if (size.type == REDIS_REPLY_INTEGER)
                            report.bytes_freed += static_cast<std::uint64_t>(size.integer);
                    }
                    return {};
                });
            if (!scanned) return unexpected(std::move(scanned).error());
        }
        return report;
    }

    /// Blobs in quarantine now, on every endpoint.
    [[nodiscard]] result<std::size_t> quarantined() const {
        std::size_t count = 0;
        const std::string pattern =
            redis_detail::glob_escaped(m_config.key_prefix + std::string(detail::quarantine_folder) + "/") + "*";
        for (const auto& ep : m_endpoints) {
            const std::size_t before = count;
            auto scanned = scan(
                *ep, "quarantined", pattern, [&] { count = before; },
                [&](connection&, std::span<const std::string> keys) {
                    count += keys.size();
                    return result<void>{};
                });
            if (!scanned) return unexpected(std::move(scanned).error());
        }
        return count;
    }

    /// The id of the endpoint that holds `name` (highest rendezvous weight): the same in
    /// every process given the same endpoints, in any order.
    [[nodiscard]] const std::string& endpoint_for(std::string_view name) const noexcept {
        return endpoint_of(name).address.id;
    }

    /// Each endpoint's health, in config order.
    [[nodiscard]] std::vector<endpoint_status> endpoints() const {
        std::vector<endpoint_status> out;
        const auto now = m_clock.now();
        for (const auto& ep : m_endpoints) {
            std::lock_guard lock(ep->mutex);
            out.push_back({ep->address.id, ep->failures, ep->failures != 0 && now < ep->retry_at, ep->open});
        }
        return out;
    }

    /// The key of blob `name`: the prefix, then the name.
    [[nodiscard]] std::string key_of(std::string_view name) const {
        std::string key;
        key.reserve(m_config.key_prefix.size() + name.size());
        key += m_config.key_prefix;
        key += name;
        return key;
    }

    [[nodiscard]] const config& settings() const noexcept { return m_config; }

private:
    struct endpoint {
        explicit endpoint(detail::redis_address a)
            : address(std::move(a)),
              id_hash(detail::siphash24(
                  {0x72656469735f6964ULL, 0},
                  std::span(reinterpret_cast<const std::byte*>(address.id.data()), address.id.size()))) {}
        detail::redis_address address;
        std::uint64_t id_hash;
        std::mutex mutex;
        std::condition_variable freed;
        std::vector<redis_detail::context_ptr> idle;
        std::size_t open = 0;
        std::uint32_t failures = 0;
        typename Clock::time_point retry_at{};
        std::string last_failure;
    };

    /// A pooled connection, handed back on destruction: to the idle list if it is sound.
    struct connection {
        endpoint* ep = nullptr;
        redis_detail::context_ptr context;
        bool reused = false;
        bool broken = false;  // a send or read failed: the stream's state is unknown
    };

    basic_redis(config cfg, Clock clock, std::vector<std::unique_ptr<endpoint>> endpoints)
        : m_config(std::move(cfg)), m_clock(std::move(clock)), m_endpoints(std::move(endpoints)) {}

    struct subscription_state;

    [[nodiscard]] endpoint& endpoint_of(std::string_view name) const noexcept {
        endpoint* best = m_endpoints.front().get();
        std::uint64_t best_weight = redis_detail::rendezvous_weight(best->id_hash, name);
        for (std::size_t i = 1; i < m_endpoints.size(); ++i) {
            const std::uint64_t weight = redis_detail::rendezvous_weight(m_endpoints[i]->id_hash, name);
            if (weight > best_weight) {
                best = m_endpoints[i].get();
                best_weight = weight;
            }
        }
        return *best;
    }

    [[nodiscard]] static unexpected<failure> missing(std::string_view operation, std::string_view name) {
        return fail(errc::miss, tier::remote, std::string(operation) + " " + std::string(name),
                    std::error_code(ENOENT, std::generic_category()));
    }

    [[nodiscard]] static std::string where(std::string_view operation, std::string_view name, const endpoint& ep) {
        std::string out(operation);
        if (!name.empty()) {
            out += ' ';
            out += name;
        }
        out += ": redis ";
        out += ep.address.id;
        return out;
    }

    [[nodiscard]] static unexpected<failure> reply_failure(const endpoint& ep, std::string_view operation,
                                                           std::string_view name, const redisReply& r) {
        const std::string_view text(r.str, r.len);
        return fail(redis_detail::reply_errc(text), tier::remote,
                    where(operation, name, ep) + " replied " + detail::quoted_name(text));
    }

    [[nodiscard]] static std::string_view chars_of(std::span<const std::byte> bytes) noexcept {
        return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    }

    /// The PX argument of a write with `expiry`, or why there is none.
    [[nodiscard]] static result<std::string> px_of(std::string_view name, std::chrono::milliseconds expiry) {
        if (expiry.count() <= 0)
            return fail(errc::invalid_argument, tier::remote,
                        "write " + std::string(name) + ": expiry of " + std::to_string(expiry.count()) +
                            " ms; it must be at least 1 ms");
        return std::to_string(expiry.count());
    }

    result<void> set(std::string_view operation, std::string_view name, std::span<const std::byte> bytes,
                     std::string_view px, const notice_bytes* notice) {
        if (auto ok = detail::check_blob_name(operation, name, tier::remote); !ok) return ok;
        if (bytes.size() > m_config.max_blob_size)
            return fail(errc::too_large, tier::remote,
                        std::string(operation) + " " + std::string(name) + ": blob of " + std::to_string(bytes.size()) +
                            " bytes exceeds max_blob_size (" + std::to_string(m_config.max_blob_size) + ")");
        const std::string key = key_of(name);
        const std::array<std::string_view, 5> args{"SET", key, chars_of(bytes), "PX", px};
        auto reply =
            change(operation, name, std::span(args.data(), px.empty() ? 3 : 5), expect(REDIS_REPLY_STATUS), notice);
        if (!reply) return unexpected(std::move(reply).error());
        return {};
    }

    result<void> del(std::string_view name, const notice_bytes* notice) {
        if (auto ok = detail::check_blob_name("remove", name, tier::remote); !ok) return ok;
        const std::string key = key_of(name);
        const std::array<std::string_view, 2> args{"DEL", key};
        auto reply = change("remove", name, args, expect(REDIS_REPLY_INTEGER), notice);
        if (!reply) return unexpected(std::move(reply).error());
        if ((*reply)->integer == 0) return missing("remove", name);
        return {};
    }

    /// Runs `cmd` on name's endpoint, and PUBLISHes `*notice` (if any) in the same round trip:
    /// `cmd`'s reply, or the failure of either (`cmd`'s first).
    result<redis_detail::reply_ptr> change(std::string_view operation, std::string_view name, redis_detail::command cmd,
                                           unsigned expected, const notice_bytes* notice) {
        endpoint& ep = endpoint_of(name);
        const std::string channel = notice != nullptr ? invalidation_channel() : std::string();
        const std::array<std::string_view, 3> publish{"PUBLISH", channel,
                                                      notice != nullptr ? chars_of(*notice) : std::string_view()};
        const std::array<redis_detail::command, 2> commands{cmd, publish};
        const std::array<unsigned, 2> types{expected, expect(REDIS_REPLY_INTEGER)};
        const std::size_t n = notice != nullptr ? 2 : 1;
        auto replies = call(ep, operation, name, std::span(commands.data(), n), std::span(types.data(), n));
        if (!replies) return unexpected(std::move(replies).error());
        if ((*replies)[0]->type == REDIS_REPLY_ERROR) return reply_failure(ep, operation, name, *(*replies)[0]);
        if (n == 2 && (*replies)[1]->type == REDIS_REPLY_ERROR) {
            const std::string_view text((*replies)[1]->str, (*replies)[1]->len);
            return fail(redis_detail::reply_errc(text), tier::remote,
                        where(operation, name, ep) + ": " + std::string(cmd[0]) + " succeeded, but PUBLISH on " +
                            channel + " replied " + detail::quoted_name(text) + "; other caches were not told");
        }
        return std::move((*replies)[0]);
    }

    /// The bit of reply type `type` in a mask of the types a command may answer with.
    [[nodiscard]] static constexpr unsigned expect(int type) noexcept { return 1u << type; }

    result<redis_detail::reply_ptr> one(endpoint& ep, std::string_view operation, std::string_view name,
                                        redis_detail::command cmd, unsigned expected) const {
        const std::array<redis_detail::command, 1> commands{cmd};
        auto replies = call(ep, operation, name, commands, std::span(&expected, 1));
        if (!replies) return unexpected(std::move(replies).error());
        return std::move(replies->front());
    }

    /// Runs `commands` pipelined on a pooled connection of `ep`; once more on a fresh
    /// connection if a reused one failed with io_error (the server may have closed it idle).
    result<std::vector<redis_detail::reply_ptr>> call(endpoint& ep, std::string_view operation, std::string_view name,
                                                      std::span<const redis_detail::command> commands,
                                                      std::span<const unsigned> expected) const {
        return with_connection(ep, operation, name,
                               [&](connection& c) { return roundtrip(c, operation, name, commands, expected); });
    }

    template <class F>
    auto with_connection(endpoint& ep, std::string_view operation, std::string_view name, F&& body) const
        -> decltype(body(std::declval<connection&>())) {
        for (int attempt = 0;; ++attempt) {
            auto c = acquire(ep, operation, name, attempt > 0);
            if (!c) return unexpected(std::move(c).error());
            auto out = body(*c);
            const bool retry = !out && c->broken && c->reused && attempt == 0 && out.error().code() == errc::io_error;
            release(std::move(*c), out ? std::string() : out.error().message(), !retry);
            if (!retry) return out;
        }
    }

    /// A connection of `ep`: an idle one (unless `fresh`), else a new one while fewer than
    /// pool_size are open, else the first one freed within command_timeout.
    result<connection> acquire(endpoint& ep, std::string_view operation, std::string_view name, bool fresh) const {
        std::unique_lock lock(ep.mutex);
        if (ep.failures != 0) {
            const auto now = m_clock.now();
            if (now < ep.retry_at)
                return fail(
                    errc::circuit_open, tier::remote,
                    where(operation, name, ep) + ": backing off after " + std::to_string(ep.failures) +
                        " failed connection(s) for another " +
                        std::to_string(std::chrono::ceil<std::chrono::milliseconds>(ep.retry_at - now).count()) +
                        " ms; last: " + ep.last_failure);
        }
        const bool free = ep.freed.wait_for(lock, m_config.command_timeout,
                                            [&] { return !ep.idle.empty() || ep.open < m_config.pool_size; });
        if (!free)
            return fail(errc::timeout, tier::remote,
                        where(operation, name, ep) + ": all " + std::to_string(m_config.pool_size) +
                            " pooled connections stayed busy for config.command_timeout (" +
                            std::to_string(m_config.command_timeout.count()) + " ms)");
        if (!ep.idle.empty()) {
            auto context = std::move(ep.idle.back());
            ep.idle.pop_back();
            if (!fresh) return connection{&ep, std::move(context), true, false};
            context.reset();  // a retry wants a new connection: this idle one may be as stale
            --ep.open;
        }
        ++ep.open;
        lock.unlock();
        connection c{&ep, nullptr, false, false};
        if (auto ok = connect(c, operation, name); !ok) {
            release(std::move(c), ok.error().message(), true);
            return unexpected(std::move(ok).error());
        }
        return c;
    }

    /// Hands `c` back: to the pool after a sound exchange (ending the endpoint's failure
    /// run), else closes it and every idle connection of its endpoint and, if `counted`,
    /// starts or extends the backoff.
    void release(connection c, std::string failure_text, bool counted) const {
        endpoint& ep = *c.ep;
        std::vector<redis_detail::context_ptr> closing;
        {
            std::lock_guard lock(ep.mutex);
            if (c.context && !c.broken) {
                ep.idle.push_back(std::move(c.context));
                ep.failures = 0;
            } else {
                --ep.open;
                closing.push_back(std::move(c.context));
                ep.open -= ep.idle.size();
                for (auto& idle : ep.idle) closing.push_back(std::move(idle));
                ep.idle.clear();
                if (counted) {
                    ++ep.failures;
                    ep.retry_at = m_clock.now() +
                                  std::chrono::duration_cast<typename Clock::duration>(backoff_after(ep.failures));
                    ep.last_failure = std::move(failure_text);
                }
            }
        }
        ep.freed.notify_all();
    }

    /// The wait before the next try after `failures` (>= 1) failures in a row: backoff_min,
    /// doubling per further failure up to backoff_max.
    [[nodiscard]] std::chrono::milliseconds backoff_after(std::uint32_t failures) const noexcept {
        auto wait = m_config.backoff_min;
        for (std::uint32_t n = 1; n < failures && wait.count() > 0 && wait < m_config.backoff_max; ++n) wait *= 2;
        return std::min(wait, m_config.backoff_max);
    }

    /// Connects `c` to its endpoint, then AUTH and SELECT as its URL asks, pipelined.
    result<void> connect(connection& c, std::string_view operation, std::string_view name) const {
        const detail::redis_address& a = c.ep->address;
        const timeval connect_tv = redis_detail::to_timeval(m_config.connect_timeout);
        errno = 0;
        c.context.reset(a.unix_socket ? redisConnectUnixWithTimeout(a.path.c_str(), connect_tv)
                                      : redisConnectWithTimeout(a.host.c_str(), a.port, connect_tv));
        c.broken = true;
        if (!c.context) return fail(errc::io_error, tier::remote, where(operation, name, *c.ep) + ": out of memory");
        if (c.context->err != 0) return context_failure(c, operation, name, "connect", errno);
        if (redisSetTimeout(c.context.get(), redis_detail::to_timeval(m_config.command_timeout)) != REDIS_OK)
            return context_failure(c, operation, name, "set timeouts", errno);
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
        const int on = 1;
        if (::setsockopt(c.context->fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on) != 0)
            return fail(errc::io_error, tier::remote, where(operation, name, *c.ep) + ": setsockopt SO_NOSIGPIPE",
                        std::error_code(errno, std::generic_category()));
#endif
        c.broken = false;
        const std::string db = std::to_string(a.db);
        const std::array<std::string_view, 3> auth{"AUTH", a.user.empty() ? a.password : a.user, a.password};
        const std::array<std::string_view, 2> select{"SELECT", db};
        std::vector<redis_detail::command> setup;
        if (!a.password.empty()) setup.emplace_back(auth.data(), a.user.empty() ? 2 : 3);
        if (a.db != 0) setup.emplace_back(select);
        if (setup.empty()) return {};
        auto replies = roundtrip(c, operation, name, setup);
        if (!replies) return unexpected(std::move(replies).error());
        for (const auto& r : *replies) {
            if (r->type != REDIS_REPLY_ERROR) continue;
            c.broken = true;
            const std::string_view text(r->str, r->len);
            return fail(redis_detail::reply_errc(text), tier::remote,
                        where(operation, name, *c.ep) + ": connection setup (AUTH, SELECT) replied " +
                            detail::quoted_name(text));
        }
        return {};
    }

    /// What a timeout says, as every timeout of this storage does: "no answer within
    /// config.command_timeout (100 ms)", or for a connect, config.connect_timeout.
    [[nodiscard]] std::string no_answer(bool connecting) const {
        return connecting ? "no connection within config.connect_timeout (" +
                                std::to_string(m_config.connect_timeout.count()) + " ms)"
                          : "no answer within config.command_timeout (" +
                                std::to_string(m_config.command_timeout.count()) + " ms)";
    }

    /// The failure a hiredis call left in `c`'s context (errno `err` captured right after it).
    [[nodiscard]] unexpected<failure> context_failure(connection& c, std::string_view operation, std::string_view name,
                                                      std::string_view step, int err) const {
        c.broken = true;
        const redisContext& ctx = *c.context;
        std::string context = where(operation, name, *c.ep) + ": " + std::string(step) + ": ";
        switch (ctx.err) {
            case REDIS_ERR_IO:
                if (err == 0) return fail(errc::io_error, tier::remote, context + "I/O error (" + ctx.errstr + ")");
                if (redis_detail::connection_errc(err) == errc::timeout)
                    return fail(errc::timeout, tier::remote, std::move(context) + no_answer(step == "connect"));
                return fail(errc::io_error, tier::remote, context + "I/O error",
                            std::error_code(err, std::generic_category()));
#if defined(REDIS_ERR_TIMEOUT)
            case REDIS_ERR_TIMEOUT:  // hiredis >= 1.0 says so itself
                return fail(errc::timeout, tier::remote, context + ctx.errstr,
                            std::error_code(err != 0 ? err : ETIMEDOUT, std::generic_category()));
#endif
            case REDIS_ERR_EOF:
                return fail(errc::io_error, tier::remote, context + "the server closed the connection",
                            std::error_code(ECONNRESET, std::generic_category()));
            case REDIS_ERR_PROTOCOL:
                return fail(errc::io_error, tier::remote,
                            context + "the server's answer is not the Redis protocol (" +
                                redis_detail::printable(ctx.errstr) + ")");
            default: return fail(errc::io_error, tier::remote, context + ctx.errstr);
        }
    }

    /// Sends `commands` in one write and reads one reply each. `expected` (if not empty)
    /// holds, per command, the mask of reply types it may answer with besides an error; any
    /// other type is io_error. Any failure marks `c` broken: its stream can no longer be trusted.
    result<std::vector<redis_detail::reply_ptr>> roundtrip(connection& c, std::string_view operation,
                                                           std::string_view name,
                                                           std::span<const redis_detail::command> commands,
                                                           std::span<const unsigned> expected = {}) const {
        if (auto sent = send_commands(c, operation, name, commands); !sent) return unexpected(std::move(sent).error());
        std::vector<redis_detail::reply_ptr> replies;
        replies.reserve(commands.size());
        for (std::size_t i = 0; i < commands.size(); ++i) {
            void* raw = nullptr;
            errno = 0;
            if (redisGetReply(c.context.get(), &raw) != REDIS_OK || raw == nullptr)
                return context_failure(c, operation, name, "read reply", errno);
            replies.emplace_back(static_cast<redisReply*>(raw));
            const int type = replies.back()->type;
            if (!expected.empty() && type != REDIS_REPLY_ERROR &&
                (type < 0 || type > 30 || (expected[i] & expect(type)) == 0)) {
                c.broken = true;
                return fail(errc::io_error, tier::remote,
                            where(operation, name, *c.ep) + ": answered with a reply of unexpected type " +
                                std::to_string(type));
            }
        }
        return replies;
    }

    /// Sends `commands` in one write (formatted by hiredis, sent by send_all).
    result<void> send_commands(connection& c, std::string_view operation, std::string_view name,
                               std::span<const redis_detail::command> commands) const {
        std::string out;
        for (const auto cmd : commands) {
            std::array<const char*, 8> argv_small{};
            std::array<std::size_t, 8> lens_small{};
            std::vector<const char*> argv_big;
            std::vector<std::size_t> lens_big;
            const char** argv = argv_small.data();
            std::size_t* lens = lens_small.data();
            if (cmd.size() > argv_small.size()) {
                argv_big.resize(cmd.size());
                lens_big.resize(cmd.size());
                argv = argv_big.data();
                lens = lens_big.data();
            }
            for (std::size_t i = 0; i < cmd.size(); ++i) {
                argv[i] = cmd[i].data();
                lens[i] = cmd[i].size();
            }
            char* formatted = nullptr;
            const auto n = redisFormatCommandArgv(&formatted, static_cast<int>(cmd.size()), argv, lens);
            if (n < 0) {
                c.broken = true;
                return fail(errc::io_error, tier::remote,
                            where(operation, name, *c.ep) + ": formatting a command failed");
            }
            if (commands.size() == 1) {
                auto sent = send_all(c, operation, name, std::string_view(formatted, static_cast<std::size_t>(n)));
                redisFreeCommand(formatted);
                return sent;
            }
            out.append(formatted, static_cast<std::size_t>(n));
            redisFreeCommand(formatted);
        }
        return send_all(c, operation, name, out);
    }

    /// Writes all of `bytes` to the socket; the one place this storage writes to it.
    result<void> send_all(connection& c, std::string_view operation, std::string_view name,
                          std::string_view bytes) const {
#if defined(MSG_NOSIGNAL)
        constexpr int flags = MSG_NOSIGNAL;
#else
        constexpr int flags = 0;  // the socket has SO_NOSIGPIPE
#endif
        while (!bytes.empty()) {
            const ssize_t n = ::send(c.context->fd, bytes.data(), bytes.size(), flags);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                const int err = errno;
                c.broken = true;
                const errc code = redis_detail::connection_errc(err);
                if (code == errc::timeout)
                    return fail(code, tier::remote, where(operation, name, *c.ep) + ": send: " + no_answer(false));
                return fail(code, tier::remote, where(operation, name, *c.ep) + ": send",
                            std::error_code(err, std::generic_category()));
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return {};
    }

    /// SCAN over `pattern` on `ep`, calling on_keys(connection, keys) for each step's keys;
    /// on_start() begins each attempt (a retry on a fresh connection starts over).
    template <class Start, class F>
    result<void> scan(endpoint& ep, std::string_view operation, const std::string& pattern, Start&& on_start,
                      F&& on_keys) const {
        return with_connection(ep, operation, {}, [&](connection& c) -> result<void> {
            on_start();
            std::string cursor = "0";
            const std::string count = std::to_string(m_config.scan_count);
            do {
                const std::array<std::string_view, 6> args{"SCAN", cursor, "MATCH", pattern, "COUNT", count};
                const std::array<redis_detail::command, 1> commands{redis_detail::command(args)};
                const unsigned array = expect(REDIS_REPLY_ARRAY);
                auto replies = roundtrip(c, operation, {}, commands, std::span(&array, 1));
                if (!replies) return unexpected(std::move(replies).error());
                const redisReply& r = *replies->front();
                if (r.type == REDIS_REPLY_ERROR) return reply_failure(ep, operation, {}, r);
                if (r.elements != 2 || r.element[0]->type != REDIS_REPLY_STRING ||
                    r.element[1]->type != REDIS_REPLY_ARRAY) {
                    c.broken = true;
                    return fail(errc::io_error, tier::remote,
                                where(operation, {}, ep) + ": SCAN answered with a reply of unexpected shape");
                }
                cursor.assign(r.element[0]->str, r.element[0]->len);
                std::vector<std::string> keys;
                keys.reserve(r.element[1]->elements);
                for (std::size_t i = 0; i < r.element[1]->elements; ++i) {
                    const redisReply& k = *r.element[1]->element[i];
                    if (k.type == REDIS_REPLY_STRING) keys.emplace_back(k.str, k.len);
                }
                if (auto ok = on_keys(c, std::span<const std::string>(keys)); !ok) return ok;
            } while (cursor != "0");
            return {};
        });
    }

    config m_config;
    Clock m_clock;
    std::vector<std::unique_ptr<endpoint>> m_endpoints;
};

/// A running subscription of basic_redis::subscribe(): its thread, its counters, its last
/// error. Destroying it (or stop()) stops the thread and joins it: within about
/// connect_timeout + command_timeout per endpoint being connected at that moment, at once
/// otherwise; no callback runs after that. Movable; a moved-from handle may only be
/// destroyed or assigned to. up(), the counters and last_error() may be called from any
/// thread (a callback included); stop() and the destructor must not race with other calls
/// on the handle, nor run in a callback (the thread would join itself).
template <class Clock>
class basic_redis<Clock>::subscription {
public:
    subscription(subscription&&) noexcept = default;
    subscription& operator=(subscription&& other) noexcept {
        if (this != &other) {
            stop();
            m_state = std::move(other.m_state);
            m_thread = std::move(other.m_thread);
        }
        return *this;
    }
    subscription(const subscription&) = delete;
    subscription& operator=(const subscription&) = delete;
    ~subscription() { stop(); }

    /// The link as the last on_link call said (every endpoint subscribed and answering);
    /// false once stopped.
    [[nodiscard]] bool up() const noexcept { return m_state->up.load(); }
    /// Notices handed to on_notice.
    [[nodiscard]] std::uint64_t notices() const noexcept { return m_state->notices.load(); }
    /// Calls of on_link(false): times the link went down after being up.
    [[nodiscard]] std::uint64_t link_losses() const noexcept { return m_state->link_losses.load(); }
    /// Times an endpoint's subscription was confirmed again after it had been lost.
    [[nodiscard]] std::uint64_t reconnects() const noexcept { return m_state->reconnects.load(); }
    /// Why an endpoint's subscription was last lost or refused (connection, AUTH, garbage,
    /// an unanswered PING), or nullopt if none ever was.
    [[nodiscard]] std::optional<failure> last_error() const {
        std::lock_guard lock(m_state->mutex);
        return m_state->last_error;
    }

    /// Stops the thread and joins it (see the class); nothing once stopped. The counters
    /// and last_error() stay readable; up() is false from then on.
    void stop() noexcept {
        if (!m_state || !m_thread.joinable()) return;
        m_state->stopping = true;
        if (::write(m_state->wake[1], "x", 1) < 0) {}  // the pipe is full: a wake-up is pending anyway
        m_thread.join();
        m_state->up = false;
    }

private:
    friend class basic_redis;
    subscription() = default;

    std::unique_ptr<subscription_state> m_state;
    std::thread m_thread;
};

/// What a subscription's thread owns: its own copy of the storage (endpoints and settings;
/// its pools stay empty), the callbacks, one listener per endpoint.
template <class Clock>
struct basic_redis<Clock>::subscription_state {
    using steady = std::chrono::steady_clock;

    /// One endpoint's subscribed connection.
    struct listener {
        connection c;
        bool subscribed = false;  // SUBSCRIBE confirmed
        bool ever_subscribed = false;
        bool ping_sent = false;
        std::uint32_t failures = 0;     // in a row, since the last confirmed SUBSCRIBE
        steady::time_point retry_at{};  // no connection: when to try again
        steady::time_point deadline{};  // SUBSCRIBE's or the PING's answer is due
        steady::time_point next_ping{};
    };

    subscription_state(basic_redis s, notice_handler n, link_handler l, error_handler e)
        : storage(std::move(s)), on_notice(std::move(n)), on_link(std::move(l)), on_error(std::move(e)) {}
    subscription_state(const subscription_state&) = delete;
    subscription_state& operator=(const subscription_state&) = delete;
    ~subscription_state() {
        for (const int fd : wake)
            if (fd >= 0) ::close(fd);
    }

    basic_redis storage;
    notice_handler on_notice;
    link_handler on_link;
    error_handler on_error;
    std::array<int, 2> wake{-1, -1};  // a pipe: stop() writes, the thread's poll wakes
    std::atomic<bool> stopping{false};
    std::atomic<bool> up{false};
    std::atomic<std::uint64_t> notices{0};
    std::atomic<std::uint64_t> link_losses{0};
    std::atomic<std::uint64_t> reconnects{0};
    mutable std::mutex mutex;
    std::optional<failure> last_error;

    void run() noexcept {
        std::vector<listener> listeners(storage.m_endpoints.size());
        for (std::size_t i = 0; i < listeners.size(); ++i) listeners[i].c.ep = storage.m_endpoints[i].get();
        std::vector<pollfd> fds;
        while (!stopping) {
            try {
                for (auto& l : listeners) {
                    if (stopping) return;
                    tick(l);
                }
                update_link(listeners);
                fds.assign(1, pollfd{wake[0], POLLIN, 0});
                auto next = steady::now() + std::chrono::hours(1);
                for (auto& l : listeners) {
                    next = std::min(next, !l.c.context                   ? l.retry_at
                                          : !l.subscribed || l.ping_sent ? l.deadline
                                                                         : l.next_ping);
                    if (l.c.context) fds.push_back(pollfd{l.c.context->fd, POLLIN, 0});
                }
                const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - steady::now());
                const int ready =
                    ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(wait.count(), 0)));
                if (ready < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
                if (ready <= 0) continue;
                char drained[64];
                if ((fds[0].revents & POLLIN) != 0)
                    while (::read(wake[0], drained, sizeof drained) > 0) {}
                std::size_t at = 1;
                for (auto& l : listeners) {
                    if (!l.c.context) continue;
                    if (fds[at++].revents != 0) receive(l);
                }
                update_link(listeners);
            } catch (const std::exception& e) {
                recover(listeners, std::string("subscribe: the subscription's thread caught: ") + e.what());
            } catch (...) {
                recover(listeners, "subscribe: the subscription's thread caught an exception");
            }
        }
    }

    /// After a callback threw (or memory ran out): a notice may have gone unhandled, so
    /// every connected listener starts again, and the link goes down.
    void recover(std::vector<listener>& listeners, std::string what) noexcept {
        try {
            for (auto& l : listeners)
                if (l.c.context) lose(l, failure(errc::io_error, tier::remote, what));
            std::lock_guard lock(mutex);
            last_error = failure(errc::io_error, tier::remote, std::move(what));
        } catch (...) {}
        try {
            update_link(listeners);
        } catch (...) {  // on_link(false) threw: the link is down all the same
        }
    }

    /// Connects a listener that is due, sends a PING that is due, gives up on an answer that is late.
    void tick(listener& l) {
        const auto now = steady::now();
        if (!l.c.context) {
            if (now >= l.retry_at) subscribe(l);
        } else if ((!l.subscribed || l.ping_sent) && now >= l.deadline) {
            lose(l, failure(errc::timeout, tier::remote,
                            where(l) + ": no answer to " + (l.subscribed ? "PING" : "SUBSCRIBE") +
                                " within config.command_timeout (" +
                                std::to_string(storage.m_config.command_timeout.count()) + " ms)"));
        } else if (l.subscribed && !l.ping_sent && now >= l.next_ping) {
            const std::array<std::string_view, 1> ping{"PING"};
            send(l, redis_detail::command(ping));
            l.ping_sent = true;
            l.deadline = now + storage.m_config.command_timeout;
        }
    }

    void subscribe(listener& l) {
        l.c.context.reset();
        l.c.broken = false;
        if (auto ok = storage.connect(l.c, "subscribe", {}); !ok) return lose(l, std::move(ok).error());
        const std::string channel = storage.invalidation_channel();
        const std::array<std::string_view, 2> args{"SUBSCRIBE", channel};
        if (!send(l, redis_detail::command(args))) return;
        l.deadline = steady::now() + storage.m_config.command_timeout;
    }

    bool send(listener& l, redis_detail::command cmd) {
        auto sent = storage.send_commands(l.c, "subscribe", {}, std::span(&cmd, 1));
        if (!sent) lose(l, std::move(sent).error());
        return static_cast<bool>(sent);
    }

    /// Reads what arrived on `l` and handles every whole reply in it.
    void receive(listener& l) {
        errno = 0;
        if (redisBufferRead(l.c.context.get()) != REDIS_OK)
            return lose(l, storage.context_failure(l.c, "subscribe", {}, "read", errno).error());
        for (;;) {
            void* raw = nullptr;
            if (redisGetReplyFromReader(l.c.context.get(), &raw) != REDIS_OK)
                return lose(l, storage.context_failure(l.c, "subscribe", {}, "read", 0).error());
            if (raw == nullptr) return;
            const redis_detail::reply_ptr r(static_cast<redisReply*>(raw));
            if (r->type == REDIS_REPLY_ERROR)
                return lose(l, storage.reply_failure(*l.c.ep, "subscribe", {}, *r).error());
            const std::string_view kind =
                r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_STRING
                    ? std::string_view(r->element[0]->str, r->element[0]->len)
                    : std::string_view();
            if (kind == "message" && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
                ++notices;
                on_notice(notice_bytes(reinterpret_cast<const std::byte*>(r->element[2]->str), r->element[2]->len));
            } else if (kind == "subscribe" && !l.subscribed) {
                l.subscribed = true;
                l.failures = 0;
                l.next_ping = steady::now() + storage.m_config.invalidation_ping_interval;
                if (l.ever_subscribed) ++reconnects;
                l.ever_subscribed = true;
            } else if (kind == "pong" && l.ping_sent) {
                l.ping_sent = false;
                l.next_ping = steady::now() + storage.m_config.invalidation_ping_interval;
            } else {
                return lose(l, failure(errc::io_error, tier::remote,
                                       where(l) + ": answered with a reply that is no pub/sub message (type " +
                                           std::to_string(r->type) + ")"));
            }
        }
    }

    /// Closes `l`'s connection and schedules its next try after the endpoint's backoff.
    void lose(listener& l, failure why) {
        l.c.context.reset();
        l.subscribed = false;
        l.ping_sent = false;
        ++l.failures;
        l.retry_at = steady::now() + storage.backoff_after(l.failures);
        {
            std::lock_guard lock(mutex);
            last_error = why;
        }
        if (on_error) on_error(why);
    }

    void update_link(const std::vector<listener>& listeners) {
        const bool all =
            std::all_of(listeners.begin(), listeners.end(), [](const listener& l) { return l.subscribed; });
        if (all == up) return;
        up = all;
        if (!all) ++link_losses;
        on_link(all);
    }

    [[nodiscard]] std::string where(const listener& l) const { return basic_redis::where("subscribe", {}, *l.c.ep); }
};

template <class Clock>
auto basic_redis<Clock>::subscribe(notice_handler on_notice, link_handler on_link, error_handler on_error) const
    -> result<subscription> {
    if (!on_notice || !on_link)
        return fail(errc::invalid_argument, tier::remote, "subscribe: on_notice and on_link must both be callable");
    std::vector<std::unique_ptr<endpoint>> endpoints;
    for (const auto& ep : m_endpoints) endpoints.push_back(std::make_unique<endpoint>(ep->address));
    subscription out;
    out.m_state = std::make_unique<subscription_state>(basic_redis(m_config, m_clock, std::move(endpoints)),
                                                       std::move(on_notice), std::move(on_link), std::move(on_error));
    auto& st = *out.m_state;
    int fds[2];
    if (::pipe(fds) != 0)
        return fail(errc::io_error, tier::remote, "subscribe: pipe", std::error_code(errno, std::generic_category()));
    st.wake = {fds[0], fds[1]};
    for (const int fd : fds)
        if (::fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
            return fail(errc::io_error, tier::remote, "subscribe: fcntl on the wake-up pipe",
                        std::error_code(errno, std::generic_category()));
    try {
        out.m_thread = std::thread([&st] { st.run(); });
    } catch (const std::system_error& e) {
        return fail(errc::io_error, tier::remote, "subscribe: cannot start the subscription's thread", e.code());
    }
    return out;
}

/// storage::basic_redis on the steady clock.
using redis = basic_redis<>;

static_assert(storage_policy<redis>);

}  // namespace tierguard::storage
