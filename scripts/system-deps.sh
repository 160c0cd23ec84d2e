#!/bin/sh
# Brings the system programs that npm cannot bring, from Debian's packages. `system-deps.sh`
# (npm test's pretest step): kubectl (the real client the Kubernetes emulator is checked with,
# and `kubectl kustomize` for the manifests), chromium (the dashboard test) and openssl (the
# certificates of discovery-sync's TLS test).
# `system-deps.sh bench` (npm run bench:proxy, bench:instructions): wrk, nginx, haproxy and
# valgrind. Only what is missing is installed, when running as root with apt, and no service is
# started; otherwise it stops at once and prints the command to run.
set -eu
what="${1:-test}"
missing=""
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing="$missing $2"; }
case "$what" in
  test)
    need kubectl kubernetes-client
    need chromium chromium
    need openssl openssl
    ;;
  bench)
    need wrk wrk
    need nginx nginx
    need haproxy haproxy
    need valgrind valgrind
    ;;
  *)
    echo "system-deps.sh: unknown set $what (test or bench)" >&2
    exit 2
    ;;
esac
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "npm: installing$missing from Debian's packages" >&2
  # Packages must not start their services (nginx would take port 80): policy-rc.d says no.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
  fi
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  [ -n "$policy" ] && rm -f "$policy"
  exit 0
fi
echo "npm needs$missing. Install with:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
