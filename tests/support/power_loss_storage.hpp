#pragma once

// A test double for power-loss testing: posix_directory's write protocol replayed, step by
// step, on a simulated file system that remembers what has been synced.
//
// Why a model and not posix_directory itself: posix_directory calls the OS directly, so
// a power loss cannot happen underneath it without interposing on libc, and a syscall
// seam in the library would change its type or add an indirection to every call of a
// class that other work is changing too. So this double does what posix_directory does,
// in the same order and under the same durability setting, one simulated call per
// system call that matters for durability:
//
//   write:      [make folder if missing, (full) sync its parent unless this instance did]*,
//               create temp (O_EXCL), write it whole,
//               (data, full) sync the temp file, rename into place, (full) sync folder
//   remove:     unlink, (full) sync folder, [remove the folder if this emptied it]*
//   quarantine: [make quarantine folder, (full) sync root], rename across folders,
//               (full) sync quarantine folder, sync the blob's folder,
//               [remove the folder if this emptied it]*
//   clean:      unlink temp files and expired quarantine, then remove empty blob folders
//               deepest first, no sync (as posix_directory)
//
// tests/unit/power_loss.cpp keeps the two in step: on Linux it wraps those system calls
// at link time (--wrap) and checks that posix_directory, run on a real folder, makes the
// same calls on the same paths as this double's steps, for every durability setting.
//
// Each such call is one step and one crash point. simulated_disk::cut_power_after(n) lets
// n steps happen; the next one fails with EIO, as does every call after it, and nothing
// more changes. crash() then keeps what a power loss may keep, taking the worst POSIX
// allows without fsync, each choice drawn from a seeded generator:
//   - a file whose bytes were not synced since its last write comes back as its synced
//     bytes, its new bytes, a prefix of them, or its new length with a stretch zeroed or
//     garbled (size metadata landed, data blocks did not);
//   - a folder comes back as it was at its last sync plus any subset of the changes made
//     since (creates, renames, unlinks, new subfolders), each kept or dropped on its own
//     draw; a rename within a folder is one change (its target shows the old file or the
//     new one), a rename across folders is an unlink in one and a link in the other;
//   - a folder whose own creation was dropped is gone with everything in it.
// Reads, listings and reopening see the surviving state; a storage opened over the disk
// afterwards is a new process (its temp names differ, as posix_directory's carry the pid).
// protocol_faults breaks the protocol on purpose so a test can show that its oracle
// catches a missing fsync. Not modelled: links, foreign files, a blob where a folder
// belongs (the disk tier never makes them). Not thread-safe: one tier drives it.
#include <tierguard/detail/blob_name.hpp>
#include <tierguard/detail/os_error.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>
#include <tierguard/storage/concept.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tierguard_test {

/// The durability-relevant system calls of posix_directory's protocol.
enum class disk_step : unsigned char { make_folder, sync_folder, create_temp, write_temp, sync_file, rename, unlink };

[[nodiscard]] constexpr std::string_view to_string(disk_step s) noexcept {
    switch (s) {
        case disk_step::make_folder: return "make_folder";
        case disk_step::sync_folder: return "sync_folder";
        case disk_step::create_temp: return "create_temp";
        case disk_step::write_temp: return "write_temp";
        case disk_step::sync_file: return "sync_file";
        case disk_step::rename: return "rename";
        case disk_step::unlink: return "unlink";
    }
    return "?";
}

/// What crash() did: how much unsynced state it dropped or damaged.
struct crash_summary {
    std::uint64_t changes_kept = 0;     ///< unsynced folder changes that survived
    std::uint64_t changes_dropped = 0;  ///< unsynced folder changes reverted
    std::uint64_t files_damaged = 0;    ///< unsynced files reverted, cut short or garbled
};

/// A file system in memory that tracks, per file and per folder, what was synced.
class simulated_disk {
public:
    static constexpr std::uint64_t never = std::numeric_limits<std::uint64_t>::max();

    struct node {
        bool folder = false;
        std::size_t id = 0;  // into m_folders or m_files
        friend bool operator==(const node&, const node&) = default;
    };
    using entries = std::map<std::string, node, std::less<>>;

    simulated_disk() { m_folders.emplace_back(); }

    // ---- power -------------------------------------------------------------------------

