#!/usr/bin/env python3
"""deploy/check/check_deploy.py: static checks of Hoheit's deployment files (run by tests/it/deploy.rs).

    check_deploy.py compose   compose.yaml against the compose-spec JSON schema, and its agreement
                              with deploy/hoheit.env, the Dockerfile, Prometheus, Mosquitto (local
                              and compose), the Grafana dashboard and the code's metric names; the
                              MQTT logins init-secrets.sh makes (run in a temporary directory)
    check_deploy.py helm      helm lint --strict; helm template with the default values, with the
                              simulator on and with ci/external-values.yaml; every object validated
                              against the Kubernetes JSON schemas (kubernetes-validate, strict,
                              KUBERNETES_VERSION), plus the structural checks listed in
                              helm/hoheit/README.md

Both check that no shipped Mosquitto configuration (local, compose, chart) admits anonymous
clients: each loads the dynamic security plugin with the file `hoheit-admin mqtt-config --dynsec`
renders, ingest and the simulator log in as different users, and the broker admin's login is the
same wherever it is used.

Needs PyYAML, jsonschema and kubernetes-validate (deploy/local/hoheit tools installs them) and,
for `helm`, the helm binary in $HELM. Prints one line per failed check and exits 1 if any failed.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED_ENV = REPO / "deploy" / "hoheit.env"
COMPOSE_DIR = REPO / "deploy" / "compose"
CHART = REPO / "helm" / "hoheit"
# The file name of the dynamic security plugin's configuration in every set-up, and the plugin.
DYNSEC_FILE = "dynamic-security.json"
DYNSEC_PLUGIN = "mosquitto_dynamic_security.so"
# The uid the eclipse-mosquitto image runs the broker as once it has dropped root; it must own the
# plugin's file (mode 0600), which the plugin rewrites on every change.
MOSQUITTO_UID = 1883
KUBERNETES_VERSION = os.environ.get("KUBERNETES_VERSION", "1.30.0")

failures: list[str] = []


def check(ok: bool, message: str) -> bool:
    if not ok:
        failures.append(message)
    return ok


def shared_env() -> dict[str, str]:
    """deploy/hoheit.env, which must hold plain KEY=VALUE lines only."""
    values = {}
    for number, line in enumerate(SHARED_ENV.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=([^\s\"'$]*)", line)
        if check(match is not None, f"hoheit.env:{number}: not a plain KEY=VALUE line: {line!r}"):
            check(match[1] not in values, f"hoheit.env: {match[1]} is set twice")
            values[match[1]] = match[2]
    return values


def code_metric_names() -> set[str]:
    names = set()
    for path in (REPO / "services").rglob("*.rs"):
        names.update(re.findall(r'"(hoheit_[a-z0-9_]+)"', path.read_text()))
    return names


def mosquitto_settings(text: str) -> dict[str, str]:
    settings = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#") and parts[0] != "log_type":
            settings[parts[0]] = " ".join(parts[1:])
    return settings


def env_lines(text: str) -> dict[str, str]:
    """KEY=VALUE lines (a HOHEIT_CONFIG file), comments and blank lines skipped."""
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value
    return values


# --------------------------------------------------------------------------------- MQTT broker auth


def check_broker_auth(label: str, text: str) -> str | None:
    """A Mosquitto configuration refuses anonymous clients and takes its users from the dynamic
    security plugin, whose file (rendered by `hoheit-admin mqtt-config --dynsec`) it names; returns
    that file's directory."""
    settings = mosquitto_settings(text)
    check(
        re.search(r"^\s*allow_anonymous\s+true\b", text, re.M) is None and settings.get("allow_anonymous") == "false",
        f"{label}: anonymous clients are not refused (allow_anonymous must be false)",
    )
    check(settings.get("per_listener_settings", "false") == "false", f"{label}: per_listener_settings would bypass the global auth settings")
    plugin, config = settings.get("plugin", ""), settings.get("plugin_opt_config_file", "")
    ok = check(plugin.endswith(f"/{DYNSEC_PLUGIN}") or plugin == "@DYNSEC_PLUGIN@", f"{label}: plugin {plugin!r} is not Mosquitto's {DYNSEC_PLUGIN}")
    ok &= check(config.endswith(f"/{DYNSEC_FILE}"), f"{label}: plugin_opt_config_file {config!r} is not a {DYNSEC_FILE}")
    return config.rsplit("/", 1)[0] if ok else None


