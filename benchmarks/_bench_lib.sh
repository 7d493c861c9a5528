# shellcheck shell=bash
# The machinery shared by the SIPp benchmarks (bench_echo_uas.sh, bench_sprout_proxy.sh): start a
# server pinned to SERVER_CPU, drive it with SIPp pinned to SIPP_CPU, take the server's CPU from
# /proc, find the highest call rate that passes (ramp, bisect, confirm), run the common-rate trial,
# print the summary lines and the ratios to Kamailio. Sourced, never run.
#
# The sourcing script sets, before calling bench_main:
#   SERVERS KNOWN_SERVERS (space-separated names; "kamailio" is the reference of the ratios)
#   START_<NAME> for each server (the ramp's first rate), OUT (results directory)
#   launch_server NAME   (function) start the server in the background, pinned to SERVER_CPU
#                        (taskset), output to $SLOG; set SPID (its pid) and PORT (udp 127.0.0.1)
#   CALLER_ARGS          (array, may use $PORT) the scenario and address arguments of the caller
#                        SIPp; the rest (-i -p -t -r -m -d -timeout ...) is added here
# and may define the hooks (the caller's figures are in R_* when they run):
#   load_begin TAG COUNT TIMEOUT_S   before the caller starts (e.g. start a SIPp callee)
#   load_end TAG COUNT    after the caller ended and the server's figures were taken: set P_OK
#                         (0: the trial fails), P_EXTRA (" key=value..." appended to the trial
#                         line) and add the CPU of other SIPp processes to R_SIPPCPU
#   stop_peers            kill what load_begin started (on exit)
# Every setting below can be given in the environment; the sourcing script may give other defaults
# by setting them before it sources this file.
set -u
HERE=${HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
ROOT=${ROOT:-$(cd "$HERE/.." && pwd)}
DURATION=${DURATION:-10}
PRECISION_PCT=${PRECISION_PCT:-5}
MAX_RETRANS=${MAX_RETRANS:-0}
CONFIRM_S=${CONFIRM_S:-30}
CONFIRM_TRIES=${CONFIRM_TRIES:-3}
COMMON_RATE=${COMMON_RATE:-500}
MIN_RATE=${MIN_RATE:-50}
MAX_RATE=${MAX_RATE:-40000}
SERVER_CPU=${SERVER_CPU:-0}
SIPP_CPU=${SIPP_CPU:-1}
SIPP_PORT=${SIPP_PORT:-15080}
PAUSE_MS=${PAUSE_MS:-0}
COOLDOWN=${COOLDOWN:-2}
SIPP_BUFF=${SIPP_BUFF:-4194304}
WARMUP_S=${WARMUP_S:-10}
WARMUP_RATE=${WARMUP_RATE:-1000}
WARMUP_ALL=${WARMUP_ALL:-0}
WARMUP_SETTLE_S=${WARMUP_SETTLE_S:-34}  # after a warm-up that left calls unfinished
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
PYPY=${PYPY:-$ROOT/.venv-pypy/bin/python}
# PyPy's young generation (read at start-up; CPython and Kamailio ignore it). The default, sized
# to the CPU cache, promotes what a SIP transaction holds for a few milliseconds to the old
# generation: with 16 MB the S-CSCF's PyPy spends a quarter less CPU (GC time 3.7 s instead of
# 7.3 s over 30 s of 400 registrations/s) with the same heap. See docs/performance.md.
PYPY_GC_NURSERY=${PYPY_GC_NURSERY:-16MB}
export PYPY_GC_NURSERY
KAMAILIO=${KAMAILIO:-kamailio}

SPID= SIPP_PID= NAME= PORT= SLOG= RUN=0 LOG= SUMMARY=
P_OK=1 P_EXTRA=

# bench_init: check the server names and SIPp, create OUT, install the exit trap
bench_init() {
	local s
	for s in $SERVERS; do
		case " $KNOWN_SERVERS " in *" $s "*) ;; *) echo "unknown server '$s' ($KNOWN_SERVERS)" >&2; exit 2 ;; esac
	done
	command -v sipp >/dev/null || { echo "sipp not found (apt-get install sip-tester)" >&2; exit 2; }
	mkdir -p "$OUT"
	LOG=$OUT/trials.log
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

