#!/bin/sh
# tests/bench/relay.sh - the relay benchmark `make bench-relay` runs (after
# building build/receiver and build/bench/{gen,rate,sink}).
#
# It starts its own PostgreSQL 15 (deploy/pg-local.sh; fsync and
# synchronous_commit on, as in production; track_commit_timestamp on, so
# that an event's commit time is exact) in a temporary directory on free
# ports, and pre-generates unique signed pushes (gen).  Each phase gets a
# fresh database, a fresh consumer (build/bench/sink: answers 200 to every
# POST at once and records its arrival time and webhook-id; it verifies
# nothing, the integration tests do) and the receiver with reconcile off,
# `[relay] enabled = true` and one [[subscriber]] "sink" with
# events = ["message.received"]: each distinct push is then exactly one
# event, so the event rate is the push rate.
#
#   drain     a backlog: the subscriber is disabled (as a 410 leaves it),
#             BENCH_RELAY_EVENTS pushes are sent (build/bench/rate at
#             BENCH_RELAY_PUSH_RATE/s), then `receiver relay --enable sink`
#             and the relay alone sends them: events/s from the first to the
#             last arrival at the sink, and in the middle 80% of them (the
#             steady state), with the CPU time each event cost and the
#             relay's statements (pg_stat_statements).
#   drain_analyzed  the same after VACUUM ANALYZE relay_deliveries: the
#             statistics autovacuum gives a backlog that has waited a
#             minute or more, which change the claim's plan.
#   sustained pushes at a constant BENCH_RELAY_RATE/s for
#             BENCH_RELAY_RATE_SECONDS s with the relay running: the rate
#             delivered while they arrive, how long after the last push the
#             last event arrived, and the latency below.
#   latency   the same at BENCH_RELAY_LATENCY_RATE/s for
#             BENCH_RELAY_LATENCY_SECONDS s.
#
# Latency is from the commit of the event (pg_xact_commit_timestamp of its
# relay_events row's xmin: the ingest batch's transaction) to its arrival
# at the sink (CLOCK_REALTIME, the same clock), split at the claim
# (relay_deliveries.last_attempt_at, the claiming transaction's start).
#
# Every phase checks: every push answered 200 has its event (relay_events,
# by the msg_id in its body), every event reached the sink exactly once
# (webhook-id = relay_events.event_id), the sink got nothing else, and
# every delivery is `delivered`.  Last comes a table and the line
# "relay: N events/s drained (M with relay_deliveries analyzed);
# commit->2xx p50 X ms, p99 Y ms at R events/s".
# Exit status 1 when an event was lost or duplicated (or the check could
# not be made), 0 otherwise.
#
# Environment: RECEIVER_BIN (build/receiver), BENCH_RELAY_EVENTS (each
# drain's backlog: 30000), BENCH_RELAY_PUSH_RATE (5000), BENCH_RELAY_RATE
# (2000), BENCH_RELAY_RATE_SECONDS (15), BENCH_RELAY_LATENCY_RATE (200),
# BENCH_RELAY_LATENCY_SECONDS (20), BENCH_RELAY_CONCURRENCY (the
# subscriber's max_concurrency: 16), BENCH_RELAY_STATEMENTS (1: load
# pg_stat_statements, for the drains' statements; 0: not), BENCH_KEEP=1
# keeps the work directory (it is also kept when the bench fails).
set -eu
cd "$(dirname "$0")/../.."
unset DATABASE_URL
. tests/bench/lib.sh

RECEIVER_BIN=${RECEIVER_BIN:-build/receiver}
EVENTS=${BENCH_RELAY_EVENTS:-30000}
PUSH_RATE=${BENCH_RELAY_PUSH_RATE:-5000}
RATE=${BENCH_RELAY_RATE:-2000}
RATE_SECONDS=${BENCH_RELAY_RATE_SECONDS:-15}
LAT_RATE=${BENCH_RELAY_LATENCY_RATE:-200}
LAT_SECONDS=${BENCH_RELAY_LATENCY_SECONDS:-20}
CONCURRENCY=${BENCH_RELAY_CONCURRENCY:-16}
STATEMENTS=${BENCH_RELAY_STATEMENTS:-1}
DRAIN_TIMEOUT_S=120
CONNECTIONS=32
SECRET=bench-app-secret
PUSH_PATH=/1688/messages
# "whsec_" + base64 of 32 bytes: a Standard Webhooks secret (the relay signs
# with it; the sink does not check).
WEBHOOK_SECRET=whsec_$(printf 'relay-bench-webhook-secret-32byt' | base64)

