#!/usr/bin/env bash
# Deploys users-service with Docker, Kubernetes (kustomize overlays) or Helm.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/deploy.sh docker|k8s|helm [options]

Targets:
  docker   build the image (and push it with --push)
  k8s      kubectl apply -k deployments/overlays/ENV, then wait for the rollout
  helm     helm upgrade --install of deployments/helm/users-service

Options:
  --env ENV          overlay for k8s: dev or prod (default: dev, or $ENV)
  --image NAME       image repository (default: users-service, or $IMAGE) for docker and helm
  --tag TAG          image tag (default: latest, or $TAG) for docker and helm
  --namespace NS     Helm namespace (default: users-service, or $NAMESPACE)
  --release NAME     Helm release (default: users-service, or $RELEASE)
  --existing-secret NAME
                     helm: use this Secret (keys JWT_SECRET) instead of
                     the chart's (default: $EXISTING_SECRET)
  --push             docker: push the image after building it
  --dry-run          print what would be built or applied, change nothing:
                       docker: the commands; k8s: kubectl kustomize; helm: helm template
  -h, --help         show this help

The k8s image and tag come from the overlay's `images:` (edit it, or run
`kustomize edit set image users-service=REGISTRY/users-service:TAG` in the overlay directory).

helm reads JWT_SECRET from the environment and passes it to the chart,
which refuses its change-me placeholders (the values are never printed), e.g.
  JWT_SECRET="$(openssl rand -base64 48)" scripts/deploy.sh helm --image REGISTRY/users-service --tag TAG
USAGE
}

target=""
env_name="${ENV:-dev}"
image="${IMAGE:-users-service}"
tag="${TAG:-latest}"
namespace="${NAMESPACE:-users-service}"
release="${RELEASE:-users-service}"
existing_secret="${EXISTING_SECRET:-}"
push=false
dry_run=false
# The MicroFramework checkout this service depends on by path (see deployments/docker/Dockerfile).
framework_path="${FRAMEWORK_PATH:-../..}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    docker | k8s | helm)
      [[ -z "${target}" ]] || { echo "deploy.sh: only one target, got ${target} and $1" >&2; exit 2; }
      target="$1"; shift ;;
    --env) env_name="${2:?--env needs a value}"; shift 2 ;;
    --image) image="${2:?--image needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --namespace) namespace="${2:?--namespace needs a value}"; shift 2 ;;
    --release) release="${2:?--release needs a value}"; shift 2 ;;
    --existing-secret) existing_secret="${2:?--existing-secret needs a value}"; shift 2 ;;
    --push) push=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deploy.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [[ -z "${target}" ]]; then
  echo "deploy.sh: a target is required (docker, k8s or helm)" >&2
  usage >&2
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Runs a command, or only prints it with --dry-run.
run() {
  if [[ "${dry_run}" == true ]]; then
    printf '%q' "$1"
    shift
    printf ' %q' "$@"
    printf '\n'
  else
    echo "+ $*" >&2
    "$@"
  fi
}

require() {
  command -v "$1" >/dev/null 2>&1 || { echo "deploy.sh: $1 is not installed" >&2; exit 1; }
}

case "${target}" in
  docker)
    [[ "${dry_run}" == true ]] || require docker
    run docker build --build-context "microframework=${framework_path}" \
      -f deployments/docker/Dockerfile -t "${image}:${tag}" .
    if [[ "${push}" == true ]]; then
      run docker push "${image}:${tag}"
    fi
    ;;
  k8s)
    overlay="deployments/overlays/${env_name}"
    [[ -f "${overlay}/kustomization.yaml" ]] || { echo "deploy.sh: no overlay ${overlay}" >&2; exit 2; }
    require kubectl
    if [[ "${dry_run}" == true ]]; then
      kubectl kustomize "${overlay}"
    else
      run kubectl apply -k "${overlay}"
      ns="$(sed -n 's/^namespace: *//p' "${overlay}/kustomization.yaml")"
      run kubectl rollout status "deployment/users-service" --namespace "${ns:-default}" --timeout=180s
    fi
    ;;
  helm)
    require helm
    chart="deployments/helm/users-service"
    values=(--set-string "image.repository=${image}" --set-string "image.tag=${tag}")
    if [[ -n "${existing_secret}" ]]; then
      values+=(--set-string "existingSecret=${existing_secret}")
    fi
    # The secrets go to helm but never to the terminal (`run` would print them).
    secret_args=()
    if [[ -n "${JWT_SECRET:-}" ]]; then
      secret_args+=(--set-string "secrets.JWT_SECRET=${JWT_SECRET}")
    fi
    if [[ "${dry_run}" == true ]]; then
      helm template "${release}" "${chart}" --namespace "${namespace}" "${values[@]}" ${secret_args[@]+"${secret_args[@]}"}
    else
      echo "+ helm upgrade --install ${release} ${chart} --namespace ${namespace} --create-namespace ${values[*]} (secrets not shown) --wait --timeout 5m" >&2
      helm upgrade --install "${release}" "${chart}" --namespace "${namespace}" --create-namespace \
        "${values[@]}" ${secret_args[@]+"${secret_args[@]}"} --wait --timeout 5m
    fi
    ;;
  *) usage >&2; exit 2 ;;
esac