stop_server() {
	if [ -n "$SPID" ]; then
		kill "$SPID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SPID" 2>/dev/null
		wait "$SPID" 2>/dev/null
	fi
	SPID=
}
cleanup() {
	if [ -n "$SIPP_PID" ]; then kill "$SIPP_PID" 2>/dev/null; wait "$SIPP_PID" 2>/dev/null; fi
	SIPP_PID=
	if declare -F stop_peers >/dev/null; then stop_peers; fi
	stop_server
}

ticks() {  # utime+stime (clock ticks) of PID and its live descendants (../shared/bench/cpu_ticks.py)
	python3 - "$1" <<'EOF'
import os, sys
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])
root, procs = int(sys.argv[1]), {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            procs[int(d)] = stat(d)
        except (OSError, ValueError):
            pass
tree, changed = {root}, True
while changed:
    changed = False
    for pid, (ppid, _) in procs.items():
        if ppid in tree and pid not in tree:
            tree.add(pid); changed = True
print(sum(procs[p][1] for p in tree if p in procs))
EOF
}
udp_drops() { awk '/^Udp: [0-9]/{print $6; exit}' /proc/net/snmp; }  # RcvbufErrors, host-wide
rss_mb() { awk '/^VmRSS/{printf "%.0f", $2/1024}' "/proc/$SPID/status" 2>/dev/null || echo 0; }
errors() { grep -ciE 'traceback|error|unhandled|exception|CRITICAL' "$SLOG" 2>/dev/null || true; }
children_cpu() {  # CH_CPU= user+sys seconds of this shell's reaped children (`times`, 2nd line)
	times >"$OUT/.times"  # not in a $(...) subshell: that one has no children of its own
	CH_CPU=$(awk 'NR==2{s=0; for(i=1;i<=2;i++){split($i,a,"m"); s+=a[1]*60+a[2]} printf "%.2f", s}' "$OUT/.times")
}
wait_idle() {  # COOLDOWN s, then until the server uses < 5 % CPU over 1 s (at most 60 s)
	sleep "$COOLDOWN"
	local a b
	a=$(ticks "$SPID")
	for _ in $(seq 60); do
		sleep 1; b=$(ticks "$SPID")
		[ $((b - a)) -le 5 ] && return 0
		a=$b
	done
}
# wait_bound PID PORT: 0 once PID itself has bound udp PORT (<= 30 s), 1 if it never does or exits
wait_bound() {
	for _ in $(seq 60); do
		ss -Hlunp "sport = :$2" | grep -q "pid=$1," && return 0
		kill -0 "$1" 2>/dev/null || break
		sleep 0.5
	done
	ss -Hlunp "sport = :$2" | grep -q "pid=$1,"
}

start_server() {  # start_server NAME -> SPID, PORT, SLOG; 0 when it listens on udp 127.0.0.1:PORT
	NAME=$1; RUN=$((RUN + 1))
	SLOG=$OUT/server-$NAME-$RUN.log
	launch_server "$NAME"
	if ! wait_bound "$SPID" "$PORT"; then
		echo "$NAME (pid $SPID) is not listening on udp 127.0.0.1:$PORT; log $SLOG:" >&2
		tail -20 "$SLOG" >&2
		stop_server
		return 1
	fi
	sleep 0.5
	if [ "$NAME" = pypy ] || [ "$WARMUP_ALL" = 1 ]; then
		sipp_run "warmup-$NAME-$RUN" "$WARMUP_RATE" $((WARMUP_RATE * WARMUP_S))
		load_finish "warmup-$NAME-$RUN" $((WARMUP_RATE * WARMUP_S))
		echo "# $NAME warm-up: $WARMUP_S s at $WARMUP_RATE calls/s (ok=$R_SUCC failed=$R_FAIL rc=$R_RC)" | tee -a "$LOG" >&2
		if [ "$R_RC" -ne 0 ] || [ "$R_SUCC" -ne $((WARMUP_RATE * WARMUP_S)) ] || [ "$P_OK" -ne 1 ]; then
			# calls left unfinished: the server retransmits to SIPp's ports until its transactions
			# time out (64*T1 = 32 s), which the next trial would count as stray messages
			echo "# $NAME warm-up incomplete: waiting ${WARMUP_SETTLE_S}s for its transactions to end" | tee -a "$LOG" >&2
			sleep "$WARMUP_SETTLE_S"
		fi
		wait_idle
	fi
	return 0
}

