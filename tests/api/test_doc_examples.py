"""The README's and the guide's curl examples as a reader pastes them: no fixed date in a request, and those
that need a time compute it, so the server accepts them and their ranges hold today's messages on any day."""

import json
from pathlib import Path
import re
import shlex
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "docs/operations.md"]
SERVER = "http://127.0.0.1:8000"
# Stands in for curl: prints what it was asked (its arguments, after the shell's expansions, and its stdin for
# `-d @-`) as one JSON line.
FAKE_CURL = (f"curl() {{ {shlex.quote(sys.executable)} -c 'import json, sys; print(json.dumps({{\"args\": sys.argv[1:], "
             "\"stdin\": sys.stdin.read() if \"@-\" in sys.argv else \"\"}))' \"$@\"; }\n")


def shell_blocks(markdown: str) -> list[list[str]]:
    """The lines of each unlabelled code block (the shell's; JSON and Python blocks are labelled)."""
    blocks, block, label = [], None, None
    for line in markdown.splitlines():
        if line.startswith("```"):
            if block is None:
                block, label = [], line.removeprefix("```")
            else:
                if not label:
                    blocks.append(block)
                block = None
        elif block is not None:
            block.append(line)
    return blocks


def curl_commands(markdown: str) -> list[str]:
    """Every curl command of the text's shell blocks, with its continuation lines and the here-document it
    reads."""
    commands = []
    for block in shell_blocks(markdown):
        lines = iter(block)
        for line in lines:
            if not line.startswith("curl "):
                continue
            command = [line]
            while command[-1].endswith("\\"):
                command.append(next(lines))
            if "<<EOF" in line:
                command += iter(lambda: next(lines), "EOF")
                command.append("EOF")
            commands.append("\n".join(command))
    return commands


EXAMPLES = [command for doc in DOCS for command in curl_commands((ROOT / doc).read_text())]
DATED = [command for command in EXAMPLES if "$(date " in command]


def test_no_request_example_has_a_fixed_date():
    assert len(EXAMPLES) > 10
    assert [command for command in EXAMPLES if re.search(r"\b20\d\d-\d\d-\d\d", command)] == []


def test_the_dated_examples_are_the_send_at_the_usage_and_the_export():
    assert [re.search(r"/v1/\w+", command).group(0) for command in DATED] == ["/v1/usage", "/v1/messages", "/v1/exports"]


def pasted(command: str, key: str) -> dict:
    """What curl would send for the command, run by bash as the docs give it."""
    done = subprocess.run(["bash", "-c", FAKE_CURL + command], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "MITTIS_API_KEY": key, "LC_ALL": "C"}, check=True)
    return json.loads(done.stdout)


def replay(client, request: dict):
    """The request through Django's test client: curl's method, path, headers and body."""
    args, headers, body = request["args"], {}, None
    for option, value in zip(args, args[1:]):
        if option == "-H":
            name, _, header = value.partition(": ")
            headers[f"HTTP_{name.upper().replace('-', '_')}"] = header
        elif option == "-d":
            body = request["stdin"] if value == "@-" else value
    url = next(arg for arg in args if arg.startswith(SERVER))
    headers.pop("HTTP_CONTENT_TYPE", None)
    return client.generic("POST" if body is not None else "GET", url.removeprefix(SERVER), body or "",
                          content_type="application/json", **headers)


@pytest.mark.parametrize("command", DATED, ids=lambda command: re.search(r"/v1/\w+", command).group(0))
def test_a_dated_example_works_today(anonymous, test_key, send, command):
    sent_today = send().json()

    answer = replay(anonymous, pasted(command, test_key))

    assert answer.status_code in (200, 201, 202), answer.content
    if "/v1/usage" in command:
        assert sum(row["messages"] for row in answer.json()["data"]) == 1, f"{sent_today['id']} not in the range"
    if "send_at" in command:
        assert answer.json()["status"] == "scheduled"
