#!/usr/bin/env bash
# Runs every README command in order, at smoke size, in a fresh clone of HEAD (committed
# work only) and a throwaway virtual environment that sees this machine's packages, so
# the README's pip commands run as written without touching your environment. ~5 min on
# 2 cores. Keeps the clone on failure (its path is printed); RSTG_README_CHECK_KEEP=1 keeps
# it always.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/readme_check.XXXXXX)"
git clone -q "$repo" "$work/clone"
python3 -m venv --system-site-packages "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
cd "$work/clone"
if python tools/readme_check.py; then
    [ "${RSTG_README_CHECK_KEEP:-0}" = 1 ] || rm -rf "$work"
else
    echo "readme_check: failed; the clone is kept in $work/clone" >&2
    exit 1
fi
