#!/usr/bin/env bash
# Drives tierguard-cli through its real command line on directories cli_fixture builds with
# the library (see cli_fixture.cpp for what ROOT/* hold), checking exit codes, stdout,
# stderr, that --json output parses, and that read-only commands change nothing. Every
# command runs over both storages: ROOT/cache (posix_directory) and ROOT/log (segment_log)
# hold the same entries.
# Usage: cli_test.sh CASE CLI FIXTURE WORKDIR
#   CASE: help errors stats verify scrub purge inspect junk layout range range_damage
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
expect_no_out() { ! grep -qE -- "$1" <<<"$out" || fail "stdout has /$1/: $out"; }
expect_err() { grep -qE -- "$1" <<<"$err" || fail "stderr lacks /$1/: $err"; }
# expect_json PYTHON-EXPRESSION: stdout parses as JSON and the expression (over d) holds.
expect_json() {
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" <<<"$out" ||
        fail "JSON check failed: $1 on: $out"
}
# expect_error EXIT ID: the last run failed with EXIT and the text error on stderr carries
# [tierguard-cli.ID]; the same command again with --json prints, on stdout, one JSON object
# {"error": {"id": "tierguard-cli.ID", "message": ..., "exit_code": EXIT}} and exits with EXIT.
# The command is taken from $last (set by run_error).
expect_error() {
    expect_rc "$1"; expect_err "^tierguard-cli.*: \[tierguard-cli\.$2\] "
    local text_rc=$rc
    out=$("${last[@]}" --json 2>"$work/stderr"); rc=$?; err=$(cat "$work/stderr")
    echo "\$ ${last[*]} --json -> exit $rc"
    [[ $rc -eq $text_rc ]] || fail "with --json: exit $rc, without: $text_rc"
    expect_json "d['error']['id'] == 'tierguard-cli.$2' and d['error']['exit_code'] == $1 and len(d['error']['message']) > 0"
}
# run_error ARGS...: run, remembering the command for expect_error.
run_error() { last=("$cli" "$@"); run "$@"; }
# run_last: runs the command in $last (e.g. the cli under another user), for expect_error.
run_last() { out=$("${last[@]}" 2>"$work/stderr"); rc=$?; err=$(cat "$work/stderr"); echo "\$ ${last[*]} -> exit $rc"; }
# A listing of every file with its size, mode and modification time, to prove nothing changed.
# segment_log has no read-only open: an exclusive lock writes the holder's pid into .lock, so
# that file is left out for a log (whose name ends in "log").
snapshot() { find "$1" -printf '%P %s %m %T@\n' | sort | { if [[ $1 == *log ]]; then grep -v '^\.lock '; else cat; fi; }; }

rm -rf "$work" && mkdir -p "$work"
"$fixture" make "$work/root" || { echo "FAIL: cli_fixture make"; exit 1; }
root=$work/root
cache=$root/cache log=$root/log

case $case_name in
help)
    run --help
    expect_rc 0; expect_out '^usage: tierguard-cli COMMAND'; expect_out 'segment_log'; expect_out '--storage'
    for cmd in stats verify scrub purge-quarantine inspect; do
        run "$cmd" --help
        expect_rc 0; expect_out "^usage: tierguard-cli $cmd DIR"; expect_out '^Exit codes:'
    done
    run inspect --help
    expect_out 'serializer::standard'
    run --help
    expect_out 'tierguard-range-secret'; expect_out 'range_cache'
    run
    expect_rc 2; expect_err '^usage: tierguard-cli'
    ;;
