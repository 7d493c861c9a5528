#!/usr/bin/env bash
# SIPp calls through `twistd sprout` as a record-routing proxy (the relay sproutlet,
# benchmarks/plugins/relay.py) over UDP on one core, and through Kamailio doing the same job
# (benchmarks/kamailio_proxy.cfg: record_route + t_relay), side by side in one run (issue #4).
#
# usage: benchmarks/bench_sprout_proxy.sh [SERVER ...]    SERVER: kamailio cpython pypy (default: all)
#
# One call: SIPp caller (127.0.0.1:SIPP_PORT) -> server (127.0.0.1:PORT) -> SIPp callee
# (127.0.0.1:CALLEE_PORT, ../shared/bench/scenarios/uas_callee.xml): INVITE with SDP, 100 from the
# server, 180 and 200 from the callee, ACK, pause -d, BYE, 200; ACK and BYE follow the Record-Route
# back through the server. The caller's Request-URI names the callee (sip:service@127.0.0.1:CALLEE_PORT)
# and its INVITE carries the preloaded Route <sip:127.0.0.1:PORT;lr> (RFC 3261 §8.1.2, an outbound
# proxy), while every packet is sent to the server (sipp -rsa). The Route is what brings the INVITE
# to the relay: sprout gives a request to a sproutlet only when its top Route or Request-URI names
# this node (spec §2.4), and a Request-URI naming another port of 127.0.0.1 is not this node. Kamailio
# removes the Route, as ../shared/bench/kamailio.cfg does. The caller scenario is written to
# OUT/caller.xml.
# Servers:
#   kamailio  $KAMAILIO -f benchmarks/kamailio_proxy.cfg, one UDP worker
#   cpython   $PYTHON -m twisted sprout ... --plugin-path benchmarks/plugins -N relay,port,PORT
#   pypy      the same with $PYPY
# (`python -m twisted` is `twist`, which runs in the foreground with no pidfile; PYTHONPATH=ROOT
# makes twisted/plugins/clearwater_plugins.py visible without an editable install; the built-in
# sproutlets' ports are set to 0: proxy only. Sprout's UDP sockets ask for a 4 MiB SO_RCVBUF, as
# TransportSettings.udp_receive_buffer does by default; Kamailio's maxbuffer is 4 MiB too.)
#
# For each server: start it pinned to core SERVER_CPU, find the highest call rate that passes (ramp:
# double from the server's start rate until a trial fails, then bisect to PRECISION_PCT), then hold
# that rate for CONFIRM_S seconds (stepping down 15 % at most CONFIRM_TRIES times if it fails), then
# run one trial at the fixed COMMON_RATE; stop it. Both SIPp processes are pinned to SIPP_CPU.
# A trial of R calls/s sends R*DURATION calls and passes iff: the caller exits 0, every call
# succeeds, 0 failed, no timeout, no unexpected message, retransmissions (sent, and received from
# the server) and messages for dead/unknown calls each <= MAX_RETRANS (default 0), the rate was
# really achieved (wall time <= 1.1*DURATION+2 s), the server is alive and logged no
# error/traceback; and the callee saw every call succeed, with no timeout, no unexpected message
# and retransmissions and stray messages each <= MAX_RETRANS. The server's CPU is utime+stime of its
# whole process tree from /proc over the caller's run. After a failed trial the server is restarted;
# PyPy is warmed up after each start. Machinery: benchmarks/_bench_lib.sh (as bench_echo_uas.sh).
#
# env (defaults):
#   DURATION=10 seconds of load per trial       PRECISION_PCT=5   MAX_RETRANS=0
#   CONFIRM_S=30 (0: skip)  CONFIRM_TRIES=3     COMMON_RATE=300 (0: skip)
#   START_KAMAILIO=2000 START_CPYTHON=200 START_PYPY=500   MIN_RATE=50 MAX_RATE=40000
#   PORT_KAMAILIO=15060 PORT_CPYTHON=15062 PORT_PYPY=15064  SIPP_PORT=15080 CALLEE_PORT=15070
#   (all on 127.0.0.1)   SERVER_CPU=0 SIPP_CPU=1   PAUSE_MS=0 (sipp -d)   COOLDOWN=2
#   SIPP_BUFF=4194304   WARMUP_S=10 WARMUP_RATE=500 (PyPy only; WARMUP_ALL=1 warms every server)
#   WARMUP_SETTLE_S=34 (wait after a warm-up that left calls unfinished: the server's retransmissions)
#   PYTHON=.venv/bin/python PYPY=.venv-pypy/bin/python KAMAILIO=kamailio
#   SPROUT_ARGS='--log-format=text --log-level=warn' (twist options: errors and warnings logged)
#   CALLEE_SCENARIO=../shared/bench/scenarios/uas_callee.xml
#   OUT=bench-results/sprout-proxy-STAMP (trials.log, per-trial sipp output, server logs)
# Prints per trial a line on stderr (and OUT/trials.log; the callee's figures at its end, sipp_cpu_pct
# is both SIPp processes'); at the end, one line per server
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
START_PYPY=${START_PYPY:-500}
COMMON_RATE=${COMMON_RATE:-300}
WARMUP_RATE=${WARMUP_RATE:-500}
SPROUT_ARGS=${SPROUT_ARGS:---log-format=text --log-level=warn}
OUT=${OUT:-$PWD/bench-results/sprout-proxy-$(date +%Y%m%d-%H%M%S)}
# shellcheck source=benchmarks/_bench_lib.sh
. "$HERE/_bench_lib.sh"
# shellcheck source=benchmarks/_bench_callee.sh
. "$HERE/_bench_callee.sh"

