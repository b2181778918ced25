"""Admin API for keys, teams and users (LiteLLM's paths and fields); the master key only,
except ``GET /key/info`` which a virtual key may call about itself."""
from __future__ import annotations

import math
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import pipeline, validation
from ..auth import Principal
from ..errors import GatewayError, bad_request
from ..gateway import Gateway
from ..governance import requests as rq
from ..governance.keys import key_id
from ..governance.manage import Manager
from ..responses import JSONBytesResponse, error_response

Handler = Callable[[Request, Manager, Principal], Awaitable[Any]]

MAX_PAGE_SIZE = 1000


def admin_only() -> GatewayError:
    return GatewayError(403, "This endpoint needs the master key; a virtual key cannot call admin endpoints.",
                        "invalid_request_error", None, "admin_only")


def endpoint(handler: Handler, *, self_service: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, require the master key (unless ``self_service``), map errors to OpenAI's shape."""

    async def wrapper(request: Request) -> Response:
        gw: Gateway = request.app.state.gateway
        request_id = pipeline.new_request_id(request.headers.get("x-request-id"))
        try:
            principal = gw.auth.authenticate(request.headers)
            if not principal.is_admin and not self_service:
                raise admin_only()
            result = await handler(request, Manager(gw.governance), principal)
        except GatewayError as err:
            return error_response(err, request_id)
        return JSONBytesResponse(result, 200, {"x-request-id": request_id})

    return wrapper


async def _body(request: Request, kind: type) -> Any:
    gw: Gateway = request.app.state.gateway
    return rq.decode(await validation.read_json(request, gw.max_body_bytes), kind)


def query_int(request: Request, name: str, default: int, low: int = 1, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer", name) from None
    if value < low or (high is not None and value > high):
        raise bad_request(f"{name} must be between {low} and {high}" if high else f"{name} must be at least {low}",
                          name)
    return value


def paginate(items: list, request: Request, size_name: str = "size") -> tuple[list, int, int, int]:
    page = query_int(request, "page", 1)
    size = query_int(request, size_name, 100, 1, MAX_PAGE_SIZE)
    pages = max(1, math.ceil(len(items) / size))
    return items[(page - 1) * size:page * size], page, size, pages


# -- keys ---------------------------------------------------------------------------
async def key_generate(request: Request, m: Manager, p: Principal) -> Any:
    return await m.generate_key(await _body(request, rq.KeyGenerate))


async def key_info(request: Request, m: Manager, p: Principal) -> Any:
    value = request.query_params.get("key")
    if p.is_admin:
        if not value:
            raise bad_request("give the key to look up as ?key=", "key", "missing_required_parameter")
        return await m.key_info(m.key(value))
    assert p.identity is not None
    if value and key_id(value) != p.identity.key.token:
        raise GatewayError(403, "A virtual key may only look up itself.", "invalid_request_error", "key",
                           "admin_only")
    return await m.key_info(m.key(p.identity.key.token))


async def key_list(request: Request, m: Manager, p: Principal) -> Any:
    q = request.query_params
    keys = m.list_keys(q.get("team_id"), q.get("user_id"), q.get("key_alias"))
    page_items, page, size, pages = paginate(keys, request)
    full = q.get("return_full_object", "false").lower() == "true"
    return {"keys": [m.key_public(k) if full else k.token for k in page_items], "total_count": len(keys),
            "current_page": page, "total_pages": pages}


async def key_update(request: Request, m: Manager, p: Principal) -> Any:
    return await m.update_key(await _body(request, rq.KeyUpdate))


async def key_delete(request: Request, m: Manager, p: Principal) -> Any:
    return await m.delete_keys(await _body(request, rq.KeyDelete))


async def key_block(request: Request, m: Manager, p: Principal) -> Any:
    return await m.set_blocked((await _body(request, rq.KeyRef)).key, True)


async def key_unblock(request: Request, m: Manager, p: Principal) -> Any:
    return await m.set_blocked((await _body(request, rq.KeyRef)).key, False)


async def key_regenerate(request: Request, m: Manager, p: Principal) -> Any:
    gw: Gateway = request.app.state.gateway
    raw = await validation.read_json(request, gw.max_body_bytes) if await _has_body(request) else {}
    body = rq.decode(raw, rq.KeyRegenerate)
    value = request.path_params.get("key") or (body.key if isinstance(body.key, str) else None)
    if not value:
        raise bad_request("give the key to regenerate in 'key'", "key", "missing_required_parameter")
    return await m.regenerate_key(value, body)


async def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return length not in (None, "0") or "chunked" in request.headers.get("transfer-encoding", "")


# -- teams --------------------------------------------------------------------------
async def team_new(request: Request, m: Manager, p: Principal) -> Any:
    return await m.new_team(await _body(request, rq.TeamNew))


async def team_info(request: Request, m: Manager, p: Principal) -> Any:
    team_id = request.query_params.get("team_id")
    if not team_id:
        raise bad_request("give the team as ?team_id=", "team_id", "missing_required_parameter")
    return await m.team_info(team_id)


async def team_update(request: Request, m: Manager, p: Principal) -> Any:
    return await m.update_team(await _body(request, rq.TeamUpdate))


async def team_delete(request: Request, m: Manager, p: Principal) -> Any:
    return await m.delete_teams(await _body(request, rq.TeamDelete))


async def team_list(request: Request, m: Manager, p: Principal) -> Any:
    teams = sorted(m.gov.cache.teams.values(), key=lambda t: t.created_at)
    return [m.public(t) for t in teams]


# -- users --------------------------------------------------------------------------
async def user_new(request: Request, m: Manager, p: Principal) -> Any:
    return await m.new_user(await _body(request, rq.UserNew))


async def user_info(request: Request, m: Manager, p: Principal) -> Any:
    user_id = request.query_params.get("user_id")
    if not user_id:
        raise bad_request("give the user as ?user_id=", "user_id", "missing_required_parameter")
    return await m.user_info(user_id)


async def user_update(request: Request, m: Manager, p: Principal) -> Any:
    return await m.update_user(await _body(request, rq.UserUpdate))


async def user_delete(request: Request, m: Manager, p: Principal) -> Any:
    return await m.delete_users(await _body(request, rq.UserDelete))


async def user_list(request: Request, m: Manager, p: Principal) -> Any:
    users = sorted(m.gov.cache.users.values(), key=lambda u: u.created_at)
    page_items, page, size, pages = paginate(users, request, "page_size")
    return {"users": [m.public(u) for u in page_items], "total": len(users), "page": page, "page_size": size,
            "total_pages": pages}


def routes() -> list[Route]:
    table: list[tuple[str, Handler, str, bool]] = [
        ("/key/generate", key_generate, "POST", False),
        ("/key/info", key_info, "GET", True),
        ("/key/list", key_list, "GET", False),
        ("/key/update", key_update, "POST", False),
        ("/key/delete", key_delete, "POST", False),
        ("/key/block", key_block, "POST", False),
        ("/key/unblock", key_unblock, "POST", False),
        ("/key/regenerate", key_regenerate, "POST", False),
        ("/key/{key}/regenerate", key_regenerate, "POST", False),
        ("/team/new", team_new, "POST", False),
        ("/team/info", team_info, "GET", False),
        ("/team/update", team_update, "POST", False),
        ("/team/delete", team_delete, "POST", False),
        ("/team/list", team_list, "GET", False),
        ("/user/new", user_new, "POST", False),
        ("/user/info", user_info, "GET", False),
        ("/user/update", user_update, "POST", False),
        ("/user/delete", user_delete, "POST", False),
        ("/user/list", user_list, "GET", False),
    ]
    return [Route(path, endpoint(handler, self_service=own), methods=[method]) for path, handler, method, own in table]