def check_local_broker() -> None:
    """The local set-up: its template reads the plugin's file from $MOSQ_DIR/auth, which the
    script renders (and the development user's password and ACL files beside it)."""
    directory = check_broker_auth("deploy/local/mosquitto.conf.in", (REPO / "deploy" / "local" / "mosquitto.conf.in").read_text())
    check(directory in (None, "@MOSQ_DIR@/auth"), f"deploy/local/mosquitto.conf.in: the broker's files are in {directory}, not @MOSQ_DIR@/auth")
    script = (REPO / "deploy" / "local" / "hoheit").read_text()
    check("mqtt-config" in script and "--dynsec" in script, "deploy/local/hoheit does not render the plugin's file with hoheit-admin mqtt-config --dynsec")
    check("HOHEIT_BROKER_ADMIN_USERNAME" in script, "deploy/local/hoheit does not give the services the broker admin's login")


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """A compose service's volumes: target -> (source, read-only)."""
    found = {}
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        found[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","))
    return found


def check_compose_broker(services: dict, dockerfile: str) -> None:
    """Mosquitto refuses anonymous clients and reads the plugin's file the one-shot service running
    `hoheit-admin mqtt-config --dynsec` wrote into a volume they share, before it starts."""
    directory = check_broker_auth("compose mosquitto.conf", (COMPOSE_DIR / "mosquitto" / "mosquitto.conf").read_text())
    broker = services.get("mosquitto", {})
    renderers = [n for n, s in services.items() if "mqtt-config" in (s.get("command") or [])]
    if not check(len(renderers) == 1, f"compose: {len(renderers)} services run hoheit-admin mqtt-config, not one") or directory is None:
        return
    name = renderers[0]
    renderer = services[name]
    command = renderer["command"]
    check(str(renderer.get("entrypoint", [""])[0]).endswith("/hoheit-admin"), f"compose: {name} does not run hoheit-admin")
    target = renderer.get("build", {}).get("target")
    stage = dockerfile.split(f"AS {target}\n", 1)[-1].split("\nFROM ", 1)[0]
    check(target is not None and "/hoheit-admin /usr/local/bin/hoheit-admin" in stage, f"compose: {name} builds target {target!r}, which has no hoheit-admin")
    file = command[command.index("--dynsec") + 1] if "--dynsec" in command[:-1] else ""
    out = file.rsplit("/", 1)[0] if file.endswith(f"/{DYNSEC_FILE}") else None
    source, read_only = mounts(broker).get(directory, (None, True))
    check(source is not None and not read_only, f"compose: mosquitto does not mount its file's directory {directory} writable (the plugin saves changes)")
    check(out is not None and mounts(renderer).get(out) == (source, False), f"compose: {name} does not write into the volume mosquitto reads ({source} at {directory})")
    owner = command[command.index("--owner") + 1] if "--owner" in command[:-1] else str(renderer.get("user", ""))
    check(owner.split(":")[0] == str(MOSQUITTO_UID), f"compose: {name} does not give the files to Mosquitto's uid {MOSQUITTO_UID}")
    if renderer.get("cap_drop") == ["ALL"] and "--owner" in command:
        check("CHOWN" in renderer.get("cap_add", []), f"compose: {name} may not chown (cap_add CHOWN)")
    condition = lambda service, dependency: ((service.get("depends_on") or {}).get(dependency) or {}).get("condition")
    check(condition(broker, name) == "service_completed_successfully", f"compose: mosquitto does not wait for {name} to complete")
    check(condition(renderer, "timescaledb") == "service_healthy", f"compose: {name} does not wait for the database")
    probe = " ".join(broker.get("healthcheck", {}).get("test", []))
    check("not authorised" in probe or " -u " in probe, "compose: mosquitto's healthcheck publishes anonymously (the broker must refuse that)")


