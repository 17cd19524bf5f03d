#!/usr/bin/env python3
"""Consistency checks of the deployment files that no off-the-shelf tool does.

Run by scripts/check-deploy.sh (with the tools venv's Python, which has
PyYAML); each subcommand prints what it checked and exits 1 on any problem:

  checks.py alerts      rules carry summary/description/runbook_url, runbook
                        anchors exist in deploy/OPERATIONS.md, every alert is tested
                        firing and not firing (their metric names: checked
                        against a live /metrics by gateway/tests/api/metrics.rs)
  checks.py runbooks    a real Prometheus with the external label runbook_base
                        renders every alert's runbook_url as an absolute link
  checks.py dashboard RULES_OUT
                        the Grafana dashboard: ids, datasource (metric names:
                        see alerts); writes every panel
                        query into RULES_OUT for `promtool check rules`
  checks.py compose     the compose file: services, depends_on, mounts,
                        volumes, ports, ${VAR} defaults, and the services named
                        by haproxy.cfg and prometheus.yml
  checks.py k8s RENDERED OVERLAY [--external-secret NAME ...]
                        one rendered overlay: kubernetes-validate --strict on
                        every document but the ServiceMonitor (a CRD it has no
                        schema for: checked here instead), then cross-references
                        (selectors, ports, ConfigMap/Secret names, drain timing)
  checks.py skips       every checkov skip in k8s/ and deploy/Dockerfile has a
                        reason and is listed in k8s/README.md
  checks.py dockerfile  deploy/Dockerfile and .dockerignore essentials
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = ROOT / "k8s"


class Problems:
    def __init__(self, what: str):
        self.what = what
        self.items: list[str] = []
        self.checked = 0

    def check(self, ok: bool, message: str) -> bool:
        self.checked += 1
        if not ok:
            self.items.append(message)
        return ok

    def finish(self) -> int:
        for item in self.items:
            print(f"  FAIL {self.what}: {item}")
        print(f"  {self.what}: {self.checked} checks, {len(self.items)} failed")
        return 1 if self.items else 0


def load_yaml(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def github_anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
        for explicit in re.findall(r'<a (?:name|id)="([^"]+)"', line):
            anchors.add(explicit)
    return anchors


# --------------------------------------------------------------------------
def cmd_alerts(_args) -> int:
    p = Problems("alerts")
    rules_doc = load_yaml(DEPLOY / "prometheus/alerts.yml")
    tests_doc = load_yaml(DEPLOY / "prometheus/alerts_test.yml")
    anchors = github_anchors((DEPLOY / "OPERATIONS.md").read_text(encoding="utf-8"))

    alerts = [r for g in rules_doc["groups"] for r in g["rules"] if "alert" in r]
    p.check(len(alerts) > 0, "no alert rules")
    firing: set[str] = set()
    quiet: set[str] = set()
    for t in tests_doc.get("tests", []):
        for case in t.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    for rule in alerts:
        name = rule["alert"]
        ann = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            p.check(bool(ann.get(key)), f"{name}: no {key} annotation")
        p.check(rule.get("labels", {}).get("severity") in ("critical", "warning"),
                f"{name}: severity label must be critical or warning")
        want = f"{RUNBOOK_BASE}#{name.lower()}"
        p.check(ann.get("runbook_url") == want, f"{name}: runbook_url should be {want}")
        p.check(name.lower() in anchors, f"{name}: deploy/OPERATIONS.md has no heading with anchor #{name.lower()}")
        p.check(name in firing, f"{name}: no test where it fires (alerts_test.yml)")
        p.check(name in quiet, f"{name}: no test where it must not fire (alerts_test.yml)")
        p.check('job="chat-gateway"' in rule["expr"], f'{name}: expression is not limited to job="chat-gateway"')
    tested = firing | quiet
    names = {r["alert"] for r in alerts}
    p.check(tested <= names, f"tests name alerts that do not exist: {sorted(tested - names)}")
    print(f"  alerts: {len(alerts)} rules, each tested firing and not firing, runbook anchors present")
    return p.finish()


# Every alert's runbook_url starts with this template: the Prometheus
# server's external label runbook_base, or the repository path without it.
RUNBOOK_BASE = '{{ or $externalLabels.runbook_base "deploy/OPERATIONS.md" }}'


def cmd_runbooks(_args) -> int:
    """A real Prometheus (Debian's, as promtool) loads alerts.yml with every
    expression replaced by vector(1), so that every alert fires, and the
    external label runbook_base set: each runbook_url must come out absolute.
    promtool 2.42's unit tests cannot set external labels, hence a server."""
    import shutil
    import socket
    import time
    import urllib.request

    p = Problems("runbook_url")
    prometheus = shutil.which("prometheus")
    if not p.check(prometheus is not None, "no prometheus binary (Debian package prometheus)"):
        return p.finish()
    base = "https://runbooks.example.com/chat-gateway/OPERATIONS.md"
    rules = load_yaml(DEPLOY / "prometheus/alerts.yml")
    names = []
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["expr"], rule["for"] = "vector(1)", "0s"
            names.append(rule["alert"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "alerts.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
        Path(tmp, "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"evaluation_interval": "1s", "external_labels": {"runbook_base": base}},
            "rule_files": ["alerts.yml"],
        }), encoding="utf-8")
        proc = subprocess.Popen([prometheus, f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/data",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            urls: dict[str, str] = {}
            deadline = time.monotonic() + 30
            while len(urls) < len(names) and time.monotonic() < deadline:
                time.sleep(0.5)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=2) as r:
                        alerts = json.load(r)["data"]["alerts"]
                except OSError:
                    continue
                urls = {a["labels"]["alertname"]: a["annotations"].get("runbook_url", "") for a in alerts}
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    for name in names:
        want = f"{base}#{name.lower()}"
        p.check(urls.get(name) == want, f"{name}: rendered {urls.get(name)!r}, want {want}")
    print(f"  runbook_url: {len(urls)} of {len(names)} alerts rendered by a Prometheus with runbook_base={base}")
    return p.finish()


# --------------------------------------------------------------------------
def iter_panels(panels):
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def cmd_dashboard(args) -> int:
    p = Problems("dashboard")
    out = Path(args[0])
    dash = json.loads((DEPLOY / "grafana/dashboards/chat-gateway.json").read_text(encoding="utf-8"))
    p.check(dash.get("uid") == "chat-gateway", "uid should be chat-gateway")
    ids = [panel["id"] for panel in iter_panels(dash["panels"])]
    p.check(len(ids) == len(set(ids)), "duplicate panel ids")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    p.check("datasource" in variables, "no datasource variable")
    ds_file = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    ds_uids = {d.get("uid") for d in ds_file["datasources"]}
    p.check(variables.get("datasource", {}).get("current", {}).get("value") in ds_uids,
            "the datasource variable's default is not the provisioned datasource's uid")

    exprs = []
    for panel in iter_panels(dash["panels"]):
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        p.check(bool(targets), f"panel {panel.get('title')!r} has no query")
        p.check(panel.get("datasource", {}).get("uid") == "${datasource}",
                f"panel {panel.get('title')!r} does not use the datasource variable")
        for t in targets:
            exprs.append((panel["title"], t["expr"]))
    text = "\n".join(e for _, e in exprs)
    # Metric names, both ways (each one the dashboard uses exists, each one
    # the gateway exposes has a panel), are checked against a live /metrics
    # by gateway/tests/api/metrics.rs, not against a list kept here.

    # Grafana variables replaced by values Prometheus accepts, then every query
    # becomes a recording rule so that promtool parses it.
    subst = {"$__rate_interval": "5m", "${job}": "chat-gateway", "$job": "chat-gateway",
             "${instance}": ".*", "$instance": ".*"}
    rules = []
    for i, (title, expr) in enumerate(exprs):
        for k, v in subst.items():
            expr = expr.replace(k, v)
        p.check("$" not in expr, f"panel {title!r}: unresolved variable in {expr}")
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    out.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}), encoding="utf-8")
    rows = sum(1 for panel in iter_panels(dash["panels"]) if panel.get("type") == "row")
    print(f"  dashboard: {len(ids) - rows} panels in {rows} rows, {len(exprs)} queries (written to {out.name} for promtool)")
    return p.finish()


