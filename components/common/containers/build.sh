#!/usr/bin/env bash
# Build the kfp-tabular container images with podman, docker or buildah, tagged with the names the compiled
# pipelines use (PIPELINE_IMAGE and SERVE_IMAGE in components/common/images.py).
#
# Usage: components/common/containers/build.sh [pipeline] [serve]        (default: both)
#
# Environment:
#   BUILDER               podman, docker or buildah (default: the first one installed that works, podman first)
#   KFP_TABULAR_BASE      pull: python:3.11-slim-bookworm only; offline: the Debian-made base only (base.sh);
#                         auto (default): the pulled base when it can be had, else the offline base (podman)
#   KFP_TABULAR_REGISTRY  registry part of the image names (default ghcr.io/kfp-tabular, see images.py)
#   KFP_TABULAR_CACHE     where the offline base and the digests file live (default ~/.cache/kfp-tabular)
#   PYTHON                interpreter that reads images.py (default python3; any Python 3, no packages needed)
#   BUILD_ARGS            extra arguments for the build command, e.g. "--build-arg PYTHON_IMAGE=python@sha256:..."
#   STORAGE_DRIVER        buildah/podman storage driver; vfs works where overlay is not available
#   PUSH                  1: push each image after building it (log in to the registry first)
#
# With podman, podman-env.sh passes the project's containers.conf (runc, no default ulimits) and installs
# podman from Debian's archive when it is missing; builds use the host network, and this host's CA bundle and
# pip settings are mounted for the build only (nothing of them stays in an image). Each image's digest is
# written to $KFP_TABULAR_CACHE/images/digests.json (`kfp-tabular compile --pin-digests` reads it).
#
# Exit status: 0 built, 2 usage error, 3 no working builder, else the builder's status.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-python3}"
cache="${KFP_TABULAR_CACHE:-${HOME:-/root}/.cache/kfp-tabular}"
default_base=docker.io/library/python:3.11-slim-bookworm

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(pipeline serve)
fi
for target in "${targets[@]}"; do
    case "$target" in
        pipeline | serve) ;;
        -h | --help)
            sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "error: unknown image '$target': expected pipeline and/or serve" >&2
            exit 2
            ;;
    esac
done
base_mode="${KFP_TABULAR_BASE:-auto}"
case "$base_mode" in
    auto | pull | offline) ;;
    *)
        echo "error: KFP_TABULAR_BASE=$base_mode: expected auto, pull or offline" >&2
        exit 2
        ;;
esac

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

candidates=(podman docker buildah)
if [ -n "${BUILDER:-}" ]; then
    case "$BUILDER" in
        docker | podman | buildah) candidates=("$BUILDER") ;;
        *)
            echo "error: BUILDER=$BUILDER: expected podman, docker or buildah" >&2
            exit 2
            ;;
    esac
fi
if [ "${candidates[0]}" = podman ]; then
    # The project's podman settings; podman itself from Debian's archive when missing (root only).
    # shellcheck source=podman-env.sh
    . "$here/podman-env.sh"
    if [ "${KFP_TABULAR_INSTALL_PODMAN:-1}" = 1 ] && ! command -v podman >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        podman_ready || true
    fi
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
        echo "Install Podman (apt-get install podman runc mmdebstrap; make images does it as root), Docker (with"
        echo "a running daemon) or Buildah, or pick one with BUILDER=. The images would be tagged:"
        echo "  $pipeline_image"
        echo "  $serve_image"
    } >&2
    exit 3
fi

extra=()
if [ -n "${BUILD_ARGS:-}" ]; then
    read -r -a extra <<<"$BUILD_ARGS"
fi