    /// Lets `steps` more steps happen (counted from the last crash); the next one fails.
    void cut_power_after(std::uint64_t steps) noexcept { m_budget = steps; }
    [[nodiscard]] bool powered() const noexcept { return m_powered; }
    /// Steps taken since construction or the last crash.
    [[nodiscard]] std::uint64_t steps() const noexcept { return m_steps; }
    /// The steps taken, in order, with the path each touched.
    [[nodiscard]] const std::vector<std::pair<disk_step, std::string>>& trace() const noexcept { return m_trace; }

    /// The power fails (if it had not) and comes back: every file and folder keeps only
    /// what it synced, plus what `seed`'s draws let survive (see the header comment).
    crash_summary crash(std::uint64_t seed) {
        std::mt19937_64 rng(seed);
        crash_summary summary;
        std::vector<folder_state> folders;
        std::vector<file_state> files;
        std::map<std::size_t, std::size_t> file_ids;
        std::function<std::size_t(std::size_t)> survive = [&](std::size_t old_id) {
            const folder_state& old = m_folders[old_id];
            entries kept = old.synced;
            for (const change& c : old.unsynced) {
                if ((rng() & 1) == 0) {
                    ++summary.changes_dropped;
                    continue;
                }
                ++summary.changes_kept;
                if (c.kind != change::unlink) kept[c.to] = c.what;
                if (c.kind != change::link) {
                    if (const auto it = kept.find(c.from); it != kept.end() && it->second == c.what) kept.erase(it);
                }
            }
            const std::size_t id = folders.size();
            folders.emplace_back();
            entries now;
            for (const auto& [name, n] : kept) {
                if (n.folder) {
                    now[name] = node{true, survive(n.id)};
                    continue;
                }
                auto [it, fresh] = file_ids.try_emplace(n.id, files.size());
                if (fresh) files.push_back(surviving_file(m_files[n.id], rng, summary));
                now[name] = node{false, it->second};
            }
            folders[id].live = now;
            folders[id].synced = std::move(now);
            return id;
        };
        survive(0);
        m_folders = std::move(folders);
        m_files = std::move(files);
        m_powered = true;
        m_budget = never;
        m_steps = 0;
        m_trace.clear();
        return summary;
    }

    // ---- calls, as the protocol makes them; each returns 0 or an errno ----------------

    [[nodiscard]] std::optional<node> lookup(std::size_t folder, std::string_view name) const {
        const auto& live = m_folders[folder].live;
        const auto it = live.find(name);
        if (it == live.end()) return std::nullopt;
        return it->second;
    }
    [[nodiscard]] const entries& list(std::size_t folder) const { return m_folders[folder].live; }
    [[nodiscard]] const std::vector<std::byte>& contents(std::size_t file) const { return m_files[file].live; }
    [[nodiscard]] std::uint64_t modified(std::size_t file) const { return m_files[file].modified; }

    int make_folder(std::size_t parent, std::string_view name, std::string_view path) {
        if (!step(disk_step::make_folder, path)) return EIO;
        if (lookup(parent, name)) return EEXIST;
        m_folders.emplace_back();
        link(parent, name, node{true, m_folders.size() - 1});
        return 0;
    }
    int sync_folder(std::size_t folder, std::string_view path) {
        if (!step(disk_step::sync_folder, path)) return EIO;
        folder_state& f = m_folders[folder];
        f.synced = f.live;
        f.unsynced.clear();
        return 0;
    }
    /// Creates an empty file (O_EXCL); its id in `file`.
    int create(std::size_t folder, std::string_view name, std::string_view path, std::size_t& file) {
        if (!step(disk_step::create_temp, path)) return EIO;
        if (lookup(folder, name)) return EEXIST;
        m_files.emplace_back();
        file = m_files.size() - 1;
        link(folder, name, node{false, file});
        return 0;
    }
    int write(std::size_t file, std::span<const std::byte> bytes, std::string_view path) {
        if (!step(disk_step::write_temp, path)) return EIO;
        file_state& f = m_files[file];
        f.live.assign(bytes.begin(), bytes.end());
        f.modified = ++m_clock;
        return 0;
    }
    int sync_file(std::size_t file, std::string_view path) {
        if (!step(disk_step::sync_file, path)) return EIO;
        m_files[file].synced = m_files[file].live;
        return 0;
    }
    /// Within one folder: one change; across folders: an unlink and a link.
    int rename(std::size_t from_folder, std::string_view from, std::size_t to_folder, std::string_view to,
               std::string_view path) {
        if (!step(disk_step::rename, path)) return EIO;
        const auto what = lookup(from_folder, from);
        if (!what) return ENOENT;
        if (const auto target = lookup(to_folder, to); target && target->folder) return EISDIR;
        if (from_folder == to_folder) {
            folder_state& f = m_folders[from_folder];
            f.live.erase(f.live.find(from));
            f.live[std::string(to)] = *what;
            f.unsynced.push_back(change{change::rename, std::string(from), std::string(to), *what});
            return 0;
        }
        unlink_entry(from_folder, from, *what);
        link(to_folder, to, *what);
        return 0;
    }
    /// rmdir: ENOTEMPTY (no step: nothing changes) unless the folder is empty.
    int remove_folder(std::size_t parent, std::string_view name, std::string_view path) {
        const auto what = lookup(parent, name);
        if (!what) return ENOENT;
        if (!what->folder) return ENOTDIR;
        if (!m_folders[what->id].live.empty()) return ENOTEMPTY;
        if (!step(disk_step::unlink, path)) return EIO;
        unlink_entry(parent, name, *what);
        return 0;
    }
    int unlink(std::size_t folder, std::string_view name, std::string_view path) {
        if (!step(disk_step::unlink, path)) return EIO;
        const auto what = lookup(folder, name);
        if (!what) return ENOENT;
        if (what->folder) return EISDIR;
        unlink_entry(folder, name, *what);
        return 0;
    }

