"""Orchestration: correlate, analyse, gate, act, verify. Imports domain and ports only."""
