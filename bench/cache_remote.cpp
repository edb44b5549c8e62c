// The composed cache over a remote tier (memory -> storage::redis) against the floor of the
// same Redis commands done with raw hiredis on the same connection kind, against one
// redis-server this binary starts (unix socket and loopback TCP; killed at exit).
// bench/README.md ("Cache over a remote tier") records a run.
//
//   get/<size>/<conn>/cache    tierguard::cache::get of a key held only by Redis: the memory
//                              tier's budget (64 bytes, one shard) is smaller than every
//                              entry, so each get misses memory, reaches Redis (GET), decodes
//                              the frame, and its promotion is refused (too large)
//   get/<size>/<conn>/hiredis  redisCommand(c, "GET %b") of the very keys the cache wrote
//   put/<size>/<conn>/cache    tierguard::cache::put (no TTL): memory refuses it (too large),
//                              the remote tier encodes a frame and SETs it
//                              with its invalidation notice (on by default): SET and PUBLISH
//                              in one round trip
//   put/<size>/<conn>/hiredis  SET %b %b of the same keys and the same frame bytes the cache
//                              wrote, and PUBLISH on the cache's channel of a notice of the
//                              cache's size, pipelined (redisAppendCommand twice, then both
//                              replies): the floor of a put with invalidation on. The cache
//                              that wrote the keys stays open, so its subscription hears
//                              each PUBLISH as in put/.../cache
//   stopped/memory_hit/open    Redis stopped (SIGSTOP) and the remote breaker open: gets of
//                              keys held in memory; counter first_get_ms = the one get that
//                              met the stopped server (a memory miss: it waits for the command
//                              timeout, 50 ms; then the storage's backoff refuses at once, and
//                              the breaker, threshold 3, opens on the next two gets)
//   stopped/memory_hit/link_down  as stopped/memory_hit/open, once the invalidation link is
//                              down (keepalive 100 ms): a memory copy is then served only when
//                              the remote cannot answer, marked stale; first_get_ms = the
//                              first get of a key held in memory, which asks the stopped server
//                              first and is answered from memory after the command timeout
//   stopped/memory_hit/closed  the reference: the same cache shape with Redis running and
//                              its breaker closed, gets of keys held in memory
//   stopped/miss/open          Redis stopped, breaker open: gets of keys absent from memory
//                              (a miss without a round trip)
//
// Sizes 100B, 1KiB, 16KiB (the value; a frame adds its header and the key). Each scenario
// cycles over 1000 keys "bench/NNN". Only the cache talks to the server through its pool of
// one connection, so both sides use one socket of the same kind.
#include "support/redis_server.hpp"

#include <benchmark/benchmark.h>

#include <tierguard/cache.hpp>
#include <tierguard/storage/redis.hpp>

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

tierguard_test::redis_server* server = nullptr;

struct remote_policies : tierguard::cache_defaults {
    using storage = tierguard::storage::redis;
};
using remote_cache = tierguard::cache<std::string, std::string, remote_policies>;

constexpr int key_count = 1000;

std::vector<std::string> key_names() {
    std::vector<std::string> out;
    for (int i = 0; i < key_count; ++i) out.push_back("bench/" + std::to_string(i));
    return out;
}

// A cache over the server; `fits_memory`: a memory budget that holds every entry, else one
// too small for any. `stopping`: the breaker needs 3 failures and the storage backs off
// after one (its defaults), as a stopped server meets them. `keepalive`: the invalidation
// link's PING interval (a stopped server takes the link down after it and the timeout).
remote_cache open_cache(bool tcp, bool fits_memory, bool stopping = false,
                        std::chrono::milliseconds keepalive = 10min) {
    remote_cache::config cfg;
    cfg.memory = fits_memory ? tierguard::memory_config{} : tierguard::memory_config{.byte_budget = 64, .shards = 1};
    cfg.storage.endpoints = {tcp ? server->tcp_url() : server->unix_url()};
    cfg.storage.pool_size = 1;
    cfg.storage.command_timeout = 50ms;
    cfg.storage.backoff_min = 0ms;
    cfg.storage.backoff_max = 0ms;
    cfg.storage.invalidation_ping_interval = keepalive;
    cfg.breaker.failure_threshold = 1;
    if (stopping) {
        cfg.storage.backoff_min = 100ms;
        cfg.storage.backoff_max = 5s;
        cfg.breaker.failure_threshold = 3;
    }
    cfg.breaker.recovery_time = 10min;
    cfg.breaker.max_recovery_time = 10min;
    auto cache = remote_cache::open(cfg);
    if (!cache) throw std::runtime_error(cache.error().message());
    return std::move(*cache);
}

