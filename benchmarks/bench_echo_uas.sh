#!/usr/bin/env bash
# SIPp `uac` against examples/echo_uas.py over UDP on one core, and Kamailio doing the same job
# (benchmarks/kamailio_echo_uas.cfg), side by side in one run (issue #3).
#
# usage: benchmarks/bench_echo_uas.sh [SERVER ...]        SERVER: kamailio cpython pypy (default: all)
#
# For each server: start it pinned to core SERVER_CPU, find the highest call rate with 0 failed
# calls (ramp: double from the server's start rate until a trial fails, then bisect to
# PRECISION_PCT), then hold that rate for CONFIRM_S seconds (stepping down 15 % at most
# CONFIRM_TRIES times if it fails), then run one trial at the fixed COMMON_RATE; stop it.
# SIPp (built-in `uac` scenario: INVITE, 100/180/200, ACK, pause -d, BYE, 200) is pinned to SIPP_CPU.
# A trial of R calls/s sends R*DURATION calls and passes iff: sipp exits 0, every call succeeds,
# 0 failed, no timeout, no unexpected message, retransmissions seen by SIPp (sent, and received
# from the server) and messages for dead/unknown calls each <= MAX_RETRANS (default 0, as
# ../shared/bench; MAX_RETRANS=1000000000 gives "0 failed calls" alone), the rate was really achieved
# (wall time <= 1.1*DURATION+2 s), the server is alive and printed no error/traceback.
# The server's CPU is utime+stime of its whole process tree from /proc (as
# ../shared/bench/cpu_ticks.py), over the trial. After a failed trial the server is restarted (a
# stateful server keeps retransmitting to SIPp's port for 32 s); PyPy is warmed up after each start.
#
# env (defaults):
#   DURATION=10 seconds of load per trial       PRECISION_PCT=5   MAX_RETRANS=0
#   CONFIRM_S=30 (0: skip)  CONFIRM_TRIES=3     COMMON_RATE=500 (0: skip)
#   START_KAMAILIO=8000 START_CPYTHON=500 START_PYPY=1000   MIN_RATE=50 MAX_RATE=40000
#   PORT_KAMAILIO=15060 PORT_CPYTHON=15062 PORT_PYPY=15064  SIPP_PORT=15080 (all on 127.0.0.1)
#   SERVER_CPU=0 SIPP_CPU=1   PAUSE_MS=0 (sipp -d)   COOLDOWN=2   SIPP_BUFF=4194304
#   WARMUP_S=10 WARMUP_RATE=1000 (PyPy only; WARMUP_ALL=1 warms every server)
#   WARMUP_SETTLE_S=34 (wait after a warm-up that left calls unfinished: the server's retransmissions)
#   PYTHON=.venv/bin/python PYPY=.venv-pypy/bin/python KAMAILIO=kamailio
#   ECHO_ARGS=--verbose (extra echo_uas arguments; --verbose makes errors visible on stderr)
#   OUT=bench-results/echo-uas-STAMP (trials.log, per-trial sipp output, server logs)
# Prints per trial a line on stderr (and OUT/trials.log); at the end, one line per server
#   server=NAME calls_per_s=N cpu_s_per_1k=X sustained_cps=S sustained_cpu_s_per_1k=Y common_rate=R common_cpu_s_per_1k=Z
# (sustained_cps=0: none of the rates tried was held for CONFIRM_S) and the ratios to Kamailio
# (calls/s: <1 is slower; CPU per call: >1 costs more; NA where a figure is missing).
# The machinery (ramp/bisect/confirm, trials, CPU from /proc, summary, ratios) is
# benchmarks/_bench_lib.sh, shared with bench_sprout_proxy.sh.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SERVERS=${*:-kamailio cpython pypy}
KNOWN_SERVERS="kamailio cpython pypy"
START_KAMAILIO=${START_KAMAILIO:-8000}
START_CPYTHON=${START_CPYTHON:-500}
START_PYPY=${START_PYPY:-1000}
ECHO_ARGS=${ECHO_ARGS:---verbose}
OUT=${OUT:-$PWD/bench-results/echo-uas-$(date +%Y%m%d-%H%M%S)}
# shellcheck source=benchmarks/_bench_lib.sh
. "$HERE/_bench_lib.sh"

launch_server() {  # launch_server NAME -> SPID, PORT (see _bench_lib.sh)
	case $1 in
	kamailio)
		PORT=${PORT_KAMAILIO:-15060}
		mkdir -p "$OUT/rt-$RUN"
		taskset -c "$SERVER_CPU" "$KAMAILIO" -f "$HERE/kamailio_echo_uas.cfg" -DD -E -n 1 -m 256 -M 16 \
			-Y "$OUT/rt-$RUN" -A "LISTEN=udp:127.0.0.1:$PORT" >"$SLOG" 2>&1 &
		;;
	cpython | pypy)
		local py=$PYTHON
		PORT=${PORT_CPYTHON:-15062}
		if [ "$1" = pypy ]; then py=$PYPY; PORT=${PORT_PYPY:-15064}; fi
		# shellcheck disable=SC2086  # ECHO_ARGS is a list of arguments
		taskset -c "$SERVER_CPU" "$py" "$ROOT/examples/echo_uas.py" --listen "udp:127.0.0.1:$PORT" \
			$ECHO_ARGS >"$SLOG" 2>&1 &
		;;
	esac
	SPID=$!
	CALLER_ARGS=(-sn uac "127.0.0.1:$PORT")  # SIPp's built-in uac, straight at the server
}

bench_init
bench_main
