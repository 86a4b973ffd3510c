#!/bin/sh
# tests/bench/run.sh - the benchmark `make bench` runs (after building
# build/receiver and build/bench/{gen,baseline,rate}).
#
# It starts its own PostgreSQL 15 (deploy/pg-local.sh; fsync and
# synchronous_commit on, as in production) in a temporary directory on
# free ports, pre-generates unique signed pushes (gen), then, with the same
# wrk settings each time (2 threads, 32 connections, BENCH_DURATION s),
# alternates for BENCH_ROUNDS rounds:
#
#   receiver   the daemon, group commit on (max_batch 256), reconcile off
#   baseline   build/bench/baseline: bare evhttp, answers 200, stores nothing
#   no-gc      the daemon with max_batch = 1 (one transaction per push)
#
# Every request of a run is a different push (a new msgId), and every
# receiver run has a fresh database, so every request is a real insert.
# For each receiver run it prints requests/s, p50/p99 latency, VmRSS at
# start and end, the batch-size histogram (trade_events rows grouped by
# the inserting transaction, xmin) and checks that every push answered 200
# is a row of trade_events (post.lua records the X-Request-Id of each 200;
# deliveries maps it to the msgId).  Then it drives the receiver at a
# constant BENCH_RATE req/s for 10 s with build/bench/rate (latency from the
# scheduled send time) and checks its acknowledged msgIds the same way.
#
# Each wrk run also reports the CPU time spent per request, from
# /proc: by the whole machine, by the server and by PostgreSQL (all its
# processes), sampled from the moment the server starts working until wrk
# exits.  The summary turns PostgreSQL's share into the CPUs it alone would
# need at half the baseline's rate: the budget the ratio is up against.
#
# Last comes a table and the line "ratio receiver/baseline: X.XX".  Exit
# status 1 when any acknowledged push is missing from trade_events (or the
# check could not be made), 0 otherwise.
#
# The binaries are copied into the work directory first, so a rebuild
# running meanwhile (make test, another make) cannot swap them mid-run.
#
# Environment: RECEIVER_BIN (build/receiver), BENCH_DURATION (10),
# BENCH_ROUNDS (2), BENCH_RATE (2000), BENCH_RATE_SECONDS (60), BENCH_BODIES (pushes generated:
# 2000000, enough for the baseline at 100-150k req/s here; a receiver run
# loads at most 400000 per wrk thread), BENCH_KEEP=1 keeps the work
# directory (logs, configs; it is also kept when the bench fails).
set -eu
cd "$(dirname "$0")/../.."
unset DATABASE_URL
. tests/bench/lib.sh

RECEIVER_BIN=${RECEIVER_BIN:-build/receiver}
DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-2}
RATE=${BENCH_RATE:-2000}
RATE_SECONDS=${BENCH_RATE_SECONDS:-60} # also the memory run: VmRSS sampled every 10 s
BODIES=${BENCH_BODIES:-2000000}
RECEIVER_BODIES=400000 # per wrk thread: loading fewer starts wrk sooner
THREADS=2
CONNECTIONS=32
SECRET=bench-app-secret
PUSH_PATH=/1688/messages

started=$(date +%s)
bench_setup receiver-bench gen baseline rate
results=$work/results
: >"$results"
failed=0
pid=""
pgport=""

trap 'bench_cleanup $? bench "$pid"' EXIT
trap 'exit 130' INT TERM

rss_kb() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}


start_receiver() { # TAG MAX_BATCH: fresh database, migrate, serve; sets pid, db
	db=$(echo "$1" | tr -c 'a-z0-9\n' '_')
	url=$(new_db "$db")
	write_config "$work/$1.toml" "$url" "$2"
	"$RECEIVER_BIN" migrate -c "$work/$1.toml" >"$work/$1.migrate.log" 2>&1 ||
		{ cat "$work/$1.migrate.log" >&2; exit 1; }
	"$RECEIVER_BIN" serve -c "$work/$1.toml" 2>"$work/$1.log" &
	pid=$!
	wait_http "http://127.0.0.1:$httpport/readyz" "$pid" || { cat "$work/$1.log" >&2; exit 1; }
}

stop_server() { # NAME
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	pid=""
	if [ "$rc" -ne 0 ]; then
		echo "  $1 exited with status $rc (expected 0)"
	fi
}

cpu_sample() { # "machine postgres server" ticks: user nice system irq softirq steal
	echo "$(machine_ticks)" "$(pg_ticks)" "$(proc_ticks "$pid" $(pgrep -P "$pid"))"
}

