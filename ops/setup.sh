#!/usr/bin/env bash
# setup.sh: install what linkd needs to build, run and test on Debian 12.
# Idempotent: installs only the packages that are missing. Needs root (or sudo) for apt-get.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  libuv1-dev libnng-dev nng-utils libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libhiredis-dev libfyaml-dev libcriterion-dev
  libsystemd-dev libmbedtls-dev libsodium-dev openssl systemd jq
  redis-server redis-tools
  clang libclang-rt-14-dev
  gnuplot-nox
  libwebsockets-dev libwebsockets-evlib-uv prometheus chromium chromium-driver
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged redis-server and prometheus services are not ours: linkd's scripts start
# private Redis instances, and the tests use only promtool from the prometheus package.