started=$(date +%s)
bench_setup receiver-bench-relay gen rate sink
results=$work/results
: >"$results"
failed=0
pid=""
sink_pid=""
pgport=""

trap 'bench_cleanup $? bench-relay "$pid" "$sink_pid"' EXIT
trap 'exit 130' INT TERM

now_us() {
	date +%s%6N
}

relay_config() { # FILE URL: write_config's, with the relay and its subscriber
	write_config "$1" "$2" 256
	cat >>"$1" <<EOF

[relay]
enabled = true
max_attempts = 12
backoff_min_ms = 200
backoff_max_ms = 5000

[[subscriber]]
name = "sink"
url = "http://127.0.0.1:$sinkport/hooks/1688"
secret = "$WEBHOOK_SECRET"
events = ["message.received"]
timeout_ms = 15000
max_concurrency = $CONCURRENCY
EOF
}

# A fresh database, migrated, a fresh sink and the receiver; sets db, pid,
# sink_pid.  DISABLED=1: the subscriber is registered disabled first.
start_phase() { # TAG DISABLED
	db=$1
	relay_config "$work/$1.toml" "$(new_db "$db")"
	"$RECEIVER_BIN" migrate -c "$work/$1.toml" >"$work/$1.migrate.log" 2>&1 ||
		{ cat "$work/$1.migrate.log" >&2; exit 1; }
	if [ "$STATEMENTS" = 1 ]; then
		psql_db "$db" -c "CREATE EXTENSION pg_stat_statements"
	fi
	if [ "$2" = 1 ]; then
		psql_db "$db" -c "INSERT INTO relay_subscribers (name, events, enabled, disabled_at, disabled_reason)
			VALUES ('sink', '{message.received}', false, now(), 'bench: a backlog')"
	fi
	"$BENCH/sink" "$sinkport" "$work/$1.sink" 2>"$work/$1.sink.log" &
	sink_pid=$!
	wait_http "http://127.0.0.1:$sinkport/" "$sink_pid"
	"$RECEIVER_BIN" serve -c "$work/$1.toml" 2>"$work/$1.log" &
	pid=$!
	wait_http "http://127.0.0.1:$httpport/readyz" "$pid" || { cat "$work/$1.log" >&2; exit 1; }
}

# The receiver, then the sink (which writes its file as it exits).
end_phase() { # TAG
	for who in receiver sink; do
		if [ "$who" = receiver ]; then p=$pid; else p=$sink_pid; fi
		kill -TERM "$p"
		rc=0
		wait "$p" || rc=$?
		if [ "$rc" -ne 0 ]; then
			echo "  $who exited with status $rc (expected 0)"
			failed=1
		fi
	done
	pid=""
	sink_pid=""
}

# Pushes from BODIES at RATE/s for SECONDS; prints rate's line.
push() { # TAG BODIES RATE SECONDS
	rate_rc=0
	"$BENCH/rate" -u "http://127.0.0.1:$httpport$PUSH_PATH" -f "$2" -r "$3" -d "$4" \
		-c "$CONNECTIONS" -o "$work/$1.acked" >"$work/$1.rate" || rate_rc=$?
	line=$(grep '^RATE ' "$work/$1.rate" || true)
	echo "  pushes: sent $(kv "$line" sent), answered 200 $(kv "$line" ok), other $(kv "$line" non200), failed $(kv "$line" failed), unanswered $(kv "$line" unanswered); push latency p99 $(kv "$line" p99_ms) ms" >&2
	if [ "$rate_rc" -ne 0 ] || [ "$(kv "$line" ok)" != "$(kv "$line" sent)" ]; then
		echo "  WARNING: not every push was answered 200 (rate exited $rate_rc)" >&2
	fi
	echo "$line"
}

