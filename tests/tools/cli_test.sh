#!/usr/bin/env bash
# Drives tierguard-cli through its real command line on directories cli_fixture builds with
# the library (see cli_fixture.cpp for what ROOT/cache holds), checking exit codes, stdout,
# stderr, that --json output parses, and that read-only commands change nothing.
# Usage: cli_test.sh CASE CLI FIXTURE WORKDIR   (CASE: help errors stats verify scrub purge inspect)
set -u
case_name=$1 cli=$2 fixture=$3 work=$4
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run ARGS...: runs the cli; sets $rc, $out, $err.
run() {
    out=$("$cli" "$@" 2>"$work/stderr")
    rc=$?
    err=$(cat "$work/stderr")
    echo "\$ tierguard-cli $* -> exit $rc"
}
expect_rc() { [[ $rc -eq $1 ]] || fail "expected exit $1, got $rc (stdout: $out; stderr: $err)"; }
expect_out() { grep -qE -- "$1" <<<"$out" || fail "stdout lacks /$1/: $out"; }
expect_err() { grep -qE -- "$1" <<<"$err" || fail "stderr lacks /$1/: $err"; }
# expect_json PYTHON-EXPRESSION: stdout parses as JSON and the expression (over d) holds.
expect_json() {
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" <<<"$out" ||
        fail "JSON check failed: $1 on: $out"
}
# A listing of every file with its size, mode and modification time, to prove nothing changed.
snapshot() { find "$1" -printf '%P %s %m %T@\n' | sort; }

rm -rf "$work" && mkdir -p "$work"
"$fixture" make "$work/root" || { echo "FAIL: cli_fixture make"; exit 1; }
cache=$work/root/cache

case $case_name in
help)
    run --help
    expect_rc 0; expect_out '^usage: tierguard-cli COMMAND'
    for cmd in stats verify scrub purge-quarantine inspect; do
        run "$cmd" --help
        expect_rc 0; expect_out "^usage: tierguard-cli $cmd DIR"; expect_out '^Exit codes:'
    done
    run inspect --help
    expect_out 'serializer::standard'
    run
    expect_rc 2; expect_err '^usage: tierguard-cli'
    ;;
errors)
    for cmd in stats verify scrub inspect; do
        args=("$cmd" "$work/root/missing"); [[ $cmd == inspect ]] && args+=(alpha)
        run "${args[@]}"
        expect_rc 3; expect_err "root/missing: no such directory"
    done
    run stats "$work/root/file"
    expect_rc 3; expect_err 'root/file: not a directory'
    before=$(snapshot "$work/root/plain")
    for cmd in stats verify scrub inspect purge-quarantine; do
        args=("$cmd" "$work/root/plain"); [[ $cmd == inspect ]] && args+=(alpha)
        [[ $cmd == purge-quarantine ]] && args+=(--older-than 1d)
        run "${args[@]}"
        expect_rc 3; expect_err 'not a tierguard cache: it has no tierguard-meta file'
    done
    [[ $(snapshot "$work/root/plain") == "$before" ]] || fail "a command changed the directory that is not a cache"
    for cmd in stats verify scrub inspect purge-quarantine; do
        args=("$cmd" "$cache"); [[ $cmd == inspect ]] && args+=(alpha)
        [[ $cmd == purge-quarantine ]] && args+=(--older-than 1d)
        out=$("$fixture" hold "$cache" "$cli" "${args[@]}" 2>"$work/stderr"); rc=$?; err=$(cat "$work/stderr")
        echo "\$ (cache held) tierguard-cli ${args[*]} -> exit $rc"
        expect_rc 4; expect_err 'locked: a running process has this cache open'; expect_err 'held by pid [0-9]+'
    done
    for bad in 7x 7 d -1d 1.5h "" 99999999d; do
        run purge-quarantine "$cache" --older-than "$bad"
        expect_rc 2; expect_err "bad duration '$bad'"
    done
    run purge-quarantine "$cache"
    expect_rc 2; expect_err 'older-than DURATION is required'
    run frobnicate "$cache"
    expect_rc 2; expect_err "unknown command 'frobnicate'"
    run stats "$cache" --verbose
    expect_rc 2; expect_err "unknown option '--verbose'"
    run inspect "$cache"
    expect_rc 2; expect_err 'missing KEY'
    run stats
    expect_rc 2; expect_err 'missing DIR'
    ;;
