#pragma once

#include <tierguard/storage/memory_storage.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace tierguard_test {

/// A storage forwarding to a memory_storage that outlives every store opened over it, so
/// that a reopen (or an open that fails and is retried) finds what the last one left.
class shared_memory_storage {
public:
    explicit shared_memory_storage(std::shared_ptr<tierguard::storage::memory_storage> backing)
        : m_backing(std::move(backing)) {}
    [[nodiscard]] tierguard::result<std::vector<std::byte>> read(std::string_view name) {
        return m_backing->read(name);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        return m_backing->write(name, bytes);
    }
    tierguard::result<void> remove(std::string_view name) { return m_backing->remove(name); }
    [[nodiscard]] tierguard::result<std::vector<tierguard::blob_info>> list() { return m_backing->list(); }
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        return m_backing->quarantine(name, reason, now);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        return m_backing->clean(options);
    }

private:
    std::shared_ptr<tierguard::storage::memory_storage> m_backing;
};
static_assert(tierguard::storage_policy<shared_memory_storage>);

}  // namespace tierguard_test