# Until the sink has had as many POSTs as the database has deliveries and
# none is pending; false after DRAIN_TIMEOUT_S.
wait_drained() { # DB
	want=$(psql_db "$1" -c "SELECT count(*) FROM relay_deliveries")
	deadline=$(($(date +%s) + DRAIN_TIMEOUT_S))
	while [ "$(curl -sf "http://127.0.0.1:$sinkport/" || echo 0)" -lt "$want" ] ||
		[ "$(psql_db "$1" -c "SELECT count(*) FROM relay_deliveries WHERE state = 'pending'")" -ne 0 ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "  TIMEOUT: not drained after ${DRAIN_TIMEOUT_S} s" >&2
			return 1
		fi
		sleep 0.1
	done
}

# The check and the numbers of a phase, from the database and the files of
# the sink and of rate; one "CHECK key=value ..." line.  T0_US: when the
# phase's sending began (for the drain: the --enable).
measure() { # TAG T0_US
	psql_db "$1" -v t0="$2" <<EOF
CREATE TEMP TABLE acked (msg_id bigint);
\copy acked FROM '$work/$1.acked'
CREATE TEMP TABLE got (event_id text, at_us bigint);
\copy got FROM '$work/$1.sink'
CREATE TEMP TABLE ev AS
    SELECT e.event_id, (e.body::json->'data'->>'msg_id')::bigint AS msg_id,
           (extract(epoch FROM pg_xact_commit_timestamp(e.xmin)) * 1e6)::bigint AS commit_us,
           (extract(epoch FROM d.last_attempt_at) * 1e6)::bigint AS claim_us
    FROM relay_events AS e LEFT JOIN relay_deliveries AS d USING (event_id)
    WHERE e.type = 'message.received';
CREATE TEMP TABLE firsts AS
    SELECT event_id, min(at_us) AS at_us, count(*) AS n FROM got GROUP BY event_id;
CREATE TEMP TABLE lag AS
    SELECT (f.at_us - ev.commit_us) / 1e3 AS total_ms, (ev.claim_us - ev.commit_us) / 1e3 AS wait_ms,
           (f.at_us - ev.claim_us) / 1e3 AS send_ms
    FROM ev JOIN firsts AS f USING (event_id);
CREATE TEMP TABLE per_s AS
    SELECT count(*) AS n FROM got
    WHERE at_us / 1000000 > (SELECT min(at_us) / 1000000 FROM got)
      AND at_us / 1000000 < (SELECT max(at_us) / 1000000 FROM got)
    GROUP BY at_us / 1000000;
SELECT format('CHECK acked=%s no_event=%s events=%s posts=%s lost=%s dup=%s unknown=%s '
              'undelivered=%s retried=%s autoanalyze=%s outcome_tx=%s tail_s=%s span_s=%s rate=%s steady=%s from_t0_s=%s '
              'per_s_min=%s per_s_max=%s last_us=%s p50=%s p99=%s max=%s '
              'wait_p50=%s wait_p99=%s send_p50=%s send_p99=%s',
    (SELECT count(*) FROM acked),
    (SELECT count(*) FROM acked AS a WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.msg_id = a.msg_id)),
    (SELECT count(*) FROM ev),
    (SELECT count(*) FROM got),
    (SELECT count(*) FROM ev WHERE NOT EXISTS (SELECT 1 FROM firsts AS f WHERE f.event_id = ev.event_id)),
    (SELECT coalesce(sum(n - 1), 0) FROM firsts),
    (SELECT count(*) FROM firsts AS f WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.event_id = f.event_id)),
    (SELECT count(*) FROM relay_deliveries WHERE state <> 'delivered'),
    (SELECT count(*) FROM relay_deliveries WHERE attempts > 1),
    (SELECT autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'relay_deliveries'),
    (SELECT count(DISTINCT xmin::text) FROM relay_deliveries),
    round((s.last - (SELECT max(commit_us) FROM ev)) / 1e6, 2),
    s.span, round(s.n / nullif(s.span, 0)), round(0.8 * s.n / nullif(s.p90 - s.p10, 0)),
    round((s.last - :t0) / 1e6, 2),
    (SELECT coalesce(min(n), 0) FROM per_s), (SELECT coalesce(max(n), 0) FROM per_s), s.last,
    l.p50, l.p99, l.mx, l.w50, l.w99, l.s50, l.s99)
FROM (SELECT count(*) AS n, round((max(at_us) - min(at_us)) / 1e6, 2) AS span, max(at_us) AS last,
             percentile_cont(0.1) WITHIN GROUP (ORDER BY at_us) / 1e6 AS p10,
             percentile_cont(0.9) WITHIN GROUP (ORDER BY at_us) / 1e6 AS p90
      FROM got) AS s,
     (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms)::numeric, 1) AS p50,
             round(percentile_cont(0.99) WITHIN GROUP (ORDER BY total_ms)::numeric, 1) AS p99,
             round(max(total_ms)::numeric, 1) AS mx,
             round(percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms)::numeric, 1) AS w50,
             round(percentile_cont(0.99) WITHIN GROUP (ORDER BY wait_ms)::numeric, 1) AS w99,
             round(percentile_cont(0.5) WITHIN GROUP (ORDER BY send_ms)::numeric, 1) AS s50,
             round(percentile_cont(0.99) WITHIN GROUP (ORDER BY send_ms)::numeric, 1) AS s99
      FROM lag) AS l;
