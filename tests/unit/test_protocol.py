"""The prompted tool protocol: what a model without native tool calls may ask for is data."""

from __future__ import annotations

import pytest

from sre_agent.analysis.protocol import (
    TOOL_NAMES,
    ProtocolError,
    ToolRequest,
    parse_tool_request,
    protocol_text,
    tool_request_json_schema,
)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"tool": "container_logs", "args": {"name": "api", "tail": 20}}',
     ToolRequest("container_logs", {"name": "api", "tail": 20})),
    ('{"tool": "container_state", "args": {"name": " api "}}',
     ToolRequest("container_state", {"name": "api"})),
    ('{"tool": "query_prometheus", "args": {"promql": "up{job=\\"api\\"}"}}',
     ToolRequest("query_prometheus", {"promql": 'up{job="api"}'})),
    # the shapes small models write on their own
    ('<tool_call>\n{"name": "container_state", "arguments": {"name": "api"}}\n</tool_call>',
     ToolRequest("container_state", {"name": "api"})),
    ('{"name": "container_logs", "arguments": "{\\"name\\": \\"api\\"}"}',
     ToolRequest("container_logs", {"name": "api", "tail": 20})),
    ('```json\n{"tool": "container_state", "args": {"container": "api"}}\n```',
     ToolRequest("container_state", {"name": "api"})),
    ('I will check. {"tool": "query_prometheus", "args": {"query": "up"}} thanks',
     ToolRequest("query_prometheus", {"promql": "up"})),
    ('[{"tool": "container_state", "args": {"name": "a"}}, {"tool": "container_state"}]',
     ToolRequest("container_state", {"name": "a"})),
    ('{"tool": "container_logs", "args": {"name": "api", "tail": 100000}}',
     ToolRequest("container_logs", {"name": "api", "tail": 200})),
])
def test_requests_are_parsed(text: str, expected: ToolRequest) -> None:
    assert parse_tool_request(text) == expected


@pytest.mark.parametrize("text", [
    '{"tool": "none"}', '{"tool": "None"}', "[]", '{"tool": ""}',
    '{"summary": "api is down", "confidence": 0.8}',  # the final answer given early
])
def test_no_tool(text: str) -> None:
    assert parse_tool_request(text) is None


@pytest.mark.parametrize(("text", "why"), [
    ('{"tool": "drop_database", "args": {}}', "unknown tool"),
    ('{"tool": "restart_container", "args": {"name": "api"}}', "unknown tool"),
    ('{"tool": "container_logs", "args": {}}', "needs a container 'name'"),
    ('{"tool": "container_logs", "args": {"name": 7}}', "needs a container 'name'"),
    ('{"tool": "container_logs", "args": {"name": "api", "tail": "all"}}', "'tail'"),
    ('{"tool": "query_prometheus", "args": {"promql": ""}}', "non-empty"),
    ('{"tool": "query_prometheus", "args": {"promql": "' + "x" * 3000 + '"}}', "longer"),
    ('{"tool": "container_state", "args": "{not json"}', "not valid JSON"),
    ('{"tool": "container_state", "args": [1]}', "must be an object"),
    ("no json at all", "no JSON"),
    ('{"tool": "container_state", "args": {"name": "a"', "malformed"),
    ('"just a string"', "must be a JSON object"),
    ('{"args": {}}', "missing 'tool'"),
])
def test_bad_requests_are_refused(text: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        parse_tool_request(text)


def test_schema_and_text_name_the_closed_set() -> None:
    schema = tool_request_json_schema()
    assert schema["properties"]["tool"]["enum"] == [*TOOL_NAMES, "none"]
    text = protocol_text()
    for name in TOOL_NAMES:
        assert name in text
