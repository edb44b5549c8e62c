#!/usr/bin/env python3
"""Compiles every public header alone, as a user without CMake would (-I, not -isystem).

  warnings      -std=c++20 with the strictest warnings a user may build with, as errors:
                no header may warn.
  requirements  -std=c++17, then -std=c++20 -fno-exceptions: every header must stop at
                once with tierguard's one-line #error (detail/build_requirements.hpp), not
                with pages of errors from the code after it.

Usage: public_headers.py warnings|requirements <compiler> <include dir>
Prints "<n> headers, 0 problems" on success; exits non-zero otherwise. If the compiler
is not installed, prints "SKIPPED: ..." (ctest reports the test skipped).
"""
import concurrent.futures
import os
import pathlib
import re
import shutil
import subprocess
import sys

WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wsign-conversion", "-Wshadow",
            "-Wold-style-cast", "-Werror"]

# (flags, message the first error must carry)
REQUIREMENTS = [
    (["-std=c++17"], "tierguard requires C++20"),
    (["-std=c++20", "-fno-exceptions"], "tierguard requires C++ exceptions"),
]

# A stop at the #error prints it, the fatal error after it and their include chains.
MAX_LINES = 30


def compile_header(compiler, include, header, flags):
    source = f"#include <{header}>\n"
    run = subprocess.run([compiler, "-x", "c++", "-fsyntax-only", f"-I{include}", *flags, "-"],
                         input=source, capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def check_warnings(compiler, include, header):
    code, out = compile_header(compiler, include, header, ["-std=c++20", *WARNINGS])
    if code != 0 or out.strip():
        return [f"{header}: {compiler} -std=c++20 {' '.join(WARNINGS)}:\n{out}"]
    return []


def check_requirements(compiler, include, header):
    problems = []
    for flags, message in REQUIREMENTS:
        code, out = compile_header(compiler, include, header, flags)
        errors = [line for line in out.splitlines() if re.search(r"\berror\b", line)]
        lines = len(out.splitlines())
        if code == 0:
            problems.append(f"{header}: {' '.join(flags)} compiled; expected the error '{message}'")
        elif not errors or message not in errors[0]:
            first = errors[0] if errors else "(no error line)"
            problems.append(f"{header}: {' '.join(flags)}: the first error is not '{message}': {first}")
        elif lines > MAX_LINES:
            problems.append(f"{header}: {' '.join(flags)}: {lines} lines of output (at most {MAX_LINES}):\n{out}")
    return problems


def main(mode, compiler, include):
    if shutil.which(compiler) is None:
        print(f"SKIPPED: {compiler} not found")
        return 0
    include = pathlib.Path(include)
    headers = sorted(p.relative_to(include).as_posix() for p in include.glob("tierguard/**/*.hpp"))
    check = {"warnings": check_warnings, "requirements": check_requirements}[mode]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        problems = [p for found in pool.map(lambda h: check(compiler, include, h), headers) for p in found]
    for p in problems:
        print(p)
    print(f"{mode}, {compiler}: {len(headers)} headers, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("warnings", "requirements"):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