stats)
    before=$(snapshot "$cache")
    run stats "$cache"
    expect_rc 0; expect_out '^entries +7$'; expect_out '^quarantine +2 file\(s\)'; expect_out '^ages +newest'
    run stats "$cache" --json
    expect_rc 0
    expect_json 'd["entries"] == 7 and d["bytes"] > 0 and d["quarantine"]["files"] == 2'
    expect_json 'd["age_seconds"]["newest"] <= d["age_seconds"]["oldest"] and d["quarantine"]["age_seconds"]["oldest"] > 5 * 365 * 86400'
    [[ $(snapshot "$cache") == "$before" ]] || fail "stats changed the cache directory"
    ;;
verify)
    before=$(snapshot "$cache")
    run verify "$cache"
    expect_rc 1
    expect_out '^CORRUPT .*checksum mismatch'; expect_out '^MISPLACED +00/00/0000000000000000: holds the entry of key "beta"'
    expect_out '7 entry file\(s\).*5 intact, 2 damaged, 1 expired; schema versions: 4 of version 1, 1 of version 2'
    run verify "$cache" --json
    expect_rc 1
    expect_json 'd["ok"] is False and d["checked"] == 7 and d["intact"] == 5 and d["expired"] == 1'
    expect_json 'd["schema_versions"] == {"1": 4, "2": 1}'
    expect_json 'sorted(p["error"] for p in d["problems"]) == ["corrupted", "misplaced"]'
    [[ $(snapshot "$cache") == "$before" ]] || fail "verify changed the cache directory"
    ;;
scrub)
    run scrub "$cache" --json
    expect_rc 0
    expect_json 'd["entries_checked"] == 4 and d["quarantined"] == 1 and d["orphans_removed"] == 1'
    expect_json 'd["expired_removed"] == 1 and d["temp_files_removed"] == 1 and d["quarantine_purged"] == 1'
    expect_json 'd["version_mismatches"] == 0 and any(e["event"].startswith("quarantined ") for e in d["events"])'
    run verify "$cache"
    expect_rc 0; expect_out 'schema versions: 3 of version 1, 1 of version 2'; expect_out '^OK$'
    run scrub "$cache"
    expect_rc 0; expect_out '^  entries_checked +4$'; expect_out '^  quarantined +0$'
    ;;
purge)
    run purge-quarantine "$cache" --older-than 30d
    expect_rc 0; expect_out '^purged 1 quarantined file\(s\) older than 30d'
    run stats "$cache" --json
    expect_json 'd["quarantine"]["files"] == 1'
    run purge-quarantine "$cache" --older-than=1h30m --json
    expect_rc 0
    expect_json 'd["older_than_seconds"] == 5400 and d["quarantine_purged"] == 0'
    run stats "$cache" --json
    expect_json 'd["quarantine"]["files"] == 1 and d["entries"] == 7'
    ;;
inspect)
    before=$(snapshot "$cache")
    run inspect "$cache" alpha
    expect_rc 0
    expect_out '^key +"alpha"$'; expect_out '^schema_version +1$'; expect_out '^key_length +5$'
    expect_out '^raw_length +14$'; expect_out '^expiry +never$'; expect_out '\(match\)$'; expect_out '^status +intact$'
    run inspect "$cache" omega --json
    expect_rc 0
    expect_json 'd["found"] and d["status"] == "intact" and d["schema_version"] == 2 and d["stored_key"] == "omega"'
    expect_json 'd["stored_crc"] == d["computed_crc"] and d["raw_length"] == len("value of omega")'
    run inspect "$cache" expiring
    expect_rc 0; expect_out '^expiry +[0-9]{8}T[0-9]{6}Z \(expired'
    run inspect "$cache" gamma
    expect_rc 1; expect_out '\(MISMATCH\)$'; expect_out '^status +corrupted: .*checksum mismatch'
    run inspect "$cache" nobody
    expect_rc 1; expect_out '^no entry for key "nobody"'
    run inspect "$cache" nobody --json
    expect_rc 1; expect_json 'd["found"] is False and d["status"] == "absent"'
    [[ $(snapshot "$cache") == "$before" ]] || fail "inspect changed the cache directory"
    ;;
*)
    echo "unknown case $case_name"; exit 2 ;;
esac

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "PASS: cli $case_name"
