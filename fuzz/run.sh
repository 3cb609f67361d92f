#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one at a time,
# and exits non-zero if any of them finds a crash, a panic, a hang (an input
# over 10 s) or an input that needs over 2 GiB.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      SECONDS defaults to 60
#
# Works on the stable toolchain: libFuzzer's coverage flags are all stable
# `-C` flags, and the default sanitizer is none (xus's parsers are safe Rust,
# so panics and the limits above are what we look for). FUZZ_SANITIZER=address
# builds with AddressSanitizer instead, which needs `-Zsanitizer` and so
# RUSTC_BOOTSTRAP=1 on stable (this script sets it).
#
# Needs `cargo install cargo-fuzz` (the script installs it when missing).
# Seeds are in fuzz/seeds/ (fuzz/gen-seeds.sh regenerates them) and inputs
# that once failed in fuzz/regressions/; what the fuzzer adds goes to
# fuzz/corpus/, and failing inputs to fuzz/artifacts/, both ignored by Git. Replay one with
#   cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-...
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(bencode_decode commit_torrent_parse magnet_parse tree_parse push_request update_payload dht_values
        bridge_messages webseed_request krpc_message)
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

sanitizer="${FUZZ_SANITIZER:-none}"
if [[ "$sanitizer" != none ]]; then
    export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz || exit 1
fi

cargo fuzz build -s "$sanitizer" || exit 1

failed=()
summary=()
for target in "${targets[@]}"; do
    case "$target" in
        magnet_parse) extra=(-dict=dict/magnet.dict -max_len=20000) ;;
        tree_parse) extra=(-dict=dict/torrent.dict -max_len=8192) ;;
        bridge_messages) extra=(-dict=dict/bridge.dict -max_len=16384) ;;
        webseed_request) extra=(-dict=dict/webseed.dict -max_len=4096) ;;
        *) extra=(-dict=dict/torrent.dict -max_len=16384) ;;
    esac
    mkdir -p "corpus/$target" "artifacts/$target"
    log="artifacts/$target/last-run.log"
    echo "== $target: ${seconds}s" >&2
    inputs=("corpus/$target" "seeds/$target")
    if [[ -d "regressions/$target" ]]; then
        inputs+=("regressions/$target")
    fi
    cargo fuzz run -s "$sanitizer" "$target" "${inputs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${extra[@]}" 2>&1 | tee "$log" |
        grep -E '^(INFO: (Seed|Loaded)|#[0-9]+.*(INITED|DONE|pulse)|==[0-9]+==|Done|SUMMARY|artifact_prefix|Test unit written|thread .* panicked|stat::)' >&2
    status=${PIPESTATUS[0]}
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [[ "$status" -ne 0 ]]; then
        failed+=("$target")
        summary+=("$target: FAILED (exit $status), see $here/$log and $here/artifacts/$target/")
    else
        summary+=("$target: ok, ${runs:-?} runs in ${seconds}s, ${rate:-?} exec/s, corpus $(ls "corpus/$target" | wc -l)")
    fi
done

printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzzing found failures in: ${failed[*]}" >&2
    exit 1
fi
