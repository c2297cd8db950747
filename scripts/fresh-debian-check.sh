#!/usr/bin/env bash
# Runs the README's commands as a new user would, in a clean Debian 12 root: mmdebstrap makes a
# minimal bookworm (no compiler, no PostgreSQL, no Python packages, no browser), the host's
# rustup toolchain is mounted read-only as the only thing brought along, the project is cloned
# into /root (as a user would), then inside the root:
#
#   ./scripts/setup                      the set-up command (apt-get, from Debian only)
#   CI=true bash .ci/run                 formatting, lints and ./scripts/test (all tests)
#   cargo run --release -- serve --demo  must answer /healthz and show the login page
#
# Prints what was installed and how long each step took. Needs root, mmdebstrap (Debian
# package) and the Debian mirror; about an hour on two cores (a cold build, twice: debug for
# the tests, release for the demo).
#
#   sudo ./scripts/fresh-debian-check.sh [root-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=${1:-/tmp/au-relay-fresh-root}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_bin=$(dirname "$(command -v cargo)")
command -v mmdebstrap >/dev/null || { echo "needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (chroot, mount)" >&2; exit 1; }

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() { mkdir -p "$root$2"; mount --bind "$1" "$root$2"; mounted+=("$root$2"); }
step() { printf '\n== [%4d s] %s\n' "$SECONDS" "$*"; }

SECONDS=0
if [ "${FRESH_REUSE:-}" = 1 ] && [ -d "$root/root/au-relay" ]; then
  # Only after a run that stopped early: the same root again, with the project cloned anew.
  step "reusing $root (FRESH_REUSE=1)"
  rm -rf "$root/root/au-relay"
  base_packages=96
else
  step "mmdebstrap bookworm (minbase) into $root"
  rm -rf "$root"
  mmdebstrap --variant=minbase --quiet bookworm "$root" http://deb.debian.org/debian
  base_packages=$(chroot "$root" dpkg-query -W -f '.\n' | wc -l)
  echo "base system: $base_packages packages"
fi

# What a fresh machine offers: /proc, /dev, a network, and Rust from rustup (read-only). The
# host's PostgreSQL on 127.0.0.1:5432 is reachable through the shared network, so the tests are
# told to start their own cluster, as they do on a machine without a server.
mount -t proc proc "$root/proc"; mounted+=("$root/proc")
bind /dev /dev
bind /dev/pts /dev/pts
mkdir -p "$root/dev/shm"; mount -t tmpfs shm "$root/dev/shm"; mounted+=("$root/dev/shm")
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Where this machine reaches crates.io and npm through a TLS-inspecting proxy, its CA bundle
# comes along (any machine on that network has it); elsewhere Debian's ca-certificates serve.
host_ca=${SSL_CERT_FILE:-${CURL_CA_BUNDLE:-}}
ca_env=()
if [ -n "$host_ca" ] && [ -f "$host_ca" ]; then
  cp "$host_ca" "$root/etc/host-ca.crt"
  ca_env=(SSL_CERT_FILE=/etc/host-ca.crt CARGO_HTTP_CAINFO=/etc/host-ca.crt
    NODE_EXTRA_CA_CERTS=/etc/host-ca.crt GIT_SSL_CAINFO=/etc/host-ca.crt)
fi
bind "$rustup_home" /opt/rustup
mount -o remount,bind,ro "$root/opt/rustup"
bind "$cargo_bin" /opt/cargo-bin
mount -o remount,bind,ro "$root/opt/cargo-bin"

step "git clone into /root/au-relay"
git clone -q "$repo" "$root/root/au-relay"

inside() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 "${ca_env[@]}" \
    RUSTUP_HOME=/opt/rustup CARGO_HOME=/root/.cargo \
    PATH=/opt/cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CI=true AU_RELAY_TEST_OWN_CLUSTER=1 bash -c "cd /root/au-relay && $1"
}

step "./scripts/setup"
inside "./scripts/setup"
now_packages=$(chroot "$root" dpkg-query -W -f '.\n' | wc -l)
echo "installed by scripts/setup: $((now_packages - base_packages)) packages, root now $(du -shx "$root" --exclude=root 2>/dev/null | cut -f1)"

step "CI=true bash .ci/run"
inside "bash .ci/run </dev/null"

step "cargo run --release -- serve --demo"
# The README's command (built, then its binary run, so that SIGTERM reaches AU-Relay itself;
# port 18080 here, so as not to meet the host's 8080).
inside "cargo build --release --quiet && { AU_RELAY_BIND=127.0.0.1:18080 target/release/au-relay serve --demo \
  >/tmp/demo.log 2>&1 & pid=\$!; ok=; for i in \$(seq 120); do \
  curl -fsS http://127.0.0.1:18080/healthz >/dev/null 2>&1 && ok=1 && break; sleep 1; done; \
  [ -n \"\$ok\" ] && curl -fsS http://127.0.0.1:18080/login | grep -q Anmelden; r=\$?; kill \$pid; wait \$pid; \
  [ \$r = 0 ] && echo 'demo answers: /healthz and the login page'; exit \$r; }"

step "done: both README commands passed in a clean Debian 12 root ($SECONDS s in all)"
