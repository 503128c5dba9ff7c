"""SRE Agent: Alertmanager webhooks in, diagnosis and safety-gated remediation out."""

__version__ = "0.1.0"