void flush_server() { (void)server->command({"FLUSHALL"}); }

enum class op { get, put };

void cache_op(benchmark::State& state, op what, std::size_t size, bool tcp) {
    flush_server();
    auto cache = open_cache(tcp, false);
    const std::string value(size, 'v');
    const auto names = key_names();
    for (const auto& n : names)
        if (auto r = cache.put(n, value); !r || r->where != tierguard::stored_in::storage)
            return state.SkipWithError("setup put did not reach Redis alone");
    std::size_t i = 0;
    for (auto _ : state) {
        const std::string& key = names[i++ % names.size()];
        if (what == op::put) {
            auto r = cache.put(key, value);
            if (!r || r->where != tierguard::stored_in::storage) state.SkipWithError("put did not reach Redis");
        } else {
            auto r = cache.get(key);
            if (!r || r->from != tierguard::tier::remote) state.SkipWithError("get was not answered by Redis");
            benchmark::DoNotOptimize(r);
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

using context_ptr = std::unique_ptr<redisContext, void (*)(redisContext*)>;

context_ptr connect(bool tcp) {
    return {tcp ? redisConnect("127.0.0.1", server->port()) : redisConnectUnix(server->socket_path().c_str()),
            redisFree};
}

void hiredis_op(benchmark::State& state, op what, std::size_t size, bool tcp) {
    // The cache writes the keys and frames; the floor then reads and writes exactly those.
    flush_server();
    // Kept open: its subscription hears every PUBLISH, as the cache's own does in cache_op,
    // so that the server fans each notice out to one subscriber on both sides.
    auto cache = open_cache(tcp, false);
    for (const auto& n : key_names())
        if (!cache.put(n, std::string(size, 'v'))) return state.SkipWithError("setup put failed");
    const std::string channel = cache.disk().storage().invalidation_channel();
    auto c = connect(tcp);
    std::vector<std::string> keys;
    std::vector<std::string> frames;
    {
        auto* listed = static_cast<redisReply*>(redisCommand(c.get(), "KEYS *"));
        if (listed == nullptr || listed->type != REDIS_REPLY_ARRAY) return state.SkipWithError("KEYS failed");
        for (std::size_t k = 0; k < listed->elements; ++k) {
            keys.emplace_back(listed->element[k]->str, listed->element[k]->len);
            auto* got =
                static_cast<redisReply*>(redisCommand(c.get(), "GET %b", keys.back().data(), keys.back().size()));
            frames.emplace_back(got->str, got->len);
            freeReplyObject(got);
        }
        freeReplyObject(listed);
    }
    if (keys.size() != key_count) return state.SkipWithError("the cache did not write one key per entry");
    // A notice as the cache sends it: format, sender id, operation, then the key's bytes.
    const std::string notice(18 + key_names().front().size(), 'n');
    std::size_t i = 0;
    for (auto _ : state) {
        const std::size_t k = i++ % keys.size();
        if (what == op::get) {
            void* r = redisCommand(c.get(), "GET %b", keys[k].data(), keys[k].size());
            if (r == nullptr) state.SkipWithError(c->errstr);
            freeReplyObject(r);
            continue;
        }
        redisAppendCommand(c.get(), "SET %b %b", keys[k].data(), keys[k].size(), frames[k].data(), frames[k].size());
        redisAppendCommand(c.get(), "PUBLISH %b %b", channel.data(), channel.size(), notice.data(), notice.size());
        for (int n = 0; n < 2; ++n) {
            void* r = nullptr;
            if (redisGetReply(c.get(), &r) != REDIS_OK) state.SkipWithError(c->errstr);
            freeReplyObject(r);
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

bool link_up(const remote_cache& cache) { return cache.metrics().storage.front().link_up; }

// Polls `done` for up to 10 s (a cap for a loaded machine).
template <class F>
bool eventually(F&& done) {
    for (int i = 0; i < 10000 && !done(); ++i) std::this_thread::sleep_for(1ms);
    return done();
}

// Gets of keys in memory (or absent from it, `miss`), Redis stopped or not; `link_down`:
// measured once the invalidation link is down too.
void stopped_op(benchmark::State& state, bool stop, bool miss, bool link_down) {
    flush_server();
    auto cache = open_cache(false, true, stop, link_down ? 100ms : 10min);
    const auto names = key_names();
    if (!eventually([&] { return link_up(cache); })) return state.SkipWithError("the invalidation link never came up");
    for (const auto& n : names)
        if (!cache.put(n, std::string(100, 'v'))) return state.SkipWithError("setup put failed");
    if (stop) {
        server->stop();
        if (link_down && !eventually([&] { return !link_up(cache); })) {
            server->resume();
            return state.SkipWithError("the invalidation link stayed up");
        }
        // The first get that reaches the server waits for the command timeout; the storage then
        // backs off and the next gets fail at once, opening the breaker (threshold 3).
        const std::string& first_key = link_down ? names.front() : std::string("absent");
        const auto began = std::chrono::steady_clock::now();
        const auto first = cache.get(first_key);
        const auto took = std::chrono::steady_clock::now() - began;
        state.counters["first_get_ms"] = std::chrono::duration<double, std::milli>(took).count();
        for (int n = 0; n < 2; ++n) (void)cache.get(first_key);
        const bool served = link_down ? first && first->stale : !first;
        if (!served || cache.metrics().storage.front().breaker != tierguard::breaker_state::open) {
            server->resume();
            return state.SkipWithError("the stopped server did not open the breaker");
        }
    }
    const std::string absent = "absent/";
    std::size_t i = 0;
    for (auto _ : state) {
        const std::string& key = names[i++ % names.size()];
        if (miss) {
            auto r = cache.get(absent);
            if (r) state.SkipWithError("an absent key was found");
            benchmark::DoNotOptimize(r);
        } else {
            auto r = cache.get(key);
            if (!r || r->from != tierguard::tier::memory || r->stale != link_down)
                state.SkipWithError("a memory hit was missed");
            benchmark::DoNotOptimize(r);
        }
    }
    if (stop) server->resume();
}

}  // namespace

int main(int argc, char** argv) {
    tierguard_test::redis_server instance({.tcp = true});
    server = &instance;
    for (const op what : {op::get, op::put})
        for (const std::size_t size : {std::size_t{100}, std::size_t{1024}, std::size_t{16384}})
            for (const bool tcp : {false, true}) {
                const std::string name = std::string(what == op::get ? "get/" : "put/") +
                                         (size == 100    ? "100B"
                                          : size == 1024 ? "1KiB"
                                                         : "16KiB") +
                                         "/" + (tcp ? "tcp" : "unix");
                benchmark::RegisterBenchmark((name + "/cache").c_str(), cache_op, what, size, tcp);
                benchmark::RegisterBenchmark((name + "/hiredis").c_str(), hiredis_op, what, size, tcp);
            }
    benchmark::RegisterBenchmark("stopped/memory_hit/open", stopped_op, true, false, false);
    benchmark::RegisterBenchmark("stopped/memory_hit/link_down", stopped_op, true, false, true);
    benchmark::RegisterBenchmark("stopped/memory_hit/closed", stopped_op, false, false, false);
    benchmark::RegisterBenchmark("stopped/miss/open", stopped_op, true, true, false);
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
