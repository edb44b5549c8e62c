#!/usr/bin/env python3
"""Fails if a code block in README.md is not something CI compiles or runs.

  ```cpp    must be, to the byte, one of the files in examples/ (CI builds and runs them);
  ```cmake  every line must be a line of a consumer project in tests/consumers/ (ctest
            builds those against the installed and the source tree);
  ```sh     every command must be a line of .ci/run or of a script it runs.

Usage: readme_blocks.py <repository root>
"""
import pathlib
import re
import sys


def blocks(text):
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        yield m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1


def lines_of(paths):
    return {line.strip() for p in paths for line in p.read_text().splitlines() if line.strip()}


def main(root):
    root = pathlib.Path(root)
    examples = {p.read_text(): p.name for p in (root / "examples").glob("*.cpp")}
    cmake_lines = lines_of((root / "tests" / "consumers").glob("*/CMakeLists.txt"))
    ci_lines = lines_of([root / ".ci" / "run", root / "scripts" / "test", root / "scripts" / "demo"])
    problems, checked = [], 0
    for lang, body, line in blocks((root / "README.md").read_text()):
        checked += 1
        if lang == "cpp":
            if body not in examples:
                problems.append(f"README.md:{line}: the cpp block is not a file of examples/ (copy the file in)")
        elif lang == "cmake":
            for text in body.splitlines():
                text = text.strip()
                if text and not text.startswith("#") and text not in cmake_lines:
                    problems.append(f"README.md:{line}: '{text}' is in no tests/consumers/*/CMakeLists.txt")
        elif lang == "sh":
            for text in body.splitlines():
                command = re.sub(r"\s+#.*$", "", text).strip()
                if command and not any(command in ci for ci in ci_lines):
                    problems.append(f"README.md:{line}: '{command}' is run neither by .ci/run nor by scripts/")
        else:
            problems.append(f"README.md:{line}: a ```{lang or '(no language)'} block; use cpp, cmake or sh")
    for p in problems:
        print(p)
    print(f"README code blocks: {checked} checked, {len(problems)} problems")
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
