#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the workbench's browser test (idempotent).
# Playwright drives it through executable_path=/usr/bin/chromium; `playwright install`
# downloads from the internet and is not used.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi

install=(apt-get install -y --no-install-recommends chromium)
if [[ "$(id -u)" -eq 0 ]]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive "${install[@]}"
elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update
    sudo DEBIAN_FRONTEND=noninteractive "${install[@]}"
else
    echo "install-chromium: $CHROMIUM is missing and this user is not root and has no sudo." >&2
    echo "install-chromium: as root, run: apt-get update && ${install[*]}" >&2
    exit 1
fi

if [[ ! -x "$CHROMIUM" ]]; then
    echo "install-chromium: the chromium package installed but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "install-chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM installed")"