# wrk against the server $pid.  Besides its WRK line, writes TAG.cpu: the
# CPU ticks of the machine, of PostgreSQL and of the server, sampled once
# the server starts working (wrk has loaded its bodies: that is not part
# of the load) and again when wrk has finished, and the seconds between.
run_wrk() { # TAG [MAX-BODIES-PER-THREAD]: prints the WRK line
	wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s \
		-s tests/bench/post.lua "http://127.0.0.1:$httpport$PUSH_PATH" \
		"$work/bodies" "$work/$1.acked" ${2:-} >"$work/$1.wrk" 2>&1 &
	wrk_pid=$!
	# Two ticks: an idle server's timers may earn one while wrk loads.
	idle=$(($(proc_ticks "$pid") + 1))
	while [ "$(proc_ticks "$pid")" -le "$idle" ] && kill -0 "$wrk_pid" 2>/dev/null; do
		sleep 0.05
	done
	c0=$(cpu_sample)
	t0=$(date +%s.%N)
	wait "$wrk_pid" || true
	echo "$c0 $(cpu_sample) $t0 $(date +%s.%N)" >"$work/$1.cpu"
	line=$(grep '^WRK ' "$work/$1.wrk" || true)
	if [ -z "$line" ]; then
		echo "bench: wrk failed:" >&2
		cat "$work/$1.wrk" >&2
		exit 1
	fi
	echo "$line"
}

# CPU per request from TAG.cpu, in microseconds: prints it, with how busy
# the machine's CPUs were, and writes "all|server|postgres" to TAG.cpuus.
cpu_per_request() { # TAG REQUESTS
	awk -v n="$2" -v hz="$(getconf CLK_TCK)" -v cpus="$(nproc)" -v out="$work/$1.cpuus" '{
		us = 1e6 / hz / (n > 0 ? n : 1)
		all = ($4 - $1) * us; pg = ($5 - $2) * us; srv = ($6 - $3) * us
		printf "  CPU per request: %.1f us in all = server %.1f + PostgreSQL %.1f + wrk and the kernel %.1f; the %d CPUs %.0f%% busy\n", all, srv, pg, all - srv - pg, cpus, 100 * ($4 - $1) / hz / cpus / ($8 - $7)
		printf "%.1f|%.1f|%.1f\n", all, srv, pg > out
	}' "$work/$1.cpu"
}

print_wrk() { # WRK-LINE
	awk -v r="$(kv "$1" requests)" -v d="$(kv "$1" duration_us)" -v rps="$(kv "$1" rps)" \
		-v p50="$(kv "$1" p50_us)" -v p99="$(kv "$1" p99_us)" -v mx="$(kv "$1" max_us)" \
		'BEGIN { printf "  wrk: %d requests in %.1f s: %.0f req/s; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", r, d / 1e6, rps, p50 / 1e3, p99 / 1e3, mx / 1e3 }'
	echo "  answers: 200 $(kv "$1" ok), other $(kv "$1" non200); socket errors: connect $(kv "$1" err_connect), read $(kv "$1" err_read), write $(kv "$1" err_write), timeout $(kv "$1" err_timeout)"
}

# Batch sizes: the rows of trade_events one transaction (one xmin) inserted.
batch_histogram() { # DB SECONDS
	psql_db "$1" -F ' ' -c "
		WITH b AS (SELECT count(*) AS n FROM trade_events GROUP BY xmin::text),
		     k AS (SELECT n, width_bucket(n, ARRAY[1,2,4,8,16,32,64,128,256,512,1024]) AS k FROM b)
		SELECT CASE WHEN k = 1 THEN '1' ELSE (2 ^ (k - 1))::int || '-' || (2 ^ k)::int - 1 END,
		       count(*), sum(n)
		FROM k GROUP BY k ORDER BY k" |
		awk -v secs="$2" 'BEGIN { printf "  batch sizes (trade_events rows per transaction):\n    %-9s %9s %9s\n", "size", "batches", "rows" }
			{ printf "    %-9s %9d %9d\n", $1, $2, $3; b += $2; r += $3 }
			END { if (b) printf "    %d batches, %d rows, mean %.1f rows/batch, %.0f commits/s\n", b, r, r / b, b / secs }'
}

# --- set-up -------------------------------------------------------------

pgport=$(free_port 55432)
echo "bench: PostgreSQL 15 in $work/pg on 127.0.0.1:$pgport (fsync on, synchronous_commit on)"
PG_FSYNC=on sh deploy/pg-local.sh start "$work/pg" "$pgport" postgres
echo "  $(psql_db postgres -c "SELECT 'fsync=' || current_setting('fsync') || ' synchronous_commit=' || current_setting('synchronous_commit') || ' wal_sync_method=' || current_setting('wal_sync_method') || ' shared_buffers=' || current_setting('shared_buffers')")"
httpport=$(free_port 18480)