EOF
}

# Prints the check's findings; sets failed when something was lost.
verdict() { # CHECK-LINE
	echo "  check: $(kv "$1" acked) pushes answered 200, $(kv "$1" events) events, $(kv "$1" posts) POSTs at the sink; lost $(kv "$1" lost), duplicated $(kv "$1" dup), unknown ids $(kv "$1" unknown), pushes without an event $(kv "$1" no_event), deliveries not delivered $(kv "$1" undelivered), retried $(kv "$1" retried)"
	if [ "$(kv "$1" lost)" != 0 ] || [ "$(kv "$1" dup)" != 0 ] || [ "$(kv "$1" unknown)" != 0 ] ||
		[ "$(kv "$1" no_event)" != 0 ] || [ "$(kv "$1" undelivered)" != 0 ] ||
		[ "$(kv "$1" events)" = 0 ]; then
		echo "  FAILED: an event was lost, duplicated or not delivered"
		failed=1
	fi
	if grep -q '"relay_' "$work/$db.log"; then
		echo "  receiver log: $(grep -c '"relay_' "$work/$db.log") relay warnings or errors (see $work/$db.log)"
	fi
}

print_latency() { # CHECK-LINE
	echo "  commit -> 2xx: p50 $(kv "$1" p50) ms, p99 $(kv "$1" p99) ms, max $(kv "$1" max) ms (commit -> claim p50 $(kv "$1" wait_p50), p99 $(kv "$1" wait_p99) ms; claim -> 2xx p50 $(kv "$1" send_p50), p99 $(kv "$1" send_p99) ms)"
}

# The CPU a phase cost: ticks of the machine, of PostgreSQL (all its
# processes), of the receiver and of the relay's own backend (BACKEND).
cpu_sample() { # BACKEND
	echo "$(machine_ticks) $(pg_ticks) $(proc_ticks "$pid") $(proc_ticks "$1") $(date +%s.%N)"
}
cpu_per_event() { # SAMPLE0 SAMPLE1 EVENTS
	echo "$1 $2" | awk -v n="$3" -v hz="$(getconf CLK_TCK)" -v cpus="$(nproc)" '{
		us = 1e6 / hz / (n > 0 ? n : 1); secs = $10 - $5
		printf "  CPU per event: %.0f us in all = receiver %.0f + PostgreSQL %.0f + the sink, the kernel and the rest %.0f; the %d CPUs %.0f%% busy\n",
			($6 - $1) * us, ($8 - $3) * us, ($7 - $2) * us, ($6 - $1 - ($8 - $3) - ($7 - $2)) * us,
			cpus, 100 * ($6 - $1) / hz / cpus / secs
		printf "  busy: the relay'"'"'s PostgreSQL backend %.0f us per event (%.0f%% of a CPU), the receiver %.0f%% of a CPU\n",
			($9 - $4) * us, 100 * ($9 - $4) / hz / secs, 100 * ($8 - $3) / hz / secs
	}'
}

