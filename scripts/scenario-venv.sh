# The Python of the cluster scenarios (scripts/e2e-cluster.py,
# rolling_restart.py, soak.py): a venv with the pinned `websockets` their
# shared client (scripts/chat_scenario.py) is built on, created once per
# machine under ${CHAT_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/chat-gateway}
# (the cache directory of scripts/k6-smoke.sh). Source it, then call
# `ensure_scenario_python`: it sets SCENARIO_PYTHON to the venv's python.
# Installs python3-venv with apt-get (as root) when `python3 -m venv` lacks it.

WEBSOCKETS_VERSION=17.4
SCENARIO_VENV=${CHAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chat-gateway}/scenarios-websockets-$WEBSOCKETS_VERSION

ensure_scenario_python() {
    SCENARIO_PYTHON=$SCENARIO_VENV/bin/python
    # .complete is written last: an interrupted install is redone, not trusted.
    if [ -f "$SCENARIO_VENV/.complete" ] && "$SCENARIO_PYTHON" -c 'import websockets' 2>/dev/null; then
        return 0
    fi
    echo "==> [$(date +%H:%M:%S)] installing websockets $WEBSOCKETS_VERSION into $SCENARIO_VENV (first run on this machine)"
    rm -rf "$SCENARIO_VENV"
    mkdir -p "$(dirname "$SCENARIO_VENV")"
    if ! python3 -m venv "$SCENARIO_VENV" >/dev/null 2>&1; then
        # Debian's python3 ships venv's pip bootstrap separately (python3-venv).
        rm -rf "$SCENARIO_VENV"
        if [ "$(id -u)" != 0 ]; then
            echo "python3 -m venv failed; install python3-venv (needs root)" >&2
            return 1
        fi
        echo "==> [$(date +%H:%M:%S)] python3 -m venv failed; installing python3-venv with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$SCENARIO_VENV" || { echo "cannot create a venv in $SCENARIO_VENV" >&2; return 1; }
    fi
    "$SCENARIO_VENV/bin/pip" install --quiet --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION" \
        || { echo "pip install websockets==$WEBSOCKETS_VERSION failed" >&2; return 1; }
    touch "$SCENARIO_VENV/.complete"
}