# --------------------------------------------------------------------------
def compose_interpolations(text: str) -> list[tuple[str, str | None]]:
    out = []
    for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", text):
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


# Secrets compose must be given (`${VAR:?why}`): a default in a public
# repository is a known secret (anyone could mint tokens, or log in to Grafana).
REQUIRED_SECRETS = {"CHAT_JWT_SECRET", "GRAFANA_ADMIN_PASSWORD"}
# The one port compose publishes to the world: the chat entry on HAProxy.
PUBLIC_PORT = "8080"


def cmd_compose(_args) -> int:
    p = Problems("compose")
    path = DEPLOY / "docker-compose.yml"
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    services = doc.get("services") or {}
    p.check(bool(services), "no services")
    declared_volumes = set((doc.get("volumes") or {}).keys())

    for var, op, value in compose_interpolations(text):
        if var in REQUIRED_SECRETS:
            p.check(op == ":?" and bool(value), f"${{{var}}} must be required (${{{var}:?why}}), never defaulted")
        else:
            p.check(op in (":-", "-"), f"${{{var}}} has no default: `docker compose up` would need a .env")
    for var in REQUIRED_SECRETS:
        p.check(var in text, f"${{{var}}} is not used")
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (DEPLOY / "env.example").read_text(), re.M))
    for var in {v for v, _, _ in compose_interpolations(text)}:
        p.check(var in documented, f"${{{var}}} is not in deploy/env.example")

    host_ports = []
    for name, svc in services.items():
        p.check(isinstance(svc, dict) and ("image" in svc or "build" in svc), f"{name}: neither image nor build")
        build = svc.get("build")
        if build:
            ctx = (path.parent / (build if isinstance(build, str) else build.get("context", "."))).resolve()
            p.check(ctx.is_dir(), f"{name}: build context {ctx} missing")
            if isinstance(build, dict) and "dockerfile" in build:
                p.check((ctx / build["dockerfile"]).is_file(), f"{name}: dockerfile {build['dockerfile']} missing")
        deps = svc.get("depends_on") or {}
        for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, None) for d in deps)):
            p.check(dep in services, f"{name}: depends_on unknown service {dep}")
            if isinstance(cond, dict):
                c = cond.get("condition")
                p.check(c in ("service_started", "service_healthy", "service_completed_successfully"),
                        f"{name}: bad depends_on condition {c}")
                if c == "service_healthy" and dep in services:
                    p.check("healthcheck" in services[dep], f"{name}: waits for {dep} healthy but {dep} has no healthcheck")
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith((".", "/")):
                p.check((path.parent / src).exists(), f"{name}: mounted path {src} missing")
            elif src:
                p.check(src in declared_volumes, f"{name}: volume {src} not declared under volumes:")
        for port in svc.get("ports") or []:
            parts = str(port).split(":")
            host = parts[-2] if len(parts) >= 2 else parts[0]
            host_ports.append(host)
            if host != PUBLIC_PORT:
                p.check(len(parts) == 3 and parts[0] == "127.0.0.1",
                        f"{name}: port {port} must be bound to 127.0.0.1 (only {PUBLIC_PORT}, the chat, is public)")
    p.check(len(host_ports) == len(set(host_ports)), f"host port published twice: {host_ports}")

    gateways = {n: s for n, s in services.items() if "deploy/Dockerfile" in json.dumps(s.get("build", ""))}
    p.check(len(gateways) >= 3, f"expected three gateway services, found {sorted(gateways)}")
    envs = [s.get("environment") or {} for s in gateways.values()]
    for key in ("CHAT__AUTH__JWT_SECRET", "CHAT__REDIS__URL", "CHAT__DATABASE__URL"):
        values = {e.get(key) for e in envs}
        p.check(len(values) == 1 and None not in values, f"gateways disagree on (or miss) {key}: {values}")
    for n, s in gateways.items():
        env = s.get("environment") or {}
        m = re.match(r"(\d+)s$", str(s.get("stop_grace_period", "")))
        drain = int(env.get("CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS", 10))
        p.check(bool(m) and int(m.group(1)) > drain, f"{n}: stop_grace_period must exceed the {drain} s drain")
        redis_host = re.match(r"redis://([^:/]+)", env.get("CHAT__REDIS__URL", "") or "")
        p.check(bool(redis_host) and redis_host.group(1) in services, f"{n}: CHAT__REDIS__URL names no service")
        db_host = re.search(r"@([^:/]+)", env.get("CHAT__DATABASE__URL", "") or "")
        p.check(bool(db_host) and db_host.group(1) in services, f"{n}: CHAT__DATABASE__URL names no service")
    port = str(envs[0].get("CHAT__SERVER__PORT", "8080")) if envs else "8080"
    # Where /metrics and /readyz are served: the admin port when set.
    admin_port = str(envs[0].get("CHAT__SERVER__ADMIN_PORT", port)) if envs else port

    # Services named in the HAProxy and Prometheus configurations.
    cfg = (DEPLOY / "haproxy/haproxy.cfg").read_text(encoding="utf-8")
    servers = re.findall(r"^\s*server\s+\S+\s+([^:\s]+):(\d+)", cfg, re.M)
    p.check({h for h, _ in servers} == set(gateways), f"haproxy servers {servers} are not the gateway services")
    p.check(all(pt == port for _, pt in servers), "haproxy server port differs from CHAT__SERVER__PORT")
    p.check(re.search(r"^\s*balance\s+leastconn", cfg, re.M) is not None, "haproxy: balance leastconn missing")
    p.check(re.search(r"^\s*timeout\s+tunnel\s+", cfg, re.M) is not None, "haproxy: timeout tunnel missing")
    p.check(re.search(r"^\s*option\s+redispatch", cfg, re.M) is not None
            and re.search(r"^\s*retry-on\s+.*\bconn-failure\b.*\b503\b", cfg, re.M) is not None,
            "haproxy: a request refused by a draining node must be retried on another (retries, option redispatch, retry-on)")
    p.check("uri /readyz" in cfg, "haproxy: health check is not on /readyz")
    check_ports = re.findall(r"^\s*default-server\b.*\bcheck\s+port\s+(\d+)", cfg, re.M)
    p.check(check_ports == [admin_port] if admin_port != port else not check_ports,
            f"haproxy: health checks must go to the nodes' admin port {admin_port} (default-server check port), got {check_ports}")
    p.check(re.search(r"^\s*http-request\s+deny\b.*\{\s*path,url_dec\b.*/metrics", cfg, re.M) is not None,
            "haproxy: internal routes must be denied on the decoded path (path,url_dec), or /%6detrics gets through")
    log_formats = re.findall(r"^\s*log-format\s+(.*)$", cfg, re.M)
    p.check(bool(log_formats) and not re.search(r"^\s*option\s+httplog", cfg, re.M)
            and not any(re.search(r"%(\{[^}]*\})?(r|HU)\b", f) for f in log_formats),
            "haproxy: the access log must not contain the query string (?token= on /ws)")
    prom = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    p.check("chat-gateway" in jobs, "prometheus: no chat-gateway job")
    for job in jobs.values():
        for sc in job.get("static_configs", []):
            for target in sc.get("targets", []):
                host = target.split(":")[0]
                p.check(host == "localhost" or host in services, f"prometheus target {target}: no such service")
    gw_targets = {t for sc in jobs.get("chat-gateway", {}).get("static_configs", []) for t in sc["targets"]}
    p.check(gw_targets == {f"{g}:{admin_port}" for g in gateways},
            f"prometheus chat-gateway targets {gw_targets} != the gateway services' admin port {admin_port}")
    p.check(prom.get("rule_files") == ["alerts.yml"], "prometheus: rule_files should load alerts.yml")
    # Grafana provisioning paths match the mounts.
    prov = load_yaml(DEPLOY / "grafana/provisioning/dashboards/chat-gateway.yml")
    dash_path = prov["providers"][0]["options"]["path"]
    mounts = [v for v in services.get("grafana", {}).get("volumes", []) if isinstance(v, str)]
    p.check(any(v.split(":")[1] == dash_path for v in mounts), f"grafana: nothing mounted at {dash_path}")
    print(f"  compose: {len(services)} services ({', '.join(services)})")
    return p.finish()


