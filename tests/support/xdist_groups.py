"""Which tests may run at once on pytest-xdist workers. ``make test`` runs three phases:

1. everything not below, on 3 workers, by file (SQLite files, PostgreSQL databases, binaries
   on free ports: nothing shared);
2. the two serial groups at once, each one test after another on its own worker:
   - ``docker_engine``: the files that run containers on the Docker engine.
     The agent resolves targets by label across every container the engine runs, so these
     tests must not run beside one another, nor beside phase 1, whose agents read the same
     engine (the e2e stack labels its target ``sre-agent.job=target``, the default payload's
     job). The browser tests in tests/e2e/ serve the agent on fake backends, no Docker: they
     run in phase 1;
   - ``real_llm``: the real model's llama-server, a session fixture (one per
     worker that needs it, on the same 2 cores);
3. ``IN_PROCESS`` files, without xdist: schemathesis reports its generated cases (one per API
   operation) to an xdist controller as its two test functions, so a run there would count 2
   where 56 ran.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

# Each group's name is also the mark its tests get (tests/conftest.py), which `make test` selects.
SERIAL_GROUPS: dict[str, tuple[str, ...]] = {
    "docker_engine": (
        "tests/e2e/test_loop.py", "tests/integration/test_chat_approval_docker.py",
        "tests/integration/test_collector_faults.py", "tests/integration/test_compose.py",
        "tests/integration/test_compose_replicas.py", "tests/integration/test_corpus_agent.py",
        "tests/integration/test_docker_actions.py", "tests/integration/test_docker_evidence.py",
        "tests/integration/test_remediation_docker.py", "tests/integration/test_replicas_ha.py",
        "tests/integration/test_roles.py", "tests/integration/test_target_image.py"),
    "real_llm": ("tests/integration/test_real_llm.py",),
}


IN_PROCESS = frozenset({"tests/integration/test_schemathesis.py"})


def scope_of(nodeid: str) -> str:
    """The unit of scheduling: a serial group's name, or the test's file."""
    path = nodeid.split("::", 1)[0]
    for group, prefixes in SERIAL_GROUPS.items():
        if any(path.startswith(prefix) for prefix in prefixes):
            return f"group:{group}"
    return path


class SerialGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)
