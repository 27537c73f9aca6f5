"""Headless Chromium as the browser tests drive it: Debian's build, nothing fetched at run time."""

CHROMIUM = "/usr/bin/chromium"
# No sandbox (CI runs as root), no GPU, and nothing that reaches outside the machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