    // ---- inspection ----------------------------------------------------------------------

    /// Paths of every temp file in the tree now.
    [[nodiscard]] std::vector<std::string> temp_files() const {
        std::vector<std::string> out;
        walk_files(0, "", [&](const std::string& path, std::string_view leaf, std::size_t) {
            if (leaf.starts_with(tierguard::detail::temp_prefix)) out.push_back(path);
        });
        return out;
    }

    /// Calls fn(path, leaf, file id) for every file under `folder`.
    template <class Fn>
    void walk_files(std::size_t folder, const std::string& prefix, Fn&& fn) const {
        for (const auto& [name, n] : m_folders[folder].live) {
            const std::string path = prefix.empty() ? name : prefix + "/" + name;
            if (n.folder)
                walk_files(n.id, path, fn);
            else
                fn(path, std::string_view(name), n.id);
        }
    }

    /// A number for each storage opened over this disk, as a pid for its temp names.
    [[nodiscard]] std::uint64_t next_instance() noexcept { return ++m_instances; }

private:
    struct change {
        enum kind_t : unsigned char { link, unlink, rename } kind;
        std::string from;  // unlink, rename
        std::string to;    // link, rename
        node what;
    };
    struct folder_state {
        entries live;    // what the OS shows
        entries synced;  // as of the last sync_folder
        std::vector<change> unsynced;
    };
    struct file_state {
        std::vector<std::byte> live;
        std::vector<std::byte> synced;
        std::uint64_t modified = 0;
    };

    bool step(disk_step s, std::string_view path) {
        if (!m_powered || m_steps >= m_budget) {
            m_powered = false;
            return false;
        }
        ++m_steps;
        m_trace.emplace_back(s, std::string(path));
        return true;
    }
    void link(std::size_t folder, std::string_view name, node what) {
        folder_state& f = m_folders[folder];
        f.live[std::string(name)] = what;
        f.unsynced.push_back(change{change::link, {}, std::string(name), what});
    }
    void unlink_entry(std::size_t folder, std::string_view name, node what) {
        folder_state& f = m_folders[folder];
        f.live.erase(f.live.find(name));
        f.unsynced.push_back(change{change::unlink, std::string(name), {}, what});
    }

    static file_state surviving_file(const file_state& f, std::mt19937_64& rng, crash_summary& summary) {
        file_state out;
        out.modified = f.modified;
        out.live = f.live;
        if (f.live != f.synced) {
            ++summary.files_damaged;
            const std::size_t size = f.live.size();
            auto below = [&](std::size_t n) { return n == 0 ? std::size_t{0} : static_cast<std::size_t>(rng() % n); };
            switch (rng() % 5) {
                case 0: out.live = f.synced; break;
                case 1: --summary.files_damaged; break;  // every byte landed
                case 2: out.live.resize(below(size)); break;
                default: {  // the size landed, a stretch of the data did not
                    const std::size_t from = below(size);
                    const std::size_t to = from + 1 + below(size - from);
                    const bool zeros = rng() % 2 == 0;
                    for (std::size_t i = from; i < to; ++i)
                        out.live[i] = zeros ? std::byte{0} : static_cast<std::byte>(rng());
                }
            }
        }
        out.synced = out.live;
        return out;
    }