# --------------------------------------------------------------------------
def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_scaledobject(p, so, names, overlay):
    """KEDA's ScaledObject: it scales our Deployment on connections per pod."""
    name = f"ScaledObject/{so['metadata']['name']}"
    p.check(so.get("apiVersion") == "keda.sh/v1alpha1", f"{name}: apiVersion")
    spec = so.get("spec", {})
    ref = spec.get("scaleTargetRef", {})
    p.check(("Deployment", ref.get("name")) in names and ref.get("kind", "Deployment") == "Deployment",
            f"{name}: scaleTargetRef {ref} is not a rendered Deployment")
    if overlay.startswith("prod"):
        p.check(spec.get("minReplicaCount", 0) >= 3, f"{name}: prod needs minReplicaCount >= 3")
    p.check(spec.get("maxReplicaCount", 0) >= spec.get("minReplicaCount", 0), f"{name}: max below min")
    triggers = spec.get("triggers", [])
    conns = [t for t in triggers if t.get("type") == "prometheus"
             and "chat_gateway_connections" in t.get("metadata", {}).get("query", "")]
    p.check(len(conns) == 1, f"{name}: no prometheus trigger on chat_gateway_connections")
    for t in conns:
        md = t["metadata"]
        p.check(t.get("metricType") == "AverageValue", f"{name}: the connections trigger must be AverageValue (per pod)")
        p.check('job="chat-gateway"' in md["query"], f"{name}: the query must select job=\"chat-gateway\"")
        threshold = int(md.get("threshold", "0"))
        p.check(0 < threshold < 10000, f"{name}: threshold {threshold} must be below the per-pod cap (10,000)")
        p.check(md.get("serverAddress", "").startswith("http"), f"{name}: serverAddress")


