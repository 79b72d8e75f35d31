"""scripts/install-chromium.sh: where it looks for a browser, in which order, and what it says
when there is none and apt-get is not there to install one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-chromium.sh"


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho fake browser\n")
    path.chmod(0o755)
    return path


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script with a PATH holding only the tools it needs (no browser, no apt-get,
    no sudo) plus ``tmp_path/bin``, and HOME in ``tmp_path``."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for tool in ("uname", "id"):
        target = tools / tool
        if not target.exists():
            target.symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    base = {"PATH": f"{tmp_path / 'bin'}:{tools}", "HOME": str(tmp_path / "home"),
            "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "playwright")}
    return subprocess.run(["/bin/bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env={**base, **env}, timeout=60)


def test_buddy_chromium_comes_first(tmp_path: Path) -> None:
    _executable(tmp_path / "bin" / "chromium")
    chosen = _executable(tmp_path / "mine" / "chrome")
    found = _run(tmp_path, "--find", BUDDY_CHROMIUM=str(chosen))
    assert (found.returncode, found.stdout.strip()) == (0, str(chosen))


def test_a_buddy_chromium_that_is_not_executable_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-browser"
    found = _run(tmp_path, BUDDY_CHROMIUM=str(missing))
    assert found.returncode == 1 and found.stdout == ""
    assert f"BUDDY_CHROMIUM={missing} is not an executable file" in found.stderr


def test_on_path_chromium_comes_before_chrome(tmp_path: Path) -> None:
    _executable(tmp_path / "bin" / "google-chrome")
    assert _run(tmp_path, "--find").stdout.strip() == str(tmp_path / "bin" / "google-chrome")
    chromium = _executable(tmp_path / "bin" / "chromium")
    assert _run(tmp_path, "--find").stdout.strip() == str(chromium)


def test_playwrights_own_download_is_found(tmp_path: Path) -> None:
    chrome = _executable(tmp_path / "playwright" / "chromium-1187" / "chrome-linux" / "chrome")
    found = _run(tmp_path, "--find")
    assert (found.returncode, found.stdout.strip()) == (0, str(chrome))


def test_without_a_browser_or_apt_it_says_how_to_install_one(tmp_path: Path) -> None:
    for args in ((), ("--find",)):
        found = _run(tmp_path, *args)
        assert found.returncode == 1 and found.stdout == ""
        for advice in ("brew install --cask chromium", "playwright install chromium",
                       "apt-get install chromium", "BUDDY_CHROMIUM"):
            assert advice in found.stderr
    assert _run(tmp_path, "--bogus").returncode == 2
