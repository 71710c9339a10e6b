#!/usr/bin/env bash
# Make the offline base image: Debian bookworm + Python 3.11 from Debian's package archive (mmdebstrap), for
# hosts that cannot pull python:3.11-slim-bookworm (no registry reachable, air-gapped or regulated clusters).
#
# Usage: components/common/containers/base.sh        prints the image name on stdout
#
# The root filesystem is cached outside the checkout, keyed by its inputs (suite, packages, sources, this
# script): $KFP_TABULAR_CACHE/base/<name>-<key>.tar (default ~/.cache/kfp-tabular). The image is
# localhost/kfp-tabular-base:bookworm-py3.11-<key>; it is imported from the cached tar when podman's storage
# lacks it and built only when the tar is missing (about 90 s, 225 MB).
#
# Environment:
#   KFP_TABULAR_CACHE     cache directory (default ~/.cache/kfp-tabular)
#   DEBIAN_MIRROR         Debian archive (default http://deb.debian.org/debian; a local mirror works offline)
#   DEBIAN_SECURITY       security archive (default http://deb.debian.org/debian-security)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=podman-env.sh
. "$here/podman-env.sh"

suite=bookworm
packages=python3,python3-venv,ca-certificates
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
sources=(
    "deb $mirror $suite main"
    "deb $mirror $suite-updates main"
    "deb $security $suite-security main"
)
# Snapshot mirrors serve Release files past their Valid-Until: accept them, as this host's apt does.
options=(
    --variant=minbase --format=tar --include="$packages"
    --aptopt='Acquire::Check-Valid-Until "false"'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'
)
# The cache key: every input of the root filesystem (suite, packages, sources, options), nothing else.
# Debian's python3 has no `python` command; python:3.11-slim has one. The Containerfiles call python3 only.
key="$(printf '%s\n' "$suite" "$packages" "${sources[@]}" "${options[@]}" | sha256sum | cut -c1-12)"
image="localhost/kfp-tabular-base:$suite-py3.11-$key"
cache="${KFP_TABULAR_CACHE:-$HOME/.cache/kfp-tabular}/base"
tar="$cache/debian-$suite-py3.11-$key.tar"

podman_ready
if podman image exists "$image"; then
    echo "$image"
    exit 0
fi
if [ ! -s "$tar" ]; then
    mkdir -p "$cache"
    echo "+ mmdebstrap --variant=minbase --include=$packages $suite $tar (offline base, cached by its inputs)" >&2
    mmdebstrap --quiet "${options[@]}" "$suite" "$tar.partial" "${sources[@]}" >&2
    mv "$tar.partial" "$tar"
fi
echo "+ podman import $tar $image" >&2
podman import --quiet \
    --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "Debian $suite + python3 from Debian's archive (mmdebstrap, kfp-tabular base.sh)" \
    "$tar" "$image" >/dev/null
echo "$image"
