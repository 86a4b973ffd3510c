#!/bin/sh
# setup-debian.sh - install the Debian 12 packages receiver needs to build,
# run and test, then the relay tests' npm package (the Standard Webhooks
# reference library, pinned by tests/relay/package-lock.json) into
# tests/relay/node_modules.  Does nothing, prints nothing and needs no
# network when all are present.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)

PACKAGES="gcc make pkg-config libc6-dev libevent-dev libssl-dev libjansson-dev libpq-dev
postgresql-15 postgresql-client-15 python3 python3-prometheus-client curl openssl clang clang-format
libclang-rt-14-dev valgrind wrk"

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
# Node.js may come from elsewhere than Debian (NodeSource's nodejs ships
# npm): ask for Debian's two packages only when a command is missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi

# The relay tests' library, again when missing or not the version pinned.
relay_npm() {
	dir="$ROOT/tests/relay"
	want=$(cd "$dir" && node -p 'require("./package.json").dependencies.standardwebhooks')
	have=$(cd "$dir" && node -p 'require("standardwebhooks/package.json").version' 2>/dev/null ||
		true)
	[ "$have" = "$want" ] && return 0
	echo "setup: npm ci in tests/relay (standardwebhooks $want)"
	npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
}

if [ -z "$missing" ]; then
	relay_npm
	exit 0
fi

echo "setup: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "setup: run as root, or install them yourself: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The cluster Debian would create is not used: tests and `make run` start
# their own, so keep the package from creating one.
mkdir -p /etc/postgresql-common
if [ ! -f /etc/postgresql-common/createcluster.conf ] ||
	! grep -q '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
	echo "create_main_cluster = false" >> /etc/postgresql-common/createcluster.conf
fi
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
relay_npm