    std::vector<folder_state> m_folders;  // [0] is the root
    std::vector<file_state> m_files;
    std::uint64_t m_budget = never;
    std::uint64_t m_steps = 0;
    std::uint64_t m_clock = 0;
    std::uint64_t m_instances = 0;
    bool m_powered = true;
    std::vector<std::pair<disk_step, std::string>> m_trace;
};

/// Ways to break the protocol on purpose, to show that a test's oracle catches them.
struct protocol_faults {
    bool skip_folder_sync = false;  ///< never sync a folder: durability::full loses renames
    bool skip_parent_sync = false;  ///< no sync of a folder's parent: the folder may vanish
    bool skip_file_sync = false;    ///< rename before the bytes are synced: torn entries
};

/// posix_directory's protocol over a simulated_disk; models tierguard::storage_policy.
/// Copies share the disk; every storage opened over one disk is a new process.
class power_loss_storage {
public:
    explicit power_loss_storage(std::shared_ptr<simulated_disk> disk, tierguard::durability sync,
                                protocol_faults broken = {})
        : m_disk(std::move(disk)),
          m_sync(sync),
          m_broken(broken),
          m_temp_prefix(std::string(tierguard::detail::temp_prefix) + std::to_string(m_disk->next_instance()) + ".") {}

    [[nodiscard]] tierguard::result<std::vector<std::byte>> read(std::string_view name) const {
        if (auto ok = tierguard::detail::check_blob_name("read", name, tierguard::tier::disk); !ok)
            return tierguard::unexpected(std::move(ok).error());
        if (!m_disk->powered()) return fail_with(EIO, "read", name, "open");
        auto dir = walk("read", name, tierguard::detail::blob_parent(name), false, true);
        if (!dir) return tierguard::unexpected(std::move(dir).error());
        const auto n = m_disk->lookup(*dir, tierguard::detail::blob_leaf(name));
        if (!n) return fail_with(ENOENT, "read", name, "open");
        if (n->folder)
            return tierguard::fail(tierguard::errc::corrupted, tierguard::tier::disk,
                                   "read " + std::string(name) + ": found a directory where a blob belongs");
        return m_disk->contents(n->id);
    }

    tierguard::result<void> write(std::string_view name, std::span<const std::byte> bytes) {
        using tierguard::durability;
        if (auto ok = tierguard::detail::check_blob_name("write", name, tierguard::tier::disk); !ok) return ok;
        auto dir = walk("write", name, tierguard::detail::blob_parent(name), true, false);
        if (!dir) return tierguard::unexpected(std::move(dir).error());
        const std::string temp = m_temp_prefix + std::to_string(m_next_temp++);
        const std::string temp_path = join(tierguard::detail::blob_parent(name), temp);
        std::size_t file = 0;
        if (const int err = m_disk->create(*dir, temp, temp_path, file))
            return fail_with(err, "write", name, "create temp file " + temp);
        // posix_directory's temp_remover unlinks the temp on failure; only a power cut
        // fails here, and then that unlink fails too.
        if (const int err = m_disk->write(file, bytes, temp_path))
            return fail_with(err, "write", name, "write temp file " + temp);
        if (m_sync != durability::none && !m_broken.skip_file_sync) {
            if (const int err = m_disk->sync_file(file, temp_path))
                return fail_with(err, "write", name, "sync temp file " + temp);
        }
        if (const int err = m_disk->rename(*dir, temp, *dir, tierguard::detail::blob_leaf(name), name))
            return fail_with(err, "write", name, "rename into place");
        return sync_folder(*dir, "write", name, tierguard::detail::blob_parent(name));
    }

    tierguard::result<void> remove(std::string_view name) {
        if (auto ok = tierguard::detail::check_blob_name("remove", name, tierguard::tier::disk); !ok) return ok;
        auto dir = walk("remove", name, tierguard::detail::blob_parent(name), false, false);
        if (!dir) return tierguard::unexpected(std::move(dir).error());
        if (const int err = m_disk->unlink(*dir, tierguard::detail::blob_leaf(name), name))
            return fail_with(err, "remove", name, "unlink");
        if (auto ok = sync_folder(*dir, "remove", name, tierguard::detail::blob_parent(name)); !ok) return ok;
        return remove_empty_parents("remove", name);
    }

    [[nodiscard]] tierguard::result<std::vector<tierguard::blob_info>> list() const {
        if (!m_disk->powered()) return fail_with(EIO, "list", ".", "read folder");
        std::vector<tierguard::blob_info> out;
        list_into(0, "", out);
        return out;
    }

