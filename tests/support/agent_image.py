"""The real agent image (the project's Dockerfile) built offline from the local Python base.

The build context is a copy of the sources plus a wheelhouse built on the host with
`pip wheel` (this machine's HTTPS is signed by a CA the base image does not trust, so pip inside
`docker build` cannot reach PyPI): the same offline step the README gives for air-gapped hosts.
The image is labelled with a hash of its inputs and rebuilt only when they change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("SRE_AGENT_PYTHON_BASE_IMAGE", "sre-agent/python-base:bookworm")
AGENT_IMAGE = "sre-agent/agent:test"
_FILES = ("Dockerfile", "requirements.txt", "pyproject.toml", "README.md")
_LABEL = "sre-agent.inputs-sha256"


def inputs_hash() -> str:
    digest = hashlib.sha256(BASE_IMAGE.encode())
    paths = [REPO / name for name in _FILES]
    paths += sorted(p for p in (REPO / "src").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts
                    and ".egg-info" not in str(p))
    for path in paths:
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_agent_image(client: Any, tag: str = AGENT_IMAGE) -> tuple[str, float]:
    """Build (or reuse) the agent image; returns (tag, seconds spent building, 0 if reused)."""
    import docker

    wanted = inputs_hash()
    try:
        labels = client.images.get(tag).attrs["Config"].get("Labels") or {}
        if labels.get(_LABEL) == wanted:
            return tag, 0.0
    except docker.errors.ImageNotFound:
        pass
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agent-image-") as tmp:
        context = Path(tmp)
        for name in _FILES:
            shutil.copy(REPO / name, context / name)
        shutil.copytree(REPO / "src", context / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        wheels = context / "wheelhouse"
        wheels.mkdir()
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir",
                                str(wheels), str(context)], capture_output=True, text=True,
                               timeout=900, check=False)
        if built.returncode != 0:
            raise RuntimeError(f"pip wheel failed: {built.stderr[-3000:]}")
        result = subprocess.run(
            ["docker", "build", "--force-rm", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
             "--label", f"{_LABEL}={wanted}", "-t", tag, "."], cwd=context,
            capture_output=True, text=True, timeout=1800, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"docker build failed: {(result.stdout + result.stderr)[-3000:]}")
    return tag, time.monotonic() - start
