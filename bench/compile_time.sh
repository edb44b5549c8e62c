#!/usr/bin/env bash
# Compile time of tierguard: CPU seconds (user + system, of the compiler and its children)
# and peak memory of compiling the TUs in bench/compile_time/ at -O2.
#
#   bench/compile_time.sh [--runs N] [--cxx g++]      print medians of N interleaved runs
#   bench/compile_time.sh --write                     ... and record them in the figures file
#   bench/compile_time.sh --check                     CI: fail if the umbrella TU grew
#   bench/compile_time.sh --include DIR ...           measure another tree's headers (before/after)
#
# --check compiles baseline.cpp (a std::unordered_map of strings) and umbrella.cpp once
# each and fails if umbrella.cpp takes more than 1.5x the committed CPU figure, scaled by
# how much slower this machine compiles baseline.cpp than the committed machine did, or
# more than 1.5x the committed peak memory (which load does not change). A loaded machine
# inflates CPU time too (shared caches, SMT siblings), so an over-limit compile is
# repeated, up to 3 times, and the fastest counts. The figures are for one compiler
# (major version recorded): with another, --check only prints.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
figures="$here/compile_time.figures"
cxx="${CXX:-g++}"
runs=5
mode=print
include="$root/include"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --cxx) cxx="$2"; shift 2 ;;
    --include) include="$2"; shift 2 ;;
    --write) mode=write; shift ;;
    --check) mode=check; shift ;;
    *) echo "usage: $0 [--runs N] [--cxx COMPILER] [--include DIR] [--write | --check]" >&2; exit 2 ;;
  esac
done
flags=(-std=c++20 -O2 -I"$include" -c -o /dev/null)

# measure FILE [FLAGS...]: prints "<cpu seconds> <peak KB>" of one compile.
measure() {
  python3 - "$cxx" "${flags[@]}" "$@" <<'PY'
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:])
_, status, ru = os.wait4(p.pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit("compile failed: " + " ".join(sys.argv[1:]))
print(f"{ru.ru_utime + ru.ru_stime:.2f} {ru.ru_maxrss}")
PY
}
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
figure() { awk -F= -v k="$1" '$1==k{print $2}' "$figures"; }
major() { "$cxx" -dumpversion | cut -d. -f1; }

if [[ "$mode" == check ]]; then
  read -r base_cpu _ < <(measure "$here/compile_time/baseline.cpp")
  cpu_limit="$(awk -v c="$(figure umbrella_cpu_s)" -v b="$(figure baseline_cpu_s)" -v n="$base_cpu" \
    'BEGIN{s = n / b; if (s < 1) s = 1; printf "%.2f", 1.5 * c * s}')"
  mb_limit="$(awk -v m="$(figure umbrella_peak_mb)" 'BEGIN{printf "%d", 1.5 * m}')"
  best=""
  for attempt in 1 2 3; do
    read -r cpu kb < <(measure "$here/compile_time/umbrella.cpp")
    mb=$((kb / 1024))
    echo "umbrella.cpp: ${cpu} s CPU (limit ${cpu_limit}), ${mb} MB (limit ${mb_limit}); baseline.cpp ${base_cpu} s; load $(cut -d' ' -f1-3 /proc/loadavg)"
    best="$(printf '%s\n%s\n' "$cpu" "${best:-$cpu}" | sort -g | head -1)"
    awk -v c="$best" -v l="$cpu_limit" 'BEGIN{exit !(c <= l)}' && break
  done
  if [[ "$(major)" != "$(figure compiler_major)" ]]; then
    echo "figures are for $(figure compiler) (major $(figure compiler_major)); $cxx is major $(major): not checked"
    exit 0
  fi
  if ! awk -v c="$best" -v l="$cpu_limit" 'BEGIN{exit !(c <= l)}'; then
    echo "FAIL: umbrella.cpp takes ${best} s CPU, over 1.5x the committed $(figure umbrella_cpu_s) s (scaled by the machine: ${cpu_limit} s); see docs/COMPILE_TIME.md" >&2
    exit 1
  fi
  if ((mb > mb_limit)); then
    echo "FAIL: umbrella.cpp needs ${mb} MB, over 1.5x the committed $(figure umbrella_peak_mb) MB; see docs/COMPILE_TIME.md" >&2
    exit 1
  fi
  echo "ok"
  exit 0
fi

tus=(baseline memory_tier umbrella extern_cache)
declare -A cpu_of mb_of
for ((run = 1; run <= runs; run++)); do
  for tu in "${tus[@]}"; do
    read -r cpu kb < <(measure "$here/compile_time/$tu.cpp")
    cpu_of[$tu]+="$cpu "
    mb_of[$tu]+="$((kb / 1024)) "
  done
done
echo "$("$cxx" --version | head -1), -O2, medians of $runs interleaved runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-16s %9s %9s %9s %12s\n' TU "CPU s" "min s" "peak MB" "pp lines"
out=""
for tu in "${tus[@]}"; do
  c="$(tr ' ' '\n' <<<"${cpu_of[$tu]}" | grep . | median)"
  lo="$(tr ' ' '\n' <<<"${cpu_of[$tu]}" | grep . | sort -g | head -1)"
  m="$(tr ' ' '\n' <<<"${mb_of[$tu]}" | grep . | median)"
  lines="$("$cxx" -std=c++20 -I"$include" -E "$here/compile_time/$tu.cpp" | wc -l)"
  printf '%-16s %9s %9s %9s %12s\n' "$tu.cpp" "$c" "$lo" "$m" "$lines"
  out+="${tu}_cpu_s=$c"$'\n'"${tu}_peak_mb=$m"$'\n'"${tu}_pp_lines=$lines"$'\n'
done
if [[ "$mode" == write ]]; then
  {
    echo "# Written by bench/compile_time.sh --write; read by --check (CI). Load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "compiler=$("$cxx" --version | head -1)"
    echo "compiler_major=$(major)"
    echo "runs=$runs"
    printf '%s' "$out"
  } >"$figures"
  echo "wrote $figures"
fi