def check_httproute(p, route, services, routed, hosts):
    """Gateway API HTTPRoute: public paths only, to our Service, the
    WebSocket route without a request timeout."""
    name = f"HTTPRoute/{route['metadata']['name']}"
    p.check(route.get("apiVersion") == "gateway.networking.k8s.io/v1", f"{name}: apiVersion")
    spec = route.get("spec", {})
    p.check(bool(spec.get("parentRefs")), f"{name}: no parentRefs")
    hosts.update(spec.get("hostnames", []))
    for rule in spec.get("rules", []):
        paths = [m["path"]["value"] for m in rule.get("matches", []) if "path" in m]
        for m in rule.get("matches", []):
            path = m.get("path", {})
            everything = path.get("value") == "/" and path.get("type") != "Exact"
            p.check(not everything and path.get("value") not in ("/metrics", "/healthz", "/readyz"),
                    f"{name}: {path.get('value')} ({path.get('type')}) must not be public")
        routed.update(paths)
        for b in rule.get("backendRefs", []):
            svc = [s for s in services if s["metadata"]["name"] == b.get("name")]
            p.check(len(svc) == 1, f"{name}: backend Service {b.get('name')} missing")
            if svc:
                p.check(b.get("port") in {pt["port"] for pt in svc[0]["spec"]["ports"]},
                        f"{name}: Service port {b.get('port')} missing")
                p.check(b.get("port") != 8081, f"{name}: the admin port must not be routed")
        if "/ws" in paths:
            p.check(rule.get("timeouts", {}).get("request") == "0s",
                    f"{name}: the /ws rule needs timeouts.request: 0s (no request timeout on a WebSocket)")


