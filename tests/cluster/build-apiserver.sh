#!/usr/bin/env bash
# Build a real kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` source package, once per machine.
#
# The binary is installed outside the checkout, in
#   ${KFP_TABULAR_CACHE:-$HOME/.cache/kfp-tabular}/kube-apiserver-v1.20.2/kube-apiserver
# and etcd comes from Debian's etcd-server package. See tests/cluster/apiserver.py for how tests run them.
#
# Idempotent: when the cached binary already reports v1.20.2 the script only makes sure etcd is installed
# and exits. The source/build tree is deleted after a successful build (about 4-6 minutes on 2 cores).
set -euo pipefail

readonly VERSION="v1.20.2"
readonly CACHE_DIR="${KFP_TABULAR_CACHE:-$HOME/.cache/kfp-tabular}"
readonly INSTALL_DIR="${CACHE_DIR}/kube-apiserver-${VERSION}"
readonly BIN="${INSTALL_DIR}/kube-apiserver"
readonly BUILD_DIR="${CACHE_DIR}/build-kube-apiserver"
readonly GO_BIN_DIR="/usr/lib/go-1.19/bin"
readonly REFLECT2_SRC="/usr/share/gocode/src/github.com/modern-go/reflect2"
readonly SRC_LIST="/etc/apt/sources.list.d/kfp-tabular-deb-src"
readonly BUILD_PACKAGES=(etcd-server golang-1.19-go rsync golang-github-modern-go-reflect2-dev dpkg-dev)

log() {
  printf '[build-apiserver] %s\n' "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: apt-get needs root"
  SUDO=(sudo)
fi

APT_UPDATED=0
apt_update() {
  if [[ "${APT_UPDATED}" -eq 0 ]]; then
    log "running apt-get update"
    "${SUDO[@]}" apt-get update -q
    APT_UPDATED=1
  fi
}

# Install the given Debian packages that are not installed yet; refresh the lists only if apt needs it.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("${pkg}")
    fi
  done
  if [[ "${#missing[@]}" -eq 0 ]]; then
    log "packages already installed: $*"
    return 0
  fi
  log "installing with apt-get: ${missing[*]}"
  local install=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends)
  if ! "${install[@]}" "${missing[@]}"; then
    log "apt-get install failed; refreshing the package lists and retrying"
    apt_update
    "${install[@]}" "${missing[@]}"
  fi
}

