"""Headless Chromium for tests: find or install it, then drive it over the DevTools pipe.

Standard library only (no selenium, no playwright, no websocket package): Chromium is
started with ``--remote-debugging-pipe``, which makes it read DevTools protocol commands
from file descriptor 3 and write replies and events to file descriptor 4, one JSON
message per NUL-terminated record.

Public API
----------
find_chromium()                  path of a Chromium / Chrome binary, or None
ensure_chromium(timeout)         find it, else install Debian's ``chromium`` with apt-get
                                 (as root or with passwordless sudo); BrowserUnavailable
                                 with the reason when neither works
BrowserUnavailable               raised by ensure_chromium; tests turn it into a skip
chromium_version(path)           "Chromium 150.0.7871.100 ..." (the binary's --version)
Chromium(path)                   context manager: a headless browser on the pipe
    .open(url, timeout)          navigate a new tab and wait for its load event
    .evaluate(js, timeout)       run an expression (promises awaited), return its value
    .screenshot()                PNG bytes of the tab's viewport
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
APT_PACKAGE = "chromium"              # Debian's name (Ubuntu's is a snap wrapper)
ENV_BINARY = "CHROMIUM"               # set to a binary to use that one


class BrowserUnavailable(RuntimeError):
    """No Chromium here and none could be installed; the message says why."""


def find_chromium() -> str | None:
    """Path of a Chromium-family browser: ``$CHROMIUM`` if set, else the first on PATH."""
    override = os.environ.get(ENV_BINARY)
    if override:
        found = shutil.which(override)
        if not found:
            raise BrowserUnavailable(f"${ENV_BINARY}={override!r} is not an executable")
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _privilege_prefix() -> list[str] | None:
    """[] as root, ["sudo", "-n"] with passwordless sudo, None otherwise."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        ok = subprocess.run(["sudo", "-n", "true"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode == 0
        if ok:
            return ["sudo", "-n"]
    return None


def ensure_chromium(timeout: float = 1800.0) -> str:
    """Return a Chromium binary, installing Debian's ``chromium`` package when none is found.

    The install runs ``apt-get install -y chromium`` (and ``apt-get update`` first if the
    package is unknown), as root or through passwordless sudo, waiting up to five minutes
    for another apt process's lock. Nothing is installed when a browser is already there.

    Raises
    ------
    BrowserUnavailable
        no browser, and no apt-get, no privilege, or the install failed (message says which)
    """
    found = find_chromium()
    if found:
        return found
    if not shutil.which("apt-get"):
        raise BrowserUnavailable("no Chromium on PATH and no apt-get to install one "
                                 f"(install Chromium or set ${ENV_BINARY})")
    prefix = _privilege_prefix()
    if prefix is None:
        raise BrowserUnavailable("no Chromium on PATH; installing it needs root or passwordless "
                                 f"sudo (or set ${ENV_BINARY} to a Chromium binary)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    install = prefix + ["apt-get", *lock, "install", "-y", "-q", APT_PACKAGE]
    deadline = time.monotonic() + timeout

    def run(cmd):
        left = max(1.0, deadline - time.monotonic())
        try:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=left)
        except subprocess.TimeoutExpired:
            raise BrowserUnavailable(f"{' '.join(cmd)} did not finish in {timeout:.0f} s") from None

    done = run(install)
    if done.returncode != 0:                       # unknown package: the lists may be stale or absent
        run(prefix + ["apt-get", *lock, "update", "-q"])
        done = run(install)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise BrowserUnavailable(f"`{' '.join(install)}` failed (exit {done.returncode}): "
                                 + " | ".join(tail))
    found = find_chromium()
    if not found:
        raise BrowserUnavailable(f"apt-get installed {APT_PACKAGE} but no binary named "
                                 f"{', '.join(CANDIDATES)} is on PATH")
    return found


def chromium_version(path: str) -> str:
    """The browser's own ``--version`` line."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    return (out.stdout or out.stderr).strip()


LAUNCHER = ("import os, sys; i, o = int(sys.argv[1]), int(sys.argv[2]); os.dup2(i, 3); os.dup2(o, 4); "
            "os.close(i); os.close(o); os.execv(sys.argv[3], sys.argv[3:])")


def _high_fd(fd: int) -> int:
    """A duplicate of ``fd`` numbered >= 10, so that moving it to 3 or 4 clobbers nothing."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD, 10)