col() {  # col STATFILE COLUMN -> value of COLUMN in the last row of a sipp -trace_stat csv
	[ -s "$1" ] || { echo -1; return; }
	awk -F';' -v n="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==n) c=i} END{print (c ? $c : -1)}' "$1"
}
ms() { awk -v t="$1" 'BEGIN{n=split(t,a,":"); if(n<4){print -1; exit} printf "%.1f", (a[1]*3600+a[2]*60+a[3])*1000+a[4]/1000}'; }
# screen OUTFILE -> "RETRANS_RECEIVED TIMEOUTS UNEXPECTED" from the last message table of SIPp's
# final screen (retransmissions received, timeouts, unexpected messages). A line is
# "NAME ARROW counts" in a scenario that starts by sending (received: <--) and "ARROW NAME counts"
# in one that starts by receiving (received: -->); counts: messages, retrans, timeout, unexpected.
screen() {
	awk '
		/Messages +Retrans/ {rr=0; to=0; un=0}
		/(-->|<--)/ && !/Pause/ {
			k=0
			if ($1 ~ /--/) recv=($1 ~ />$/); else recv=($2 ~ /^</)
			for (i=3;i<=NF;i++) if ($i ~ /^[0-9]+$/) v[++k]=$i
			if (recv) rr+=v[2]; to+=v[3]; if (recv) un+=v[4]; delete v
		}
		END {print rr+0, to+0, un+0}' "$1"
}

# sipp_run TAG RATE COUNT -> R_* (rc, successes, failures, retransmissions, stray messages...)
sipp_run() {
	local tag=$1 rate=$2 count=$3 stf=$OUT/$1.stat.csv c0 c1 t0 t1
	local tmo=$((count / rate + PAUSE_MS / 1000 + 10))  # a lost call fails the trial anyway
	rm -f "$stf"
	if declare -F load_begin >/dev/null; then load_begin "$tag" "$count" "$tmo"; fi
	children_cpu; c0=$CH_CPU; t0=$(date +%s.%N)
	taskset -c "$SIPP_CPU" sipp "${CALLER_ARGS[@]}" -i 127.0.0.1 -p "$SIPP_PORT" -t u1 \
		-r "$rate" -rp 1000 -m "$count" -l "$count" -d "$PAUSE_MS" -buff_size "$SIPP_BUFF" -nostdin \
		-timeout "${tmo}s" -timeout_error -trace_stat -stf "$stf" -fd 1 \
		-trace_err -error_file "$OUT/$tag.errors.log" -max_log_size 2000000 >"$OUT/$tag.out" 2>&1 &
	SIPP_PID=$!
	wait "$SIPP_PID"; R_RC=$?; SIPP_PID=
	t1=$(date +%s.%N); children_cpu; c1=$CH_CPU
	R_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
	R_SIPPCPU=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}')
	R_SUCC=$(col "$stf" 'SuccessfulCall(C)')
	R_FAIL=$(col "$stf" 'FailedCall(C)')
	R_RETR=$(col "$stf" 'Retransmissions(C)')  # requests SIPp had to send again
	R_STRAY=$(($(col "$stf" 'DeadCallMsgs(C)') + $(col "$stf" 'OutOfCallMsgs(C)')))
	R_RT=$(ms "$(col "$stf" 'ResponseTime1(C)')")  # mean INVITE -> 200, ms
	read -r R_RRETR R_TMO R_UNEXP < <(screen "$OUT/$tag.out")
}
# load_finish TAG COUNT -> P_OK P_EXTRA (the load_end hook's, if the script has one)
load_finish() {
	P_OK=1 P_EXTRA=
	if declare -F load_end >/dev/null; then load_end "$1" "$2"; fi
}

