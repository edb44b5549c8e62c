#pragma once

#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace tierguard::detail {

/// One Redis server as a storage::redis endpoint URL names it.
struct redis_address {
    bool unix_socket = false;
    std::string host;  ///< TCP: a name or an address ("::1" without its brackets)
    int port = 6379;   ///< TCP
    std::string path;  ///< unix socket
    std::string user;  ///< AUTH user (Redis 6 ACL); empty: AUTH with the password alone
    std::string password;
    std::uint32_t db = 0;
    /// "tcp:host:port/db" or "unix:/path/db": no credentials; rendezvous hashing and log
    /// lines use it, so every process that names the same server the same way agrees.
    std::string id;
};

namespace redis_url_detail {
[[nodiscard]] inline int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// %XX-decodes `text` into `out`; false on a bad escape.
[[nodiscard]] inline bool percent_decode(std::string_view text, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return false;
        const int hi = hex_digit(text[i + 1]);
        const int lo = hex_digit(text[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

// Decimal digits only, at most `max`; false otherwise.
[[nodiscard]] inline bool parse_number(std::string_view text, std::uint32_t max, std::uint32_t& out) noexcept {
    if (text.empty() || text.size() > 10) return false;
    std::uint64_t value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (value > max) return false;
    out = static_cast<std::uint32_t>(value);
    return true;
}
}  // namespace redis_url_detail

/// `url` with its password replaced by "***", for messages.
[[nodiscard]] inline std::string redacted_redis_url(std::string_view url) {
    const std::size_t scheme = url.find("://");
    if (scheme == std::string_view::npos) return std::string(url);
    const std::size_t at = url.find('@', scheme + 3);
    if (at == std::string_view::npos || url.find('/', scheme + 3) < at) return std::string(url);
    const std::size_t colon = url.find(':', scheme + 3);
    if (colon == std::string_view::npos || colon > at)
        return std::string(url.substr(0, scheme + 3)) + "***" + std::string(url.substr(at));
    return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

/// Parses "redis://[[user]:password@]host[:port][/db]" (port 6379 and db 0 by default; an
/// IPv6 host in brackets) or "unix://[[user]:password@]/absolute/path[?db=N]". A bad URL
/// is errc::invalid_argument saying what is wrong, with the password never shown.
[[nodiscard]] inline result<redis_address> parse_redis_url(std::string_view url) {
    using namespace redis_url_detail;
    auto bad = [&](std::string_view what) {
        return fail(errc::invalid_argument, tier::remote,
                    "storage::redis: endpoint \"" + redacted_redis_url(url) + "\" refused: " + std::string(what));
    };
    redis_address out;
    std::string_view rest;
    if (url.starts_with("redis://")) {
        rest = url.substr(8);
    } else if (url.starts_with("unix://")) {
        out.unix_socket = true;
        rest = url.substr(7);
    } else if (url.starts_with("rediss://")) {
        return bad(
            "TLS is not supported (hiredis 0.14 has none): use redis:// over a private network or a TLS "
            "tunnel to a loopback port, or unix://");
    } else {
        return bad("the URL must start with redis:// or unix://");
    }
    // Credentials end at the last '@' before the path (a password may hold '/' only escaped).
    const std::size_t at = rest.find('@');
    const bool has_credentials =
        at != std::string_view::npos && (out.unix_socket ? !rest.starts_with('/') : rest.find('/') > at);
    if (has_credentials) {
        const std::string_view userinfo = rest.substr(0, at);
        const std::size_t colon = userinfo.find(':');
        if (colon == std::string_view::npos) return bad("credentials must read user:password@ or :password@");
        if (!percent_decode(userinfo.substr(0, colon), out.user) ||
            !percent_decode(userinfo.substr(colon + 1), out.password))
            return bad("a '%' in the credentials must start a %XX escape");
        if (out.password.empty()) return bad("the password after ':' is empty");
        rest = rest.substr(at + 1);
    }
    if (out.unix_socket) {
        const std::size_t query = rest.find('?');
        out.path = std::string(rest.substr(0, query));
        if (out.path.size() < 2 || out.path.front() != '/')
            return bad("a unix socket URL needs an absolute path, as unix:///run/redis.sock");
        if (out.path.size() > 107) return bad("the socket path is longer than a unix socket address holds (107)");
        if (query != std::string_view::npos) {
            const std::string_view q = rest.substr(query + 1);
            if (!q.starts_with("db=") || !parse_number(q.substr(3), 1u << 20, out.db))
                return bad("the only query is ?db=N, N a database number");
        }
        out.id = "unix:" + out.path + "/" + std::to_string(out.db);
        return out;
    }
    const std::size_t slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
        const std::string_view db = rest.substr(slash + 1);
        if (!db.empty() && !parse_number(db, 1u << 20, out.db))
            return bad("the path after the host must be a database number, as redis://host:6379/0");
    }
    std::string_view port;
    if (hostport.starts_with('[')) {
        const std::size_t close = hostport.find(']');
        if (close == std::string_view::npos) return bad("an IPv6 host opened with '[' needs its ']'");
        out.host = std::string(hostport.substr(1, close - 1));
        const std::string_view after = hostport.substr(close + 1);
        if (!after.empty() && !after.starts_with(':')) return bad("only ':port' may follow an IPv6 host");
        if (!after.empty()) port = after.substr(1);
        if (!after.empty() && port.empty()) return bad("the port after ':' is empty");
    } else {
        const std::size_t colon = hostport.find(':');
        out.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = hostport.substr(colon + 1);
            if (port.empty()) return bad("the port after ':' is empty");
        }
    }
    if (out.host.empty()) return bad("the host is empty");
    for (const char c : out.host)
        if (static_cast<unsigned char>(c) <= ' ' || c == '@' || c == '/' || c == '?' || c == '#')
            return bad("the host holds a character a host name cannot");
    if (!port.empty()) {
        std::uint32_t value = 0;
        if (!parse_number(port, 65535, value) || value == 0) return bad("the port must be a number from 1 to 65535");
        out.port = static_cast<int>(value);
    }
    out.id = "tcp:" + out.host + ":" + std::to_string(out.port) + "/" + std::to_string(out.db);
    return out;
}

}  // namespace tierguard::detail