t=$(date +%s.%N)
"$BENCH/gen" "$SECRET" 500000000001 "$BODIES" "$THREADS" "$work/bodies"
"$BENCH/gen" "$SECRET" 900000000001 $((RATE * RATE_SECONDS)) 1 "$work/rate-bodies"
echo "bench: generated $BODIES signed pushes for wrk and $((RATE * RATE_SECONDS)) for the rate run in $(awk -v t="$t" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - t }') s"
echo "bench: wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s against 127.0.0.1:$httpport, $ROUNDS round(s); $(nproc) CPUs"

# --- the runs -----------------------------------------------------------

receiver_run() { # TAG MAX_BATCH LABEL
	echo
	echo "== $3 (max_batch $2, reconcile off)"
	start_receiver "$1" "$2"
	rss0=$(rss_kb "$pid")
	line=$(run_wrk "$1" "$RECEIVER_BODIES")
	rss1=$(rss_kb "$pid")
	stop_server receiver
	print_wrk "$line"
	cpu_per_request "$1" "$(kv "$line" requests)"
	echo "  receiver VmRSS: start $rss0 kB, end $rss1 kB"
	if [ "$(kv "$line" wrapped)" != 0 ]; then
		echo "  WARNING: wrk ran out of bodies and sent some twice (raise RECEIVER_BODIES)"
	fi
	batch_histogram "$db" "$DURATION"
	# The check.
	cat "$work/$1.acked".* >"$work/$1.acked"
	recorded=$(wc -l <"$work/$1.acked")
	set -- "$1" "$2" "$3" $(psql_db "$db" -F ' ' <<EOF
CREATE TEMP TABLE acked (rid text);
\copy acked FROM '$work/$1.acked'
SELECT count(*), count(DISTINCT d.msg_id), count(*) FILTER (WHERE t.msg_id IS NULL),
       (SELECT count(*) FROM trade_events), (SELECT count(*) FROM deliveries WHERE duplicate)
FROM acked a
LEFT JOIN deliveries d ON d.request_id = a.rid AND d.http_status = 200
LEFT JOIN trade_events t ON t.msg_id = d.msg_id;
EOF
	)
	ok=$(kv "$line" ok)
	echo "  trade_events rows: $7 (deliveries marked duplicate: $8)"
	echo "  check: $ok answered 200, $recorded X-Request-Ids recorded, $5 distinct msgIds; missing from trade_events: $6"
	missing=$6
	if [ "$recorded" -ne "$ok" ] || [ "$5" -ne "$ok" ] || [ "$(kv "$line" no_rid)" != 0 ]; then
		echo "  CHECK INCOMPLETE: the recorded acknowledgements do not match the 200s counted"
		failed=1
	fi
	if [ "$6" -ne 0 ]; then
		echo "  FAILED: $6 acknowledged pushes are not in trade_events"
		failed=1
	fi
	if grep -q '"batch_failed"' "$work/$1.log"; then
		echo "  receiver log: $(grep -c '"batch_failed"' "$work/$1.log") failed batches"
	fi
	mean=$(psql_db "$db" -c "SELECT round(count(*)::numeric / count(DISTINCT xmin::text), 1) FROM trade_events")
	echo "$3|$(kv "$line" rps)|$(kv "$line" p50_us)|$(kv "$line" p99_us)|$ok|$(kv "$line" non200)|$missing|$mean|$rss0|$rss1|$(cat "$work/$1.cpuus")" >>"$results"
}

baseline_run() { # TAG
	echo
	echo "== baseline (bare evhttp, no verification, no storage)"
	"$BENCH/baseline" "$httpport" 2>"$work/$1.log" &
	pid=$!
	wait_http "http://127.0.0.1:$httpport/" "$pid"
	rss0=$(rss_kb "$pid")
	line=$(run_wrk "$1")
	rss1=$(rss_kb "$pid")
	stop_server baseline
	print_wrk "$line"
	cpu_per_request "$1" "$(kv "$line" requests)"
	if [ "$(kv "$line" wrapped)" != 0 ]; then
		echo "  (wrk ran out of bodies and sent some twice: harmless here, nothing is stored; raise BENCH_BODIES)"
	fi
	echo "baseline|$(kv "$line" rps)|$(kv "$line" p50_us)|$(kv "$line" p99_us)|$(kv "$line" ok)|$(kv "$line" non200)|-|-|$rss0|$rss1|$(cat "$work/$1.cpuus")" >>"$results"
}

r=1
while [ "$r" -le "$ROUNDS" ]; do
	receiver_run "r${r}_receiver" 256 "receiver"
	baseline_run "r${r}_baseline"
	receiver_run "r${r}_nogc" 1 "receiver no-gc"
	r=$((r + 1))
done

# --- constant rate ------------------------------------------------------

