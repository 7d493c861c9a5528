#!/usr/bin/env bash
# SIPp calls to registered users through the S-CSCF of `twistd sprout` (issue #6), against
# Kamailio's registrar + proxy (../shared/bench/kamailio.cfg: lookup("location"), record_route,
# t_relay), UDP, one core each, side by side in one run.
#
# usage: benchmarks/bench_scscf_calls.sh [SERVER ...]    SERVER: kamailio cpython pypy (default: all)
#
# One call: SIPp caller (127.0.0.1:SIPP_PORT, ../shared/bench/scenarios/uac_call.xml) -> server
# (127.0.0.1:PORT) -> SIPp callee (127.0.0.1:CALLEE_PORT, ../shared/bench/scenarios/uas_callee.xml):
# INVITE with SDP, 100 from the server, 180 and 200 from the callee, ACK, pause -d (PAUSE_MS), BYE,
# 200. The INVITE's Request-URI is a callee's address of record, sip:regNNNNN@localhost (the
# caller cycles through CALLEES of them), and the server finds the binding by its registrar:
# Kamailio by lookup("location"); sprout by its S-CSCF's terminating side (scscf-proxy: the
# request comes in on the S-CSCF port with no Route, so no `orig`: terminating to the Request-URI;
# it adds P-Called-Party-ID and forks to the registered binding). Every packet of the caller goes
# to the server (SIPp's remote address): both servers Record-Route (Kamailio's record_route;
# the S-CSCF at the end of terminating processing, spec §3.8, which also adds Session-Expires),
# so ACK and BYE come back with their Route (loose_route, t_relay; the S-CSCF's in-dialog
# path). Both servers thus handle the same messages: INVITE, its responses, ACK, BYE and its 200.
#
# Registration: after each start of a server (the registration stores are in memory, and a server
# is restarted after a failed trial), the CALLEES users are registered to it, Expires 3600, with
# the Contact sip:regNNNNN@127.0.0.1:CALLEE_PORT;transport=UDP (the callee SIPp's address; the
# registering SIPp is on REG_PORT): Kamailio without auth
# (../shared/bench/scenarios/callee_register.xml), sprout with MD5 digest
# (benchmarks/scenarios/callee_reg_digest.xml), at REG_RATE per second. Every registration must
# succeed (retransmissions allowed) or the server counts as not started. Their CPU is not counted,
# except that sprout's REGISTER transactions end 64*T1 = 32 s later, inside the first trial (about
# 0.1 CPU-s for 1,000 registrations on CPython). Both servers get the same names (sprout's
# subscribers, regNNNNN@localhost; ../shared/bench/callees.csv's calleeNNNN would need other
# subscribers), written to OUT/callees.csv.
# Sprout runs its S-CSCF on PORT with homestead in process over a SQLite subscriber store of the
# CALLEES subscribers (benchmarks/provision_users.py: regNNNNN@localhost, password pwNNNNN),
# memory registration and challenge stores and --reg-max-expires 3600, as
# bench_scscf_register.sh launches it:
#   kamailio  $KAMAILIO -f ../shared/bench/kamailio.cfg -n 1 (one UDP worker)
#   cpython   $PYTHON -m twisted sprout --scscf PORT --icscf 0 --bgcf 0 --mmtel 0 --http-port 0 ...
#   pypy      the same with $PYPY
#
# For each server: start it pinned to core SERVER_CPU and register the callees, find the highest
# call rate that passes (ramp: double from the server's start rate until a trial fails, then
# bisect to PRECISION_PCT), hold that rate for CONFIRM_S seconds (stepping down 15 % at most
# CONFIRM_TRIES times if it fails), then run one trial at the fixed COMMON_RATE; stop it. Both
# SIPp processes are pinned to SIPP_CPU. A trial of R calls/s sends R*DURATION calls and passes
# iff: the caller exits 0, every call succeeds, 0 failed, no timeout, no unexpected message,
# retransmissions (sent, and received from the server) and messages for dead/unknown calls each
# <= MAX_RETRANS (default 0), the rate was really achieved (wall time <= 1.1*DURATION+2 s), the
# server is alive and logged no error/traceback; and the callee saw every call succeed, with no
# timeout, no unexpected message and retransmissions and stray messages each <= MAX_RETRANS. The
# server's CPU is utime+stime of its whole process tree from /proc over the caller's run. After a
# failed trial the server is restarted (and the callees registered again); PyPy is warmed up
# after each start. Machinery: benchmarks/_bench_lib.sh (as bench_sprout_proxy.sh).
#
# env (defaults):
#   DURATION=10 seconds of load per trial       PRECISION_PCT=5   MAX_RETRANS=0
#   CONFIRM_S=30 (0: skip)  CONFIRM_TRIES=3     COMMON_RATE=300 (0: skip)
#   START_KAMAILIO=2000 START_CPYTHON=200 START_PYPY=300   MIN_RATE=50 MAX_RATE=40000
#   PORT_KAMAILIO=15060 PORT_CPYTHON=15062 PORT_PYPY=15064  SIPP_PORT=15080 CALLEE_PORT=15070
#   REG_PORT=15090 (all on 127.0.0.1)   CALLEES=1000 REG_RATE=200
#   SERVER_CPU=0 SIPP_CPU=1   PAUSE_MS=0 (sipp -d)   COOLDOWN=2   SIPP_BUFF=4194304
#   WARMUP_S=10 WARMUP_RATE=300 (PyPy only; WARMUP_ALL=1 warms every server)
#   WARMUP_SETTLE_S=34 (wait after a warm-up that left calls unfinished: the server's retransmissions)
#   PYTHON=.venv/bin/python PYPY=.venv-pypy/bin/python KAMAILIO=kamailio
#   SPROUT_ARGS='--log-format=text --log-level=warn' (twist options: errors and warnings logged)
#   CALLEE_SCENARIO=../shared/bench/scenarios/uas_callee.xml
#   OUT=bench-results/scscf-calls-STAMP (trials.log, per-trial sipp output, the registrations'
#   sipp output callee-reg-NAME-RUN.out, server logs server-NAME-RUN.log, subscribers.db)
# Prints per trial a line on stderr (and OUT/trials.log; the callee's figures at its end, sipp_cpu_pct
# is both SIPp processes'), a "# NAME callees registered" line per server start; at the end, one
# line per server
#   server=NAME calls_per_s=N cpu_s_per_1k=X sustained_cps=S sustained_cpu_s_per_1k=Y common_rate=R common_cpu_s_per_1k=Z
# (sustained_cps=0: none of the rates tried was held for CONFIRM_S) and the ratios to Kamailio
# (calls/s: <1 is slower; CPU per call: >1 costs more; NA where a figure is missing).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SERVERS=${*:-kamailio cpython pypy}
KNOWN_SERVERS="kamailio cpython pypy"
START_KAMAILIO=${START_KAMAILIO:-2000}
START_CPYTHON=${START_CPYTHON:-200}
START_PYPY=${START_PYPY:-300}
COMMON_RATE=${COMMON_RATE:-300}
WARMUP_RATE=${WARMUP_RATE:-300}
CALLEES=${CALLEES:-1000}
REG_RATE=${REG_RATE:-200}
REG_PORT=${REG_PORT:-15090}
SPROUT_ARGS=${SPROUT_ARGS:---log-format=text --log-level=warn}
OUT=${OUT:-$PWD/bench-results/scscf-calls-$(date +%Y%m%d-%H%M%S)}
# shellcheck source=benchmarks/_bench_lib.sh
. "$HERE/_bench_lib.sh"
# shellcheck source=benchmarks/_bench_callee.sh
. "$HERE/_bench_callee.sh"

