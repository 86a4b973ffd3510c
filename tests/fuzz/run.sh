#!/bin/sh
# tests/fuzz/run.sh - run the libFuzzer targets `make fuzz` built.
#
#   sh tests/fuzz/run.sh SECONDS 'TARGET [LIBFUZZER-OPTION...]' ...
#
# For each target: build/fuzz/corpus/TARGET gets a copy of the seeds in
# tests/fuzz/corpus/TARGET (what earlier runs added stays, and the
# repository's corpus is never written to), then build/fuzz/fuzz_TARGET
# runs on it for SECONDS seconds.  Its output goes to build/fuzz/TARGET.log
# and a crashing input to build/fuzz/crashes/TARGET/.  One line per target
# says how it went (executions, coverage), the last line is
# "fuzz: N passed, N failed", and the exit status is non-zero when any
# target failed: a crash, a leak, a hang (-timeout) or running out of memory.
set -u
cd "$(dirname "$0")/../.." || exit 1

seconds=$1
shift
passed=0
failed=0

for spec in "$@"; do
	# shellcheck disable=SC2086 # the spec is split into target and options
	set -- $spec
	t=$1
	shift
	corpus=build/fuzz/corpus/$t
	crashes=build/fuzz/crashes/$t
	log=build/fuzz/$t.log
	mkdir -p "$corpus" "$crashes"
	cp tests/fuzz/corpus/"$t"/* "$corpus"/
	echo "fuzz: $t: running for $seconds s ($log)"
	if build/fuzz/fuzz_"$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$crashes"/ "$@" "$corpus" >"$log" 2>&1; then
		status=ok
		passed=$((passed + 1))
	else
		status=FAILED
		failed=$((failed + 1))
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -nE 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [0-9]+).*/\1/p')
	echo "fuzz: $t: $status, ${runs:-?} executions (${rate:-?}/s), ${cov:-no stats}"
	if [ "$status" = FAILED ]; then
		grep -E 'invariant violated|ERROR: |SUMMARY: |Test unit written' "$log" | head -n 8 |
			sed 's/^/    /'
	fi
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