def check_compose_logins(services: dict) -> None:
    """init-secrets.sh, run twice in a temporary directory, gives ingest and the simulator
    different MQTT logins, mqtt-config both, the others none, and keeps the passwords."""
    runs = []
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(2):
            result = subprocess.run(
                ["bash", str(COMPOSE_DIR / "init-secrets.sh")],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOHEIT_SECRETS_DIR": directory,
                     "HOHEIT_DATABASE_USER": "hoheit", "HOHEIT_DATABASE_NAME": "hoheit", "HOHEIT_PG_PORT": "5432"},
                capture_output=True, text=True,
            )
            if not check(result.returncode == 0, f"init-secrets.sh failed: {result.stderr.strip()}"):
                return
            configs = {}
            for name, service in services.items():
                path = (service.get("environment") or {}).get("HOHEIT_CONFIG")
                if path is None:
                    continue
                if check(path.startswith("/run/secrets/hoheit/") and "secrets" in {s for s, _ in mounts(service).values()},
                         f"compose: {name}'s HOHEIT_CONFIG {path} is not in the volume secrets"):
                    file = Path(directory) / path.removeprefix("/run/secrets/hoheit/")
                    if check(file.is_file(), f"compose: {name}'s HOHEIT_CONFIG {path} is not made by init-secrets.sh"):
                        configs[name] = env_lines(file.read_text())
            runs.append(configs)
    first, second = runs
    check(first == second, "init-secrets.sh changes secrets on a second run")
    login = lambda name, prefix="HOHEIT_MQTT": (first.get(name, {}).get(f"{prefix}_USERNAME"), first.get(name, {}).get(f"{prefix}_PASSWORD"))
    ingest, simulator = login("hoheit-ingest"), login("hoheit-simulator")
    check(all(ingest) and all(simulator), "compose: ingest or the simulator has no MQTT login")
    check(ingest[0] != simulator[0] and ingest[1] != simulator[1], "compose: the simulator logs in to MQTT as ingest's user")
    check(login("mqtt-config") == ingest, "compose: mqtt-config's ingest login is not ingest's")
    check(login("mqtt-config", "HOHEIT_MQTT_GATEWAY") == simulator, "compose: mqtt-config's gateway login is not the simulator's")
    check("HOHEIT_DATABASE_URL" in first.get("mqtt-config", {}), "compose: mqtt-config has no database URL")
    admin = login("mqtt-config", "HOHEIT_BROKER_ADMIN")
    check(all(admin), "compose: mqtt-config has no broker admin login")
    for name in ("hoheit-api", "hoheit-ingest"):
        check(login(name, "HOHEIT_BROKER_ADMIN") == admin, f"compose: {name}'s broker admin login is not mqtt-config's")
    check(admin[0] not in (ingest[0], simulator[0]) and admin[1] not in (ingest[1], simulator[1]), "compose: the broker admin shares a login")
    for name in ("hoheit-api", "hoheit-writer", "hoheit-alerts"):
        check("HOHEIT_MQTT_PASSWORD" not in first.get(name, {}), f"compose: {name} gets an MQTT password it does not need")
    # The environment wins over a HOHEIT_CONFIG file: a login set there would be everyone's.
    is_login = lambda key: key.startswith(("HOHEIT_MQTT_", "HOHEIT_BROKER_ADMIN_")) and key.endswith(("_USERNAME", "_PASSWORD"))
    check(not any(map(is_login, shared_env())), "hoheit.env sets an MQTT login, which would override every service's own")
    for name, service in services.items():
        for key in filter(is_login, service.get("environment") or {}):
            check(False, f"compose: {name} sets {key} outside its HOHEIT_CONFIG file")


