#pragma once

// A test double: a storage that delegates to an inner one, except where a test's
// script says an operation fails. New tests use the public decorator
// tierguard/storage/fault_injecting.hpp (scripts, seeded rates, counters) instead.
#include <tierguard/storage/concept.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tierguard_test {

enum class storage_op { read, write, remove, list, quarantine, clean };

template <class Inner>
class scripted_storage {
public:
    /// Returns the failure to inject for (op, name), or nullopt to let the call through.
    using script = std::function<std::optional<tierguard::failure>(storage_op, std::string_view)>;

    /// As shared as the storage it wraps.
    static constexpr bool shared = tierguard::detail::shared_storage<Inner>;

    explicit scripted_storage(Inner inner, std::shared_ptr<script> faults = std::make_shared<script>())
        : m_inner(std::move(inner)), m_faults(std::move(faults)) {}

    tierguard::result<std::vector<std::byte>> read(std::string_view name) {
        if (auto f = fault(storage_op::read, name)) return tierguard::unexpected(*f);
        return m_inner.read(name);
    }
    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        if (auto f = fault(storage_op::write, name)) return tierguard::unexpected(*f);
        return m_inner.write(name, bytes);
    }
    tierguard::result<void> remove(std::string_view name) {
        if (auto f = fault(storage_op::remove, name)) return tierguard::unexpected(*f);
        return m_inner.remove(name);
    }
    tierguard::result<std::vector<tierguard::blob_info>> list() {
        if (auto f = fault(storage_op::list, {})) return tierguard::unexpected(*f);
        return m_inner.list();
    }
    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        if (auto f = fault(storage_op::quarantine, name)) return tierguard::unexpected(*f);
        return m_inner.quarantine(name, reason, now);
    }
    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        if (auto f = fault(storage_op::clean, {})) return tierguard::unexpected(*f);
        return m_inner.clean(options);
    }

    Inner& inner() noexcept { return m_inner; }
    /// The script, shared with the test that set it.
    script& faults() noexcept { return *m_faults; }

private:
    std::optional<tierguard::failure> fault(storage_op op, std::string_view name) {
        return *m_faults ? (*m_faults)(op, name) : std::nullopt;
    }

    Inner m_inner;
    std::shared_ptr<script> m_faults;
};

}  // namespace tierguard_test
