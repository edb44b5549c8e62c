#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace tierguard::detail {

/// One background thread running posted tasks in order, started by the first post().
/// A full queue refuses tasks; stop() drops the queued ones, waits for the running one and
/// joins. Thread-safe.
class task_thread {
public:
    explicit task_thread(std::size_t max_queued) : m_max_queued(max_queued) {}
    task_thread(const task_thread&) = delete;
    task_thread& operator=(const task_thread&) = delete;
    ~task_thread() { stop(); }

    /// Queues `task`; false if the queue is full or the thread was stopped.
    bool post(std::function<void()> task) {
        std::lock_guard lock(m_mutex);
        if (m_stopped || m_queue.size() >= m_max_queued) return false;
        m_queue.push_back(std::move(task));
        if (!m_thread.joinable()) m_thread = std::thread([this] { run(); });
        m_wake.notify_one();
        return true;
    }

    void stop() noexcept {
        {
            std::lock_guard lock(m_mutex);
            m_stopped = true;
            m_queue.clear();
        }
        m_wake.notify_one();
        if (m_thread.joinable()) m_thread.join();
    }

private:
    void run() {
        std::unique_lock lock(m_mutex);
        for (;;) {
            m_wake.wait(lock, [&] { return m_stopped || !m_queue.empty(); });
            if (m_stopped) return;
            auto task = std::move(m_queue.front());
            m_queue.pop_front();
            lock.unlock();
            task();
            lock.lock();
        }
    }

    std::size_t m_max_queued;
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<std::function<void()>> m_queue;
    bool m_stopped = false;
    std::thread m_thread;
};

}  // namespace tierguard::detail
