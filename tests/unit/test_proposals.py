"""ActionProposed events record whether the rules agree with an LLM's proposal."""

from __future__ import annotations

from sre_agent.domain.diagnosis import ActionKind, Diagnosis, Engine, ProposedAction
from sre_agent.domain.evidence import ResolvedTarget
from sre_agent.pipeline.analyse import proposal_events

WEB = ResolvedTarget(name="web", via="label:container", verified=True,
                     labels={"sre-agent.managed": "true"})


def diag(engine: Engine, *actions: tuple[ActionKind, str | None]) -> Diagnosis:
    return Diagnosis(summary="s", engine=engine, proposed_actions=[
        ProposedAction(kind=k, target=t, reason="r") for k, t in actions])


def agreed(events: list) -> dict[str, bool]:  # type: ignore[type-arg]
    return {e.data["kind"]: e.data["proposal"]["agreed"] for e in events}


def test_one_engine_always_agrees() -> None:
    llm = diag(Engine.LLM, (ActionKind.RESTART_CONTAINER, "web"))
    assert agreed(proposal_events("i", llm, [WEB], "A")) == {"restart_container": True}


def test_agreement_is_per_kind_and_target() -> None:
    llm = diag(Engine.LLM, (ActionKind.RESTART_CONTAINER, "web"), (ActionKind.NOTIFY, None))
    rules = diag(Engine.RULES, (ActionKind.NOTIFY, None), (ActionKind.START_CONTAINER, "web"))
    assert agreed(proposal_events("i", llm, [WEB], "A", rules)) == {
        "restart_container": False, "notify": True}
