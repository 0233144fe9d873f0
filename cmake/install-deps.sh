#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages attnkit needs, and only those that are missing.
#   bash cmake/install-deps.sh           compiler, CMake, xsimd, Eigen, GoogleTest, Google Benchmark,
#                                        Open MPI (libopenmpi-dev, openmpi-bin: the mpi_split_kv example)
#   bash cmake/install-deps.sh --bench   also oneDNN (libdnnl-dev), the optional bench baseline
#   bash cmake/install-deps.sh --docs    also doxygen (the API reference: doxygen docs/Doxyfile)
# Idempotent: runs apt-get (update, install) only when something is missing; uses sudo when not
# root.
set -euo pipefail

pkgs=(g++ cmake make libxsimd-dev libeigen3-dev libgtest-dev libgmock-dev libbenchmark-dev libopenmpi-dev openmpi-bin)
for arg in "$@"; do
  case "$arg" in
    --bench) pkgs+=(libdnnl-dev) ;;
    --docs) pkgs+=(doxygen) ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown argument '$arg' (expected --bench or --docs)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all dependencies present (${pkgs[*]})"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps.sh: missing ${missing[*]}, and apt-get is not available; install them by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps.sh: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
  fi
  sudo=(sudo)
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