launch_server() {  # launch_server NAME -> SPID, PORT (see _bench_lib.sh)
	case $1 in
	kamailio)
		PORT=${PORT_KAMAILIO:-15060}
		mkdir -p "$OUT/rt-$RUN"
		taskset -c "$SERVER_CPU" "$KAMAILIO" -f "$HERE/kamailio_proxy.cfg" -DD -E -n 1 -m 1024 -M 16 \
			-Y "$OUT/rt-$RUN" -A "LISTEN=udp:127.0.0.1:$PORT" >"$SLOG" 2>&1 &
		;;
	cpython | pypy)
		local py=$PYTHON
		PORT=${PORT_CPYTHON:-15062}
		if [ "$1" = pypy ]; then py=$PYPY; PORT=${PORT_PYPY:-15064}; fi
		# shellcheck disable=SC2086  # SPROUT_ARGS is a list of arguments
		PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} taskset -c "$SERVER_CPU" "$py" -m twisted $SPROUT_ARGS sprout \
			--home-domain localhost --local-ip 127.0.0.1 --sip-port "$PORT" --http-port 0 \
			--scscf 0 --icscf 0 --bgcf 0 --mmtel 0 \
			--plugin-path "$HERE/plugins" -N "relay,port,$PORT" >"$SLOG" 2>&1 &
		;;
	esac
	SPID=$!
	CALLER_ARGS=(-sf "$OUT/caller.xml" "127.0.0.1:$CALLEE_PORT" -rsa "127.0.0.1:$PORT" -key proxy_port "$PORT")
}


bench_init
# The caller: SIPp's built-in uac with the preloaded Route in the INVITE (sipp -key proxy_port) and
# the dialog's route set (rrs) on ACK and BYE.
cat >"$OUT/caller.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- Written by benchmarks/bench_sprout_proxy.sh. The caller through a record-routing proxy:
     INVITE (Request-URI: the callee given as sipp's remote address; preloaded Route: the proxy,
     -key proxy_port), 100/180 optional, 200 -> ACK -> pause (-d) -> BYE -> 200, ACK and BYE to
     the callee's Contact by the Record-Route set. -rsa sends every packet to the proxy. -->
<scenario name="caller via proxy">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Route: <sip:127.0.0.1:[proxy_port];lr>
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: Performance Test
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true" rtd="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: Performance Test
      Content-Length: 0

    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: Performance Test
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
EOF
bench_main
