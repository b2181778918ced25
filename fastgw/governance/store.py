"""SQLite persistence of keys, teams and users (the usage log's database file).

Each entity is one row: its id, the columns admin queries filter on, and the whole
entity as JSON, so adding a field needs no migration. Rows are soft-deleted (kept with
``deleted = 1``) so spend reports still name a deleted key. Only admin calls and
start-up touch these tables; the request path reads the in-memory cache.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from typing import Any, Iterable

import aiosqlite
import msgspec

from .. import sqlite_file
from .entities import ENTITY_TYPES, Entity, KeyEntry, TeamEntry, UserEntry

log = logging.getLogger("fastgw.governance")

_TABLES = {"key": ("gov_keys", "token"), "team": ("gov_teams", "team_id"), "user": ("gov_users", "user_id")}

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gov_keys (token TEXT PRIMARY KEY, key_alias TEXT, team_id TEXT, user_id TEXT, "
    "data TEXT NOT NULL, updated_at REAL NOT NULL, deleted INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS gov_keys_team ON gov_keys (team_id)",
    "CREATE INDEX IF NOT EXISTS gov_keys_user ON gov_keys (user_id)",
    "CREATE INDEX IF NOT EXISTS gov_keys_alias ON gov_keys (key_alias)",
    "CREATE TABLE IF NOT EXISTS gov_teams (team_id TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL, "
    "deleted INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS gov_users (user_id TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL, "
    "deleted INTEGER NOT NULL DEFAULT 0)",
)


class StoreUnavailable(Exception):
    """The database could not be read or written; the message says why."""


class GovernanceStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._inode: int | None = None
        self.last_error: str | None = None
        self.recreated = 0  # times the file was found missing and rebuilt from the cache

    async def connect(self) -> None:
        def setup(db: sqlite3.Connection) -> None:
            for statement in SCHEMA:
                db.execute(statement)

        # WAL mode and tables once, serialised across workers; then the connection admin calls use
        await asyncio.to_thread(sqlite_file.prepare, self.path, setup, timeout=2.0)
        db = await aiosqlite.connect(self.path, timeout=2.0)
        try:
            await db.execute("PRAGMA busy_timeout=2000")
        except BaseException:
            await db.close()
            raise
        self._db = db
        self._inode = os.stat(self.path).st_ino

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def file_replaced(self) -> bool:
        """The file was deleted (or replaced) under the open connection."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            return True

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is None or self.file_replaced():
            await self.close()
            await self.connect()
        assert self._db is not None
        return self._db

    # -- entities -----------------------------------------------------------------
    async def load_all(self) -> tuple[list[KeyEntry], list[TeamEntry], list[UserEntry]]:
        db = await self._conn()
        out: list[list[Any]] = []
        for kind in ("key", "team", "user"):
            table, _ = _TABLES[kind]
            async with db.execute(f"SELECT data FROM {table} WHERE deleted = 0") as cursor:
                rows = await cursor.fetchall()
            decoder = msgspec.json.Decoder(ENTITY_TYPES[kind])
            out.append([decoder.decode(row[0]) for row in rows])
        return out[0], out[1], out[2]

    async def put(self, kind: str, entity: Entity) -> None:
        await self.put_many([(kind, entity)])

    async def put_many(self, items: Iterable[tuple[str, Entity]]) -> None:
        """Insert or replace entities in one transaction."""
        db = await self._conn()
        try:
            for kind, entity in items:
                table, id_col = _TABLES[kind]
                data = msgspec.json.encode(entity).decode()
                if kind == "key":
                    assert isinstance(entity, KeyEntry)
                    await db.execute(
                        "INSERT OR REPLACE INTO gov_keys (token, key_alias, team_id, user_id, data, updated_at, deleted) "
                        "VALUES (?, ?, ?, ?, ?, ?, 0)",
                        (entity.token, entity.key_alias, entity.team_id, entity.user_id, data, time.time()))
                else:
                    ident = getattr(entity, id_col)
                    await db.execute(f"INSERT OR REPLACE INTO {table} ({id_col}, data, updated_at, deleted) "
                                     "VALUES (?, ?, ?, 0)", (ident, data, time.time()))
            await db.commit()
        except BaseException:
            await _rollback(db)
            raise

    async def delete_many(self, kind: str, ids: list[str]) -> None:
        db = await self._conn()
        table, id_col = _TABLES[kind]
        try:
            await db.executemany(f"UPDATE {table} SET deleted = 1, updated_at = ? WHERE {id_col} = ?",
                                 [(time.time(), i) for i in ids])
            await db.commit()
        except BaseException:
            await _rollback(db)
            raise

    async def key_names(self, tokens: list[str]) -> dict[str, dict]:
        """Alias, name, team and user of keys (deleted ones too) for reports."""
        if not tokens:
            return {}
        db = await self._conn()
        out: dict[str, dict] = {}
        for start in range(0, len(tokens), 500):
            chunk = tokens[start:start + 500]
            marks = ",".join("?" * len(chunk))
            async with db.execute(f"SELECT token, data FROM gov_keys WHERE token IN ({marks})", chunk) as cursor:
                for token, data in await cursor.fetchall():
                    entry = msgspec.json.decode(data, type=KeyEntry)
                    out[token] = {"key_alias": entry.key_alias, "key_name": entry.key_name}
        return out

    # -- reads for reports and spend ----------------------------------------------
    async def fetch(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        db = await self._conn()
        async with db.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> tuple | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.rollback()
    except Exception:
        pass
