"""The back half of the pipeline as small handlers, one per step, dispatched by ``Remediation``.

What triggers each handler (by the action's status when the incident is picked up, or by an
event a handler just appended)::

    proposed / approved   ActionProposed, ActionApproved   -> gate
    pending_approval                                        -> expire (window passed?)
    (gate allowed it)                                       -> act
    running (left over from a crash)                        -> reconcile
    succeeded             ActionSucceeded (container kinds) -> verify
                          ActionFailed, VerificationFailed  -> breaker
"""

from sre_agent.pipeline.handlers.base import (
    Context,
    Deps,
    Handler,
    Step,
    StepKind,
    action_request,
    proposal_of,
)
from sre_agent.pipeline.handlers.bus import HANDLERS, Remediation

__all__ = ["HANDLERS", "Context", "Deps", "Handler", "Remediation", "Step", "StepKind",
           "action_request", "proposal_of"]
