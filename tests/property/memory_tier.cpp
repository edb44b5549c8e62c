// Model-based property test of the memory tier: random operations run against the
// tier and against a plain reference model (per shard, a list in LRU order), and
// after every operation the two must agree exactly: the value each get returns, which
// entries are held, the bytes held, the counters; and the budgets hold. The LRU order
// within each shard is compared now and then (see check_order).
#include "support/property.hpp"

#include <tierguard/clock/manual.hpp>
#include <tierguard/memory_tier.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace {

using namespace std::chrono_literals;
using tierguard::errc;

// The model is an LRU list per shard: the tier runs with eviction::lru.
struct policies : tierguard::memory_defaults {
    using clock = tierguard::clock::manual;
    using eviction = tierguard::eviction::lru;
};
using tier_type = tierguard::memory_tier<std::string, std::string, policies>;
using time_point = tierguard::clock::manual::time_point;

struct model_entry {
    std::string key;
    std::string value;
    std::optional<time_point> expiry;
};

// The reference: one vector per shard, least recently used first; linear scans only.
struct model {
    std::vector<std::vector<model_entry>> shards;
    std::size_t shard_bytes;
    std::size_t shard_entries;  // 0 = unlimited
    std::uint64_t hits = 0, misses = 0, evictions = 0, expirations = 0, rejected = 0;

    static std::size_t weight(const model_entry& e) { return e.key.size() + e.value.size(); }

    std::size_t bytes(std::size_t shard) const {
        std::size_t total = 0;
        for (const auto& e : shards[shard]) total += weight(e);
        return total;
    }

    std::vector<model_entry>::iterator find(std::size_t shard, const std::string& key) {
        return std::find_if(shards[shard].begin(), shards[shard].end(), [&](const auto& e) { return e.key == key; });
    }

    static bool expired(const model_entry& e, time_point now) { return e.expiry && *e.expiry <= now; }

    // Returns the value, or the error code the tier must return.
    std::tuple<std::optional<std::string>, errc> get(std::size_t shard, const std::string& key, time_point now) {
        auto it = find(shard, key);
        if (it == shards[shard].end()) {
            ++misses;
            return {std::nullopt, errc::miss};
        }
        if (expired(*it, now)) {
            shards[shard].erase(it);
            ++misses;
            ++expirations;
            return {std::nullopt, errc::expired};
        }
        ++hits;
        model_entry e = *it;
        shards[shard].erase(it);
        shards[shard].push_back(e);
        return {e.value, errc::miss};
    }

    // An entry replaced or evicted after its TTL passed counts one expiration, not an eviction.
    bool put(std::size_t shard, model_entry e, time_point now) {
        if (weight(e) > shard_bytes) {
            ++rejected;
            return false;
        }
        if (auto it = find(shard, e.key); it != shards[shard].end()) {
            if (expired(*it, now)) ++expirations;
            shards[shard].erase(it);
        }
        auto& list = shards[shard];
        while (!list.empty() &&
               (bytes(shard) + weight(e) > shard_bytes || (shard_entries != 0 && list.size() >= shard_entries))) {
            ++(expired(list.front(), now) ? expirations : evictions);
            list.erase(list.begin());
        }
        list.push_back(std::move(e));
        return true;
    }
};

enum op_kind { op_put, op_put_ttl, op_get, op_erase, op_contains, op_advance, op_purge, op_order, op_kinds };

// The tier's LRU order must equal the model's, asked only now and then (op_order, and at
// the end): evictions agree with the model after every operation anyway.
void check_order(const tier_type& tier, const model& ref) {
    for (std::size_t s = 0; s < ref.shards.size(); ++s) {
        std::vector<std::string> order;
        for (const auto& e : ref.shards[s]) order.push_back(e.key);
        RC_ASSERT(tier.eviction_order(s) == order);
    }
}

}  // namespace

