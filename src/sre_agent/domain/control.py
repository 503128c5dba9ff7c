"""Operator control state (mode, kill switch), projected from ModeChanged/Paused/Resumed."""

from __future__ import annotations

from dataclasses import dataclass

from sre_agent.domain.incident import Mode


@dataclass(frozen=True)
class ControlState:
    mode: Mode
    paused: bool


def effective_control(projected: dict[str, str], default_mode: Mode) -> ControlState:
    """The settings give the start-up mode; operator changes in the log take precedence."""
    raw = projected.get("mode")
    mode = Mode(raw) if raw in {m.value for m in Mode} else default_mode
    return ControlState(mode=mode, paused=projected.get("paused") == "true")
