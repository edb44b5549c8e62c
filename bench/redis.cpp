// storage::redis against the floor of the same commands done with raw hiredis, on the same
// connection kind, against one redis-server this binary starts (and kills at exit):
//   tierguard  tierguard::storage::redis: read = GET, write = SET, write with an expiry and
//              a notice = SET PX + PUBLISH pipelined, through its pool, its name checks,
//              its own send(MSG_NOSIGNAL) and hiredis's reply parser
//   hiredis    one redisContext, redisCommand(c, "GET %b") / redisCommand(c, "SET %b %b"),
//              and for put_notice redisAppendCommand of "SET %b %b PX 60000" and
//              "PUBLISH %b %b" then two redisGetReply: what a hand-written client does,
//              with no pool and no checks
// Scenarios: <op>/<size>/<conn>/<impl>, op get, put or put_notice (a 48-byte notice on the
// invalidation channel, no subscriber), size 100B, 1KiB or 16KiB, conn unix (a unix socket)
// or tcp (127.0.0.1). Each cycles over 1000 keys, all present before a get.
// bench/README.md ("storage::redis") records a run.
#include "support/redis_server.hpp"

#include <benchmark/benchmark.h>

#include <tierguard/storage/redis.hpp>

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

tierguard_test::redis_server* server = nullptr;

std::vector<std::string> key_names() {
    std::vector<std::string> out;
    for (int i = 0; i < 1000; ++i) out.push_back("bench/" + std::to_string(i));
    return out;
}

std::string url_of(bool tcp) { return tcp ? server->tcp_url() : server->unix_url(); }

enum class op { get, put, put_notice };

/// What a cache's notice might hold: a sender id, an operation, an encoded key.
const std::string notice(48, 'n');

void tierguard_op(benchmark::State& state, op what, std::size_t size, bool tcp) {
    auto storage = tierguard::storage::redis::open({.endpoints = {url_of(tcp)}, .pool_size = 1}).value();
    const std::vector<std::byte> value(size, std::byte{'v'});
    const auto notice_bytes = std::as_bytes(std::span(notice));
    const auto names = key_names();
    for (const auto& n : names)
        if (!storage.write(n, value)) state.SkipWithError("setup write failed");
    std::size_t i = 0;
    for (auto _ : state) {
        const std::string& name = names[i++ % names.size()];
        if (what == op::put_notice) {
            auto r = storage.write(name, value, std::chrono::minutes(1), notice_bytes);
            if (!r) state.SkipWithError(r.error().message().c_str());
        } else if (what == op::put) {
            auto r = storage.write(name, value);
            if (!r) state.SkipWithError(r.error().message().c_str());
        } else {
            auto r = storage.read(name);
            if (!r) state.SkipWithError(r.error().message().c_str());
            benchmark::DoNotOptimize(r);
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void hiredis_op(benchmark::State& state, op what, std::size_t size, bool tcp) {
    auto storage = tierguard::storage::redis::open({.endpoints = {url_of(tcp)}}).value();
    const std::string prefix = storage.settings().key_prefix;  // the same keys as tierguard's
    const std::string channel = storage.invalidation_channel();
    std::unique_ptr<redisContext, void (*)(redisContext*)> c(
        tcp ? redisConnect("127.0.0.1", server->port()) : redisConnectUnix(server->socket_path().c_str()), redisFree);
    const std::string value(size, 'v');
    std::vector<std::string> keys;
    for (const auto& n : key_names()) keys.push_back(prefix + n);
    for (const auto& k : keys)
        freeReplyObject(redisCommand(c.get(), "SET %b %b", k.data(), k.size(), value.data(), value.size()));
    std::size_t i = 0;
    for (auto _ : state) {
        const std::string& key = keys[i++ % keys.size()];
        if (what == op::put_notice) {
            redisAppendCommand(c.get(), "SET %b %b PX 60000", key.data(), key.size(), value.data(), value.size());
            redisAppendCommand(c.get(), "PUBLISH %b %b", channel.data(), channel.size(), notice.data(), notice.size());
            for (int reply = 0; reply < 2; ++reply) {
                void* r = nullptr;
                if (redisGetReply(c.get(), &r) != REDIS_OK) state.SkipWithError(c->errstr);
                freeReplyObject(r);
            }
            continue;
        }
        void* r = what == op::put
                      ? redisCommand(c.get(), "SET %b %b", key.data(), key.size(), value.data(), value.size())
                      : redisCommand(c.get(), "GET %b", key.data(), key.size());
        if (r == nullptr) state.SkipWithError(c->errstr);
        freeReplyObject(r);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

}  // namespace

int main(int argc, char** argv) {
    tierguard_test::redis_server instance({.tcp = true});
    server = &instance;
    for (const op what : {op::get, op::put, op::put_notice})
        for (const std::size_t size : {std::size_t{100}, std::size_t{1024}, std::size_t{16384}})
            for (const bool tcp : {false, true}) {
                const std::string name = std::string(what == op::get   ? "get/"
                                                     : what == op::put ? "put/"
                                                                       : "put_notice/") +
                                         (size == 100    ? "100B"
                                          : size == 1024 ? "1KiB"
                                                         : "16KiB") +
                                         "/" + (tcp ? "tcp" : "unix");
                benchmark::RegisterBenchmark((name + "/tierguard").c_str(), tierguard_op, what, size, tcp);
                benchmark::RegisterBenchmark((name + "/hiredis").c_str(), hiredis_op, what, size, tcp);
            }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
