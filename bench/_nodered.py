"""Node-RED for bench/side_by_side.py (not a benchmark itself): installed on demand with
npm into a cache folder, run with a settings file and a flow written here.

Each flow is ``http in`` (POST /hooks/nN) → ``file`` (append the parsed JSON body as
one line) → ``http response`` 202; the file node passes the message on once the line
is written, so the answer comes after the write. One more flow answers GET /ready
(how the bench knows the flows run). The editor and admin API are off
(``httpAdminRoot: false``), it listens on 127.0.0.1 only and logs warnings only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench._common import Child

VERSION = "4.1"  # npm range: the newest 4.1.x
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hookline-bench"
DEFAULT_DIR = CACHE / "node-red"


def installed_version(prefix: Path) -> str | None:
    try:
        meta = json.loads((prefix / "node_modules" / "node-red" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = str(meta.get("version", ""))
    return version if version.startswith(VERSION + ".") else None


def ensure_installed(prefix: Path, timeout: float = 900.0) -> tuple[str | None, str]:
    """(version, note): Node-RED 4.1.x under ``prefix``, installed with npm if missing;
    version None (and why, in one line) where it cannot be had."""
    version = installed_version(prefix)
    if version:
        return version, f"Node-RED {version} from {prefix}"
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        return None, "Node-RED skipped: npm/node not found (install Node.js >= 18 and npm)"
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"  installing node-red@{VERSION} with npm into {prefix} (once) ...", flush=True)
    try:
        out = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                f"node-red@{VERSION}",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"Node-RED skipped: npm install took more than {timeout:g} s"
    version = installed_version(prefix)
    if out.returncode != 0 or not version:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"Node-RED skipped: npm install failed ({out.returncode}): {tail}"
    return version, f"Node-RED {version} installed into {prefix}"


def flows(areas: int, append_path: Path) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = [{"id": "b0000000000000ab", "type": "tab", "label": "bench"}]
    for n in range(1, areas + 1):
        ids = [f"{kind}{n:015x}" for kind in "123"]
        nodes += [
            {
                "id": ids[0],
                "type": "http in",
                "z": "b0000000000000ab",
                "name": "",
                "url": f"/hooks/n{n}",
                "method": "post",
                "upload": False,
                "swaggerDoc": "",
                "wires": [[ids[1]]],
            },
            {
                "id": ids[1],
                "type": "file",
                "z": "b0000000000000ab",
                "name": "",
                "filename": str(append_path),
                "filenameType": "str",
                "appendNewline": True,
                "createDir": False,
                "overwriteFile": "false",
                "encoding": "none",
                "wires": [[ids[2]]],
            },
            {
                "id": ids[2],
                "type": "http response",
                "z": "b0000000000000ab",
                "name": "",
                "statusCode": "202",
                "headers": {},
                "wires": [],
            },
        ]
    nodes += [
        {
            "id": "4000000000000001",
            "type": "http in",
            "z": "b0000000000000ab",
            "name": "",
            "url": "/ready",
            "method": "get",
            "upload": False,
            "swaggerDoc": "",
            "wires": [["4000000000000002"]],
        },
        {
            "id": "4000000000000002",
            "type": "http response",
            "z": "b0000000000000ab",
            "name": "",
            "statusCode": "200",
            "headers": {},
            "wires": [],
        },
    ]
    return nodes


SETTINGS = """module.exports = {
    uiHost: "127.0.0.1",
    uiPort: %(port)d,
    httpAdminRoot: false,
    httpNodeRoot: "/",
    userDir: %(user_dir)s,
    flowFile: "flows.json",
    credentialSecret: false,
    logging: { console: { level: "warn", metrics: false, audit: false } },
    editorTheme: { projects: { enabled: false } },
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    externalModules: { autoInstall: false },
    functionExternalModules: false,
};
"""


def start(
    prefix: Path, user_dir: Path, port: int, areas: int, append_path: Path, timeout: float = 90.0
) -> Child:
    """Node-RED on 127.0.0.1:``port`` with ``areas`` flows; ``info`` holds pid and URLs."""
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "flows.json").write_text(json.dumps(flows(areas, append_path)))
    settings = user_dir / "settings.js"
    settings.write_text(SETTINGS % {"port": port, "user_dir": json.dumps(str(user_dir))})
    red = prefix / "node_modules" / "node-red" / "red.js"
    child = Child(
        [
            shutil.which("node") or "node",
            str(red),
            "--settings",
            str(settings),
            "--userDir",
            str(user_dir),
        ],
        name="node-red",
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if child.proc.poll() is not None:
                raise RuntimeError(f"Node-RED exited ({child.proc.returncode})\n{child.log_tail()}")
            try:
                with urllib.request.urlopen(base + "/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Node-RED not ready within {timeout:g} s\n{child.log_tail()}")
            time.sleep(0.2)
    except BaseException:
        child.stop()
        raise
    child.info = {
        "pid": child.proc.pid,
        "urls": [f"{base}/hooks/n{n}" for n in range(1, areas + 1)],
    }
    return child