TEST_CASE("memory tier agrees with a reference LRU model under random operations") {
    tierguard_test::check_property("memory tier == reference model", [] {
        const std::size_t shards = *rc::gen::element<std::size_t>(1, 2, 4);
        const std::size_t shard_bytes = *rc::gen::inRange<std::size_t>(8, 120);
        const std::size_t shard_entries = *rc::gen::element<std::size_t>(0, 1, 3, 8);
        const auto ops = *rc::gen::container<std::vector<std::tuple<int, int, std::size_t, int>>>(
            rc::gen::tuple(rc::gen::inRange(0, static_cast<int>(op_kinds)), rc::gen::inRange(0, 12),
                           rc::gen::inRange<std::size_t>(0, 40), rc::gen::inRange(1, 2000)));

        tierguard::clock::manual clock;
        tier_type tier({.byte_budget = shard_bytes * shards, .max_entries = shard_entries * shards, .shards = shards},
                       clock);
        model ref{std::vector<std::vector<model_entry>>(shards), shard_bytes, shard_entries};

        for (const auto& [kind, key_no, value_size, millis] : ops) {
            const std::string key = "key" + std::to_string(key_no);
            const std::size_t shard = tier.shard_of(key);
            const auto now = clock.now();
            switch (kind) {
                case op_put:
                case op_put_ttl: {
                    const std::string value(value_size, static_cast<char>('a' + key_no));
                    std::optional<time_point> expiry;
                    tierguard::result<void> put = tierguard::result<void>();
                    if (kind == op_put_ttl) {
                        expiry = now + std::chrono::milliseconds(millis);
                        put = tier.put(key, value, std::chrono::milliseconds(millis));
                    } else {
                        put = tier.put(key, value);
                    }
                    const bool accepted = ref.put(shard, {key, value, expiry}, now);
                    RC_ASSERT(put.has_value() == accepted);
                    if (!accepted) RC_ASSERT(put.error().code() == errc::too_large);
                    break;
                }
                case op_get: {
                    const auto [want, code] = ref.get(shard, key, now);
                    const auto got = tier.get(key);
                    if (want) {
                        RC_ASSERT(got.has_value());
                        RC_ASSERT(*got == *want);
                    } else {
                        RC_ASSERT(!got.has_value());
                        RC_ASSERT(got.error().code() == code);
                    }
                    break;
                }
                case op_erase: {
                    auto it = ref.find(shard, key);
                    const bool had = it != ref.shards[shard].end();
                    if (had) ref.shards[shard].erase(it);
                    RC_ASSERT(tier.erase(key) == had);
                    break;
                }
                case op_contains: {
                    auto it = ref.find(shard, key);
                    const bool live = it != ref.shards[shard].end() && !model::expired(*it, now);
                    RC_ASSERT(tier.contains(key) == live);
                    break;
                }
                case op_advance: clock.advance(std::chrono::milliseconds(millis)); break;
                case op_purge: {
                    std::size_t dropped = 0;
                    for (auto& list : ref.shards) {
                        dropped += static_cast<std::size_t>(
                            std::erase_if(list, [&](const auto& e) { return model::expired(e, now); }));
                    }
                    ref.expirations += dropped;
                    RC_ASSERT(tier.purge_expired() == dropped);
                    break;
                }
                case op_order: check_order(tier, ref); break;
                default: break;
            }

            // After every operation: budgets hold, and the tier matches the model exactly.
            const auto stats = tier.stats();
            RC_ASSERT(stats.bytes <= shard_bytes * shards);
            if (shard_entries != 0) RC_ASSERT(stats.entries <= shard_entries * shards);
            std::size_t model_bytes = 0, model_entries = 0;
            for (std::size_t s = 0; s < shards; ++s) {
                RC_ASSERT(ref.bytes(s) <= shard_bytes);
                model_bytes += ref.bytes(s);
                model_entries += ref.shards[s].size();
            }
            RC_ASSERT(stats.bytes == model_bytes);
            RC_ASSERT(stats.entries == model_entries);
            RC_ASSERT(stats.hits == ref.hits);
            RC_ASSERT(stats.misses == ref.misses);
            RC_ASSERT(stats.evictions == ref.evictions);
            RC_ASSERT(stats.expirations == ref.expirations);
            RC_ASSERT(stats.rejected == ref.rejected);
        }
        check_order(tier, ref);
    });
}
