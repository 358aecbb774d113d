#!/usr/bin/env bash
# Build the supervisor image, tagged with the product version from pyproject.toml.
#
#   SUPERVISOR_IMAGE_PREFIX=registry.example.com/team infrastructure/supervisor/build.sh [--push] [docker build options]
#
# Only the files the image needs go into the build context, so the build is fast and the image
# cannot pick up anything else from the working tree.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="$(awk '
    /^\[project\]/ { in_project = 1; next }
    /^\[/ { in_project = 0 }
    in_project && /^version[ \t]*=/ { sub(/^version[ \t]*=[ \t]*"/, ""); sub(/".*$/, ""); print; exit }
' "$root/pyproject.toml")"
if [ -z "$version" ]; then
    echo "build.sh: cannot read [project] version from $root/pyproject.toml" >&2
    exit 1
fi
prefix="${SUPERVISOR_IMAGE_PREFIX:-ghcr.io/coderadmin}"
tag="${prefix%/}/coderadmin-supervisor:${version}"

push=false
if [ "${1:-}" = "--push" ]; then
    push=true
    shift
fi

if ! command -v docker >/dev/null 2>&1; then
    echo "build.sh: the docker command is not installed; building $tag needs a Docker engine" >&2
    exit 2
fi
if ! docker info >/dev/null 2>&1; then
    echo "build.sh: no Docker engine is reachable (docker info failed); building $tag needs one" >&2
    exit 2
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/infrastructure/supervisor"
cp "$root/infrastructure/__init__.py" "$context/infrastructure/__init__.py"
cp "$root"/infrastructure/supervisor/*.py "$context/infrastructure/supervisor/"
cp "$root/infrastructure/supervisor/Dockerfile" "$context/Dockerfile"

docker build --build-arg "VERSION=$version" --tag "$tag" "$@" "$context"
if [ "$push" = true ]; then
    docker push "$tag"
fi
echo "$tag"