# The base: python:3.11-slim-bookworm when it is here or can be pulled, else (podman) the offline base.
base=()
if [ "$builder" = podman ] && [[ " ${BUILD_ARGS:-} " != *" PYTHON_IMAGE="* ]] \
    && [[ " ${BUILD_ARGS:-} " != *"--build-arg PYTHON_IMAGE="* ]]; then
    if [ "$base_mode" != offline ] && { podman image exists "$default_base" \
        || timeout 120 podman pull --quiet "$default_base" >/dev/null 2>&1; }; then
        base=(--build-arg "PYTHON_IMAGE=$default_base")
        echo "base: $default_base" >&2
    elif [ "$base_mode" = pull ]; then
        echo "error: KFP_TABULAR_BASE=pull: $default_base cannot be pulled" >&2
        exit 3
    else
        [ "$base_mode" = offline ] || echo "base: $default_base cannot be pulled here: using the offline base" >&2
        offline_base="$(bash "$here/base.sh")"
        base=(--build-arg "PYTHON_IMAGE=$offline_base")
        echo "base: $offline_base (Debian bookworm + python3 from Debian's archive, components/common/containers/base.sh)" >&2
    fi
fi

# podman: host network; this host's CA bundle and pip settings for the build's RUN steps only.
host=()
tmp=""
if [ "$builder" = podman ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    host=(--network=host)
    ca=/etc/ssl/certs/ca-certificates.crt
    if [ -s "$ca" ]; then
        host+=(-v "$ca:$ca:ro")
        printf '[global]\ncert = %s\n' "$ca" >"$tmp/pip.conf"
    else
        printf '[global]\n' >"$tmp/pip.conf"
    fi
    if [ -n "${PIP_INDEX_URL:-}" ]; then
        printf 'index-url = %s\n' "$PIP_INDEX_URL" >>"$tmp/pip.conf"
    fi
    host+=(-v "$tmp/pip.conf:/etc/pip.conf:ro")
fi

record_digest() { # image -> $cache/images/digests.json
    local image="$1" digest="$2" pushed="$3"
    mkdir -p "$cache/images"
    "$python" - "$cache/images/digests.json" "$image" "$digest" "$pushed" <<'PY'
import datetime, json, os, sys
path, image, digest, pushed = sys.argv[1:]
try:
    with open(path, encoding="utf-8") as handle:
        table = json.load(handle)
except (OSError, ValueError):
    table = {}
table[image] = {"digest": digest, "pushed": pushed == "1",
                "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
with open(path + ".tmp", "w", encoding="utf-8") as handle:
    json.dump(table, handle, indent=2, sort_keys=True)
os.replace(path + ".tmp", path)
PY
}

for target in "${targets[@]}"; do
    if [ "$target" = pipeline ]; then image="$pipeline_image"; else image="$serve_image"; fi
    common=(-f "$here/$target.Containerfile" -t "$image" --build-arg "VERSION=$version")
    if [ "$builder" = buildah ]; then
        command=(buildah bud --isolation chroot --layers "${common[@]}" ${extra[@]+"${extra[@]}"} "$repo")
    else
        command=("$builder" build ${host[@]+"${host[@]}"} "${common[@]}" ${base[@]+"${base[@]}"}
            ${extra[@]+"${extra[@]}"} "$repo")
    fi
    echo "+ ${command[*]}" >&2
    started=$SECONDS
    "${command[@]}"
    echo "built $image in $((SECONDS - started)) s" >&2
    if [ "$builder" = podman ]; then
        digest="$(podman image inspect --format '{{.Digest}}' "$image")"
        size="$(podman image inspect --format '{{.Size}}' "$image")"
        record_digest "$image" "$digest" 0
        echo "image $image digest $digest size $((size / 1000000)) MB" >&2
    fi
    if [ "${PUSH:-0}" = 1 ]; then
        echo "+ $builder push $image" >&2
        if [ "$builder" = podman ]; then
            # The registry's digest (podman compresses layers on push, so the local one differs).
            podman push --digestfile "$tmp/digest" "$image"
            record_digest "$image" "$(cat "$tmp/digest")" 1
        else
            "$builder" push "$image"
        fi
        echo "pushed $image" >&2
    fi
done