errors)
    for cmd in stats verify scrub inspect; do
        args=("$cmd" "$root/missing"); [[ $cmd == inspect ]] && args+=(alpha)
        run_error "${args[@]}"
        expect_error 3 no_such_directory; expect_out 'root/missing'
    done
    run_error stats "$root/file"
    expect_error 3 not_a_directory
    for dir in plain empty; do
        before=$(snapshot "$root/$dir")
        for cmd in stats verify scrub inspect purge-quarantine; do
            args=("$cmd" "$root/$dir"); [[ $cmd == inspect ]] && args+=(alpha)
            [[ $cmd == purge-quarantine ]] && args+=(--older-than 1d)
            run_error "${args[@]}"
            expect_error 3 not_a_cache
        done
        [[ $(snapshot "$root/$dir") == "$before" ]] || fail "a command changed $dir, which is not a cache"
    done
    run stats "$root/plain"
    expect_err 'not a tierguard cache: it has no tierguard-meta file, no tierguard-range-secret file and no segment_log files'
    run stats "$root/empty"
    expect_err 'not a tierguard cache: the directory is empty'
    for dir in "$cache" "$log"; do
        for cmd in stats verify scrub inspect purge-quarantine; do
            args=("$cmd" "$dir"); [[ $cmd == inspect ]] && args+=(alpha)
            [[ $cmd == purge-quarantine ]] && args+=(--older-than 1d)
            for json in "" --json; do
                out=$("$fixture" hold "$dir" "$cli" "${args[@]}" $json 2>"$work/stderr"); rc=$?; err=$(cat "$work/stderr")
                echo "\$ (held) tierguard-cli ${args[*]} $json -> exit $rc"
                expect_rc 4; expect_err '\[tierguard-cli.locked\] locked: a running process has this cache open'
                expect_err 'held by pid [0-9]+'
                [[ -z $json ]] || expect_json 'd["error"]["id"] == "tierguard-cli.locked" and d["error"]["exit_code"] == 4'
            done
        done
    done
    for dir in fresh freshlog; do  # the storage refuses a folder others can write: the library's error, with its errc
        chmod 0777 "$root/$dir"
        run_error verify "$root/$dir"
        expect_error 3 open_failed; expect_err 'writable by group or others'; expect_json 'd["error"]["errc"] == "permission_denied"'
        chmod 0700 "$root/$dir"
    done
    # Permission errors carry the library's errc and name what could not be read. As root
    # permission bits do not bind: the cli runs as nobody (setpriv).
    as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
    chmod 0755 "$work"
    if ! command -v setpriv >/dev/null || ! as_nobody test -x "$work"; then
        echo "SKIP permission cases: setpriv is missing or nobody cannot reach $work"
    else
        cp -a "$root/junk" "$work/unreadable"; chmod 0 "$work/unreadable"
        last=(as_nobody "$cli" stats "$work/unreadable"); run_last
        expect_error 3 open_failed; expect_err 'cannot list: Permission denied'
        expect_json 'd["error"]["errc"] == "permission_denied"'
        cp -a "$root/junk" "$work/fanout"; chown -R nobody "$work/fanout"; chmod 0 "$work/fanout/00"
        last=(as_nobody "$cli" scrub "$work/fanout"); run_last
        expect_error 3 read_failed; expect_err "cannot list the folder $work/fanout/00: Permission denied"
        expect_json 'd["error"]["errc"] == "permission_denied"'
        chmod 0700 "$work/unreadable" "$work/fanout/00"
    fi
    for bad in 7x 7 d -1d 1.5h "" 99999999d; do
        run_error purge-quarantine "$cache" --older-than "$bad"
        expect_error 2 usage.bad_value; expect_err "bad duration '$bad'"
    done
    run_error purge-quarantine "$cache"
    expect_error 2 usage.missing_argument; expect_err 'older-than DURATION is required'
    run_error stats "$cache" --older-than 1d
    expect_error 2 usage.not_applicable
    run_error frobnicate "$cache"
    expect_error 2 usage.unknown_command; expect_err "unknown command 'frobnicate'"
    run_error stats "$cache" --verbose
    expect_error 2 usage.unknown_option; expect_err "unknown option '--verbose'"
    run_error stats "$cache" --storage=ext4
    expect_error 2 usage.bad_value; expect_err "bad storage 'ext4'"
    run_error inspect "$cache"
    expect_error 2 usage.missing_argument; expect_err 'missing KEY'
    run_error stats "$cache" "$log"
    expect_error 2 usage.too_many_arguments
    run_error stats
    expect_error 2 usage.missing_argument; expect_err 'missing DIR'
    ;;