def check_servicemonitor(p: Problems, sm: dict, services: list[dict]):
    """What the ServiceMonitor CRD requires, and that it finds our Service."""
    name = sm.get("metadata", {}).get("name")
    p.check(sm.get("apiVersion") == "monitoring.coreos.com/v1", f"ServiceMonitor {name}: apiVersion")
    allowed = {"apiVersion", "kind", "metadata", "spec"}
    p.check(set(sm) <= allowed, f"ServiceMonitor {name}: unexpected top-level fields {set(sm) - allowed}")
    spec = sm.get("spec") or {}
    p.check(set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
                          "podTargetLabels", "sampleLimit", "attachMetadata"},
            f"ServiceMonitor {name}: unexpected spec fields {sorted(spec)}")
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    p.check(bool(sel), f"ServiceMonitor {name}: no selector.matchLabels")
    eps = spec.get("endpoints") or []
    p.check(bool(eps), f"ServiceMonitor {name}: no endpoints")
    targets = [s for s in services if matches(sel, s["metadata"].get("labels", {}))
               and s["metadata"].get("namespace") == sm["metadata"].get("namespace")]
    p.check(len(targets) == 1, f"ServiceMonitor {name}: selects {len(targets)} Services, expected 1")
    for ep in eps:
        p.check(set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings",
                            "metricRelabelings", "honorLabels"}, f"ServiceMonitor {name}: unexpected endpoint fields {sorted(ep)}")
        for svc in targets:
            names = {pt.get("name") for pt in svc["spec"]["ports"]}
            p.check(ep.get("port") in names, f"ServiceMonitor {name}: port {ep.get('port')!r} not on Service {svc['metadata']['name']}")
        p.check(ep.get("path", "/metrics") == "/metrics", f"ServiceMonitor {name}: path should be /metrics")
        if targets:
            p.check(targets[0]["metadata"]["name"] == "chat-gateway",
                    "ServiceMonitor: the job label (= Service name) must be chat-gateway for alerts.yml")


