#!/usr/bin/env bash
# Builds users-service: the release binary, or the container image with --docker.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/build.sh [--docker] [--tag TAG] [--image NAME]

Builds the release binary target/release/users-service (cargo build --release --locked).

Options:
  --docker       build the container image instead (deployments/docker/Dockerfile)
  --image NAME   image name (default: users-service, or $IMAGE)
  --tag TAG      image tag (default: latest, or $TAG)
  -h, --help     show this help
USAGE
}

docker_build=false
image="${IMAGE:-users-service}"
tag="${TAG:-latest}"
# The MicroFramework checkout this service depends on by path (see deployments/docker/Dockerfile).
framework_path="${FRAMEWORK_PATH:-../..}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --docker) docker_build=true; shift ;;
    --image) image="${2:?--image needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${docker_build}" == true ]]; then
  set -x
  docker build --build-context "microframework=${framework_path}" \
    -f deployments/docker/Dockerfile -t "${image}:${tag}" .
else
  set -x
  cargo build --release --locked
fi