    tierguard::result<void> quarantine(std::string_view name, std::string_view reason,
                                       std::chrono::system_clock::time_point now) {
        namespace td = tierguard::detail;
        if (auto ok = td::check_blob_name("quarantine", name, tierguard::tier::disk); !ok) return ok;
        auto dir = walk("quarantine", name, tierguard::detail::blob_parent(name), false, false);
        if (!dir) return tierguard::unexpected(std::move(dir).error());
        const auto n = m_disk->lookup(*dir, tierguard::detail::blob_leaf(name));
        if (!n) return fail_with(ENOENT, "quarantine", name, "stat");
        if (n->folder) return fail_with(EISDIR, "quarantine", name, "found a directory where a blob belongs");
        auto folder = walk("quarantine", name, td::quarantine_folder, true, false);
        if (!folder) return tierguard::unexpected(std::move(folder).error());
        const std::string target = td::quarantine_name(name, reason, now);
        if (const int err = m_disk->rename(*dir, tierguard::detail::blob_leaf(name), *folder, target,
                                           join(td::quarantine_folder, target)))
            return fail_with(err, "quarantine", name, "move to quarantine/" + target);
        if (auto ok = sync_folder(*folder, "quarantine", name, td::quarantine_folder); !ok) return ok;
        if (auto ok = sync_folder(*dir, "quarantine", name, tierguard::detail::blob_parent(name)); !ok) return ok;
        return remove_empty_parents("quarantine", name);
    }

    tierguard::result<tierguard::clean_report> clean(const tierguard::clean_options& options) {
        namespace td = tierguard::detail;
        if (!m_disk->powered()) return fail_with(EIO, "clean", ".", "read folder");
        tierguard::clean_report report;
        const auto oldest = options.now - options.quarantine_max_age;
        struct doomed {
            std::string path;
            bool temp;
            std::uint64_t size;
        };
        std::vector<doomed> out;
        m_disk->walk_files(0, "", [&](const std::string& path, std::string_view leaf, std::size_t file) {
            const bool quarantined = path.starts_with(std::string(td::quarantine_folder) + "/");
            const bool temp = leaf.starts_with(td::temp_prefix);
            if (temp || (quarantined && td::quarantine_time(leaf).value_or(oldest) < oldest))
                out.push_back({path, temp, m_disk->contents(file).size()});
        });
        for (const doomed& d : out) {
            auto dir = walk("clean", d.path, tierguard::detail::blob_parent(d.path), false, false);
            if (!dir) return tierguard::unexpected(std::move(dir).error());
            if (const int err = m_disk->unlink(*dir, tierguard::detail::blob_leaf(d.path), d.path))
                return fail_with(err, "clean", d.path, "remove");
            ++(d.temp ? report.temp_files_removed : report.quarantine_purged);
            report.bytes_freed += d.size;
        }
        std::vector<std::string> folders;  // each after its parent
        std::function<void(std::size_t, const std::string&)> collect = [&](std::size_t folder, const std::string& at) {
            for (const auto& [leaf, n] : m_disk->list(folder)) {
                if (!n.folder || (at.empty() && leaf == td::quarantine_folder)) continue;
                const std::string path = join(at, leaf);
                folders.push_back(path);
                collect(n.id, path);
            }
        };
        collect(0, "");
        for (auto it = folders.rbegin(); it != folders.rend(); ++it) {
            if (auto removed = remove_if_empty("clean", *it); !removed)
                return tierguard::unexpected(std::move(removed).error());
        }
        return report;
    }

    [[nodiscard]] simulated_disk& disk() noexcept { return *m_disk; }

private:
    [[nodiscard]] static tierguard::unexpected<tierguard::failure> fail_with(int err, std::string_view operation,
                                                                             std::string_view name,
                                                                             std::string_view what) {
        return tierguard::unexpected(tierguard::detail::os_failure(err, operation, name, what));
    }
    [[nodiscard]] static std::string join(std::string_view folder, std::string_view leaf) {
        return folder.empty() ? std::string(leaf) : std::string(folder) + "/" + std::string(leaf);
    }

