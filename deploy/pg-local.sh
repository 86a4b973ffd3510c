#!/bin/sh
# pg-local.sh start|stop|status DIR PORT [DB]
#
# A private PostgreSQL 15 cluster in DIR, listening on 127.0.0.1:PORT and a
# Unix socket in DIR/run, with trust authentication for the local user
# "receiver" and a database DB (default "receiver").  As root it runs the
# server as the postgres user, since initdb and postgres refuse to run as
# root.  Used by `make run` (DIR var/pg) and by the tests (a temporary DIR).
set -eu

cmd=$1 dir=$2 port=$3 db=${4:-receiver}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# As root the server runs as postgres, which must reach DIR (it is chowned
# to postgres below, so its parent must be reachable).  A checkout
# under /root (mode 0700 on Debian) is out of its reach: the cluster then
# lives in postgres's home, under a name made of DIR's absolute path.
[ "$cmd" = start ] && mkdir -p "$dir"
if [ -d "$dir" ]; then
	dir=$(cd "$dir" && pwd)
	if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "${dir%/*}/" 2>/dev/null; then
		dir=/var/lib/postgresql/receiver$(echo "$dir" | tr / -)
		[ "$cmd" = start ] && as_owner mkdir -p "$dir"
	fi
fi

case "$cmd" in
start)
	[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_owner "$PGBIN/initdb" -D "$dir/data" -U receiver -A trust -E UTF8 \
			--locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	as_owner mkdir -p "$dir/run"
	if ! as_owner "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $dir/run -c fsync=${PG_FSYNC:-on}" \
			start >/dev/null || { tail -20 "$dir/postgres.log" >&2; exit 1; }
	fi
	echo "pg-local: PostgreSQL on 127.0.0.1:$port, data in $dir"
	if ! psql -h "$dir/run" -p "$port" -U receiver -d postgres -Atqc \
		"SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
		psql -h "$dir/run" -p "$port" -U receiver -d postgres -qc "CREATE DATABASE \"$db\"" >/dev/null
	fi
	;;
stop)
	if [ -f "$dir/data/PG_VERSION" ]; then
		as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	;;
status)
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" status
	;;
*)
	echo "usage: pg-local.sh start|stop|status DIR PORT [DB]" >&2
	exit 2
	;;
esac