launch_server() {  # launch_server NAME -> SPID, PORT (see _bench_lib.sh); registers the callees
	local reg_args
	case $1 in
	kamailio)
		PORT=${PORT_KAMAILIO:-15060}
		mkdir -p "$OUT/rt-$RUN"
		taskset -c "$SERVER_CPU" "$KAMAILIO" -f "$ROOT/../shared/bench/kamailio.cfg" -DD -E -n 1 -m 1024 \
			-M 16 -Y "$OUT/rt-$RUN" -A "LISTEN=udp:127.0.0.1:$PORT" >"$SLOG" 2>&1 &
		SPID=$!
		reg_args=(-sf "$ROOT/../shared/bench/scenarios/callee_register.xml" -inf "$OUT/callees.csv")
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
		reg_args=(-sf "$HERE/scenarios/callee_reg_digest.xml" -inf "$OUT/digest-users.csv")
		;;
	esac
	CALLER_ARGS=(-sf "$ROOT/../shared/bench/scenarios/uac_call.xml" -inf "$OUT/callees.csv" "127.0.0.1:$PORT")
	wait_bound "$SPID" "$PORT" || return 0  # start_server reports it
	register_callees "$1" "${reg_args[@]}"
}

# register_callees NAME SIPP_ARGS...: register the CALLEES users to the server just started, the
# Contact being the callee SIPp's address; on any failure stop the server (start_server then
# reports that it is not listening)
register_callees() {
	local name=$1 tag out stf rc succ fail retr
	shift
	tag=callee-reg-$name-$RUN
	out=$OUT/$tag.out stf=$OUT/$tag.stat.csv
	rm -f "$stf"
	taskset -c "$SIPP_CPU" sipp "$@" "127.0.0.1:$PORT" -key uas_hostport "127.0.0.1:$CALLEE_PORT" \
		-i 127.0.0.1 -p "$REG_PORT" -t u1 -r "$REG_RATE" -m "$CALLEES" -l "$CALLEES" \
		-buff_size "$SIPP_BUFF" -nostdin -timeout "$((CALLEES / REG_RATE + 30))s" -timeout_error \
		-trace_stat -stf "$stf" -fd 1 -trace_err -error_file "$OUT/$tag.errors.log" \
		-max_log_size 2000000 >"$out" 2>&1
	rc=$?
	succ=$(col "$stf" 'SuccessfulCall(C)')
	fail=$(col "$stf" 'FailedCall(C)')
	retr=$(col "$stf" 'Retransmissions(C)')
	echo "# $name callees registered: $succ of $CALLEES at $REG_RATE/s (rc=$rc failed=$fail retrans_sent=$retr) contact 127.0.0.1:$CALLEE_PORT" |
		tee -a "$LOG" >&2
	if [ "$rc" -ne 0 ] || [ "$succ" -ne "$CALLEES" ]; then
		echo "# $name: callee registration failed, see $out; stopping the server" | tee -a "$LOG" >&2
		stop_server
	fi
}


bench_init
# The callees: sprout's subscribers and the SIPp injection files (user;domain for the caller and
# Kamailio's registration, user;domain;[authentication ...] for sprout's)
PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} "$PYTHON" -m benchmarks.provision_users \
	"$OUT/subscribers.db" "$OUT/digest-users.csv" "$CALLEES" localhost || exit 2
awk -F';' 'NR==1 {print; next} {print $1 ";" $2}' "$OUT/digest-users.csv" >"$OUT/callees.csv"
bench_main