    // As posix_directory: rmdir, which changes nothing unless the folder is empty; its
    // link, and those of the folders in it, are no longer known synced.
    tierguard::result<bool> remove_if_empty(std::string_view operation, std::string_view folder) {
        auto parent = walk(operation, folder, tierguard::detail::blob_parent(folder), false, false);
        if (!parent) return tierguard::unexpected(std::move(parent).error());
        const int err = m_disk->remove_folder(*parent, tierguard::detail::blob_leaf(folder), folder);
        if (err == ENOTEMPTY || err == ENOENT || err == ENOTDIR) return false;
        if (err != 0) return fail_with(err, operation, folder, "remove the emptied folder");
        std::erase_if(m_durable_folders, [&](const std::string& f) {
            return f.starts_with(folder) && (f.size() == folder.size() || f[folder.size()] == '/');
        });
        return true;
    }
    tierguard::result<void> remove_empty_parents(std::string_view operation, std::string_view name) {
        for (auto folder = tierguard::detail::blob_parent(name); !folder.empty();
             folder = tierguard::detail::blob_parent(folder)) {
            auto removed = remove_if_empty(operation, folder);
            if (!removed) return tierguard::unexpected(std::move(removed).error());
            if (!*removed) break;
        }
        return {};
    }

    tierguard::result<void> sync_folder(std::size_t folder, std::string_view operation, std::string_view name,
                                        std::string_view path) {
        if (m_sync != tierguard::durability::full || m_broken.skip_folder_sync) return {};
        if (const int err = m_disk->sync_folder(folder, path.empty() ? "." : path))
            return fail_with(err, operation, name, "sync folder");
        return {};
    }

    // As posix_directory::walk: one folder at a time, making missing ones when `create`
    // (and, under durability::full, syncing the parent of each one this instance has not).
    [[nodiscard]] tierguard::result<std::size_t> walk(std::string_view operation, std::string_view name,
                                                      std::string_view folders, bool create,
                                                      bool foreign_is_corruption) const {
        std::size_t at = 0;
        if (folders.empty()) return at;
        for (std::size_t start = 0;;) {
            const std::size_t slash = folders.find('/', start);
            const std::size_t end = slash == std::string_view::npos ? folders.size() : slash;
            const std::string_view segment = folders.substr(start, end - start);
            const std::string_view where = folders.substr(0, end);
            auto n = m_disk->lookup(at, segment);
            if (!n && create) {
                const int err = m_disk->make_folder(at, segment, where);
                if (err != 0 && err != EEXIST)
                    return fail_with(err, operation, name, "create folder " + std::string(where));
                n = m_disk->lookup(at, segment);
            }
            if (n && n->folder && create && m_sync == tierguard::durability::full && !m_broken.skip_folder_sync &&
                !m_broken.skip_parent_sync && !m_durable_folders.contains(where)) {
                const std::string_view parent = folders.substr(0, start == 0 ? 0 : start - 1);
                if (const int err = m_disk->sync_folder(at, parent.empty() ? "." : parent))
                    return fail_with(err, operation, name, "sync the parent of folder " + std::string(where));
                m_durable_folders.emplace(where);
            }
            if (!n)
                return fail_with(m_disk->powered() ? ENOENT : EIO, operation, name,
                                 "open folder " + std::string(where));
            if (!n->folder) {
                if (foreign_is_corruption)
                    return tierguard::fail(tierguard::errc::corrupted, tierguard::tier::disk,
                                           std::string(operation) + " " + std::string(name) +
                                               ": found a regular file where the folder " + std::string(where) +
                                               " belongs");
                return fail_with(ENOTDIR, operation, name, "open folder " + std::string(where));
            }
            at = n->id;
            if (slash == std::string_view::npos) return at;
            start = slash + 1;
        }
    }

    void list_into(std::size_t folder, const std::string& prefix, std::vector<tierguard::blob_info>& out) const {
        namespace td = tierguard::detail;
        for (const auto& [name, n] : m_disk->list(folder)) {
            if (!td::is_blob_segment(name)) continue;
            if (prefix.empty() && name == td::quarantine_folder) continue;
            const std::string path = join(prefix, name);
            if (n.folder) {
                list_into(n.id, path, out);
            } else {
                out.push_back(tierguard::blob_info{
                    path, m_disk->contents(n.id).size(),
                    std::chrono::system_clock::time_point{} + std::chrono::microseconds(m_disk->modified(n.id))});
            }
        }
    }

    std::shared_ptr<simulated_disk> m_disk;
    tierguard::durability m_sync;
    protocol_faults m_broken;
    std::string m_temp_prefix;
    std::uint64_t m_next_temp = 0;
    // Folders whose link this instance has synced (durability::full), as posix_directory.
    mutable std::set<std::string, std::less<>> m_durable_folders;
};

static_assert(tierguard::storage_policy<power_loss_storage>);

}  // namespace tierguard_test
