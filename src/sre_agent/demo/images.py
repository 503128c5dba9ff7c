"""The demo target's image, built locally from ``Dockerfile.target`` when it is missing or stale.

No registry is needed: the image is built ``FROM`` the local Debian Python base
(``sre-agent/python-base:bookworm``, made by ``scripts/build-local-images.sh``). The build
context is a temporary folder holding only ``Dockerfile.target`` and ``src/demo_target``, and
the image carries a label with a hash of those files, so an edited target is rebuilt and an
unchanged one is reused as is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_TARGET_IMAGE = "sre-agent/demo-target:local"
DEFAULT_BASE_IMAGE = os.environ.get("SRE_AGENT_PYTHON_BASE_IMAGE",
                                    "sre-agent/python-base:bookworm")
SOURCE_HASH_LABEL = "sre-agent.source-hash"
BUILD_TIMEOUT_S = 900.0


class ImageError(RuntimeError):
    """The target image cannot be found or built."""


def find_repo_root(start: Path | None = None) -> Path:
    """The folder holding ``monitoring/`` and ``Dockerfile.target``: the current directory or
    one of its parents, else the source checkout this package was installed from."""
    candidates: list[Path] = []
    here = (start or Path.cwd()).resolve()
    candidates.extend([here, *here.parents])
    package_root = Path(__file__).resolve().parents[3]  # src/sre_agent/demo -> repo
    candidates.append(package_root)
    for folder in candidates:
        if (folder / "monitoring" / "alert_rules.yml").is_file() and (
                folder / "Dockerfile.target").is_file():
            return folder
    raise ImageError("cannot find the project's monitoring/ and Dockerfile.target: run from a "
                     "checkout of the repository (or pass --repo)")


def _source_files(repo: Path) -> list[Path]:
    files = [repo / "Dockerfile.target"]
    files.extend(sorted(p for p in (repo / "src" / "demo_target").rglob("*.py")
                        if "__pycache__" not in p.parts))
    return files


def source_hash(repo: Path, base_image: str) -> str:
    """sha256 over the build inputs (Dockerfile, the target's sources, the base tag)."""
    digest = hashlib.sha256(base_image.encode())
    for path in _source_files(repo):
        digest.update(str(path.relative_to(repo)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _image_label(client: Any, tag: str, label: str) -> str | None:
    import docker.errors

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return str(labels.get(label, ""))


def ensure_base_image(client: Any, repo: Path, base_image: str = DEFAULT_BASE_IMAGE) -> None:
    """Build the local Python base with ``scripts/build-local-images.sh`` if it is missing."""
    import docker.errors

    try:
        client.images.get(base_image)
        return
    except docker.errors.ImageNotFound:
        pass
    script = repo / "scripts" / "build-local-images.sh"
    if not script.is_file():
        raise ImageError(f"base image {base_image} is missing and {script} does not exist")
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S, check=False,
                            env={**os.environ, "SRE_AGENT_PYTHON_BASE_IMAGE": base_image})
    try:
        client.images.get(base_image)
    except docker.errors.ImageNotFound:
        tail = (result.stdout + result.stderr)[-800:]
        raise ImageError(f"cannot build base image {base_image} with {script}: {tail}") from None


def ensure_target_image(client: Any, repo: Path, tag: str = DEFAULT_TARGET_IMAGE,
                        base_image: str = DEFAULT_BASE_IMAGE) -> tuple[str, bool]:
    """The tag of an up-to-date target image; returns (tag, built_now).

    Reuses ``tag`` when its source-hash label matches the current sources; otherwise builds it
    (legacy builder, layer cache) from a minimal context.
    """
    wanted = source_hash(repo, base_image)
    if _image_label(client, tag, SOURCE_HASH_LABEL) == wanted:
        return tag, False
    ensure_base_image(client, repo, base_image)
    with tempfile.TemporaryDirectory(prefix="sre-demo-build-") as tmp:
        context = Path(tmp)
        shutil.copy(repo / "Dockerfile.target", context / "Dockerfile.target")
        shutil.copytree(repo / "src" / "demo_target", context / "src" / "demo_target",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        import docker.errors

        try:
            client.images.build(
                path=str(context), dockerfile="Dockerfile.target", tag=tag, rm=True,
                forcerm=True, buildargs={"BASE_IMAGE": base_image},
                labels={SOURCE_HASH_LABEL: wanted}, timeout=int(BUILD_TIMEOUT_S))
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            log = "".join(str(chunk.get("stream", "")) for chunk in
                          getattr(exc, "build_log", []) if isinstance(chunk, dict))
            raise ImageError(f"docker build of {tag} failed: {exc} {log[-1500:]}") from exc
    return tag, True
