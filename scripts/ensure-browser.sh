#!/usr/bin/env bash
# Make sure the browser tests (tests/browser) have what they need from Debian: the
# `chromium` browser and the `fonts-noto-cjk` fonts (Chinese pages drawn, not boxes).
# Installs them with apt-get when missing (as root, or through sudo when it may);
# where that is impossible, says which packages are needed and exits non-zero.
set -u
packages="chromium fonts-noto-cjk"
chromium=${CREDENCE_CHROMIUM:-/usr/bin/chromium}

have_all() {
  [ -x "$chromium" ] || return 1
  if command -v fc-list >/dev/null 2>&1; then
    fc-list | grep -qi 'Noto Sans CJK' || return 1
  else
    dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'install ok installed' || return 1
  fi
}

if have_all; then exit 0; fi

fail() {
  echo "The browser tests need the Debian packages: $packages (and $chromium)." >&2
  echo "$1 Install them: apt-get install -y $packages" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available here."
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  fail "Not root, and sudo cannot be used without a password."
fi

echo "Installing $packages for the browser tests (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
install() { "${as_root[@]}" apt-get install -y -q $packages >&2; }
if ! install; then
  "${as_root[@]}" apt-get update -q >&2 && install || fail "apt-get could not install them."
fi
have_all || fail "They are installed, but $chromium or the Noto CJK fonts are still missing."
