#!/bin/sh
# Installs, from Debian's packages, the two programs the tests drive and npm cannot bring:
# kubectl (the Kubernetes emulator's real client) and chromium (the dashboard test). Only what
# is missing is installed; run as root.
set -eu
missing=""
command -v kubectl >/dev/null 2>&1 || missing="$missing kubernetes-client"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -n "$missing" ]; then
  apt-get update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi
