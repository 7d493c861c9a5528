#!/usr/bin/env bash
# TURN relay throughput and allocation rate of `twistd restund` (issue #7) against coturn's
# turnserver, the same client (coturn's turnutils_uclient) for both, one core each, one run.
#
# usage: benchmarks/bench_restund.sh [SERVER ...]    SERVER: coturn cpython pypy (default: all)
#
# Relay: `turnutils_uclient -y -c -m CLIENTS -n MESSAGES -l SIZE -z PACE` (client to client:
# each client allocates a UDP relay, binds a channel to the other's relay address and sends
# MESSAGES ChannelData messages of SIZE bytes every PACE ms; every message crosses the server
# twice: from the client into its relay, and from the other relay out to the other client).
# For each CLIENTS in LEVELS the server's CPU (utime+stime from /proc over the run), the
# messages sent and received and the loss are read; the relay rate is messages received per
# second of transmission, the cost CPU-seconds per 1,000 messages received. The highest level
# with no loss is the server's relay rate.
# Allocations: ALLOCS clients (`-y -c -n 1 -m ALLOCS`): each allocates, binds a channel,
# sends one message and leaves; the server's CPU per allocation and the wall time.
#
# env (defaults): PORT=34780 SERVER_CPU=0 CLIENT_CPU=1 SIZE=160 PACE=10 MESSAGES=500
#   LEVELS="20 50 100 200" ALLOCS=200 WARMUP=1 (PyPy: one unmeasured level-100 run first)
#   PYTHON=.venv/bin/python PYPY=.venv-pypy/bin/python
#   OUT=bench-results/restund-STAMP (per-run client output, server logs)
# Prints one line per run and a summary per server.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SERVERS=${*:-coturn cpython pypy}
PORT=${PORT:-34780}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SIZE=${SIZE:-160}
PACE=${PACE:-10}
MESSAGES=${MESSAGES:-500}
LEVELS=${LEVELS:-20 50 100 200}
ALLOCS=${ALLOCS:-200}
WARMUP=${WARMUP:-1}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
PYPY=${PYPY:-$ROOT/.venv-pypy/bin/python}
OUT=${OUT:-$PWD/bench-results/restund-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
command -v turnutils_uclient >/dev/null || { echo "needs turnutils_uclient (apt-get install coturn)" >&2; exit 2; }
CREDS=(-u alice -w secret)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

start() {  # start NAME -> SPID
	local log=$OUT/server-$1.log
	case $1 in
	coturn)
		taskset -c "$SERVER_CPU" turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 \
			--listening-port="$PORT" --min-port=40000 --max-port=49999 --lt-cred-mech \
			--user=alice:secret --realm=example.com --no-tls --no-dtls --no-cli \
			--allow-loopback-peers --user-quota=0 --total-quota=0 --log-file=stdout --simple-log \
			--no-stdout-log >"$log" 2>&1 &
		;;
	cpython | pypy)
		local py=$PYTHON
		[ "$1" = pypy ] && py=$PYPY
		PYTHONPATH=$ROOT PYPY_GC_NURSERY=${PYPY_GC_NURSERY-16MB} taskset -c "$SERVER_CPU" "$py" \
			-m twisted --log-format=text --log-level=warn restund \
			--listen "127.0.0.1:$PORT" --relay-ip 127.0.0.1 --min-port 40000 --max-port 49999 \
			--realm example.com --user alice:secret --allow-loopback-peers --http-port 0 \
			--user-quota 100000 --max-allocations 100000 >"$log" 2>&1 &
		;;
	esac
	SPID=$!
	for _ in $(seq 100); do
		ss -ulnH "sport = :$PORT" | grep -q . && return 0
		sleep 0.1
	done
	echo "# $1 did not listen on udp $PORT" >&2
	return 1
}

# uclient TAG ARGS... -> R_SENT R_RECV R_LOST R_SECS R_CPU (server CPU-s) R_WALL R_RC
uclient() {
	local tag=$1 out c0 c1 w0 w1
	shift
	out=$OUT/$tag.out
	c0=$(cpu_ticks "$SPID")
	w0=$(date +%s.%N)
	taskset -c "$CLIENT_CPU" timeout 300 turnutils_uclient -p "$PORT" "${CREDS[@]}" "$@" 127.0.0.1 >"$out" 2>&1
	R_RC=$?
	w1=$(date +%s.%N)
	c1=$(cpu_ticks "$SPID")
	R_CPU=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", (b-a)/100}')
	R_WALL=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.2f", b-a}')
	R_SENT=$(grep -o 'tot_send_msgs=[0-9]*' "$out" | tail -1 | cut -d= -f2)
	R_RECV=$(grep -o 'tot_recv_msgs=[0-9]*' "$out" | tail -1 | cut -d= -f2)
	R_LOST=$(grep -o 'Total lost packets [0-9]*' "$out" | tail -1 | awk '{print $4}')
	R_SECS=$(grep -o 'Total transmit time is [0-9]*' "$out" | tail -1 | awk '{print $5}')
	R_SENT=${R_SENT:-0} R_RECV=${R_RECV:-0} R_LOST=${R_LOST:-NA} R_SECS=${R_SECS:-0}
}

for name in $SERVERS; do
	start "$name" || { kill "$SPID" 2>/dev/null; continue; }
	if [ "$name" = pypy ] && [ "$WARMUP" = 1 ]; then
		uclient "warmup-$name" -y -c -m 100 -n "$MESSAGES" -l "$SIZE" -z "$PACE"
	fi
	best_rate=0 best_cpu=NA
	for level in $LEVELS; do
		uclient "relay-$name-$level" -y -c -m "$level" -n "$MESSAGES" -l "$SIZE" -z "$PACE"
		rate=$(awk -v r="$R_RECV" -v s="$R_SECS" 'BEGIN{printf "%.0f", (s > 0 ? r/s : 0)}')
		cpu=$(awk -v c="$R_CPU" -v r="$R_RECV" 'BEGIN{printf "%.3f", (r > 0 ? 1000*c/r : 0)}')
		echo "server=$name clients=$level rc=$R_RC sent=$R_SENT received=$R_RECV lost=$R_LOST transmit_s=$R_SECS relayed_per_s=$rate server_cpu_s=$R_CPU cpu_s_per_1k=$cpu" |
			tee -a "$OUT/results.log"
		if [ "$R_RC" = 0 ] && [ "$R_LOST" = 0 ]; then best_rate=$rate best_cpu=$cpu; fi
	done
	uclient "allocs-$name" -y -c -m "$ALLOCS" -n 1 -l "$SIZE"
	per=$(awk -v c="$R_CPU" -v a="$ALLOCS" 'BEGIN{printf "%.2f", 1000*c/a}')
	echo "server=$name allocations=$ALLOCS rc=$R_RC lost=$R_LOST wall_s=$R_WALL server_cpu_s=$R_CPU server_cpu_ms_per_allocation=$per" |
		tee -a "$OUT/results.log"
	echo "summary server=$name relayed_per_s_no_loss=$best_rate cpu_s_per_1k=$best_cpu cpu_ms_per_allocation=$per" |
		tee -a "$OUT/results.log"
	kill "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	sleep 1
done
echo "# results in $OUT"
