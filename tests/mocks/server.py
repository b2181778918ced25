"""Mock upstream server process for end-to-end tests: ``python tests/mocks/server.py --port P``.

Each provider module contributes its routes; ``/_mock/requests`` returns what was received
and ``/_mock/reset`` clears it.
"""
from __future__ import annotations

import argparse

from aiohttp import web

import mock_anthropic
import mock_bedrock
import mock_cohere
import mock_gemini
import mock_ollama
import mock_openai
from common import Recorder

PROVIDER_MODULES = [mock_openai, mock_anthropic, mock_bedrock, mock_gemini, mock_cohere, mock_ollama]


def build_app() -> web.Application:
    recorder = Recorder()
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def requests(_: web.Request) -> web.Response:
        return web.json_response(recorder.requests)

    async def reset(_: web.Request) -> web.Response:
        recorder.requests.clear()
        recorder.counters.clear()
        return web.json_response({"ok": True})

    app.add_routes([web.get("/_mock/requests", requests), web.post("/_mock/reset", reset)])
    for module in PROVIDER_MODULES:
        app.add_routes(module.routes(recorder))
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(build_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
