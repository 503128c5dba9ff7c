"""The effective safety policy, and a side-effect-free simulation of a notification."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from sre_agent.api.deps import OperatorDep, PolicyDep, ServicesDep, SettingsDep, StoreDep
from sre_agent.api.schemas import ErrorOut, PolicyOut, SimulationOut
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.control import effective_control
from sre_agent.pipeline.simulate import simulate

router = APIRouter(prefix="/policy", tags=["policy"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})


@router.get("", response_model=PolicyOut)
async def get_policy(store: StoreDep, policy: PolicyDep, settings: SettingsDep,
                     services: ServicesDep) -> dict[str, Any]:
    """The policy in force: settings plus the operator's mode and pause state."""
    state = effective_control(await store.control_state(), settings.mode)
    out = asdict(policy)
    out["allowlist"] = sorted(k.value for k in policy.allowlist)
    return {**out, "mode": state.mode, "paused": state.paused,
            "available_actions": sorted(k.value for k in services.backends)}


@router.post("/simulate", response_model=SimulationOut,
             responses={422: {"model": ErrorOut}})
async def simulate_policy(body: WebhookNotification, services: ServicesDep) -> dict[str, Any]:
    """Analyse a notification and return the gate's decisions now. Nothing is stored or run."""
    store = services.store
    analysis = services.analysis
    return await simulate(
        body, analyzer=analysis.analyzer, resolver=analysis.resolver, sources=analysis.sources,
        policy=services.policy,
        control=effective_control(await store.control_state(), services.settings.mode),
        history=await store.gate_history(time.time(), services.policy.history_window_s),
        queries_for=analysis.queries_for, available_kinds=frozenset(services.backends))