def cmd_k8s(args) -> int:
    rendered, overlay = Path(args[0]), args[1]
    external = set()
    rest = args[2:]
    while rest:
        flag, value, *rest = rest
        if flag == "--external-secret":
            external.add(value)
    p = Problems(f"k8s/{overlay}")
    docs = [d for d in yaml.safe_load_all(rendered.read_text(encoding="utf-8")) if d]
    crd_kinds = ("ServiceMonitor", "ScaledObject", "HTTPRoute")
    crds = [d for d in docs if d.get("kind") in crd_kinds]
    core = [d for d in docs if d.get("kind") not in crd_kinds]

    # 1. Schema validation of every built-in kind, strictly.
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(core, f)
        core_file = f.name
    kv = Path(sys.executable).parent / "kubernetes-validate"
    res = subprocess.run([str(kv), "--strict", core_file], capture_output=True, text=True)
    lines = (res.stdout + res.stderr).strip().splitlines()
    passed = [l for l in lines if l.startswith("INFO") and " passed " in l]
    for l in lines:
        if not (l.startswith("INFO") and " passed " in l):
            print("   ", l.replace(core_file, f"<{overlay}>"))
    p.check(res.returncode == 0, f"kubernetes-validate --strict exited {res.returncode}")
    p.check(len(passed) == len(core), f"kubernetes-validate validated {len(passed)} of {len(core)} documents "
                                      "(a WARN means a kind without schema)")
    print(f"  kubernetes-validate --strict: {len(passed)}/{len(core)} documents valid against Kubernetes "
          f"{passed[0].rsplit(' ', 1)[-1] if passed else '?'}"
          + (f"; {len(crds)} custom resources ({', '.join(sorted({d['kind'] for d in crds}))}) checked below (no schema)" if crds else ""))

    # 2. Cross-references.
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    p.check(len(namespaces) == 1, f"objects in several namespaces: {namespaces}")
    ns_objs = [d["metadata"]["name"] for d in by_kind.get("Namespace", [])]
    p.check(ns_objs == list(namespaces), f"Namespace object {ns_objs} != namespace of the objects {namespaces}")
    services = by_kind.get("Service", [])
    for sm in by_kind.get("ServiceMonitor", []):
        check_servicemonitor(p, sm, services)

    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    gw = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == "chat-gateway"]
    p.check(len(gw) == 1, "no Deployment chat-gateway")
    for w in workloads:
        wname = f"{w['kind']}/{w['metadata']['name']}"
        tpl = w["spec"]["template"]
        labels = tpl["metadata"].get("labels", {})
        p.check(matches(w["spec"]["selector"]["matchLabels"], labels), f"{wname}: selector does not match its pods")
        pod = tpl["spec"]
        for vol in pod.get("volumes", []):
            if "secret" in vol:
                sn = vol["secret"]["secretName"]
                p.check(("Secret", sn) in names or sn in external, f"{wname}: Secret {sn} is neither rendered nor declared external")
            if "configMap" in vol:
                p.check(("ConfigMap", vol["configMap"]["name"]) in names, f"{wname}: ConfigMap {vol['configMap']['name']} missing")
        for c in pod["containers"]:
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef:
                    p.check(("ConfigMap", ef["configMapRef"]["name"]) in names, f"{wname}: ConfigMap {ef['configMapRef']['name']} missing")
                if "secretRef" in ef:
                    sn = ef["secretRef"]["name"]
                    p.check(("Secret", sn) in names or sn in external, f"{wname}: Secret {sn} missing")
        selected_by_np = any(matches(np["spec"]["podSelector"].get("matchLabels", {}), labels)
                             for np in by_kind.get("NetworkPolicy", []))
        p.check(selected_by_np, f"{wname}: no NetworkPolicy selects its pods")
    for svc in services:
        sel = svc["spec"].get("selector", {})
        backing = [w for w in workloads if matches(sel, w["spec"]["template"]["metadata"].get("labels", {}))]
        p.check(len(backing) == 1, f"Service/{svc['metadata']['name']}: selects {len(backing)} workloads")
        for port in svc["spec"]["ports"]:
            tp = port.get("targetPort")
            if isinstance(tp, str) and backing:
                cports = {cp.get("name") for c in backing[0]["spec"]["template"]["spec"]["containers"] for cp in c.get("ports", [])}
                p.check(tp in cports, f"Service/{svc['metadata']['name']}: targetPort {tp} not on the pods")
    routed, hosts = set(), set()
    for ing in by_kind.get("Ingress", []):
        iname = f"Ingress/{ing['metadata']['name']}"
        ann = ing["metadata"].get("annotations", {})
        for rule in ing["spec"]["rules"]:
            hosts.add(rule.get("host"))
            for path in rule["http"]["paths"]:
                routed.add(path["path"])
                # `/` exactly is the chat page; `/` as a prefix would publish everything.
                everything = path["path"] == "/" and path.get("pathType") != "Exact"
                p.check(not everything and path["path"] not in ("/metrics", "/healthz", "/readyz"),
                        f"{iname}: {path['path']} ({path.get('pathType')}) must not be public")
                b = path["backend"]["service"]
                svc = [s for s in services if s["metadata"]["name"] == b["name"]]
                p.check(len(svc) == 1, f"{iname}: backend Service {b['name']} missing")
                if svc and "name" in b["port"]:
                    p.check(b["port"]["name"] in {pt.get("name") for pt in svc[0]["spec"]["ports"]},
                            f"{iname}: Service port {b['port']['name']} missing")
                if path["path"] == "/ws":
                    for key in ("nginx.ingress.kubernetes.io/proxy-read-timeout",
                                "nginx.ingress.kubernetes.io/proxy-send-timeout"):
                        p.check(int(ann.get(key, "0")) >= 3600, f"{iname}: {key} should be >= 3600 for WebSockets")
                    p.check(ann.get("nginx.ingress.kubernetes.io/enable-access-log") == "false",
                            f"{iname}: the /ws access log would record ?token= JWTs")
    for route in by_kind.get("HTTPRoute", []):
        check_httproute(p, route, services, routed, hosts)
        # The Gateway's namespace is the one the NetworkPolicy lets in.
        for ref in route["spec"].get("parentRefs", []):
            peers = {peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                     for np in by_kind.get("NetworkPolicy", []) for rule in np["spec"].get("ingress", [])
                     for peer in rule.get("from", [])}
            p.check(ref.get("namespace") in peers,
                    f"HTTPRoute/{route['metadata']['name']}: the NetworkPolicy does not let in the Gateway's namespace {ref.get('namespace')}")
    if by_kind.get("Ingress") or by_kind.get("HTTPRoute"):
        p.check({"/ws", "/api", "/", "/web"} <= routed,
                f"Ingress routes {sorted(routed)}, expected /ws, /api and the page (/ and /web)")
        p.check(len(hosts) == 1, f"Ingresses disagree on the host: {hosts}")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in by_kind.get(kind, []):
            sel = obj["spec"].get("selector", obj["spec"].get("podSelector", {})).get("matchLabels", {})
            hits = [w for w in workloads if matches(sel, w["spec"]["template"]["metadata"].get("labels", {}))]
            p.check(bool(hits), f"{kind}/{obj['metadata']['name']}: selects no workload")
    scaled = by_kind.get("ScaledObject", [])
    for so in scaled:
        check_scaledobject(p, so, names, overlay)
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    p.check(not (hpas and scaled), "both an HPA and a KEDA ScaledObject scale the Deployment")
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        p.check((ref["kind"], ref["name"]) in names, f"HPA: target {ref['kind']}/{ref['name']} missing")
        p.check(hpa["spec"].get("minReplicas", 1) >= 3 if overlay.startswith("prod") else True, "HPA: prod needs >= 3 replicas")

    # The gateway's secrets file: TOML with the three secret settings, and
    # (where the Secret is rendered) addresses of Services that exist.
    for sec in by_kind.get("Secret", []):
        data = sec.get("data", {})
        if "secrets.toml" not in data:
            continue
        import base64
        import tomllib
        conf = tomllib.loads(base64.b64decode(data["secrets.toml"]).decode())
        jwt = conf.get("auth", {}).get("jwt_secret", "")
        db = conf.get("database", {}).get("url", "")
        redis = conf.get("redis", {}).get("url", "")
        p.check(len(jwt.encode()) >= 16, "secrets.toml: auth.jwt_secret shorter than 16 bytes")
        p.check(db.startswith(("postgres://", "postgresql://")), "secrets.toml: database.url is not postgres://")
        p.check(re.match(r"^rediss?(-cluster|-sentinel)?://", redis) is not None,
                "secrets.toml: redis.url is not redis:// (or rediss://, -cluster, -sentinel)")
        svc_names = {x["metadata"]["name"] for x in services}
        for url in (db, redis):
            host = re.sub(r"^[a-z-]+://([^@/]*@)?", "", url).split(":")[0].split("/")[0]
            p.check("." in host or host in svc_names, f"secrets.toml: {host} is no Service of the overlay")
        pw = re.search(r"://[^:]+:([^@]+)@", db)
        for other in by_kind.get("Secret", []):
            if "password" in other.get("data", {}) and pw:
                p.check(base64.b64decode(other["data"]["password"]).decode() == pw.group(1),
                        f"database.url's password differs from Secret {other['metadata']['name']}")

    if gw:
        d = gw[0]
        spec, pod = d["spec"], d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        if hpas or scaled:
            p.check("replicas" not in spec, "Deployment sets replicas although an autoscaler owns the count")
        else:
            p.check(1 <= spec.get("replicas", 1) <= 2 if overlay == "dev" else spec.get("replicas", 1) >= 3,
                    f"Deployment replicas {spec.get('replicas')} unexpected for {overlay}")
        ru = spec["strategy"]["rollingUpdate"]
        # What matters is that no capacity goes while pods are replaced.
        p.check(ru.get("maxUnavailable") == 0 and ru.get("maxSurge", 0) not in (0, "0", "0%"),
                "RollingUpdate must be maxUnavailable 0 with a surge")
        p.check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readinessProbe must be /readyz")
        p.check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "livenessProbe must be /healthz")
        p.check("startupProbe" in c, "no startupProbe")
        cm_names = [ef["configMapRef"]["name"] for ef in c.get("envFrom", []) if "configMapRef" in ef]
        cm = [x for x in by_kind.get("ConfigMap", []) if x["metadata"]["name"] in cm_names]
        settings = cm[0]["data"] if cm else {}
        drain = int(settings.get("CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS", 10))
        sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        p.check(sleep >= 1, "preStop sleep missing")
        p.check(grace >= sleep + drain + 5,
                f"terminationGracePeriodSeconds {grace} < preStop {sleep} + drain {drain} + 5 s margin")
        p.check(settings.get("CHAT__SERVER__HOST") == "0.0.0.0", "CHAT__SERVER__HOST must be 0.0.0.0 in the ConfigMap")
        secretish = [k for k in settings if any(s in k for s in ("JWT", "DATABASE__URL", "REDIS__URL"))]
        p.check(not secretish, f"secret settings in the ConfigMap: {secretish}")
        p.check(pod.get("automountServiceAccountToken") is False, "automountServiceAccountToken must be false")
        keys = {t["topologyKey"] for t in pod.get("topologySpreadConstraints", [])}
        p.check(keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, f"topology spread keys {keys}")
        ann = d["spec"]["template"]["metadata"].get("annotations", {})
        p.check(ann.get("prometheus.io/scrape") == "true", "no prometheus.io/scrape annotation")
    return p.finish()