# Sets backend (the relay's PostgreSQL backend: the one that ran its
# claims so far) and c0; zeroes the statement counters.
phase_begin() { # DB
	if [ "$STATEMENTS" = 1 ]; then
		psql_db "$1" -c "SELECT pg_stat_statements_reset()" >/dev/null
	fi
	backend=$(psql_db "$1" -c "SELECT pid FROM pg_stat_activity WHERE datname = '$1' AND query LIKE '%receiver_relay_claim%' LIMIT 1")
	c0=$(cpu_sample "$backend")
}

# Sets c1; prints the relay's statements since phase_begin.
phase_done() { # DB
	c1=$(cpu_sample "$backend")
	if [ "$STATEMENTS" = 1 ]; then
		echo "  the relay's statements (pg_stat_statements): calls | total | mean execution time"
		psql_db "$1" -F ' | ' -c "SELECT calls, round(total_exec_time::numeric, 0) || ' ms', round(mean_exec_time::numeric, 3) || ' ms', left(regexp_replace(query, '\s+', ' ', 'g'), 60) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query LIKE '%receiver_relay_%' ORDER BY total_exec_time DESC LIMIT 3" |
			sed 's/^/    /'
	fi
}

# --- set-up -------------------------------------------------------------

pgport=$(free_port 55532)
echo "bench-relay: PostgreSQL 15 in $work/pg on 127.0.0.1:$pgport (fsync on, synchronous_commit on, track_commit_timestamp on)"
PG_FSYNC=on sh deploy/pg-local.sh start "$work/pg" "$pgport" postgres >/dev/null
psql_db postgres -c "ALTER SYSTEM SET track_commit_timestamp = on"
if [ "$STATEMENTS" = 1 ]; then
	psql_db postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
fi
sh deploy/pg-local.sh stop "$work/pg" "$pgport"
PG_FSYNC=on sh deploy/pg-local.sh start "$work/pg" "$pgport" postgres >/dev/null
echo "  $(psql_db postgres -c "SELECT 'fsync=' || current_setting('fsync') || ' synchronous_commit=' || current_setting('synchronous_commit') || ' track_commit_timestamp=' || current_setting('track_commit_timestamp') || ' shared_buffers=' || current_setting('shared_buffers')")"
httpport=$(free_port 18580)
sinkport=$(free_port $((httpport + 1)))

"$BENCH/gen" "$SECRET" 600000000001 "$EVENTS" 1 "$work/drain.bodies"
"$BENCH/gen" "$SECRET" 700000000001 $((RATE * RATE_SECONDS)) 1 "$work/sustained.bodies"
"$BENCH/gen" "$SECRET" 800000000001 $((LAT_RATE * LAT_SECONDS)) 1 "$work/latency.bodies"
echo "bench-relay: receiver on 127.0.0.1:$httpport (max_batch 256, reconcile off), sink on 127.0.0.1:$sinkport, subscriber max_concurrency $CONCURRENCY; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- drains: a backlog, the relay alone -----------------------------------

