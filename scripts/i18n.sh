#!/usr/bin/env bash
# The portal's message catalogues (docs/web.md):
#   scripts/i18n.sh          extract the interface strings, update every .po, compile the .mo
#   scripts/i18n.sh compile  compile the .mo from the .po only
# New strings arrive in the .po files untranslated; translate them (the tests fail on any
# message without a Chinese translation and on a .mo older than its .po), then compile.
set -euo pipefail
cd "$(dirname "$0")/.."
BABEL=${BABEL:-.venv/bin/pybabel}
LOCALES=src/credence/portal/locale
POT=$(mktemp --suffix=.pot)
trap 'rm -f "$POT"' EXIT

if [ "${1:-}" != compile ]; then
  "$BABEL" -q extract -F babel.cfg -k N_ --no-location --sort-output \
    --project=Credence --copyright-holder="Credence" -o "$POT" src/credence/portal
  for locale in en zh_CN; do
    po="$LOCALES/$locale/LC_MESSAGES/messages.po"
    if [ -f "$po" ]; then
      "$BABEL" -q update -i "$POT" -d "$LOCALES" -l "$locale" --no-fuzzy-matching --ignore-obsolete
    else
      "$BABEL" -q init -i "$POT" -d "$LOCALES" -l "$locale"
    fi
  done
fi
"$BABEL" -q compile -d "$LOCALES" --statistics
