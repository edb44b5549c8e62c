#pragma once

// The examples' shared main(): runs an example in a fresh folder under the system's temp
// directory and removes the folder afterwards. Part of the examples, not of tierguard.

#include <cstdlib>
#include <filesystem>
#include <string>

/// Calls run(<new temp folder>/<leaf>) and returns its status; 1 if no folder could be made.
template <class Run>
int run_in_scratch_dir(const char* leaf, Run run) {
    namespace fs = std::filesystem;
    std::string scratch = (fs::temp_directory_path() / "tierguard-example-XXXXXX").string();
    if (::mkdtemp(scratch.data()) == nullptr) return 1;
    const int status = run(fs::path(scratch) / leaf);
    fs::remove_all(scratch);
    return status;
}