class Chromium:
    """A headless Chromium driven through the DevTools protocol over a pipe.

    Parameters
    ----------
    path : the browser binary (:func:`ensure_chromium`)
    window : viewport (width, height) in CSS pixels
    extra_args : more command-line switches

    Use as a context manager; the browser and its profile folder go away on exit.
    """

    def __init__(self, path: str, window: tuple[int, int] = (1200, 1600), extra_args=()):
        self.path, self.window, self.extra_args = path, window, list(extra_args)
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []
        self.session: str | None = None

    # ----------------------------------------------------------------- process
    def __enter__(self) -> "Chromium":
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        cmd_r, cmd_w = os.pipe()                  # we write commands, the browser reads fd 3
        res_r, res_w = os.pipe()                  # the browser writes fd 4, we read
        child_in, child_out = _high_fd(cmd_r), _high_fd(res_w)
        for fd in (cmd_r, res_w):
            os.close(fd)
        args = [self.path, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--mute-audio",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--hide-scrollbars", f"--window-size={self.window[0]},{self.window[1]}",
                *self.extra_args]
        if os.geteuid() == 0:
            args.append("--no-sandbox")           # Chromium refuses to run as root with its sandbox
        args.append("about:blank")
        # A one-line Python launcher moves our pipe ends to fds 3 and 4 and execs the browser:
        # no preexec_fn (unsafe in a process with threads, as torch's), no shell fd limits.
        launcher = [sys.executable, "-c", LAUNCHER, str(child_in), str(child_out), *args]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(launcher, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr, pass_fds=(child_in, child_out))
        os.close(child_in)
        os.close(child_out)
        self._write, self._read = cmd_w, res_r
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self._send("Browser.close", session=False)
                    self.proc.wait(timeout=10)
                except Exception:  # noqa: BLE001 - fall through to kill
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        finally:
            for fd in (self._write, self._read):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    def _browser_log(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    # ----------------------------------------------------------------- protocol
    def _send(self, method: str, params: dict | None = None, session: bool = True) -> int:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict:
        import select
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from Chromium in time")
            ready, _, _ = select.select([self._read], [], [], min(left, 1.0))
            if not ready:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"Chromium exited with {self.proc.returncode}:\n{self._browser_log()}")
                continue
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe:\n{self._browser_log()}")
            self._buffer += chunk
        record, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(record)

    def call(self, method: str, params: dict | None = None, timeout: float = 30.0,
             session: bool = True) -> dict:
        """Send one command and return its ``result`` (events that arrive meanwhile are kept)."""
        msg_id = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)

    def _wait_event(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev["method"] == method and ev.get("sessionId") == self.session:
                    return self._events.pop(i)
            msg = self._receive(deadline)
            if "method" in msg:
                self._events.append(msg)

    # ----------------------------------------------------------------- page
    def open(self, url: str, timeout: float = 30.0) -> None:
        """Open ``url`` in a new tab and wait until its load event has fired."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.window[0], "height": self.window[1],
                                                         "deviceScaleFactor": 1, "mobile": False})
        nav = self.call("Page.navigate", {"url": url}, timeout=timeout)
        if nav.get("errorText"):
            raise RuntimeError(f"cannot open {url}: {nav['errorText']}")
        self._wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str, timeout: float = 30.0):
        """Evaluate JavaScript in the tab; a returned promise is awaited; the value is JSON."""
        res = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                             "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in res:
            detail = res["exceptionDetails"]
            text = (detail.get("exception") or {}).get("description") or detail.get("text")
            raise RuntimeError(f"JavaScript error: {text}")
        return res["result"].get("value")

    def screenshot(self) -> bytes:
        """PNG of the viewport (what ``chromium --headless --screenshot`` would write)."""
        data = self.call("Page.captureScreenshot", {"format": "png"}, timeout=60)["data"]
        return base64.b64decode(data)


def file_url(path) -> str:
    """file:// URL of a local path."""
    return Path(path).resolve().as_uri()
