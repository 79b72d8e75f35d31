#!/usr/bin/env bash
# Find (or, where apt exists, install) the Chromium or Chrome the workbench's browser test
# drives through Playwright's executable_path. `make test` runs this first; the test asks it
# where the browser is (`--find`), so both look in the same places, in this order:
#   1. $BUDDY_CHROMIUM (a path to the executable)
#   2. on PATH: chromium, chromium-browser, google-chrome, google-chrome-stable, chrome
#   3. Playwright's own download ($PLAYWRIGHT_BROWSERS_PATH, else its default cache folder)
#   4. macOS applications: Chromium, Google Chrome (in /Applications or ~/Applications)
# Found: prints the path and exits 0. Not found: with --find exits 1; otherwise installs
# Debian's chromium with apt-get (as root, or through sudo) where apt-get exists, and else
# says how to install one (exit 1). `playwright install` downloads from the internet and is
# never run here.
set -euo pipefail

find_only=false
if [[ "${1:-}" == "--find" ]]; then
    find_only=true
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--find]" >&2
    exit 2
fi

say() { echo "install-chromium: $*" >&2; }

found() {
    local candidate
    if [[ -n "${BUDDY_CHROMIUM:-}" ]]; then
        echo "$BUDDY_CHROMIUM"  # checked before the search: a wrong one is an error
        return 0
    fi
    for candidate in chromium chromium-browser google-chrome google-chrome-stable chrome; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    local cache="${PLAYWRIGHT_BROWSERS_PATH:-}"
    if [[ -z "$cache" ]]; then
        if [[ "$(uname -s)" == "Darwin" ]]; then
            cache="$HOME/Library/Caches/ms-playwright"
        else
            cache="${XDG_CACHE_HOME:-$HOME/.cache}/ms-playwright"
        fi
    fi
    local patterns=(
        "$cache"/chromium-*/chrome-linux*/chrome
        "$cache"/chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium
        "$cache"/chromium-*/"chrome-mac"*/"Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing"
        "/Applications/Chromium.app/Contents/MacOS/Chromium"
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
        "$HOME/Applications/Chromium.app/Contents/MacOS/Chromium"
        "$HOME/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
    )
    for candidate in "${patterns[@]}"; do
        if [[ -x "$candidate" && ! -d "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

how_to() {
    say "no Chromium or Chrome found (BUDDY_CHROMIUM, PATH, Playwright's folder, /Applications)."
    say "install one, then run make test again:"
    say "  Debian/Ubuntu: sudo apt-get install chromium   (or run this script as root)"
    say "  macOS: brew install --cask chromium   (or install Google Chrome)"
    say "  anywhere with internet: .venv/bin/python -m playwright install chromium"
    say "or point BUDDY_CHROMIUM at a Chromium or Chrome executable."
}

if [[ -n "${BUDDY_CHROMIUM:-}" && ( ! -x "$BUDDY_CHROMIUM" || -d "$BUDDY_CHROMIUM" ) ]]; then
    say "BUDDY_CHROMIUM=$BUDDY_CHROMIUM is not an executable file"
    exit 1
fi
if path="$(found)"; then
    echo "$path"
    exit 0
fi
if $find_only; then
    how_to
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    how_to
    exit 1
fi

install=(apt-get install -y --no-install-recommends chromium)
if [[ "$(id -u)" -eq 0 ]]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive "${install[@]}"
elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update
    sudo DEBIAN_FRONTEND=noninteractive "${install[@]}"
else
    say "this user is not root and has no sudo: as root, run apt-get update && ${install[*]}"
    how_to
    exit 1
fi

if path="$(found)"; then
    say "installed $("$path" --version 2>/dev/null || echo "$path")"
    echo "$path"
    exit 0
fi
say "the chromium package installed but no chromium executable is on PATH"
exit 1
