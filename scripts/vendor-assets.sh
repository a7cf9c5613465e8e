#!/usr/bin/env bash
# Fetch the web assets Credence ships (Swagger UI and ReDoc, for /docs and /redoc) from
# the npm registry at their pinned versions, check every file against the committed lock
# (src/credence/api/static/vendor/SHA256SUMS) and put them in place. docs/web.md tells
# what each asset is for and under which licence it ships.
#
#   scripts/vendor-assets.sh           fetch, check against the lock, install
#   scripts/vendor-assets.sh --check   fetch, check against the lock and against the
#                                      committed files; change nothing
#   scripts/vendor-assets.sh --update  after changing a pin below: fetch, install and
#                                      rewrite the lock (then update VENDOR in
#                                      src/credence/api/docs.py and docs/web.md)
set -euo pipefail

# name, exact version, then the files taken from the package (into <name>-<version>/).
PACKAGES=(
  "swagger-ui-dist 5.36.0 LICENSE NOTICE swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png"
  "redoc 2.5.4 LICENSE bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt"
)

mode=${1:-install}
case $mode in
  install | --check | --update) ;;
  *) echo "usage: $0 [--check | --update]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
vendor=$root/src/credence/api/static/vendor
lock=$vendor/SHA256SUMS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }

for entry in "${PACKAGES[@]}"; do
  read -r name version files <<<"$entry"
  # npm checks the tarball against the registry's integrity hash as it downloads it.
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  mkdir -p "$tmp/unpacked/$name" "$tmp/out/$name-$version"
  tar xzf "$tmp/$name-$version.tgz" -C "$tmp/unpacked/$name"
  for file in $files; do
    cp "$tmp/unpacked/$name/package/$file" "$tmp/out/$name-$version/$(basename "$file")"
  done
done

if [[ $mode == --update ]]; then
  (cd "$tmp/out" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum) >"$tmp/SHA256SUMS"
else
  cp "$lock" "$tmp/SHA256SUMS"
  (cd "$tmp/out" && sha256sum --check --quiet "$tmp/SHA256SUMS") ||
    { echo "the fetched assets differ from the lock $lock" >&2; exit 1; }
fi

if [[ $mode == --check ]]; then
  (cd "$vendor" && sha256sum --check --quiet SHA256SUMS) ||
    { echo "the committed assets differ from the lock $lock" >&2; exit 1; }
  echo "vendored assets match the lock and the registry"
  exit 0
fi

# Install: each package's files replace its folder's (its README.md, ours, stays).
for entry in "${PACKAGES[@]}"; do
  read -r name version _ <<<"$entry"
  mkdir -p "$vendor/$name-$version"
  cp "$tmp/out/$name-$version/"* "$vendor/$name-$version/"
done
cp "$tmp/SHA256SUMS" "$lock"
echo "vendored assets installed and checked: $lock"
