#!/usr/bin/env bash
# Build the kfp-tabular container images with docker, podman or buildah, tagged with the names the compiled
# pipelines use (PIPELINE_IMAGE and SERVE_IMAGE in components/common/images.py).
#
# Usage: components/common/containers/build.sh [pipeline] [serve]        (default: both)
#
# Environment:
#   BUILDER               docker, podman or buildah (default: the first one installed that works)
#   KFP_TABULAR_REGISTRY  registry part of the image names (default ghcr.io/kfp-tabular, see images.py)
#   PYTHON                interpreter that reads images.py (default python3; any Python 3, no packages needed)
#   BUILD_ARGS            extra arguments for the build command, e.g. "--build-arg PYTHON_IMAGE=python@sha256:..."
#   STORAGE_DRIVER        buildah/podman storage driver; vfs works where overlay is not available
#   PUSH                  1: push each image after building it (log in to the registry first)
#
# Exit status: 0 built, 2 usage error, 3 no working builder, else the builder's status.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-python3}"

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(pipeline serve)
fi
for target in "${targets[@]}"; do
    case "$target" in
        pipeline | serve) ;;
        -h | --help)
            sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "error: unknown image '$target': expected pipeline and/or serve" >&2
            exit 2
            ;;
    esac
done

if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: '$python' not found: it reads the image names from components/common/images.py (set PYTHON)" >&2
    exit 2
fi
names="$("$python" -c '
import runpy, sys
names = runpy.run_path(sys.argv[1])
print(names["VERSION"])
print(names["PIPELINE_IMAGE"])
print(names["SERVE_IMAGE"])
' "$repo/components/common/images.py")"
{
    read -r version
    read -r pipeline_image
    read -r serve_image
} <<<"$names"

builder_works() {
    case "$1" in
        docker) docker info >/dev/null 2>&1 ;;
        podman) podman info >/dev/null 2>&1 ;;
        buildah) buildah version >/dev/null 2>&1 ;;
    esac
}

candidates=(docker podman buildah)
if [ -n "${BUILDER:-}" ]; then
    case "$BUILDER" in
        docker | podman | buildah) candidates=("$BUILDER") ;;
        *)
            echo "error: BUILDER=$BUILDER: expected docker, podman or buildah" >&2
            exit 2
            ;;
    esac
fi
builder=""
tried=()
for candidate in "${candidates[@]}"; do
    if ! command -v "$candidate" >/dev/null 2>&1; then
        tried+=("$candidate: not installed")
    elif builder_works "$candidate"; then
        builder="$candidate"
        break
    else
        case "$candidate" in
            buildah) tried+=("buildah: installed, but 'buildah version' failed") ;;
            *) tried+=("$candidate: installed, but '$candidate info' failed (is its daemon or service running?)") ;;
        esac
    fi
done
if [ -z "$builder" ]; then
    {
        echo "error: no working container builder found, so no image was built:"
        printf '  - %s\n' "${tried[@]}"
        echo "Install Docker (with a running daemon), Podman or Buildah (buildah bud --isolation chroot needs no"
        echo "daemon), or pick one with BUILDER=. The images would be tagged:"
        echo "  $pipeline_image"
        echo "  $serve_image"
    } >&2
    exit 3
fi

extra=()
if [ -n "${BUILD_ARGS:-}" ]; then
    read -r -a extra <<<"$BUILD_ARGS"
fi

for target in "${targets[@]}"; do
    if [ "$target" = pipeline ]; then image="$pipeline_image"; else image="$serve_image"; fi
    common=(-f "$here/$target.Containerfile" -t "$image" --build-arg "VERSION=$version")
    if [ "$builder" = buildah ]; then
        command=(buildah bud --isolation chroot --layers "${common[@]}" ${extra[@]+"${extra[@]}"} "$repo")
    else
        command=("$builder" build "${common[@]}" ${extra[@]+"${extra[@]}"} "$repo")
    fi
    echo "+ ${command[*]}" >&2
    "${command[@]}"
    echo "built $image" >&2
    if [ "${PUSH:-0}" = 1 ]; then
        echo "+ $builder push $image" >&2
        "$builder" push "$image"
        echo "pushed $image" >&2
    fi
done
