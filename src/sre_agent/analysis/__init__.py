"""Analysis: turn an incident and its evidence into one Diagnosis (LLM with rules fallback)."""
