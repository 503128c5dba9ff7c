"""The demo target containers: created from the local image on free loopback ports, labelled
for discovery, and faulted on request."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from sre_agent.demo.processes import HOST, StackError, free_port, http_client
from sre_agent.demo.spec import (
    DEMO_LABEL,
    FAST_HEALTHCHECK,
    TARGET_PORT,
    StackOptions,
    Target,
    TargetSpec,
)


class Targets:
    """The target half of ``DemoStack`` (a mixin: the stack owns the attributes)."""

    options: StackOptions
    run_id: str
    image: str
    targets: list[Target]
    _docker: Any

    @property
    def target(self) -> Target:
        """The first target (the demo's one)."""
        return self.targets[0]

    @property
    def docker(self) -> Any:
        if self._docker is None:
            import docker

            try:
                self._docker = docker.from_env(timeout=60)
                self._docker.ping()
            except Exception as exc:  # DockerException, requests' ConnectionError
                self._docker = None
                raise StackError(f"no reachable Docker engine: {exc}") from exc
        return self._docker

    def _target_labels(self, spec: TargetSpec, port: int) -> dict[str, str]:
        labels = {DEMO_LABEL: self.run_id}
        if spec.labels:
            labels.update({"sre-agent.job": spec.job or self.options.target_job,
                           "sre-agent.instance": f"{HOST}:{port}",
                           "sre-agent.health-url": f"http://{HOST}:{port}/health"})
        if spec.managed:
            labels["sre-agent.managed"] = "true"
        return labels

    def _run_target(self, spec: TargetSpec) -> Target:
        import docker.errors

        client = self.docker
        last: Exception | None = None
        for _attempt in range(5):  # a free port can be taken between choosing and binding it
            port = free_port()
            try:
                container = client.containers.create(
                    self.image, detach=True, name=f"sre-demo-{self.run_id}-{spec.suffix}",
                    labels=self._target_labels(spec, port),
                    environment={**self.options.target_env, **spec.env},
                    ports={f"{TARGET_PORT}/tcp": (HOST, port)},
                    healthcheck=dict(FAST_HEALTHCHECK))
            except docker.errors.APIError as exc:  # no such image, name taken...
                raise StackError(f"cannot create the target container: {exc}") from exc
            try:
                container.start()
            except docker.errors.APIError as exc:
                last = exc
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                if "allocated" in str(exc) or "in use" in str(exc):
                    continue
                raise StackError(f"cannot start target container: {exc}") from exc
            return Target(spec, container, port, spec.job or self.options.target_job)
        raise StackError(f"cannot publish the target on a free port: {last}")

    def inject_fault(self, fault: str, target: Target | None = None,
                     timeout: float = 5.0) -> float:
        """``POST /fault/<fault>`` (e.g. ``crash``, ``hang``, ``errors?rate=0.9``) on a target;
        returns the Unix time just before the request was sent."""
        target = target or self.target
        at = time.time()
        with http_client() as c:
            r = c.post(f"{target.url}/fault/{fault}", timeout=timeout)
            r.raise_for_status()
        return at