# ------------------------------------------------------------------------------------------ compose


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, $VAR; $$ is a literal $."""

    def substitute(match: re.Match) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[3]
        if name in env:
            return env[name]
        check(match[2] is not None, f"compose.yaml: ${{{name}}} has neither a value in hoheit.env nor a default")
        return (match[2] or "")[2:]

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)", substitute, text)


def check_compose() -> None:
    env = shared_env()
    raw = (COMPOSE_DIR / "compose.yaml").read_text()
    document = yaml.safe_load(raw)
    schema = json.loads((COMPOSE_DIR / "schema" / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        check(False, f"compose.yaml: schema: {'/'.join(map(str, error.absolute_path))}: {error.message}")

    dot_env = COMPOSE_DIR / ".env"
    check(
        dot_env.is_symlink() and os.readlink(dot_env) == "../hoheit.env",
        "deploy/compose/.env must be a link to ../hoheit.env (compose's interpolation reads it)",
    )

    compose = yaml.safe_load(interpolate(raw, env))
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}) or {}:
            check(dependency in services, f"compose: {name} depends on unknown service {dependency}")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                check((COMPOSE_DIR / source).exists(), f"compose: {name} mounts missing {source}")
            else:
                check(source in compose.get("volumes", {}), f"compose: {name} mounts undeclared volume {source}")

    dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M))
    check(re.search(r"^USER 10001:10001$", dockerfile, re.M) is not None, "Dockerfile: the runtime user is not 10001")

    ports = {
        "hoheit-api": ("HOHEIT_API_LISTEN", env["HOHEIT_API_PORT"]),
        "hoheit-ingest": ("HOHEIT_INGEST_OPS_LISTEN", env["HOHEIT_INGEST_OPS_PORT"]),
        "hoheit-writer": ("HOHEIT_WRITER_OPS_LISTEN", env["HOHEIT_WRITER_OPS_PORT"]),
        "hoheit-alerts": ("HOHEIT_ALERTS_OPS_LISTEN", env["HOHEIT_ALERTS_OPS_PORT"]),
    }
    for name in ["hoheit-api", "hoheit-ingest", "hoheit-writer", "hoheit-alerts", "hoheit-simulator"]:
        if not check(name in services, f"compose: service {name} is missing"):
            continue
        service = services[name]
        check(service.get("env_file") == "../hoheit.env", f"compose: {name} does not read ../hoheit.env")
        target = service.get("build", {}).get("target")
        check(target in targets, f"compose: {name} builds Dockerfile target {target!r}, which does not exist")
        environment = service.get("environment", {})
        for key in environment:
            check(key not in env or key.endswith("_PORT"), f"compose: {name} overrides {key} of hoheit.env")
        for key, value in environment.items():
            for host in re.findall(r"https?://([a-z0-9-]+)[:/]", str(value)):
                check(host in services, f"compose: {name}: {key} points at unknown service {host}")
        for key in ("HOHEIT_MQTT_HOST",):
            if key in environment:
                check(environment[key] in services, f"compose: {name}: {key} is not a service")
        if "HOHEIT_KAFKA_BOOTSTRAP" in environment:
            host, port = environment["HOHEIT_KAFKA_BOOTSTRAP"].split(":")
            check(host in services and port == env["HOHEIT_KAFKA_PORT"], f"compose: {name}: Kafka address")
        if name in ports:
            key, port = ports[name]
            check(environment.get(key) == f"0.0.0.0:{port}", f"compose: {name}: {key} is not 0.0.0.0:{port}")
            published = [str(p) for p in service.get("ports", [])]
            check(
                f"{env['HOHEIT_PUBLISH_ADDRESS']}:{port}:{port}" in published,
                f"compose: {name} does not publish {port} on {env['HOHEIT_PUBLISH_ADDRESS']}",
            )
            stage = dockerfile.split(f"AS {target}\n", 1)[-1].split("\nFROM ", 1)[0]
            check(f"EXPOSE {port}\n" in stage, f"Dockerfile: target {target} does not expose {port}")
            if name == "hoheit-ingest":
                doors = env["HOHEIT_INGEST_HTTP_PORT"]
                check(environment.get("HOHEIT_INGEST_HTTP_LISTEN") == f"0.0.0.0:{doors}", f"compose: ingest's HTTP doors are not on 0.0.0.0:{doors}")
                check(f"{env['HOHEIT_PUBLISH_ADDRESS']}:{doors}:{doors}" in published, f"compose: ingest does not publish its HTTP doors on {doors}")
                check(f"EXPOSE {doors}\n" in stage, f"Dockerfile: ingest does not expose its HTTP doors ({doors})")
            check(f'"{port}", "/readyz"' in stage, f"Dockerfile: target {target} does not check /readyz on {port}")

    prometheus = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    scraped = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    for name, (_, port) in ports.items():
        check(f"{name}:{port}" in scraped, f"prometheus.yml does not scrape {name}:{port}")
    for target in scraped:
        host = target.split(":")[0]
        check(host == "localhost" or host in services, f"prometheus.yml scrapes unknown service {host}")

    local = mosquitto_settings((REPO / "deploy" / "local" / "mosquitto.conf.in").read_text())
    demo = mosquitto_settings((COMPOSE_DIR / "mosquitto" / "mosquitto.conf").read_text())
    for key in ["persistence", "autosave_interval", "max_queued_messages", "max_queued_bytes", "max_inflight_messages", "max_packet_size"]:
        check(key in demo and demo.get(key) == local.get(key), f"mosquitto.conf: {key} differs from the local set-up")
    check(demo.get("listener", "").split()[0] == env["HOHEIT_MQTT_PORT"], "mosquitto.conf: listener port is not HOHEIT_MQTT_PORT")
    check_local_broker()
    check_compose_broker(services, dockerfile)
    check_compose_logins(services)

    dashboard = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "hoheit.json").read_text())
    known = code_metric_names()
    datasources = yaml.safe_load((COMPOSE_DIR / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    check(len(panels) >= 10, "dashboard: fewer than 10 panels")
    for panel in panels:
        check(panel["datasource"]["uid"] in uids, f"dashboard: panel {panel['title']!r} uses an unknown data source")
        for target in panel["targets"]:
            for metric in re.findall(r"\b(hoheit_[a-z0-9_]+)", target["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", metric)
                check(base in known, f"dashboard: {panel['title']!r} uses {metric}, which no service records")


# ------------------------------------------------------------------------------------------ helm


def helm(*args: str) -> str:
    result = subprocess.run([os.environ.get("HELM", "helm"), *args], capture_output=True, text=True)
    check(result.returncode == 0, f"helm {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_render(label: str, objects: list[dict], env: dict[str, str]) -> None:
    import kubernetes_validate

    for o in objects:
        where = f"{label}: {o.get('kind')}/{o.get('metadata', {}).get('name')}"
        if o.get("apiVersion") == "monitoring.coreos.com/v1":
            check(o["kind"] == "ServiceMonitor", f"{where}: unexpected kind")
            continue
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except Exception as error:  # the library's ValidationError and SchemaNotFoundError
            check(False, f"{where}: {str(error).splitlines()[0]}")

    pods = {}  # name -> (kind, pod template)
    for kind in ("Deployment", "StatefulSet"):
        for name, o in by_kind(objects, kind).items():
            template = o["spec"]["template"]
            check(selects(o["spec"]["selector"]["matchLabels"], template["metadata"]["labels"]), f"{label}: {name}: selector does not match its pods")
            pods[name] = (kind, template)
    config_maps = by_kind(objects, "ConfigMap")
    secrets = by_kind(objects, "Secret")
    expected_ports = {"api": int(env["HOHEIT_API_PORT"]), "ingest": int(env["HOHEIT_INGEST_OPS_PORT"]), "writer": int(env["HOHEIT_WRITER_OPS_PORT"]), "alerts": int(env["HOHEIT_ALERTS_OPS_PORT"])}

    for name, deployment in by_kind(objects, "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        check(spec.get("enableServiceLinks") is False, f"{label}: {name}: service links are on")
        check(spec.get("automountServiceAccountToken") is False, f"{label}: {name}: mounts a service account token")
        check(spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{label}: {name}: may run as root")
        for container in spec["containers"]:
            where = f"{label}: {name}/{container['name']}"
            resources = container.get("resources", {})
            check("cpu" in resources.get("requests", {}) and "memory" in resources.get("limits", {}), f"{where}: requests or memory limit missing")
            security = container.get("securityContext", {})
            check(security.get("readOnlyRootFilesystem") is True and security.get("allowPrivilegeEscalation") is False, f"{where}: container security context")
            for source in container.get("envFrom", []):
                check(source["configMapRef"]["name"] in config_maps, f"{where}: envFrom unknown ConfigMap")
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] in secrets:
                    check(ref["key"] in secrets[ref["name"]].get("data", {}), f"{where}: {variable['name']} refers to a missing key {ref['key']}")
            if component in expected_ports:
                named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                    get = container.get(probe, {}).get("httpGet", {})
                    check(get.get("path") == path, f"{where}: {probe} is not on {path}")
                    check(named.get(get.get("port")) == expected_ports[component], f"{where}: {probe} is not on port {expected_ports[component]}")

    for name, service in by_kind(objects, "Service").items():
        matched = [t for _, t in pods.values() if selects(service["spec"]["selector"], t["metadata"]["labels"])]
        if check(len(matched) == 1, f"{label}: Service {name} selects {len(matched)} pod templates"):
            names = {p["name"] for c in matched[0]["spec"]["containers"] for p in c.get("ports", [])}
            for port in service["spec"]["ports"]:
                check(port["targetPort"] in names, f"{label}: Service {name} targets unknown port {port['targetPort']}")
    for name, hpa in by_kind(objects, "HorizontalPodAutoscaler").items():
        check(hpa["spec"]["scaleTargetRef"]["name"] in pods, f"{label}: HPA {name} scales an unknown workload")
        check("replicas" not in by_kind(objects, "Deployment")[hpa["spec"]["scaleTargetRef"]["name"]]["spec"], f"{label}: {name}: the HPA's Deployment also sets replicas")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for name, o in by_kind(objects, kind).items():
            selector = o["spec"]["selector" if kind == "PodDisruptionBudget" else "podSelector"]["matchLabels"]
            check(any(selects(selector, t["metadata"]["labels"]) for _, t in pods.values()), f"{label}: {kind} {name} selects no pods")
    for name, monitor in by_kind(objects, "ServiceMonitor").items():
        services = [s for s in by_kind(objects, "Service").values() if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        if check(len(services) == 1, f"{label}: ServiceMonitor {name} selects {len(services)} Services"):
            names = {p["name"] for p in services[0]["spec"]["ports"]}
            check(all(e["port"] in names and e["path"] == "/metrics" for e in monitor["spec"]["endpoints"]), f"{label}: ServiceMonitor {name} endpoints")

    config = next(iter(config_maps[n] for n in config_maps if n.endswith("-config")))["data"]
    for key in ("HOHEIT_MQTT_PORT", "HOHEIT_MQTT_TOPIC_ROOT", "HOHEIT_MQTT_CLIENT_ID", "HOHEIT_KAFKA_TOPIC_PREFIX", "HOHEIT_WRITER_GROUP", "HOHEIT_ALERTS_GROUP"):
        check(config.get(key) == env[key], f"{label}: ConfigMap {key}={config.get(key)!r}, hoheit.env says {env[key]!r}")
    for key, port in (("HOHEIT_API_LISTEN", "HOHEIT_API_PORT"), ("HOHEIT_INGEST_OPS_LISTEN", "HOHEIT_INGEST_OPS_PORT"), ("HOHEIT_INGEST_HTTP_LISTEN", "HOHEIT_INGEST_HTTP_PORT"), ("HOHEIT_WRITER_OPS_LISTEN", "HOHEIT_WRITER_OPS_PORT"), ("HOHEIT_ALERTS_OPS_LISTEN", "HOHEIT_ALERTS_OPS_PORT")):
        check(config.get(key) == f"0.0.0.0:{env[port]}", f"{label}: ConfigMap {key} is not on port {env[port]}")
    check(str(config.get("HOHEIT_INGEST_URL", "")).endswith(f"-ingest:{env['HOHEIT_INGEST_HTTP_PORT']}"), f"{label}: ConfigMap HOHEIT_INGEST_URL does not reach ingest's HTTP doors")


def env_of(container: dict) -> dict[str, dict]:
    return {v["name"]: v for v in container.get("env", [])}


def login_of(container: dict, prefix: str = "HOHEIT_MQTT") -> tuple:
    """(user name, (Secret, key) of the password) of an MQTT login in a container's environment."""
    env = env_of(container)
    ref = env.get(f"{prefix}_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
    return env.get(f"{prefix}_USERNAME", {}).get("value"), (ref.get("name"), ref.get("key"))


def check_chart_broker(label: str, objects: list[dict], text: str) -> None:
    """No rendered Mosquitto admits anonymous clients; the bundled one reads the plugin's file its
    init container renders with `hoheit-admin mqtt-config --dynsec` (API image, as Mosquitto's uid)
    into a volume they share, with ingest's login, the broker admin's (which the API and ingest
    use too) and, with the simulator, the simulator's as the gateway; the simulator and ingest log
    in as different users."""
    check(re.search(r"^\s*allow_anonymous\s+true\b", text, re.M) is None, f"{label}: a rendered Mosquitto configuration admits anonymous clients")
    deployments = {o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"}
    first = lambda component: deployments[component]["containers"][0] if component in deployments else {}
    ingest, simulator = login_of(first("ingest")), login_of(first("simulator"))
    check(ingest[0] is not None and None not in ingest[1], f"{label}: ingest has no MQTT login")
    if "simulator" in deployments:
        check(simulator[0] is not None and None not in simulator[1], f"{label}: the simulator has no MQTT login")
        check(simulator[0] != ingest[0] and simulator[1] != ingest[1], f"{label}: the simulator logs in to MQTT as ingest's user or with its password")

    configs = [(o["metadata"]["name"], v) for o in objects if o["kind"] == "ConfigMap" for k, v in o.get("data", {}).items() if k == "mosquitto.conf"]
    brokers = [o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["labels"]["app.kubernetes.io/component"] == "mosquitto"]
    check(len(configs) == len(brokers), f"{label}: {len(configs)} Mosquitto configurations for {len(brokers)} brokers")
    for (name, conf), broker in zip(configs, brokers):
        where = f"{label}: {name}"
        directory = check_broker_auth(f"{where} mosquitto.conf", conf)
        spec = broker["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounted = lambda container: {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        mosquitto = next((c for c in spec["containers"] if c["name"] == "mosquitto"), {})
        auth = mounted(mosquitto).get(directory)
        if not check(auth is not None and not auth.get("readOnly"), f"{where}: the broker does not mount {directory} writable (the plugin saves changes)"):
            continue
        check("emptyDir" in volumes.get(auth["name"], {}), f"{where}: the broker's files are not in an emptyDir of the pod")
        renderers = [c for c in spec.get("initContainers", []) if "mqtt-config" in c.get("command", [])]
        if not check(len(renderers) == 1, f"{where}: no init container runs hoheit-admin mqtt-config"):
            continue
        renderer = renderers[0]
        command = renderer["command"]
        check(command[0].endswith("/hoheit-admin") and "--dynsec" in command[:-1] and command[command.index("--dynsec") + 1] == f"{directory}/{DYNSEC_FILE}", f"{where}: mqtt-config --dynsec does not write into {directory}")
        check(mounted(renderer).get(directory, {}).get("name") == auth["name"] and not mounted(renderer)[directory].get("readOnly"), f"{where}: mqtt-config does not write into the broker's volume")
        check(renderer["image"] == first("api").get("image"), f"{where}: mqtt-config does not run the API image (which has hoheit-admin)")
        security = renderer.get("securityContext", {})
        check(security.get("runAsUser") == MOSQUITTO_UID and security.get("runAsNonRoot") is True, f"{where}: mqtt-config does not run as Mosquitto's uid {MOSQUITTO_UID}")
        check(security.get("readOnlyRootFilesystem") is True and security.get("allowPrivilegeEscalation") is False, f"{where}: mqtt-config's security context")
        check("memory" in renderer.get("resources", {}).get("limits", {}), f"{where}: mqtt-config has no memory limit")
        check("HOHEIT_DATABASE_URL" in env_of(renderer), f"{where}: mqtt-config has no database URL")
        check(login_of(renderer) == ingest, f"{where}: mqtt-config's ingest login is not ingest's")
        admin = login_of(renderer, "HOHEIT_BROKER_ADMIN")
        check(admin[0] is not None and None not in admin[1], f"{where}: mqtt-config has no broker admin login")
        for component in ("api", "ingest"):
            check(login_of(first(component), "HOHEIT_BROKER_ADMIN") == admin, f"{where}: {component}'s broker admin login is not mqtt-config's")
        gateway = login_of(renderer, "HOHEIT_MQTT_GATEWAY")
        if "simulator" in deployments:
            check(gateway == simulator, f"{where}: mqtt-config's gateway login is not the simulator's")
        else:
            check(gateway == (None, (None, None)), f"{where}: a gateway user without the simulator")
        policies = [o for o in objects if o["kind"] == "NetworkPolicy" and selects(o["spec"]["podSelector"]["matchLabels"], broker["spec"]["template"]["metadata"]["labels"])]
        database_port = int(env_of(first("api")).get("HOHEIT_DATABASE_URL", {}).get("value", ":5432/").rsplit(":", 1)[1].split("/")[0])
        for policy in policies:
            ports = {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}
            check(database_port in ports, f"{label}: NetworkPolicy {policy['metadata']['name']} keeps mqtt-config from the database")


def check_helm() -> None:
    env = shared_env()
    external = CHART / "ci" / "external-values.yaml"
    helm("lint", "--strict", str(CHART))
    helm("lint", "--strict", str(CHART), "-f", str(external))
    helm("lint", "--strict", str(CHART), "--set", "simulator.enabled=true")
    renders = {}
    for label, extra in (("default", []), ("simulator", ["--set", "simulator.enabled=true"]), ("external", ["-f", str(external)])):
        text = helm("template", "hoheit", str(CHART), "--namespace", "hoheit", *extra)
        renders[label] = [o for o in yaml.safe_load_all(text) if o]
        check(len(renders[label]) > 10, f"{label}: only {len(renders[label])} objects rendered")
        check_render(label, renders[label], env)
        check_chart_broker(label, renders[label], text)
    refused = subprocess.run(
        [os.environ.get("HELM", "helm"), "template", "hoheit", str(CHART), "--set", "simulator.enabled=true", "--set", "mqtt.gateway.username=hoheit-ingest"],
        capture_output=True, text=True,
    )
    check(refused.returncode != 0 and "must differ" in refused.stderr, "helm: the simulator may log in as ingest's user (mqtt.gateway.username = mqtt.username)")

    default, ext = renders["default"], renders["external"]
    components = lambda objects, kind: {o["metadata"]["labels"].get("app.kubernetes.io/component") for o in objects if o["kind"] == kind}
    check(components(default, "Deployment") == {"api", "ingest", "writer", "alerts"}, "default: Deployments are not api, ingest, writer, alerts (simulator must be off)")
    check(components(default, "StatefulSet") == {"mosquitto", "kafka", "timescaledb"}, "default: bundled Mosquitto, Kafka, TimescaleDB missing")
    check(not by_kind(default, "ServiceMonitor"), "default: ServiceMonitors are on")
    check(components(ext, "Deployment") == {"api", "ingest", "writer", "alerts", "simulator"}, "external: Deployments are not api, ingest, writer, alerts, simulator")
    check(not by_kind(ext, "StatefulSet"), "external: bundled services are rendered")
    check(not by_kind(ext, "Secret"), "external: the chart makes a Secret although all are external")
    check(len(by_kind(ext, "ServiceMonitor")) == 4, "external: not 4 ServiceMonitors")
    alerts = next(d for d in by_kind(ext, "Deployment").values() if d["metadata"]["labels"]["app.kubernetes.io/component"] == "alerts")
    check(alerts["spec"].get("replicas") == 1 and alerts["spec"].get("strategy", {}).get("type") == "Recreate", "external: alerts is not one replica replaced with Recreate")
    smtp = env_of(alerts["spec"]["template"]["spec"]["containers"][0]).get("HOHEIT_SMTP_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check((smtp.get("name"), smtp.get("key")) == ("hoheit-smtp", "url"), "external: the SMTP URL is not from its Secret")
    values = yaml.safe_load(external.read_text())
    config = by_kind(ext, "ConfigMap")["hoheit-config"]["data"]
    check(config["HOHEIT_KAFKA_BOOTSTRAP"] == values["kafka"]["bootstrap"], "external: Kafka bootstrap")
    check(config["HOHEIT_MQTT_HOST"] == values["mqtt"]["host"], "external: MQTT host")
    check(config["OTEL_EXPORTER_OTLP_ENDPOINT"] == values["otel"]["endpoint"], "external: OTLP endpoint")
    check(config["HOHEIT_ALERTS_FROM"] == values["alerts"]["from"], "external: alert sender")
    for deployment in by_kind(ext, "Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            check(container["image"].startswith(values["image"]["registry"] + "/"), f"external: {container['name']} image registry")
            env_vars = {v["name"]: v for v in container.get("env", [])}
            if "HOHEIT_DATABASE_URL" in env_vars:
                ref = env_vars["HOHEIT_DATABASE_URL"].get("valueFrom", {}).get("secretKeyRef", {})
                check((ref.get("name"), ref.get("key")) == ("hoheit-db-app", "uri"), "external: database URL not from the CloudNativePG secret")


def main() -> int:
    commands = {"compose": check_compose, "helm": check_helm}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    commands[sys.argv[1]]()
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"check_deploy {sys.argv[1]}: {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
