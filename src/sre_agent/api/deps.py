"""FastAPI dependencies, as aliases routes can annotate with."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from sre_agent.api.auth import operator_authorized
from sre_agent.bootstrap import Container
from sre_agent.domain.events import Actor

_NAME = re.compile(r"[^A-Za-z0-9_.@-]")


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def require_operator(
    container: ContainerDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    if not operator_authorized(container.settings, authorization):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or invalid operator token",
            headers={"WWW-Authenticate": "Bearer"})


def operator_actor(
    x_operator: Annotated[str | None, Header(description="Operator name for the audit log")] = None,
) -> str:
    """The actor recorded for control changes: ``operator:NAME`` (sanitised, 64 chars)."""
    name = _NAME.sub("", x_operator or "")[:64] or "token"
    return Actor.operator(name)


OperatorDep = Depends(require_operator)
OperatorActor = Annotated[str, Depends(operator_actor)]
