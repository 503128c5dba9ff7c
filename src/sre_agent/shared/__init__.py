"""Helpers every adapter may use and none owns: redaction, the Docker client and its facts."""
