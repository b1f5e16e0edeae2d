#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, broker+controller) on 127.0.0.1, without Docker.
# The jars come from Maven Central (kafka/pom.xml -> kafka/libs/, Maven cache in .kafka/m2), shared
# by every instance; an instance's state (pid, log, cluster id, server.properties, data) lives in
# its state dir, so several brokers can run side by side on different ports and state dirs.
#
# Usage: scripts/kafka.sh fetch|start|stop|kill|status|restart
#   kill: SIGKILL the broker (no clean shutdown; its data stays) — for fault tests.
#
# Environment:
#   LATTICE_KAFKA_PORT             client (PLAINTEXT) port      (default 9092)
#   LATTICE_KAFKA_CONTROLLER_PORT  KRaft controller port        (default 9093)
#   LATTICE_KAFKA_STATE_DIR        this instance's state dir    (default <repo>/.kafka)
#   LATTICE_KAFKA_DATA_DIR         log.dirs of the broker       (default <state dir>/data)
#   LATTICE_KAFKA_START_TIMEOUT_S  readiness bound for start    (default 60)
#   JAVA                           java executable              (default: java on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

KAFKA_DIR="$ROOT/kafka"
LIBS_DIR="$KAFKA_DIR/libs"
LIBS_STAMP="$LIBS_DIR/.complete"
POM="$KAFKA_DIR/pom.xml"
SHARED_DIR="$ROOT/.kafka"
M2_REPO="$SHARED_DIR/m2"
FETCH_LOCK="$SHARED_DIR/fetch.lock"
STATE_DIR="${LATTICE_KAFKA_STATE_DIR:-$SHARED_DIR}"
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
DATA_DIR="${LATTICE_KAFKA_DATA_DIR:-$STATE_DIR/data}"
PORT="${LATTICE_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${LATTICE_KAFKA_CONTROLLER_PORT:-9093}"
LOG_FILE="$STATE_DIR/broker.log"
PID_FILE="$STATE_DIR/broker.pid"
CLUSTER_ID_FILE="$STATE_DIR/cluster.id"
PROPS_FILE="$STATE_DIR/server.properties"
JAVA="${JAVA:-java}"

START_TIMEOUT_S="${LATTICE_KAFKA_START_TIMEOUT_S:-60}"
STOP_TIMEOUT_S=20

log() { echo "[kafka] $*"; }
err() { echo "[kafka] ERROR: $*" >&2; }

# ---------------------------------------------------------------------------- helpers

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

libs_complete() {
  [[ -f "$LIBS_STAMP" ]] && [[ "$(cat "$LIBS_STAMP")" == "$(pom_hash)" ]] &&
    compgen -G "$LIBS_DIR/kafka_2.13-*.jar" >/dev/null
}

# Prints the saved PID if that process is alive and is this instance's broker; fails otherwise.
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -cd '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  alive "$pid" || return 1
  # Guard against PID reuse: the process must be a kafka.Kafka JVM running this instance's
  # server.properties (never another instance's broker).
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$PROPS_FILE"; then
    return 1
  fi
  echo "$pid"
}

# Alive and not a zombie (a SIGKILLed broker whose parent has not reaped it yet is dead to us).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ ! -r "/proc/$1/stat" ]] || [[ "$(sed -e 's/^.*) //' "/proc/$1/stat" | cut -c1)" != Z ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
elapsed() { local ms=$(($(now_ms) - $1)); printf '%d.%01d s' $((ms / 1000)) $((ms % 1000 / 100)); }

log_lines() { if [[ -f "$LOG_FILE" ]]; then wc -l <"$LOG_FILE"; else echo 0; fi; }

print_log_tail() {
  if [[ -f "$LOG_FILE" ]]; then
    echo "[kafka] ---- last 40 lines of $LOG_FILE ----" >&2
    tail -n 40 "$LOG_FILE" >&2
    echo "[kafka] ----" >&2
  else
    err "no log file at $LOG_FILE"
  fi
}

check_port_number() {
  [[ "$2" =~ ^[0-9]+$ ]] && (($2 > 0 && $2 < 65536)) || { err "$1 must be a port number, got '$2'"; exit 2; }
}

# ---------------------------------------------------------------------------- commands

