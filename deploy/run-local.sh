#!/bin/sh
# run-local.sh CONFIG - what `make run` does after building: start a local
# PostgreSQL under var/pg (unless DATABASE_URL names another database),
# apply the migrations and serve in the foreground.
set -eu
config=${1:-receiver.toml}
if [ -z "${DATABASE_URL:-}" ]; then
	sh deploy/pg-local.sh start var/pg 54329
	echo "run: stop that PostgreSQL with: sh deploy/pg-local.sh stop var/pg 54329"
fi
build/receiver migrate -c "$config"
exec build/receiver serve -c "$config"
