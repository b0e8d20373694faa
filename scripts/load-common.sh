# Shared by scripts/load and scripts/soak (sourced, not run): starting a Chorus server for a
# SIPp load, reading its CPU, memory and descriptors from /proc, and reading SIPp's CSV
# statistics. The sourcing script sets `prog` (its name, for messages) and `work` (its
# scratch directory) and calls `load_init` before anything else.

die() { echo "$prog: $*" >&2; exit 2; }
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }

# Child processes to stop on exit; `work` is removed unless `keep_work` is set.
children=()
load_init() {
  trap load_cleanup EXIT
  trap 'exit 130' INT TERM
}
load_cleanup() {
  local p
  for p in "${children[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${children[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${keep_work:-}" ] || rm -rf "$work"
}

udp_listening() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }

# start_server CMD SIP_PORT: runs CMD (logging to $work/server.log) and waits until it
# listens on UDP SIP_PORT; sets `pid`.
start_server() {
  local cmd=$1 port=$2
  udp_listening "$port" && die "UDP port $port is already in use"
  bash -c "exec $cmd" >"$work/server.log" 2>&1 &
  pid=$!
  children+=("$pid")
  for _ in $(seq 50); do
    udp_listening "$port" && return 0
    kill -0 "$pid" 2>/dev/null || die "server exited at start: $(tail -5 "$work/server.log")"
    sleep 0.2
  done
  die "server not listening on UDP $port after 10 s"
}

# The server's resource use, from /proc/$pid.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime; the name field (2) may hold spaces, so cut after its ')'
  local stat
  stat=$(<"/proc/$pid/stat")
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))
}
cpu_split() { # "utime stime" in ticks
  local stat
  stat=$(<"/proc/$pid/stat")
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  echo "${f[11]} ${f[12]}"
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
fd_count() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
now() { date +%s.%N; }
alive() { kill -0 "$pid" 2>/dev/null || die "server (pid $pid) died: $(tail -5 "$work/server.log" 2>/dev/null)"; }

# last_value FILE COLUMN: the latest value of a column (a name, or *suffix) of a SIPp CSV
# statistics file (-trace_stat, -trace_counts); 0 before SIPp has written one.
last_value() {
  awk -F';' -v col="$2" 'NR == 1 {
      for (i = 1; i <= NF; i++) if ($i == col || (col ~ /^\*/ && $i ~ substr(col, 2) "$")) c = i
      next
    }
    {v = $c} END {print v + 0}' "$1" 2>/dev/null || echo 0
}

# numbers_csv CALLERS CONFERENCES FIRST > FILE: SIPp's -inf file spreading calls over numbers.
numbers_csv() {
  echo SEQUENTIAL
  for ((i = 0; i < $1; i++)); do echo "$(($3 + i % $2));"; done
}

# start_sipp SERVER MEDIA_PORT SIPP_ARGS...: SIPp callers running $scenario (from the
# directory SIPp runs in; default fixtures/sipp/uac_conference.xml; variants keep its name as
# a prefix) with the numbers of $work/numbers.csv, writing statistics to $work (sipp-stats.csv,
# every -fd seconds; the *_counts.csv per message); sets `sipp_pid`. SIPp runs in $work, where the
# scenario finds its audio through a fixtures link.
start_sipp() {
  local server=$1 media_port=$2
  shift 2
  rm -f "$work"/uac_conference_*_counts.csv "$work/sipp-stats.csv" # from an earlier run
  ln -sfn "$PWD/fixtures" "$work/fixtures"
  (cd "$work" && exec sipp -sf "${scenario:-fixtures/sipp/uac_conference.xml}" -inf numbers.csv \
    -i "${server%:*}" -mi "${server%:*}" -mp "$media_port" -nostdin \
    -trace_stat -stf sipp-stats.csv -trace_counts -trace_err -error_file sipp-errors.log \
    "$@" "$server" >"$work/sipp.log" 2>&1) &
  sipp_pid=$!
  children+=("$sipp_pid")
}
stat_col() { last_value "$work/sipp-stats.csv" "$1"; }

# free_port: a port free on 127.0.0.1 for UDP and TCP (and the two above it, for SIPp's
# RTP, RTCP and video), from the kernel's ephemeral range.
free_port() {
  local p
  for _ in $(seq 20); do
    p=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    ((p + 2 <= 65535)) || continue
    ss -Hantu "( sport >= :$p and sport <= :$((p + 2)) )" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
  die "no free port found"
}

# free_port_range SIZE: LO-HI, an even-aligned block of SIZE ports below the ephemeral range
# that no UDP socket uses now (the server's RTP ports).
free_port_range() {
  local size=$1 lo
  for _ in $(seq 50); do
    lo=$((20000 + (RANDOM % ((32000 - 20000 - size) / 2)) * 2))
    ss -Hanu "( sport >= :$lo and sport <= :$((lo + size - 1)) )" 2>/dev/null | grep -q . ||
      { echo "$lo-$((lo + size - 1))"; return; }
  done
  die "no free block of $size UDP ports in 20000-31999"
}