# Succeed when some apt source (one-line .list or deb822 .sources) already has a deb-src entry for bookworm.
has_bookworm_deb_src() {
  local files=()
  [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  local f
  for f in /etc/apt/sources.list.d/*.list; do
    [[ -f "${f}" ]] && files+=("${f}")
  done
  if [[ "${#files[@]}" -gt 0 ]] \
    && grep -hE '^[[:space:]]*deb-src([[:space:]]+\[[^]]*\])?[[:space:]]+[^[:space:]]+[[:space:]]+bookworm([[:space:]]|$)' \
      "${files[@]}" >/dev/null 2>&1; then
    return 0
  fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "${f}" ]] || continue
    # One deb822 stanza per paragraph: look for Types containing deb-src and Suites containing bookworm.
    if awk '
      function check() { if (types ~ /(^|[ \t])deb-src([ \t]|$)/ && suites ~ /(^|[ \t])bookworm([ \t]|$)/ && enabled) found = 1 }
      BEGIN { types = ""; suites = ""; enabled = 1; found = 0 }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { check(); types = ""; suites = ""; enabled = 1; next }
      tolower($1) == "types:" { types = " " substr($0, index($0, ":") + 1) " " }
      tolower($1) == "suites:" { suites = " " substr($0, index($0, ":") + 1) " " }
      tolower($1) == "enabled:" && tolower($2) == "no" { enabled = 0 }
      END { check(); exit found ? 0 : 1 }
    ' "${f}"; then
      return 0
    fi
  done
  return 1
}

ensure_deb_src() {
  if has_bookworm_deb_src; then
    log "a deb-src entry for bookworm is already configured"
  elif compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    log "adding deb822 deb-src entry ${SRC_LIST}.sources"
    local signed_by=""
    [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] \
      && signed_by="Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n%s\n' \
      "${signed_by}" | "${SUDO[@]}" tee "${SRC_LIST}.sources" >/dev/null
    APT_UPDATED=0
  else
    log "adding deb-src line ${SRC_LIST}.list"
    echo 'deb-src http://deb.debian.org/debian bookworm main' | "${SUDO[@]}" tee "${SRC_LIST}.list" >/dev/null
    APT_UPDATED=0
  fi
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
    APT_UPDATED=0
    apt_update
  fi
  apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes' \
    || die "apt cannot find the 'kubernetes' source package even after adding deb-src and apt-get update"
}

binary_is_current() {
  [[ -x "${BIN}" ]] && "${BIN}" --version 2>/dev/null | grep -qF "Kubernetes ${VERSION}"
}

main() {
  # etcd is needed at test time even when the apiserver binary is already cached.
  apt_install etcd-server
  command -v etcd >/dev/null 2>&1 || die "etcd-server is installed but 'etcd' is not on PATH"

  if binary_is_current; then
    log "cached $("${BIN}" --version) at ${BIN}; nothing to build"
    return 0
  fi

  local start_ts
  start_ts="$(date +%s)"
  apt_install "${BUILD_PACKAGES[@]}"
  [[ -x "${GO_BIN_DIR}/go" ]] || die "${GO_BIN_DIR}/go not found after installing golang-1.19-go"
  [[ -f "${REFLECT2_SRC}/reflect2.go" ]] || die "${REFLECT2_SRC} not found (golang-github-modern-go-reflect2-dev)"
  ensure_deb_src

  mkdir -p "${BUILD_DIR}"
  cd "${BUILD_DIR}"
  # Start from a pristine tree: a previous failed run may have left a half-built one.
  local old
  for old in kubernetes-*/; do
    [[ -d "${old}" ]] && { log "removing stale source tree ${BUILD_DIR}/${old}"; rm -rf "${old}"; }
  done
  log "fetching and unpacking the kubernetes source package into ${BUILD_DIR}"
  apt-get source -q kubernetes
  local trees=(kubernetes-*/)
  [[ "${#trees[@]}" -eq 1 && -d "${trees[0]}" ]] || die "expected one kubernetes-* source tree in ${BUILD_DIR}"
  local src="${BUILD_DIR}/${trees[0]%/}"
  log "source tree: ${src}"

  local vendored="${src}/vendor/github.com/modern-go/reflect2"
  [[ -d "${vendored}" ]] || die "${vendored} is missing: unexpected source layout"
  log "replacing vendored reflect2 (1.0.1 crashes under Go >= 1.18) with Debian's 1.0.2 sources"
  rm -rf "${vendored}"
  mkdir -p "${vendored}"
  cp "${REFLECT2_SRC}"/*.go "${vendored}/"
  if compgen -G "${REFLECT2_SRC}/*.s" >/dev/null; then
    cp "${REFLECT2_SRC}"/*.s "${vendored}/"
  fi
  rm -f "${vendored}"/*_test.go

  local version_file="${BUILD_DIR}/kube-version"
  cat >"${version_file}" <<EOF
KUBE_GIT_VERSION='${VERSION}'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_COMMIT='0000000000000000000000000000000000000000'
EOF

  log "building cmd/kube-apiserver (GOPATH mode, vendored deps, Go 1.19); this takes several minutes"
  (
    cd "${src}"
    export PATH="${GO_BIN_DIR}:${PATH}"
    export GOPROXY=off CGO_ENABLED=0 KUBE_GIT_VERSION_FILE="${version_file}"
    export GOCACHE="${BUILD_DIR}/go-build-cache" GOFLAGS=""
    nice -n 10 make WHAT=cmd/kube-apiserver KUBE_BUILD_PLATFORMS=linux/amd64 GOLDFLAGS="-s -w"
  )
  local built="${src}/_output/local/bin/linux/amd64/kube-apiserver"
  [[ -x "${built}" ]] || die "build finished but ${built} is missing"

  mkdir -p "${INSTALL_DIR}"
  install -m 0755 "${built}" "${BIN}.tmp"
  mv -f "${BIN}.tmp" "${BIN}"
  binary_is_current || die "${BIN} --version does not report ${VERSION}: $("${BIN}" --version 2>&1 || true)"

  log "removing the build tree ${BUILD_DIR}"
  cd "${CACHE_DIR}"
  rm -rf "${BUILD_DIR}"
  log "installed $("${BIN}" --version) at ${BIN} in $(($(date +%s) - start_ts)) s"
}

main "$@"
