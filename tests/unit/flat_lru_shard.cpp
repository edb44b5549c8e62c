// The memory tier's index (detail/flat_lru_shard.hpp) against a model: an unordered_map
// from key to value and a list in LRU order. Random finds, uses, inserts, removes,
// evictions, remove_if and clears; hashes that collide on purpose make long probe runs,
// so deletion's backward shifts and growth move slots all the time.
#include "support/test_framework.hpp"

#include <tierguard/detail/flat_lru_shard.hpp>
#include <tierguard/eviction/s3fifo.hpp>
#include <tierguard/hash.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <list>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

// A key whose move may throw (it never does): the shard must store it out of line.
struct throwing_move_key {
    std::string s;
    explicit throwing_move_key(std::string v) : s(std::move(v)) {}
    throwing_move_key(const throwing_move_key&) = default;
    throwing_move_key(throwing_move_key&& other) noexcept(false) : s(std::move(other.s)) {}
};

const std::string& text_of(const std::string& k) { return k; }
const std::string& text_of(const throwing_move_key& k) { return k.s; }

enum class hashing { good, clustered, shared };

// clustered: every home position is a multiple of 256, so probe runs are long;
// shared: groups of keys share one full hash, so only the key comparison tells them apart.
std::uint64_t hash_of(int k, hashing how) {
    switch (how) {
        case hashing::good: return tierguard::detail::mix(static_cast<std::uint64_t>(k));
        case hashing::clustered: return tierguard::detail::mix(static_cast<std::uint64_t>(k)) & ~std::uint64_t{0xff};
        case hashing::shared: return tierguard::detail::mix(static_cast<std::uint64_t>(k % 7));
    }
    return 0;
}

template <class Key>
void run_against_model(std::uint64_t seed, hashing how, int key_space, std::size_t max_live) {
    using shard_type = tierguard::detail::flat_lru_shard<Key, std::string, long>;
    shard_type shard;
    std::list<int> order;  // least recently used first
    std::unordered_map<int, std::list<int>::iterator> where;
    std::mt19937_64 rng(seed);
    const auto eq = [](const std::string& k, const Key& key) { return k == text_of(key); };
    const auto value_of = [](int k) {
        return "value " + std::to_string(k) + std::string(static_cast<std::size_t>(k % 5), '!');
    };
    const auto weight_of = [](int k) { return static_cast<std::size_t>(k % 9 + 1); };
    std::size_t bytes = 0;

    const auto check_order = [&] {
        std::vector<int> got;
        shard.for_each_in_order(
            [&](std::uint32_t pos) { got.push_back(std::stoi(text_of(shard.at(pos).data().key))); });
        REQUIRE(got == std::vector<int>(order.begin(), order.end()));
    };
    const auto forget = [&](int k) {
        order.erase(where.at(k));
        where.erase(k);
        bytes -= weight_of(k);
    };

    for (int op = 0; op < 20000; ++op) {
        INFO("seed " << seed << ", op " << op);
        const int k = static_cast<int>(rng() % static_cast<std::uint64_t>(key_space));
        const std::uint32_t pos = shard.find(hash_of(k, how), std::to_string(k), eq);
        REQUIRE((pos != shard_type::npos) == where.contains(k));
        if (pos != shard_type::npos) {
            REQUIRE(shard.at(pos).data().value == value_of(k));
            REQUIRE(shard.at(pos).expiry == k);
        }
        const auto roll = rng() % 100;
        if (roll < 40) {  // use
            if (pos != shard_type::npos) {
                shard.hit(pos);
                order.splice(order.end(), order, where.at(k));
            }
        } else if (roll < 75) {  // insert, evicting the LRU entry when full
            if (pos == shard_type::npos) {
                if (shard.live() == max_live) {
                    const std::uint32_t victim = shard.victim();
                    REQUIRE(victim != shard_type::npos);
                    REQUIRE(text_of(shard.at(victim).data().key) == std::to_string(order.front()));
                    shard.remove(victim);
                    forget(order.front());
                }
                shard.insert(hash_of(k, how), Key(std::to_string(k)), value_of(k), k, weight_of(k));
                order.push_back(k);
                where[k] = std::prev(order.end());
                bytes += weight_of(k);
            }
        } else if (roll < 95) {  // remove
            if (pos != shard_type::npos) {
                shard.remove(pos);
                forget(k);
            }
        } else if (roll < 98) {  // evict the LRU entry
            const std::uint32_t victim = shard.victim();
            REQUIRE((victim == shard_type::npos) == order.empty());
            if (victim != shard_type::npos) {
                REQUIRE(text_of(shard.at(victim).data().key) == std::to_string(order.front()));
                shard.remove(victim);
                forget(order.front());
            }
        } else if (roll < 99) {  // remove_if, as purge_expired does
            const long m = static_cast<long>(rng() % 4);
            const std::size_t removed = shard.remove_if([&](const auto& s) { return s.expiry % 4 == m; });
            std::size_t expected = 0;
            for (auto it = order.begin(); it != order.end();) {
                const int key = *it++;
                if (key % 4 == m) {
                    forget(key);
                    ++expected;
                }
            }
            REQUIRE(removed == expected);
            check_order();
        } else if (rng() % 50 == 0) {
            shard.clear();
            order.clear();
            where.clear();
            bytes = 0;
        }
        REQUIRE(shard.live() == order.size());
        REQUIRE(shard.bytes() == bytes);
        if (op % 1000 == 0) check_order();
    }
    check_order();
}