# --------------------------------------------------------------------------
def cmd_skips(_args) -> int:
    p = Problems("checkov skips")
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for m in re.finditer(r"checkov\.io/skip\d+:\s*(CKV2?_[A-Z0-9_]+)=(.*)", path.read_text(encoding="utf-8")):
            found.append((path.relative_to(ROOT), m.group(1), m.group(2).strip()))
        for m in re.finditer(r"value:\s*(CKV2?_[A-Z0-9_]+)=(.*)", path.read_text(encoding="utf-8")):
            found.append((path.relative_to(ROOT), m.group(1), m.group(2).strip()))
    for m in re.finditer(r"checkov:skip=(CKV2?_[A-Z0-9_]+):?(.*)", (DEPLOY / "Dockerfile").read_text(encoding="utf-8")):
        found.append((Path("deploy/Dockerfile"), m.group(1), m.group(2).strip()))
    for path, check, reason in found:
        p.check(len(reason) >= 20, f"{path}: skip of {check} without a real reason")
        p.check(check in readme, f"{path}: skip of {check} is not listed in k8s/README.md")
    for path, check, _ in found:
        print(f"    skip {check:<12} {path}")
    print(f"  checkov skips: {len(found)} annotated, all with reasons listed in k8s/README.md" if not p.items else "")
    return p.finish()


