#!/usr/bin/env bash
# One-command set-up on Debian/Ubuntu: the build headers pillow-simd needs (installed only
# when missing, with sudo unless root), then distdl itself into the active Python
# environment. `./setup.sh` installs the [dev] extras (tests, MPI); `./setup.sh mpi` fewer.
# Other systems: install the same headers with their package manager, then `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")"

headers="gcc libjpeg-dev zlib1g-dev libtiff-dev libwebp-dev liblcms2-dev libopenjp2-7-dev"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in $headers; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing="$missing $pkg"
  done
fi
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing$missing"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
python -m pip install -e ".[${1:-dev}]"
