#!/usr/bin/env bash
# Installs the Debian 12 packages Parallama builds and tests with (run as root):
# iproute2 makes the emulated hosts of the multihost tests (scripts/emulate_hosts.sh).
set -euo pipefail
pkgs=(build-essential cmake pkg-config git python3 python3-pip unzip ca-certificates
      libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev libpcre2-dev
      clang libclang-rt-14-dev openmpi-bin libopenmpi-dev libxxhash-dev
      libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev prometheus-cpp-dev python3-venv
      chromium iproute2 util-linux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
