// A first program with storage::redis, from an installed tierguard: the header compiles,
// hiredis links, and a server that is not there is a classified failure, not a crash.
#include <tierguard/storage/redis.hpp>

#include <cstdio>

int main() {
    auto storage = tierguard::storage::redis::open({.endpoints = {"unix:///nonexistent/tierguard/redis.sock"}});
    if (!storage) return 1;
    const auto r = storage->read("ab/cd");
    if (r || r.error().code() != tierguard::errc::io_error || r.error().where() != tierguard::tier::remote) return 1;
    std::printf("consumer: ok (storage::redis: %s)\n", r.error().message().c_str());
    return 0;
}