// The shard under eviction::s3fifo against a map: the same finds, live set and bytes;
// every victim is a live entry, and the policy's order lists each live entry once.
// Which entry leaves is s3fifo's business (memory_tier's unit tests pin its behaviour);
// this drives its queues, counts and ghosts through slot moves, growth and clears.
void run_s3fifo_against_map(std::uint64_t seed, hashing how, int key_space, std::size_t max_live) {
    using shard_type = tierguard::detail::flat_lru_shard<std::string, std::string, long, tierguard::eviction::s3fifo>;
    shard_type shard;
    std::map<int, std::size_t> live;  // key -> weight
    std::mt19937_64 rng(seed);
    const auto eq = [](const std::string& k, const std::string& key) { return k == key; };
    const auto weight_of = [](int k) { return static_cast<std::size_t>(k % 9 + 1); };
    std::size_t bytes = 0;
    const auto key_at = [&](std::uint32_t pos) { return std::stoi(shard.at(pos).data().key); };
    const auto check_order = [&] {
        std::vector<int> got;
        shard.for_each_in_order([&](std::uint32_t pos) { got.push_back(key_at(pos)); });
        std::sort(got.begin(), got.end());
        std::vector<int> want;
        for (const auto& [k, w] : live) want.push_back(k);
        REQUIRE(got == want);
    };
    const auto evict = [&] {
        const std::uint32_t victim = shard.victim();
        REQUIRE((victim == shard_type::npos) == live.empty());
        if (victim == shard_type::npos) return;
        const int k = key_at(victim);
        REQUIRE(live.contains(k));
        shard.remove(victim);
        bytes -= live.at(k);
        live.erase(k);
    };

    for (int op = 0; op < 20000; ++op) {
        INFO("seed " << seed << ", op " << op);
        const int k = static_cast<int>(rng() % static_cast<std::uint64_t>(key_space));
        const std::uint32_t pos = shard.find(hash_of(k, how), std::to_string(k), eq);
        REQUIRE((pos != shard_type::npos) == live.contains(k));
        if (pos != shard_type::npos) REQUIRE(shard.at(pos).expiry == k);
        const auto roll = rng() % 100;
        if (roll < 40) {
            if (pos != shard_type::npos) shard.hit(pos);
        } else if (roll < 75) {  // insert, evicting when full
            if (pos == shard_type::npos) {
                if (live.size() == max_live) evict();
                shard.insert(hash_of(k, how), std::to_string(k), "v", k, weight_of(k));
                live[k] = weight_of(k);
                bytes += weight_of(k);
            }
        } else if (roll < 95) {
            if (pos != shard_type::npos) {
                shard.remove(pos);
                bytes -= live.at(k);
                live.erase(k);
            }
        } else if (roll < 98) {
            evict();
        } else if (roll < 99) {
            const long m = static_cast<long>(rng() % 4);
            const std::size_t removed = shard.remove_if([&](const auto& s) { return s.expiry % 4 == m; });
            const std::size_t expected = std::erase_if(live, [&](const auto& e) {
                if (e.first % 4 != m) return false;
                bytes -= e.second;
                return true;
            });
            REQUIRE(removed == expected);
        } else if (rng() % 50 == 0) {
            shard.clear();
            live.clear();
            bytes = 0;
        }
        REQUIRE(shard.live() == live.size());
        REQUIRE(shard.bytes() == bytes);
        if (op % 1000 == 0) check_order();
    }
    check_order();
}

}  // namespace

TEST_CASE("flat_lru_shard under s3fifo keeps its entries, bytes and order consistent with a map") {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        for (const hashing how : {hashing::good, hashing::clustered, hashing::shared}) {
            const int many = how == hashing::shared ? 300 : 3000;
            run_s3fifo_against_map(seed, how, 60, 40);
            run_s3fifo_against_map(seed, how, many, static_cast<std::size_t>(many / 2));
        }
    }
}

TEST_CASE("flat_lru_shard agrees with a map + list model: finds, exact LRU order, removals, growth") {
    static_assert(tierguard::detail::flat_lru_shard<std::string, std::string, long>::in_place);
    static_assert(!tierguard::detail::flat_lru_shard<throwing_move_key, std::string, long>::in_place);
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        for (const hashing how : {hashing::good, hashing::clustered, hashing::shared}) {
            // Small key space: hits, removes and reinserts churn the same slots; large:
            // the table grows well past its first size and evictions keep it full.
            const int many = how == hashing::shared ? 300 : 3000;  // shared: every probe run is long
            run_against_model<std::string>(seed, how, 60, 40);
            run_against_model<std::string>(seed, how, many, static_cast<std::size_t>(many / 2));
            run_against_model<throwing_move_key>(seed, how, many / 5, static_cast<std::size_t>(many / 10));
        }
    }
}
