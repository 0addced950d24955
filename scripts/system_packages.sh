#!/usr/bin/env bash
# Installs the Debian packages that carry graft's real data, when missing:
#   openclipart-png        public-domain clip art (the demo data, ~131 MB download)
#   dataset-fashion-mnist  Fashion-MNIST IDX files (the benchmark data, ~31 MB)
# and with --browser (make test) the headless browser the report and page tests drive:
#   chromium, chromium-driver  the same Debian version of both, so driver and browser always match
# Needs root (or passwordless sudo) and apt; otherwise says what to run.
set -euo pipefail
need=()
[ -d /usr/share/openclipart/png ] || need+=(openclipart-png)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
if [ "${1:-}" = "--browser" ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "graft's data comes from Debian packages that are not installed: ${need[*]}" >&2
    echo "run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "no apt-get here: install ${need[*]} (Debian packages) or their files by hand" >&2
  exit 1
fi
echo "== installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