stats)
    for dir in "$cache" "$log"; do
        before=$(snapshot "$dir")
        run stats "$dir"
        expect_rc 0; expect_out '^quarantine +2 file\(s\)'; expect_out '^ages +newest'
        expect_out '^other +1 temp file\(s\), 0 foreign'
        run stats "$dir" --json
        expect_rc 0
        expect_json 'd["bytes"] > 0 and d["quarantine"]["files"] == 2 and d["kinds"]["temp"] == 1 and d["kinds"]["foreign"] == 0'
        expect_json 'd["age_seconds"]["newest"] <= d["age_seconds"]["oldest"] and d["quarantine"]["age_seconds"]["oldest"] > 5 * 365 * 86400'
        [[ $(snapshot "$dir") == "$before" ]] || fail "stats changed $dir"
    done
    run stats "$cache"
    expect_out '^storage +posix_directory$'; expect_out '^entries +7$'
    run stats "$cache" --json
    expect_json 'd["storage"] == "posix_directory" and d["entries"] == 7 and d["kinds"]["entry"] == 7 and d["kinds"]["meta"] == 1'
    # The log's open drops gamma's damaged record (6 entries); a log that kept it indexed until
    # read would list 7. Either way the CLI reports what the log holds.
    run stats "$log"
    expect_out '^storage +segment_log$'; expect_out '^entries +[67]$'; expect_out '^segments +1 file\(s\)'
    run stats "$log" --json
    expect_json 'd["storage"] == "segment_log" and d["entries"] in (6, 7) and d["segments"]["files"] == 1 and d["segments"]["bytes"] > d["bytes"]'
    expect_json '"bad_frames" in d["log"] and "torn_tails" in d["log"]'
    for dir in fresh freshlog; do
        run stats "$root/$dir" --json
        # the secret: the file tierguard-meta (posix_directory); the blob and its two pin-* side files (segment_log)
        expect_rc 0; expect_json 'd["entries"] == 0 and d["age_seconds"]["newest"] is None and d["kinds"]["meta"] == {"fresh": 1, "freshlog": 3}["'"$dir"'"]'
    done
    ;;