echo
echo "== receiver at a constant $RATE req/s for $RATE_SECONDS s (build/bench/rate, $CONNECTIONS connections)"
start_receiver rate 256
rss0=$(rss_kb "$pid")
(while sleep 10; do rss_kb "$pid" || break; done) >"$work/rss-samples" 2>/dev/null &
sampler=$!
rate_rc=0
rline=$("$BENCH/rate" -u "http://127.0.0.1:$httpport$PUSH_PATH" -f "$work/rate-bodies.0" \
	-r "$RATE" -d "$RATE_SECONDS" -c "$CONNECTIONS" -o "$work/rate.acked") || rate_rc=$?
rss1=$(rss_kb "$pid")
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
stop_server receiver
echo "  sent $(kv "$rline" sent), answered 200 $(kv "$rline" ok), other status $(kv "$rline" non200), failed $(kv "$rline" failed), unanswered $(kv "$rline" unanswered)"
echo "  latency from the scheduled send: p50 $(kv "$rline" p50_ms) ms, p99 $(kv "$rline" p99_ms) ms, max $(kv "$rline" max_ms) ms (sends at most $(kv "$rline" max_send_lag_ms) ms late)"
echo "  receiver VmRSS: start $rss0 kB, every 10 s: $(tr '\n' ' ' <"$work/rss-samples")kB, end $rss1 kB"
batch_histogram "$db" "$RATE_SECONDS"
set -- $(psql_db "$db" -F ' ' <<EOF
CREATE TEMP TABLE acked (msg_id bigint);
\copy acked FROM '$work/rate.acked'
SELECT count(*), count(DISTINCT a.msg_id), count(*) FILTER (WHERE t.msg_id IS NULL)
FROM acked a LEFT JOIN trade_events t USING (msg_id);
EOF
)
echo "  check: $1 msgIds answered 200 ($2 distinct); missing from trade_events: $3"
rate_missing=$3
if [ "$3" -ne 0 ]; then
	echo "  FAILED: $3 acknowledged pushes are not in trade_events"
	failed=1
fi
if [ "$1" -ne "$(kv "$rline" ok)" ] || [ "$rate_rc" -ne 0 ]; then
	echo "  CHECK INCOMPLETE: rate exited $rate_rc or recorded $1 of $(kv "$rline" ok) acknowledgements"
	failed=1
fi

# --- summary ------------------------------------------------------------

echo
echo "== summary ($THREADS wrk threads, $CONNECTIONS connections, ${DURATION} s per run; $(nproc) CPUs shared by wrk, the server and PostgreSQL)"
awk -F'|' -v cpus="$(nproc)" '
	BEGIN { printf "%-16s %9s %8s %8s %9s %6s %8s %12s %19s %21s\n", "run", "req/s", "p50 ms", "p99 ms", "200s", "other", "missing", "rows/commit", "VmRSS kB start/end", "CPU us/req all/srv/pg" }
	{
		printf "%-16s %9.0f %8.2f %8.2f %9d %6d %8s %12s %19s %21s\n", $1, $2, $3 / 1e3, $4 / 1e3, $5, $6, $7, $8, $9 "/" $10, $11 "/" $12 "/" $13
		sum[$1] += $2; n[$1]++; cpu[$1] += $11; srv[$1] += $12; pg[$1] += $13
	}
	END {
		r = sum["receiver"] / n["receiver"]; b = sum["baseline"] / n["baseline"]; g = sum["receiver no-gc"] / n["receiver no-gc"]
		printf "\nmean req/s: receiver %.0f, baseline %.0f, receiver no-gc %.0f\n", r, b, g
		printf "group commit speed-up (receiver/no-gc): %.2f\n", (g > 0 ? r / g : 0)
		rc = cpu["receiver"] / n["receiver"]; bc = cpu["baseline"] / n["baseline"]
		printf "mean CPU per request, every process: receiver %.1f us (server %.1f, PostgreSQL %.1f), baseline %.1f us (server %.1f)\n", rc, srv["receiver"] / n["receiver"], pg["receiver"] / n["receiver"], bc, srv["baseline"] / n["baseline"]
		printf "PostgreSQL alone at half the baseline rate (%.0f pushes/s) would need %.1f CPUs; this machine has %d\n", b / 2, b / 2 * pg["receiver"] / n["receiver"] / 1e6, cpus
		printf "ratio receiver/baseline: %.2f\n", (b > 0 ? r / b : 0)
	}' "$results"
printf 'constant rate %s req/s: p50 %s ms, p99 %s ms, max %s ms, non-200 %s, failed %s, missing %s\n' \
	"$RATE" "$(kv "$rline" p50_ms)" "$(kv "$rline" p99_ms)" "$(kv "$rline" max_ms)" \
	"$(kv "$rline" non200)" "$(kv "$rline" failed)" "$rate_missing"
echo "bench: $(($(date +%s) - started)) s"
if [ "$failed" -ne 0 ]; then
	echo "bench: FAILED"
	exit 1
fi
