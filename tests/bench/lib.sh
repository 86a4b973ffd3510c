# tests/bench/lib.sh - shell functions the benchmarks share (sourced by
# run.sh and relay.sh, from the repository's root).  They expect $work
# (the work directory, its PostgreSQL in $work/pg) and $pgport.

# The first port from $1 on which nothing listens.
free_port() {
	p=$1
	while ss -Htln "sport = :$p" | grep -q .; do
		p=$((p + 1))
	done
	echo "$p"
}

# The value of KEY in a "TAG key=value ..." line.
kv() {
	echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

psql_db() { # DB [PSQL-ARGS...]
	_db=$1
	shift
	psql -h "$work/pg/run" -p "$pgport" -U receiver -d "$_db" -X -Atq -v ON_ERROR_STOP=1 "$@"
}

wait_http() { # URL PID: until URL answers 200, while PID lives
	i=0
	while ! curl -sf -o /dev/null "$1"; do
		if ! kill -0 "$2" 2>/dev/null || [ $i -ge 100 ]; then
			echo "bench: $1 never became ready" >&2
			return 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
}

new_db() { # NAME: a fresh database; prints its URL
	psql_db postgres -c "CREATE DATABASE \"$1\"" >/dev/null
	echo "postgresql://receiver@127.0.0.1:$pgport/$1"
}

# CPU time in clock ticks: of PIDs (user + system), of the whole machine.
proc_ticks() { # PID...
	for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null || true; done |
		awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

# Ticks of the whole machine (user nice system irq softirq steal).
machine_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# Ticks of the PostgreSQL in $work/pg, all its processes.
pg_ticks() {
	pm=$(head -1 "$work/pg/data/postmaster.pid")
	proc_ticks "$pm" $(pgrep -P "$pm")
}

# The work directory $work (the postgres user must reach $work/pg) and
# copies of the binaries in $work/bin, so that a rebuild running meanwhile
# (make test, another make) cannot swap them mid-run; sets RECEIVER_BIN and
# BENCH to the copies.
bench_setup() { # NAME TOOL...
	work=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$work"
	shift
	mkdir "$work/bin"
	cp "$RECEIVER_BIN" "$work/bin/receiver"
	for _b in "$@"; do
		cp "build/bench/$_b" "$work/bin/$_b"
	done
	RECEIVER_BIN=$work/bin/receiver
	BENCH=$work/bin
}

# At exit: the servers PID... stopped, then the PostgreSQL, the bodies
# removed; the work directory kept when RC or $failed is not 0 or with
# BENCH_KEEP=1.
bench_cleanup() { # RC TAG PID...
	_rc=$1 _tag=$2
	shift 2
	for _p in "$@"; do
		if [ -n "$_p" ] && kill -0 "$_p" 2>/dev/null; then
			kill -TERM "$_p" 2>/dev/null || true
			wait "$_p" 2>/dev/null || true
		fi
	done
	[ -n "$pgport" ] && sh deploy/pg-local.sh stop "$work/pg" "$pgport"
	rm -f "$work"/*bodies.*
	if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$failed" -ne 0 ] || [ "$_rc" -ne 0 ]; then
		echo "$_tag: work directory kept: $work"
	else
		rm -rf "$work"
	fi
}

# The receiver's configuration for a bench: $httpport, the app "bench"
# at $PUSH_PATH with $SECRET, reconcile off.
write_config() { # FILE URL MAX_BATCH
	cat >"$1" <<EOF
# Written by tests/bench (lib.sh write_config).
[server]
listen = "127.0.0.1:$httpport"
max_body_bytes = 262144
max_pending = 4096
request_timeout_s = 10
workers = ${BENCH_WORKERS:-1}

[database]
url = "$2"
max_batch = $3
commit_timeout_ms = 5000
connect_timeout_ms = 5000

[[app]]
name = "bench"
path = "$PUSH_PATH"
app_key = "bench-app-key"
app_secret = "$SECRET"
previous_secrets = []
signature_mode = "sorted_fields"

[reconcile]
enabled = false

[log]
level = "info"
EOF
}