cmd_fetch() {
  if libs_complete; then
    log "jars already in $LIBS_DIR ($(compgen -G "$LIBS_DIR/*.jar" | wc -l) jars)"
    return 0
  fi
  # One fetch at a time (several instances may start at once on a new machine); the lock is
  # released when this script exits.
  mkdir -p "$SHARED_DIR"
  exec 9>"$FETCH_LOCK"
  flock 9
  if libs_complete; then
    log "jars fetched meanwhile by another run ($(compgen -G "$LIBS_DIR/*.jar" | wc -l) jars)"
    return 0
  fi
  command -v mvn >/dev/null || { err "mvn not found on PATH (needed to fetch the Kafka jars)"; exit 1; }
  log "fetching Kafka jars with Maven into $LIBS_DIR (cache: $M2_REPO) ..."
  rm -rf "$LIBS_DIR"
  mkdir -p "$M2_REPO"
  local t0=$SECONDS
  # (-q still emits bare ANSI reset codes on this Maven; strip them.)
  if ! mvn -q -B -Dstyle.color=never package -f "$POM" -Dmaven.repo.local="$M2_REPO" 2>&1 |
      sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d'; then
    err "mvn failed; jars not fetched"
    exit 1
  fi
  compgen -G "$LIBS_DIR/kafka_2.13-*.jar" >/dev/null || { err "mvn succeeded but no kafka_2.13 jar in $LIBS_DIR"; exit 1; }
  pom_hash >"$LIBS_STAMP"
  log "fetched $(compgen -G "$LIBS_DIR/*.jar" | wc -l) jars in $((SECONDS - t0)) s"
}

write_properties() {
  mkdir -p "$DATA_DIR"
  local data_abs
  data_abs="$(cd "$DATA_DIR" && pwd)"
  sed -e "s|@PORT@|$PORT|g" \
      -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@LOG_DIRS@|$data_abs|g" \
      "$KAFKA_DIR/server.properties.template" >"$PROPS_FILE"
}

format_storage() {
  local cluster_id=""
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    # Already formatted: keep its id (the saved one may belong to another data dir).
    cluster_id="$(sed -n 's/^cluster\.id=//p' "$DATA_DIR/meta.properties" | head -n1)"
  fi
  if [[ -z "$cluster_id" && -s "$CLUSTER_ID_FILE" ]]; then
    cluster_id="$(tr -d '[:space:]' <"$CLUSTER_ID_FILE")"
  fi
  if [[ -z "$cluster_id" ]]; then
    cluster_id="$("$JAVA" -cp "$LIBS_DIR/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 | tr -d '[:space:]')"
    [[ -n "$cluster_id" ]] || { err "could not generate a cluster id (kafka.tools.StorageTool random-uuid)"; exit 1; }
    log "new cluster id $cluster_id"
  fi
  echo "$cluster_id" >"$CLUSTER_ID_FILE"
  local out
  if ! out="$("$JAVA" -cp "$LIBS_DIR/*" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS_FILE" --ignore-formatted 2>&1)"; then
    err "formatting $DATA_DIR failed:"
    echo "$out" >&2
    exit 1
  fi
}

cmd_start() {
  check_port_number LATTICE_KAFKA_PORT "$PORT"
  check_port_number LATTICE_KAFKA_CONTROLLER_PORT "$CONTROLLER_PORT"
  mkdir -p "$STATE_DIR"

  local pid
  if pid="$(broker_pid)"; then
    if port_open "$PORT"; then
      log "already running (pid $pid, 127.0.0.1:$PORT)"
      return 0
    fi
    err "broker process $pid is alive but 127.0.0.1:$PORT is not open (still starting, or stuck?); run '$0 stop' first"
    exit 1
  fi
  rm -f "$PID_FILE"
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      err "127.0.0.1:$p is already in use by another process (not our broker); set LATTICE_KAFKA_PORT / LATTICE_KAFKA_CONTROLLER_PORT"
      exit 1
    fi
  done

  libs_complete || cmd_fetch
  command -v "$JAVA" >/dev/null || { err "java not found (need Java 17+)"; exit 1; }

  write_properties
  format_storage

  local before t0
  t0="$(now_ms)"
  before="$(log_lines)"
  echo "[kafka] ==== start $(date -u +%Y-%m-%dT%H:%M:%SZ) port=$PORT controller=$CONTROLLER_PORT data=$DATA_DIR ====" >>"$LOG_FILE"
  before=$((before + 1))

  cd "$ROOT"
  nohup "$JAVA" -Xmx512m -cp "$LIBS_DIR/*" \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    kafka.Kafka "$PROPS_FILE" >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "starting broker (pid $pid) on 127.0.0.1:$PORT, log $LOG_FILE"

  local deadline=$((SECONDS + START_TIMEOUT_S))
  while :; do
    if tail -n "+$((before + 1))" "$LOG_FILE" | grep -q 'Kafka Server started'; then
      log "ready on 127.0.0.1:$PORT after $(elapsed "$t0") (pid $pid)"
      return 0
    fi
    if ! alive "$pid"; then
      local rc=0
      wait "$pid" 2>/dev/null || rc=$?
      rm -f "$PID_FILE"
      err "broker exited during startup (exit code $rc)"
      print_log_tail
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      err "broker not ready after ${START_TIMEOUT_S} s; stopping it"
      print_log_tail
      kill -TERM "$pid" 2>/dev/null || true
      sleep 2
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      exit 1
    fi
    sleep 0.25
  done
}

cmd_stop() {
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping broker (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT_S)) t0
  t0="$(now_ms)"
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "still alive after ${STOP_TIMEOUT_S} s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.25
  done
  rm -f "$PID_FILE"
  log "stopped after $(elapsed "$t0")"
}

cmd_kill() {
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  while alive "$pid"; do
    ((SECONDS < deadline)) || { err "broker $pid still alive ${STOP_TIMEOUT_S} s after SIGKILL"; exit 1; }
    sleep 0.05
  done
  rm -f "$PID_FILE"
  log "killed broker (pid $pid) with SIGKILL"
}

cmd_status() {
  local pid
  if pid="$(broker_pid)"; then
    if port_open "$PORT"; then
      log "running (pid $pid, 127.0.0.1:$PORT)"
    else
      log "running (pid $pid), but 127.0.0.1:$PORT is not open (starting or stuck)"
    fi
    return 0
  fi
  log "not running"
  return 1
}

usage() {
  echo "usage: $0 fetch|start|stop|kill|status|restart" >&2
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  status) cmd_status ;;
  restart) cmd_stop; cmd_start ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
