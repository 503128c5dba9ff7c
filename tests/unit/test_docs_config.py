"""Every setting is documented: in .env.example and in the README's configuration table."""

from __future__ import annotations

from pathlib import Path

from sre_agent.config import LLMSettings, Settings

ROOT = Path(__file__).resolve().parents[2]


def env_names() -> list[str]:
    names = [f"SRE_AGENT_{n.upper()}" for n in Settings.model_fields if n != "llm"]
    names += [f"SRE_AGENT_LLM__{n.upper()}" for n in LLMSettings.model_fields]
    return names


def test_every_setting_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    missing = [n for n in env_names() if n not in text]
    assert missing == []


def test_every_setting_is_in_readme() -> None:
    text = (ROOT / "README.md").read_text()
    missing = [n for n in env_names() if f"`{n}`" not in text]
    assert missing == []
