#!/bin/sh
# Brings the two programs the tests drive that npm cannot bring: kubectl (the real client the
# Kubernetes emulator is checked with, and `kubectl kustomize` for the manifests) and chromium
# (the dashboard test). Runs before `npm test` (its pretest step). Only what is missing is
# installed, from Debian's packages, when running as root with apt; otherwise it stops at once
# and prints the command to run.
set -eu
missing=""
command -v kubectl >/dev/null 2>&1 || missing="$missing kubernetes-client"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "npm test: installing$missing from Debian's packages" >&2
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  exit 0
fi
echo "npm test needs$missing. Install with:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
