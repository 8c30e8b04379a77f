#!/usr/bin/env bash
# Installs the Debian packages the build needs, only those that are missing.
# Sourced by quickstart.sh and test.sh; safe to run on its own.
set -euo pipefail

mla_debian_packages=(
  build-essential cmake ninja-build
  libeigen3-dev          # mla::reference (Eigen 3.4)
  libboost-test-dev      # unit tests (Boost.Test)
  libbenchmark-dev       # bench/ (Google Benchmark)
  libcli11-dev           # examples: command-line parsing
  nlohmann-json3-dev     # config.json / safetensors headers
  libicu-dev             # tests: the Unicode class tables checked against ICU, code point by code point
  gnuplot-nox            # mla-inspect --plot and docs/plots: PNG and SVG pictures (optional at run time)
)

# Installed by test.sh only (mla_install_deps "${mla_test_packages[@]}"): what tests need beyond the build.
mla_test_packages=(
  chromium               # tests: mla-convert --report's index.html rendered headless (a screenshot)
)

mla_install_deps() {  # [more packages...]
  local missing=()
  for p in "${mla_debian_packages[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "mla: installing missing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then mla_install_deps; fi
