#!/usr/bin/env bash
# REGISTERs per second through the S-CSCF of `twistd sprout` (issue #6), with MD5 digest (each
# registration is two transactions: REGISTER, 401, REGISTER with credentials, 200), against
# Kamailio's registrar without authentication (../shared/bench/kamailio.cfg, the reference the
# issue names), UDP, one core each, side by side in one run.
#
# usage: benchmarks/bench_scscf_register.sh [SERVER ...]    SERVER: kamailio cpython pypy (default: all)
#
# Sprout runs its S-CSCF on PORT with homestead in process over a SQLite subscriber store of
# USERS subscribers (benchmarks/provision_users.py: regNNNNN@localhost, password pwNNNNN) and
# memory registration and challenge stores; SIPp cycles through the subscribers
# (tests/integration/scenarios/reg_digest.xml, which also checks the 200's Service-Route,
# P-Associated-URI and Contact). Kamailio gets ../shared/bench/scenarios/uac_register.xml (no
# credentials) with the same user names. A "call" in the trial lines is one registration.
# Machinery, trial rules and the summary lines: benchmarks/_bench_lib.sh (as bench_sprout_proxy.sh).
#
# USERS is 10,000 (the most ../shared/bench/users.csv names) so that, as with real phones, a
# subscriber comes back long after its last registration: at 700 registrations/s each one
# re-registers every ~14 s, after its subscriber data left homestead's 10 s cache and with
# about three live challenges in its IMPI record (with 1,000 subscribers each came back every
# 1.4 s, hit the cache every time and had ~30 challenges to parse).
#
# env (defaults): USERS=10000, START_KAMAILIO=4000 START_CPYTHON=300 START_PYPY=500,
#   COMMON_RATE=300, PORT_KAMAILIO=15060 PORT_CPYTHON=15062 PORT_PYPY=15064, SIPP_PORT=15080,
#   the rest as in _bench_lib.sh (DURATION=10, CONFIRM_S=30, SERVER_CPU=0, SIPP_CPU=1, ...).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SERVERS=${*:-kamailio cpython pypy}
KNOWN_SERVERS="kamailio cpython pypy"
USERS=${USERS:-10000}
START_KAMAILIO=${START_KAMAILIO:-4000}
START_CPYTHON=${START_CPYTHON:-300}
START_PYPY=${START_PYPY:-500}
COMMON_RATE=${COMMON_RATE:-300}
PAUSE_MS=${PAUSE_MS:-0}
SPROUT_ARGS=${SPROUT_ARGS:---log-format=text --log-level=warn}
OUT=${OUT:-$PWD/bench-results/scscf-register-$(date +%Y%m%d-%H%M%S)}
# shellcheck source=benchmarks/_bench_lib.sh
. "$HERE/_bench_lib.sh"

bench_init
PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} "$PYTHON" -m benchmarks.provision_users \
	"$OUT/subscribers.db" "$OUT/digest-users.csv" "$USERS" localhost || exit 2
awk 'NR==1 || NR<=1+'"$USERS"' {print}' "$ROOT/../shared/bench/users.csv" >"$OUT/users.csv"

launch_server() {  # launch_server NAME -> SPID, PORT (see _bench_lib.sh)
	case $1 in
	kamailio)
		PORT=${PORT_KAMAILIO:-15060}
		mkdir -p "$OUT/rt-$RUN"
		taskset -c "$SERVER_CPU" "$KAMAILIO" -f "$ROOT/../shared/bench/kamailio.cfg" -DD -E -n 1 -m 1024 \
			-M 16 -Y "$OUT/rt-$RUN" -A "LISTEN=udp:127.0.0.1:$PORT" >"$SLOG" 2>&1 &
		SPID=$!
		CALLER_ARGS=(-sf "$ROOT/../shared/bench/scenarios/uac_register.xml" -inf "$OUT/users.csv" "127.0.0.1:$PORT")
		;;
	cpython | pypy)
		local py=$PYTHON
		PORT=${PORT_CPYTHON:-15062}
		if [ "$1" = pypy ]; then py=$PYPY; PORT=${PORT_PYPY:-15064}; fi
		# shellcheck disable=SC2086  # SPROUT_ARGS is a list of arguments
		PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} taskset -c "$SERVER_CPU" "$py" -m twisted $SPROUT_ARGS sprout \
			--home-domain localhost --local-ip 127.0.0.1 --http-port 0 --scscf "$PORT" \
			--icscf 0 --bgcf 0 --mmtel 0 --reg-max-expires 3600 \
			--subscriber-store "sqlite:$OUT/subscribers.db" >"$SLOG" 2>&1 &
		SPID=$!
		CALLER_ARGS=(-sf "$ROOT/tests/integration/scenarios/reg_digest.xml" -inf "$OUT/digest-users.csv" "127.0.0.1:$PORT")
		;;
	esac
}

bench_main
