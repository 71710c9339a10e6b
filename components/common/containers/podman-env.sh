# Source me: podman with the project's settings (containers.conf beside this file), installed from Debian's
# archive when missing. Used by build.sh, base.sh and the container tests (tests/containers).
#
#   . components/common/containers/podman-env.sh && podman_ready
#
# CONTAINERS_CONF points podman (and `podman system service`, which the Docker API is served by) at the
# project's containers.conf; the machine's global configuration is never changed.
_kfp_containers_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$_kfp_containers_dir/containers.conf}"

# Debian packages podman needs here: runc (the runtime containers.conf names), mmdebstrap (the offline base),
# uidmap, fuse-overlayfs and slirp4netns (podman's usual companions).
KFP_PODMAN_PACKAGES="podman runc mmdebstrap uidmap fuse-overlayfs slirp4netns"

podman_ready() {
    local missing=()
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            echo "error: ${missing[*]} not installed; install with: apt-get install -y $KFP_PODMAN_PACKAGES" >&2
            return 3
        fi
        echo "+ apt-get install -y $KFP_PODMAN_PACKAGES (missing: ${missing[*]})" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $KFP_PODMAN_PACKAGES; } \
            >/dev/null || return 3
    fi
    podman info >/dev/null 2>&1 || {
        echo "error: 'podman info' failed with CONTAINERS_CONF=$CONTAINERS_CONF:" >&2
        podman info >&2
        return 3
    }
}
