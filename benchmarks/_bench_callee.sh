# shellcheck shell=bash
# The SIPp callee of the call benchmarks (bench_sprout_proxy.sh, bench_scscf_calls.sh): the
# load_begin / load_end / stop_peers hooks of _bench_lib.sh. Sourced after it, never run.
# env: CALLEE_PORT=15070, CALLEE_SCENARIO=../shared/bench/scenarios/uas_callee.xml

CALLEE_PORT=${CALLEE_PORT:-15070}
CALLEE_SCENARIO=${CALLEE_SCENARIO:-$ROOT/../shared/bench/scenarios/uas_callee.xml}
[ -r "$CALLEE_SCENARIO" ] || { echo "no callee scenario $CALLEE_SCENARIO" >&2; exit 2; }
CALLEE_PID=

# load_begin TAG COUNT TIMEOUT_S: the callee, until it has handled COUNT calls
load_begin() {
	taskset -c "$SIPP_CPU" sipp -sf "$CALLEE_SCENARIO" -i 127.0.0.1 -p "$CALLEE_PORT" -t u1 -m "$2" \
		-buff_size "$SIPP_BUFF" -nostdin -timeout "$(($3 + 10))s" -trace_stat -stf "$OUT/$1.callee.stat.csv" \
		-fd 1 -trace_err -error_file "$OUT/$1.callee.errors.log" -max_log_size 2000000 \
		>"$OUT/$1.callee.out" 2>&1 &
	CALLEE_PID=$!
	wait_bound "$CALLEE_PID" "$CALLEE_PORT" || echo "# callee (pid $CALLEE_PID) did not bind udp 127.0.0.1:$CALLEE_PORT" >&2
}
# load_end TAG COUNT: wait for the callee (its last call's timewait is 2 s; 10 s at most, then stop
# it), check its figures, add its CPU to R_SIPPCPU
load_end() {
	local stf=$OUT/$1.callee.stat.csv c0 rc succ fail retr rretr tmo unexp stray
	[ -n "$CALLEE_PID" ] || return 0
	children_cpu; c0=$CH_CPU
	for _ in $(seq 100); do kill -0 "$CALLEE_PID" 2>/dev/null || break; sleep 0.1; done
	kill "$CALLEE_PID" 2>/dev/null
	wait "$CALLEE_PID"; rc=$?; CALLEE_PID=
	children_cpu
	R_SIPPCPU=$(awk -v r="$R_SIPPCPU" -v a="$c0" -v b="$CH_CPU" 'BEGIN{printf "%.2f", r+b-a}')
	succ=$(col "$stf" 'SuccessfulCall(C)')
	fail=$(col "$stf" 'FailedCall(C)')
	retr=$(col "$stf" 'Retransmissions(C)')  # 200s the callee had to send again
	stray=$(($(col "$stf" 'DeadCallMsgs(C)') + $(col "$stf" 'OutOfCallMsgs(C)')))
	read -r rretr tmo unexp < <(screen "$OUT/$1.callee.out")
	P_OK=1
	if [ "$rc" -ne 0 ] || [ "$succ" -ne "$2" ] || [ "$fail" -ne 0 ] || [ "$tmo" -ne 0 ] || [ "$unexp" -ne 0 ] ||
		[ "$retr" -gt "$MAX_RETRANS" ] || [ "$rretr" -gt "$MAX_RETRANS" ] || [ "$stray" -gt "$MAX_RETRANS" ]; then P_OK=0; fi
	P_EXTRA=" callee_pass=$P_OK callee_rc=$rc callee_ok=$succ callee_failed=$fail callee_timeouts=$tmo callee_unexpected=$unexp callee_retrans_sent=$retr callee_retrans_recv=$rretr callee_stray=$stray"
}
stop_peers() {
	if [ -n "$CALLEE_PID" ]; then kill "$CALLEE_PID" 2>/dev/null; wait "$CALLEE_PID" 2>/dev/null; fi
	CALLEE_PID=
}
