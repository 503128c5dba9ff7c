"""The demo stack (``sre-agent demo``, the end-to-end tests and the time-to-recover benchmark):
Prometheus, Alertmanager, the demo target container and the agent on one machine."""

from sre_agent.demo.processes import StackError
from sre_agent.demo.stack import DemoStack, StackOptions, TargetSpec

__all__ = ["DemoStack", "StackError", "StackOptions", "TargetSpec"]