# trial RATE [SECONDS] -> 0 if it passes; logs one line; sets T_CPU1K T_OK
trial() {
	local rate=$1 secs=${2:-$DURATION} count c0 c1 d0 d1 e0 e1 ok=1 late alive=1 tag
	count=$((rate * secs))
	tag=$NAME-$rate-${secs}s-$(date +%H%M%S)
	e0=$(errors); d0=$(udp_drops); c0=$(ticks "$SPID")
	sipp_run "$tag" "$rate" "$count"
	c1=$(ticks "$SPID"); d1=$(udp_drops); e1=$(errors)
	load_finish "$tag" "$count"
	kill -0 "$SPID" 2>/dev/null || alive=0
	late=$(awk -v w="$R_WALL" -v d="$secs" -v p="$PAUSE_MS" 'BEGIN{print (w > (d+p/1000)*1.1+2) ? 1 : 0}')
	if [ "$R_RC" -ne 0 ] || [ "$R_SUCC" -ne "$count" ] || [ "$R_FAIL" -ne 0 ] || [ "$R_TMO" -ne 0 ] ||
		[ "$R_UNEXP" -ne 0 ] || [ "$R_RETR" -gt "$MAX_RETRANS" ] || [ "$R_RRETR" -gt "$MAX_RETRANS" ] ||
		[ "$R_STRAY" -gt "$MAX_RETRANS" ] || [ "$late" -ne 0 ] || [ "$alive" -ne 1 ] || [ "$e1" -ne "$e0" ] ||
		[ "$P_OK" -ne 1 ]; then ok=0; fi
	T_OK=$R_SUCC
	T_CPU1K=$(awk -v t=$((c1 - c0)) -v n="$R_SUCC" 'BEGIN{printf "%.3f", (n>0 ? t/100/n*1000 : 0)}')
	printf '%s server=%s rate=%s secs=%s calls=%s pass=%s rc=%s ok=%s failed=%s timeouts=%s unexpected=%s retrans_sent=%s retrans_recv=%s stray=%s late=%s wall_s=%s server_cpu_s=%s server_cpu_pct=%s cpu_s_per_1k=%s invite_rt_ms=%s sipp_cpu_pct=%s server_rss_mb=%s server_errors=%s udp_rcvbuf_drops=%s%s\n' \
		"$(date +%FT%T)" "$NAME" "$rate" "$secs" "$count" "$ok" "$R_RC" "$R_SUCC" "$R_FAIL" "$R_TMO" "$R_UNEXP" \
		"$R_RETR" "$R_RRETR" "$R_STRAY" "$late" "$R_WALL" "$(awk -v t=$((c1 - c0)) 'BEGIN{print t/100}')" \
		"$(awk -v t=$((c1 - c0)) -v w="$R_WALL" 'BEGIN{printf "%.0f", t/w}')" "$T_CPU1K" "$R_RT" \
		"$(awk -v c="$R_SIPPCPU" -v w="$R_WALL" 'BEGIN{printf "%.0f", c*100/w}')" "$(rss_mb)" $((e1 - e0)) $((d1 - d0)) \
		"$P_EXTRA" | tee -a "$LOG" >&2
	if [ "$ok" -ne 1 ]; then  # start afresh: a stateful server goes on retransmitting for 32 s
		stop_server
		start_server "$NAME" || return 2
	else
		wait_idle
	fi
	[ "$ok" -eq 1 ]
}