# TAG's subscriber disabled, EVENTS pushes, then --enable: the relay alone.
# ANALYZED=1: relay_deliveries analyzed first, as autovacuum leaves a
# backlog that has waited a minute or more (the claim's plan follows).
drain_phase() { # TAG ANALYZED LABEL
	echo
	echo "== $1: $EVENTS events waiting (subscriber disabled)$3, then \`receiver relay --enable sink\`"
	start_phase "$1" 1
	push "$1" "$work/drain.bodies.0" "$PUSH_RATE" "$(awk -v n="$EVENTS" -v r="$PUSH_RATE" 'BEGIN { printf "%.9f", n / r + 1e-7 }')" >/dev/null
	if [ "$2" = 1 ]; then
		psql_db "$1" -c "VACUUM ANALYZE relay_deliveries"
	fi
	phase_begin "$1"
	t0=$(now_us)
	"$RECEIVER_BIN" relay --enable sink -c "$work/$1.toml" >"$work/$1.enable" 2>&1 ||
		{ cat "$work/$1.enable" >&2; exit 1; }
	ok=1
	wait_drained "$1" || ok=0
	phase_done "$1"
	end_phase "$1"
	line=$(measure "$1" "$t0")
	echo "  delivered $(kv "$line" posts) in $(kv "$line" span_s) s from the first arrival to the last: $(kv "$line" rate) events/s; middle 80%: $(kv "$line" steady) events/s; per whole second $(kv "$line" per_s_min)-$(kv "$line" per_s_max); the last $(kv "$line" from_t0_s) s after --enable"
	cpu_per_event "$c0" "$c1" "$(kv "$line" posts)"
	echo "  their outcomes were recorded in $(kv "$line" outcome_tx) transactions (distinct xmin of relay_deliveries), each a commit and a WAL flush; autovacuum analyzed relay_deliveries $(kv "$line" autoanalyze) times"
	verdict "$line"
	[ "$ok" = 1 ] || failed=1
	echo "$1|$(kv "$line" events)|$(kv "$line" rate)|$(kv "$line" steady)|-|-|-|$(kv "$line" lost)|$(kv "$line" dup)" >>"$results"
}

drain_phase drain 0 ""
drain_rate=$(kv "$line" rate)
drain_phase drain_analyzed 1 ", relay_deliveries analyzed"
analyzed_rate=$(kv "$line" rate)

# --- constant rates, the relay running ---------------------------------

rate_phase() { # TAG RATE SECONDS
	echo
	echo "== $1: pushes at a constant $2/s for $3 s, the relay running"
	start_phase "$1" 0
	phase_begin "$1"
	t0=$(now_us)
	push "$1" "$work/$1.bodies.0" "$2" "$3" >/dev/null
	ok=1
	wait_drained "$1" || ok=0
	phase_done "$1"
	end_phase "$1"
	line=$(measure "$1" "$t0")
	echo "  delivered $(kv "$line" posts) events: $(kv "$line" rate) events/s from the first arrival to the last; per whole second $(kv "$line" per_s_min)-$(kv "$line" per_s_max); the last arrived $(kv "$line" tail_s) s after the last commit"
	print_latency "$line"
	echo "  autovacuum analyzed relay_deliveries $(kv "$line" autoanalyze) times in this phase"
	# At a low rate, idle timers and tick sampling swamp the per-event CPU.
	if [ "$2" -ge 1000 ]; then
		cpu_per_event "$c0" "$c1" "$(kv "$line" posts)"
	fi
	verdict "$line"
	[ "$ok" = 1 ] || failed=1
	echo "$1 ($2/s, $3 s)|$(kv "$line" events)|$(kv "$line" rate)|-|$(kv "$line" p50)|$(kv "$line" p99)|$(kv "$line" max)|$(kv "$line" lost)|$(kv "$line" dup)" >>"$results"
}

rate_phase sustained "$RATE" "$RATE_SECONDS"
rate_phase latency "$LAT_RATE" "$LAT_SECONDS"
lat=$line

# --- summary ------------------------------------------------------------

echo
echo "== summary (subscriber max_concurrency $CONCURRENCY; $(nproc) CPUs shared by the pushes, the receiver, PostgreSQL and the sink; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
awk -F'|' 'BEGIN { printf "%-24s %8s %10s %10s %8s %8s %8s %6s %6s\n", "phase", "events", "events/s", "steady/s", "p50 ms", "p99 ms", "max ms", "lost", "dup" }
	{ printf "%-24s %8s %10s %10s %8s %8s %8s %6s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$results"
echo "(latency: from the event's commit to the sink's 2xx)"
echo "relay: $drain_rate events/s drained ($analyzed_rate with relay_deliveries analyzed); commit->2xx p50 $(kv "$lat" p50) ms, p99 $(kv "$lat" p99) ms at $LAT_RATE events/s"
echo "bench-relay: $(($(date +%s) - started)) s"
if [ "$failed" -ne 0 ]; then
	echo "bench-relay: FAILED"
	exit 1
fi
