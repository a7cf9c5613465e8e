#!/usr/bin/env bash
# By hand, for a quick look (tests/browser/test_docs.py checks the same in `make test`):
# serve the API on a scratch SQLite store and open /docs and /redoc in headless Chromium
# (Debian's `chromium`), which loads whatever the pages ask for. Passes when Swagger UI and ReDoc
# each show every operation of /openapi.json, and the browser reports no
# Content-Security-Policy violation but the one docs/web.md expects (ReDoc's footer logo
# from its vendor's CDN, refused). Screenshots go to $OUT (default: a temporary folder).
set -euo pipefail

command -v chromium >/dev/null || { echo "needs Debian's chromium: apt-get install chromium" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
credence=$root/.venv/bin/credence
work=$(mktemp -d)
out=${OUT:-$work/screenshots}
mkdir -p "$out"
port=$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port

CREDENCE_DB_URL="sqlite:///$work/credence.db" "$credence" serve --port "$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$work/credence.db"*' EXIT
for _ in $(seq 50); do curl -sf "$url/v1/health" >/dev/null && break; sleep 0.2; done

operations=$(curl -sf "$url/openapi.json" |
  "$root/.venv/bin/python" -c 'import json, sys; print(sum(len(p) for p in json.load(sys.stdin)["paths"].values()))')

browse() {  # page, then what to dump: the DOM on stdout, the console on stderr
  chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 \
    --virtual-time-budget=10000 --window-size=1280,1600 "$@"
}

status=0
for page in docs redoc; do
  browse --screenshot="$out/$page.png" "$url/$page" >/dev/null 2>"$work/$page.console"
  browse --dump-dom "$url/$page" >"$work/$page.html" 2>>"$work/$page.console"
  if [[ $page == docs ]]; then
    shown=$(grep -o 'class="opblock-summary-path"' "$work/$page.html" | wc -l || true)
  else
    shown=$(grep -o 'id="operation/[^"]*"' "$work/$page.html" | sort -u | wc -l || true)
  fi
  violations=$(grep 'Content Security Policy' "$work/$page.console" | grep -v 'cdn.redoc.ly/redoc/logo-mini.svg' || true)
  echo "/$page: $shown of $operations operations shown; screenshot $out/$page.png"
  if [[ $shown -ne $operations ]]; then status=1; fi
  if [[ -n $violations ]]; then echo "$violations"; status=1; fi
done
exit $status