# search NAME START -> S_BEST S_CPU
search() {
	local r=$2 lo=0 hi=0 mid
	S_BEST=0 S_CPU=NA
	while :; do  # ramp: double on success, halve on failure, until bracketed
		if trial "$r"; then
			lo=$r; S_CPU=$T_CPU1K
			[ "$hi" -ne 0 ] && break
			[ "$r" -ge "$MAX_RATE" ] && break
			r=$((r * 2)); [ "$r" -gt "$MAX_RATE" ] && r=$MAX_RATE
		else
			[ -n "$SPID" ] || return 1
			hi=$r
			[ "$lo" -ne 0 ] && break
			[ "$r" -le "$MIN_RATE" ] && break
			r=$((r / 2)); [ "$r" -lt "$MIN_RATE" ] && r=$MIN_RATE
		fi
	done
	while [ "$lo" -gt 0 ] && [ "$hi" -gt 0 ] && [ $(((hi - lo) * 100)) -gt $((PRECISION_PCT * lo)) ]; do
		mid=$(((lo + hi) / 2))
		if trial "$mid"; then lo=$mid; S_CPU=$T_CPU1K; else
			[ -n "$SPID" ] || return 1
			hi=$mid
		fi
	done
	S_BEST=$lo
}

get() {  # get SERVER KEY -> value from that server's summary line
	awk -v s="$1" -v k="$2" '$1=="server="s{for(i=1;i<=NF;i++){split($i,kv,"="); if(kv[1]==k) v=kv[2]}} END{print v}' "$SUMMARY"
}

# bench_main: for each server: start, search, confirm, common rate, stop; then summary and ratios
bench_main() {
	local s start_var best cpu sus suscpu comcpu r line k a b
	echo "# $(date +%FT%T) servers='$SERVERS' duration=${DURATION}s confirm=${CONFIRM_S}s common_rate=$COMMON_RATE pause=${PAUSE_MS}ms server_cpu=$SERVER_CPU sipp_cpu=$SIPP_CPU $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1) out=$OUT" | tee -a "$LOG" >&2
	SUMMARY=$OUT/summary.txt
	: >"$SUMMARY"
	for s in $SERVERS; do
		start_var=START_${s^^}
		best=0 cpu=NA sus=0 suscpu=NA comcpu=NA
		if start_server "$s"; then
			search "$s" "${!start_var}"
			best=$S_BEST cpu=$S_CPU
			if [ -n "$SPID" ] && [ "$CONFIRM_S" -gt 0 ] && [ "$best" -gt 0 ]; then
				r=$best
				for _ in $(seq $((CONFIRM_TRIES + 1))); do
					if trial "$r" "$CONFIRM_S"; then sus=$r suscpu=$T_CPU1K; break; fi
					[ -n "$SPID" ] || break
					r=$((r * 85 / 100))
				done
			fi
			if [ -n "$SPID" ] && [ "$COMMON_RATE" -gt 0 ]; then
				trial "$COMMON_RATE" && comcpu=$T_CPU1K || comcpu="${T_CPU1K}(failed)"
			fi
			stop_server
		fi
		echo "server=$s calls_per_s=$best cpu_s_per_1k=$cpu sustained_cps=$sus sustained_cpu_s_per_1k=$suscpu common_rate=$COMMON_RATE common_cpu_s_per_1k=$comcpu" |
			tee -a "$SUMMARY" | tee -a "$LOG" >&2
	done

	cat "$SUMMARY"
	if grep -q '^server=kamailio ' "$SUMMARY"; then
		for s in $SERVERS; do
			[ "$s" = kamailio ] && continue
			line="ratio $s/kamailio:"
			for k in calls_per_s cpu_s_per_1k sustained_cps sustained_cpu_s_per_1k common_cpu_s_per_1k; do
				a=$(get kamailio "$k"); b=$(get "$s" "$k")
				line="$line $k=$(awk -v a="$a" -v b="$b" 'BEGIN{print (a+0>0 && b ~ /^[0-9.]+$/ && b+0>0) ? sprintf("%.3f", b/a) : "NA"}')"
			done
			echo "$line"
		done
	fi
	echo "# results in $OUT" >&2
}