verify)
    for dir in "$cache" "$log"; do
        before=$(snapshot "$dir")
        run verify "$dir"
        expect_rc 1
        expect_out '^CORRUPT '; expect_out '^MISPLACED +00/00/0000000000000000: holds the entry of key "beta"'
        # The log's open drops gamma's damaged record: not an entry checked, the problem "segments".
        damaged=2; [[ $dir == "$log" ]] && damaged=1
        expect_out "5 intact \(1 of them expired\), $damaged damaged; schema versions: 4 of version 1, 1 of version 2"
        expect_out '^DAMAGED: run .tierguard-cli scrub. to quarantine'
        run verify "$dir" --json
        expect_rc 1
        expect_json 'd["ok"] is False and d["intact"] == 5 and d["damaged"] == '$damaged' and d["expired"] == 1'
        expect_json 'd["checked"] == d["intact"] + d["damaged"] + d["orphaned"] and d["orphaned"] == 0'
        expect_json 'd["schema_versions"] == {"1": 4, "2": 1} and d["foreign"] == []'
        expect_json 'sorted(p["error"] for p in d["problems"]) == ["corrupted", "misplaced"]'
        [[ $(snapshot "$dir") == "$before" ]] || fail "verify changed $dir"
    done
    run verify "$cache"
    expect_out '^CORRUPT .*checksum mismatch'; expect_out 'checked 7 entries in .*cache \(posix_directory\)'
    run verify "$log" --json
    expect_json 'd["storage"] == "segment_log" and d["checked"] in (6, 7) and "bad_frames" in d["log"]'
    for dir in fresh freshlog; do
        run verify "$root/$dir"
        expect_rc 0; expect_out 'checked 0 entries'; expect_out '^OK$'
    done
    # The log's damaged record: the hint says scrub cannot help (the damage stays in its segment).
    run verify "$log"
    expect_out '^LOST: .*nothing to repair: scrub cannot remove a damaged record'
    # A torn tail is lost data: a problem, not "ok" (the open cuts it, so only this verify sees it).
    cp -a "$root/junklog" "$work/torn"
    seg=$(ls "$work/torn"/*.seg | tail -1); truncate -s -100 "$seg"
    run verify "$work/torn" --json
    expect_rc 1
    expect_json 'd["ok"] is False and d["log"]["torn_tails"] == 1 and [p["name"] for p in d["problems"]] == ["segments"]'
    expect_json 'd["checked"] == d["intact"] + d["damaged"] + d["orphaned"] and d["intact"] == 19'
    expect_json '"1 torn tail(s)" in d["problems"][0]["message"]'
    # Damaged tierguard-meta: no entry can be matched to its name, so none is called intact; every
    # command says that all of them will be dropped as orphans, before scrub empties the cache.
    cp -a "$root/junk" "$work/nometa"
    printf 'XXXX' | dd of="$work/nometa/tierguard-meta" bs=1 seek=20 conv=notrunc status=none
    run verify "$work/nometa"
    expect_rc 1; expect_out '0 intact \(0 of them expired\), 0 damaged, 20 orphaned'
    expect_out '^ORPHANED: .*drops every one as an orphan \(a cold cache, never a wrong value\); .tierguard-cli scrub. empties the cache'
    expect_no_out '^DAMAGED'
    run verify "$work/nometa" --json
    expect_json 'd["intact"] == 0 and d["orphaned"] == 20 and d["checked"] == 20 and [p["name"] for p in d["problems"]] == ["tierguard-meta"]'
    run stats "$work/nometa"
    expect_rc 0; expect_out '^WARNING +tierguard-meta \(the hash secret\) is damaged: none of the 20 entries'
    run stats "$work/nometa" --json
    expect_json 'd["meta_damaged"] and "orphan" in d["warning"]'
    run stats "$cache" --json
    expect_json 'd["meta_damaged"] is None'
    run scrub "$work/nometa"
    expect_out '^WARNING: tierguard-meta .* was damaged'
    ;;
scrub)
    run scrub "$cache" --json
    expect_rc 0
    expect_json 'd["storage"] == "posix_directory" and d["entries_checked"] == 4 and d["quarantined"] == 1 and d["orphans_removed"] == 1'
    expect_json 'd["expired_removed"] == 1 and d["temp_files_removed"] == 1 and d["quarantine_purged"] == 1'
    expect_json 'd["version_mismatches"] == 0 and any(e["event"].startswith("quarantined ") for e in d["events"])'
    expect_json 'd["before"]["entry"] == 7 and d["after"]["entry"] == 4 and d["before"]["temp"] == 1 and d["after"]["temp"] == 0'
    run verify "$cache"
    expect_rc 0; expect_out 'schema versions: 3 of version 1, 1 of version 2'; expect_out '^OK$'
    run scrub "$cache"
    expect_rc 0; expect_out '^  entries_checked +4$'; expect_out '^  quarantined +0$'
    run scrub "$log" --json
    expect_rc 0
    expect_json 'd["storage"] == "segment_log" and d["entries_checked"] == 4 and d["orphans_removed"] == 1'
    expect_json 'd["expired_removed"] == 1 and d["temp_files_removed"] == 1 and d["quarantine_purged"] == 1'
    expect_json 'd["segments"]["segments_checked"] == 1 and d["before"]["entry"] in (6, 7) and d["after"]["entry"] == 4'
    # The damaged record stays in its segment file (its entry is lost): verify still reports it, and only it.
    run verify "$log" --json
    expect_json 'd["intact"] == 4 and d["schema_versions"] == {"1": 3, "2": 1}'
    expect_json '[p["name"] for p in d["problems"] if p["name"] != "segments"] == []'
    ;;
purge)
    for dir in "$cache" "$log"; do
        run purge-quarantine "$dir" --older-than 30d
        expect_rc 0; expect_out '^purged 1 quarantined file\(s\) older than 30d'
        run stats "$dir" --json
        expect_json 'd["quarantine"]["files"] == 1'
        run purge-quarantine "$dir" --older-than=1h30m --json
        expect_rc 0
        expect_json 'd["older_than_seconds"] == 5400 and d["quarantine_purged"] == 0'
        run stats "$dir" --json
        expect_json 'd["quarantine"]["files"] == 1 and d["kinds"]["temp"] == 0'
    done
    ;;
inspect)
    for dir in "$cache" "$log"; do
        before=$(snapshot "$dir")
        run inspect "$dir" alpha
        expect_rc 0
        expect_out '^key +"alpha"$'; expect_out '^schema_version +1$'; expect_out '^key_length +5$'
        expect_out '^raw_length +14$'; expect_out '^expiry +never$'; expect_out '\(match\)$'; expect_out '^status +intact$'
        run inspect "$dir" omega --json
        expect_rc 0
        expect_json 'd["found"] and d["status"] == "intact" and d["schema_version"] == 2 and d["stored_key"] == "omega"'
        expect_json 'd["stored_crc"] == d["computed_crc"] and d["raw_length"] == len("value of omega")'
        run inspect "$dir" expiring
        expect_rc 0; expect_out '^expiry +[0-9]{8}T[0-9]{6}Z \(expired'
        run inspect "$dir" gamma
        expect_rc 1
        run inspect "$dir" nobody
        expect_rc 1; expect_out '^no entry for key "nobody"'
        run inspect "$dir" nobody --json
        expect_rc 1; expect_json 'd["found"] is False and d["status"] == "absent"'
        [[ $(snapshot "$dir") == "$before" ]] || fail "inspect changed $dir"
    done
    run inspect "$cache" gamma
    expect_out '\(MISMATCH\)$'; expect_out '^status +corrupted: .*checksum mismatch'
    ;;
junk)
    # One classification everywhere: junk is foreign to stats, verify and scrub alike, never an entry.
    for dir in junk junklog; do
        foreign=7
        run stats "$root/$dir"
        expect_rc 0; expect_out '^entries +20$'; expect_out "^other +1 temp file\(s\), $foreign foreign"
        run stats "$root/$dir" --json
        expect_json "d['entries'] == 20 and d['kinds']['entry'] == 20 and d['kinds']['foreign'] == $foreign and d['kinds']['temp'] == 1"
        run verify "$root/$dir"
        expect_rc 0; expect_no_out '^CORRUPT'; expect_out '^FOREIGN +README.txt'; expect_out '20 intact \(0 of them expired\), 0 damaged'
        [[ $(grep -c '^FOREIGN' <<<"$out") -eq $foreign ]] || fail "verify lists $(grep -c '^FOREIGN' <<<"$out") FOREIGN, expected $foreign"
        run verify "$root/$dir" --json
        expect_json "d['ok'] and d['checked'] == 20 and len(d['foreign']) == $foreign and d['problems'] == []"
        run scrub "$root/$dir" --json
        expect_rc 0
        expect_json "d['before']['foreign'] == $foreign and d['after']['foreign'] == 0 and d['before']['entry'] == d['after']['entry'] == 20"
        expect_json "d['after']['temp'] == 0 and d['entries_checked'] == 20"
        run stats "$root/$dir" --json
        expect_json "d['entries'] == 20 and d['kinds']['foreign'] == 0"
    done
    ;;
layout)
    # Which storage a directory holds: detected, or forced with --storage.
    before=$(snapshot "$root/both")
    run_error stats "$root/both"
    expect_error 3 ambiguous_storage; expect_err 'both'; expect_err '--storage'
    run stats "$root/both" --storage posix_directory --json
    expect_rc 0; expect_json 'd["storage"] == "posix_directory" and d["entries"] == 20 and d["kinds"]["foreign"] == 8'
    run verify "$root/both" --storage=posix_directory
    expect_rc 0; expect_out '^FOREIGN +0000000000000001.seg'
    [[ $(snapshot "$root/both") == "$before" ]] || fail "a command changed $root/both"
    run stats "$log" --storage=segment_log --json
    expect_rc 0; expect_json 'd["storage"] == "segment_log"'
    run stats "$log" --storage=auto --json
    expect_rc 0; expect_json 'd["storage"] == "segment_log"'
    before=$(snapshot "$cache")
    run_error stats "$cache" --storage segment_log
    expect_error 3 not_a_cache; expect_err 'no segment files'
    [[ $(snapshot "$cache") == "$before" ]] || fail "forcing the wrong storage changed $cache"
    before=$(snapshot "$log")
    run_error verify "$log" --storage posix_directory
    expect_error 3 not_a_cache; expect_err 'no tierguard-meta file'
    [[ $(snapshot "$log") == "$before" ]] || fail "forcing the wrong storage changed $log"
    ;;
range)
    # A range cache directory (tierguard::range_cache over posix_directory, issue 16).
    range=$root/range
    run stats "$range"
    expect_rc 0; expect_out '^range cache'; expect_out '^objects +2'; expect_out '^blocks +4 '
    run inspect "$range" video.mp4 --json
    expect_rc 0
    expect_json 'd["found"] and d["validator"] == "etag-1" and d["size"] == 20490 and [b["index"] for b in d["blocks"]] == [0, 1, 2]'
    folder=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["folder"])' <<<"$out")
    run inspect "$range" video.mp4
    expect_rc 0; expect_out "^  $folder/00000001  crc 0x"
    run inspect "$range" missing.bin
    expect_rc 1; expect_out 'no object for key "missing.bin"'
    run verify "$range"
    expect_rc 0; expect_out '^inconsistencies +0 '
    # Damage: a block gone (failure 4), a block overwritten (its size is wrong: one inconsistency, its file
    # removed with the reference, not counted again as an orphan), a stray block (failure 6).
    rm "$range/$folder/00000001"
    echo junk >"$range/$folder/00000002"
    echo stray >"$range/$folder/00000005"
    before=$(snapshot "$range")
    run verify "$range" --json
    expect_rc 1
    expect_json 'd["kind"] == "range_cache" and not d["modified"] and d["inconsistencies_fixed"] == 2 and d["orphaned_files_cleaned"] == 1'
    expect_json 'd["directory"] == "'"$range"'" and d["storage"] == "posix_directory"'
    expect_json '[p["name"] for p in d["problems"]] == ["'"$folder/00000002"'", "'"$folder/00000005"'"]'
    [[ $(snapshot "$range") == "$before" ]] || fail "verify changed $range"
    run scrub "$range"
    expect_rc 0; expect_out '^inconsistencies +2 \(fixed\)'; expect_out '^orphaned files +1 \(fixed\)'
    [[ ! -e "$range/$folder/00000005" ]] || fail "scrub left the stray block"
    expect_out "^REMOVED +$folder/00000005: a block file no record holds"
    run verify "$range"
    expect_rc 0
    run inspect "$range" video.mp4 --json
    expect_rc 0; expect_json '[b["index"] for b in d["blocks"]] == [0]'
    ;;
range_damage)
    # A range cache's damage named file by file, its temp files counted by verify as scrub
    # counts them, purge-quarantine's report, and a damaged or missing tierguard-range-secret.
    range=$root/range
    run inspect "$range" video.mp4 --json
    folder=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["folder"])' <<<"$out")
    run inspect "$range" other --json
    other=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["folder"])' <<<"$out")
    printf 'XXXX' | dd of="$range/$folder/00000001" bs=1 seek=200 conv=notrunc status=none  # its CRC fails
    printf 'XXXX' | dd of="$range/$other/meta" bs=1 seek=30 conv=notrunc status=none        # a damaged record
    echo leftover >"$range/.tmp.999999.0"
    echo leftover >"$range/$folder/.tmp.4242.stray"  # not a name our writes make: still a temp file
    before=$(snapshot "$range")
    run verify "$range"
    expect_rc 1
    expect_out "^CORRUPT +$folder/00000001: .*checksum mismatch.* \(scrub quarantines it\)"
    expect_out "^CORRUPT +$other/meta: "
    expect_out "^ORPHAN +$other/00000000: a block file no record holds .*\(scrub removes it\)"
    expect_out '^temp files +2 \(found, not changed\)'
    run verify "$range" --json
    expect_rc 1
    expect_json 'not d["ok"] and d["temp_files_cleaned"] == 2 and d["damaged_blocks"] == 1 and d["corrupt_metadata"] == 1'
    expect_json '{p["name"]: p["error"] for p in d["problems"]} == {"'"$folder/00000001"'": "corrupted", "'"$other/meta"'": "corrupted", "'"$other/00000000"'": "orphan"}'
    [[ $(snapshot "$range") == "$before" ]] || fail "verify changed $range"
    cp -a "$range" "$work/secret"
    run scrub "$range" --json
    expect_rc 0
    expect_json 'd["modified"] and d["temp_files_cleaned"] == 2 and d["directory"] == "'"$range"'" and d["storage"] == "posix_directory"'
    expect_json 'sorted(p["name"] for p in d["problems"]) == sorted(["'"$folder/00000001"'", "'"$other/meta"'", "'"$other/00000000"'"])'
    [[ ! -e "$range/$folder/.tmp.4242.stray" ]] || fail "scrub left the stray temp file"
    echo leftover >"$range/.tmp.999999.1"
    run purge-quarantine "$range" --older-than 7d --json
    expect_rc 0
    expect_json 'd["directory"] == "'"$range"'" and d["storage"] == "posix_directory" and d["temp_files_removed"] == 1 and d["quarantine_purged"] == 0'
    echo leftover >"$range/.tmp.999999.2"
    run purge-quarantine "$range" --older-than 7d
    expect_rc 0; expect_out '^also removed 1 temp file'
    # The secret damaged: stats warns (exit 0), verify reports it (exit 1), inspect cannot name a folder.
    secret=$work/secret
    printf 'XXXX' | dd of="$secret/tierguard-range-secret" bs=1 seek=20 conv=notrunc status=none
    before=$(snapshot "$secret")
    run stats "$secret"
    expect_rc 0; expect_out '^WARNING +tierguard-range-secret \(the hash secret\) is damaged: none of the 2 records'
    run stats "$secret" --json
    expect_rc 0; expect_json 'd["objects"] == 2 and "checksum" in d["secret_damaged"] and "cold cache" in d["warning"]'
    run verify "$secret"
    expect_rc 1; expect_out '^CORRUPT +tierguard-range-secret: '; expect_out '^ORPHANED: '
    run verify "$secret" --json
    expect_rc 1; expect_json 'not d["ok"] and [p["name"] for p in d["problems"]] == ["tierguard-range-secret"]'
    run_error inspect "$secret" video.mp4
    expect_error 3 meta_damaged; expect_err 'tierguard-range-secret is damaged'
    [[ $(snapshot "$secret") == "$before" ]] || fail "stats, verify or inspect changed $secret"
    run scrub "$secret"
    expect_rc 0; expect_out '^WARNING: tierguard-range-secret .* was damaged'
    # The secret missing: not a cache, and the message names the range secret.
    rm "$secret/tierguard-range-secret"
    run_error verify "$secret"
    expect_error 3 not_a_cache; expect_err 'no tierguard-range-secret file'
    ;;
*)
    echo "unknown case $case_name"; exit 2 ;;
esac

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "PASS: cli $case_name"