# --------------------------------------------------------------------------
def cmd_dockerfile(_args) -> int:
    p = Problems("Dockerfile")
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.strip().startswith("#")]
    froms = [l for l in lines if l.upper().startswith("FROM ")]
    stages = {m.group(1) for l in froms if (m := re.search(r"\bAS\s+(\S+)", l, re.I))}
    p.check(len(froms) >= 2, "not multi-stage")
    p.check(any("rust:${RUST_VERSION}-" in l for l in froms) and re.search(r"^ARG RUST_VERSION=\d+\.\d+", text, re.M),
            "the builder must be an official rust image of a pinned version (ARG RUST_VERSION)")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    for l in froms:
        image = l.split()[1]
        if image in stages:
            continue
        name, _, digest = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image).partition("@")
        p.check(":" in name and not name.endswith(":latest"), f"base image {image}: no pinned tag")
        p.check(re.fullmatch(r"sha256:[0-9a-f]{64}", digest) is not None, f"base image {image}: not pinned by digest")
    final = froms[-1].split()[1]
    p.check(final.startswith("gcr.io/distroless/") and "nonroot" in final,
            f"runtime image {final}: a distroless nonroot image (no shell)")
    for l in lines:
        m = re.search(r"--from=(\S+)", l)
        if m:
            p.check(m.group(1) in stages, f"COPY --from={m.group(1)}: no such stage")
    p.check("cargo chef cook" in text, "no dependency-caching layer (cargo chef cook)")
    p.check("cargo build --release -p gateway --locked" in text, "the build must be cargo build --release -p gateway --locked")
    # The runtime stage: every instruction after the last FROM.
    last = max(i for i, l in enumerate(lines) if l.upper().startswith("FROM "))
    runtime = lines[last + 1:]
    last_stage = "\n".join(runtime)
    p.check(re.search(r"^USER\s+(65532|nonroot)", last_stage, re.M) is not None, "runtime USER is not non-root")
    p.check(re.search(r"^HEALTHCHECK\s", last_stage, re.M) is not None, "no HEALTHCHECK")
    p.check(re.search(r"^EXPOSE\s+8080\b", last_stage, re.M) is not None, "no EXPOSE 8080")
    p.check("CHAT__SERVER__HOST=0.0.0.0" in last_stage and "CHAT__LOG__FORMAT=json" in last_stage, "default ENV missing")
    p.check(not any(l.upper().startswith("RUN ") for l in runtime), "RUN in the runtime stage (it has no shell)")
    p.check(not re.search(r"\b(apt-get|apk|cargo|rustc|gcc)\b", last_stage), "build tools in the runtime stage")
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z]+)="([^"]*)"', last_stage))
    for key in ("title", "version", "revision", "source"):
        p.check(f"org.opencontainers.image.{key}" in labels, f"runtime stage lacks the OCI label org.opencontainers.image.{key}")
    crate = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "gateway/Cargo.toml").read_text(encoding="utf-8"), re.M)
    p.check(bool(crate) and labels.get("org.opencontainers.image.version") == crate.group(1),
            f"OCI version label {labels.get('org.opencontainers.image.version')!r} is not the gateway crate's version")
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in ("target/", "data/", ".git"):
        p.check(entry in ignore, f".dockerignore lacks {entry}")
    p.check("!deploy/healthcheck.rs" in ignore, ".dockerignore must keep deploy/healthcheck.rs")
    p.check(not any(e in ignore for e in ("*.md", "shared/", "gateway/", "migrations/", "Cargo.lock")),
            ".dockerignore drops build inputs (shared/README.md is compiled in)")
    print(f"  Dockerfile: {len(froms)} stages, base images pinned by tag and digest, runtime {final.split('@')[0]}")
    return p.finish()


COMMANDS = {
    "alerts": cmd_alerts,
    "runbooks": cmd_runbooks,
    "dashboard": cmd_dashboard,
    "compose": cmd_compose,
    "k8s": cmd_k8s,
    "skips": cmd_skips,
    "dockerfile": cmd_dockerfile,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
