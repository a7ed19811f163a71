#!/usr/bin/env bash
# Installs what the end-to-end tests need besides Rust: the official Inngest
# SDKs used by the test apps under tests/sdk-apps/, and the headless browser
# the dashboard tests drive.
#
#   tests/sdk-apps/js/node_modules   npm ci (inngest v3 and v4, from package-lock.json)
#   tests/sdk-apps/py/.venv          python3 -m venv + pip install -r requirements.txt
#   /usr/bin/chromium                apt-get install chromium (only when missing)
#   tests/browser/node_modules       npm ci (playwright-core, driving that chromium)
#   /usr/bin/promtool                apt-get install prometheus (only when missing)
#
# Idempotent: each part records a hash of its lock file (and tool versions)
# and is skipped when nothing changed. FORCE=1 reinstalls both.
# Needs node >= 20 with npm, and python3 >= 3.10 (override with PYTHON=...).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js_dir="$root/tests/sdk-apps/js"
py_dir="$root/tests/sdk-apps/py"
python="${PYTHON:-python3}"
force="${FORCE:-0}"

say() { printf '[setup-test-deps] %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- JS: inngest@3 and inngest@4 ------------------------------------------
command -v node >/dev/null || die "node not found (need node >= 20)"
command -v npm >/dev/null || die "npm not found"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node >= 20 required, found $(node --version)"

js_stamp="$js_dir/node_modules/.ingot-setup-stamp"
js_want="$(hash_of "$js_dir/package.json" "$js_dir/package-lock.json")-node$node_major"
if [ "$force" != 1 ] && [ -f "$js_stamp" ] && [ "$(cat "$js_stamp")" = "$js_want" ]; then
  say "js: node_modules up to date"
else
  say "js: npm ci in tests/sdk-apps/js"
  (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$js_want" > "$js_stamp"
fi
(cd "$js_dir" && node -e '
  for (const m of ["inngest-v3", "inngest-v4"]) require(m);
  console.log("[setup-test-deps] js: inngest-v3 " + require("inngest-v3").version + ", inngest-v4 " + require("inngest-v4").version);
')

# --- Python: inngest + Flask in a venv --------------------------------------
command -v "$python" >/dev/null || die "$python not found (need python >= 3.10)"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "python >= 3.10 required, found $("$python" --version 2>&1)"
py_version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"

venv="$py_dir/.venv"
py_stamp="$venv/.ingot-setup-stamp"
py_want="$(hash_of "$py_dir/requirements.txt")-py$py_version"
if [ "$force" != 1 ] && [ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$py_want" ] \
   && "$venv/bin/python" -c 'import inngest, flask' 2>/dev/null; then
  say "py: .venv up to date"
else
  # A venv made by another interpreter (or a half-made one) is rebuilt whole.
  if [ -d "$venv" ] && ! "$venv/bin/python" -c "import sys; sys.exit(0 if '%d.%d.%d' % sys.version_info[:3] == '$py_version' else 1)" 2>/dev/null; then
    say "py: removing stale .venv"
    rm -rf "$venv"
  fi
  say "py: creating tests/sdk-apps/py/.venv with $python ($py_version)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$py_dir/requirements.txt"
  printf '%s\n' "$py_want" > "$py_stamp"
fi
"$venv/bin/python" -c '
import importlib.metadata as md
print("[setup-test-deps] py: inngest " + md.version("inngest") + ", flask " + md.version("flask"))
'

# --- Browser tests: Debian's chromium + playwright-core ---------------------
if [ -x /usr/bin/chromium ]; then
  say "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
else
  command -v apt-get >/dev/null || die "/usr/bin/chromium is missing and apt-get is not available to install it"
  say "browser: installing chromium with apt-get"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
browser_dir="$root/tests/browser"
browser_stamp="$browser_dir/node_modules/.ingot-setup-stamp"
browser_want="$(hash_of "$browser_dir/package.json" "$browser_dir/package-lock.json")-node$node_major"
if [ "$force" != 1 ] && [ -f "$browser_stamp" ] && [ "$(cat "$browser_stamp")" = "$browser_want" ]; then
  say "browser: node_modules up to date"
else
  say "browser: npm ci in tests/browser"
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$browser_want" > "$browser_stamp"
fi

# --- Metrics tests: promtool (Debian's prometheus package) -----------------
if command -v promtool >/dev/null; then
  say "promtool: $(promtool --version 2>&1 | head -n1)"
else
  command -v apt-get >/dev/null || die "promtool is missing and apt-get is not available to install it"
  say "promtool: installing prometheus with apt-get"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

say "done"
