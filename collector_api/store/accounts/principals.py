"""Tenants, API keys and viewer users. These tables sit outside row-level security."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import StoreError, owner_connection

KEY_PREFIX = "fo_"
SCOPES = ("ingest", "read", "review", "erase")  # review: reads its tenant and records reviews; erase: erasures
ROLES = ("provider", "client")


class AccountError(StoreError):
    """A bad account request (unknown tenant, duplicate email, ...): message is for the user."""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    client_id: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    secret: str  # shown once, never stored


@dataclass(frozen=True)
class User:
    id: int
    email: str
    role: str
    client_id: str | None
    password_hash: str
    session_epoch: int = 0  # sessions issued in an older epoch are void (sign-out everywhere)


def hash_api_key(secret: str) -> bytes:
    """SHA-256: API keys carry 256 random bits, so a fast hash is safe (argon2 is for passwords)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


async def ensure_tenant(pool: AsyncConnectionPool, client_id: str) -> None:
    async with owner_connection(pool) as conn:
        try:
            await conn.execute("INSERT INTO tenants (client_id) VALUES (%s) ON CONFLICT DO NOTHING", (client_id,))
        except psycopg.errors.CheckViolation as exc:
            raise AccountError(
                f"invalid client id {client_id!r}: use 1-64 letters, digits, '_', '.' or '-',"
                " starting with a letter or digit"
            ) from exc


async def list_tenants(pool: AsyncConnectionPool) -> list[str]:
    async with owner_connection(pool) as conn:
        rows = await (await conn.execute("SELECT client_id FROM tenants ORDER BY client_id")).fetchall()
    return [r["client_id"] for r in rows]


async def create_api_key(pool: AsyncConnectionPool, client_id: str, scope: str = "ingest",
                         secret: str | None = None) -> NewApiKey:
    """Create a key for `client_id` (created as a tenant if new). `secret` lets a deployment
    bootstrap a key it already holds; otherwise 256 random bits are drawn."""
    if scope not in SCOPES:
        raise AccountError(f"invalid scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if secret is not None and len(secret) < 32:
        raise AccountError("an API key must be at least 32 characters long")
    await ensure_tenant(pool, client_id)
    secret = secret or KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(6)
    async with owner_connection(pool) as conn:
        cur = await conn.execute(
            "INSERT INTO api_keys (key_id, client_id, key_hash, scope) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (key_hash) DO NOTHING RETURNING key_id, client_id, scope, created_at, revoked_at",
            (key_id, client_id, hash_api_key(secret), scope))
        row = await cur.fetchone()
        if row is None:  # bootstrap secret already stored: return the existing key
            cur = await conn.execute(
                "SELECT key_id, client_id, scope, created_at, revoked_at FROM api_keys WHERE key_hash = %s",
                (hash_api_key(secret),))
            row = await cur.fetchone()
            if row["client_id"] != client_id:
                raise AccountError("this API key already belongs to another tenant")
    return NewApiKey(ApiKey(**row), secret)


async def list_api_keys(pool: AsyncConnectionPool, client_id: str | None = None) -> list[ApiKey]:
    async with owner_connection(pool) as conn:
        cur = await conn.execute(
            "SELECT key_id, client_id, scope, created_at, revoked_at FROM api_keys"
            " WHERE %(c)s::text IS NULL OR client_id = %(c)s ORDER BY created_at, key_id", {"c": client_id})
        return [ApiKey(**r) for r in await cur.fetchall()]


async def revoke_api_key(pool: AsyncConnectionPool, key_id: str) -> bool:
    async with owner_connection(pool) as conn:
        cur = await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL RETURNING key_id",
            (key_id,))
        return await cur.fetchone() is not None


async def find_api_key(pool: AsyncConnectionPool, secret: str) -> ApiKey | None:
    """The active key matching `secret`, or None. The lookup is by hash; the final equality
    check is constant-time so timing reveals nothing about near misses."""
    digest = hash_api_key(secret)
    async with owner_connection(pool) as conn:
        cur = await conn.execute(
            "SELECT key_id, client_id, scope, created_at, revoked_at, key_hash FROM api_keys"
            " WHERE key_hash = %s AND revoked_at IS NULL", (digest,))
        row = await cur.fetchone()
    if row is None or not hmac.compare_digest(bytes(row.pop("key_hash")), digest):
        return None
    return ApiKey(**row)


async def create_user(pool: AsyncConnectionPool, email: str, password_hash: str, role: str,
                      client_id: str | None) -> User:
    email = email.strip().lower()
    if role not in ROLES:
        raise AccountError(f"invalid role {role!r}: expected provider or client")
    if role == "client" and not client_id:
        raise AccountError("a client user needs --client")
    if role == "provider":
        client_id = None
    if "@" not in email:
        raise AccountError(f"invalid email {email!r}")
    if client_id:
        await ensure_tenant(pool, client_id)
    async with owner_connection(pool) as conn:
        try:
            cur = await conn.execute(
                "INSERT INTO users (email, password_hash, role, client_id) VALUES (%s, %s, %s, %s)"
                " RETURNING id, email, role, client_id, password_hash, session_epoch",
                (email, password_hash, role, client_id))
        except psycopg.errors.UniqueViolation as exc:
            raise AccountError(f"a user with email {email} already exists") from exc
        return User(**await cur.fetchone())


async def find_user(pool: AsyncConnectionPool, email: str) -> User | None:
    async with owner_connection(pool) as conn:
        cur = await conn.execute(
            "SELECT id, email, role, client_id, password_hash, session_epoch FROM users WHERE email = %s",
            (email.strip().lower(),))
        row = await cur.fetchone()
    return User(**row) if row else None


async def get_user(pool: AsyncConnectionPool, user_id: int) -> User | None:
    async with owner_connection(pool) as conn:
        cur = await conn.execute(
            "SELECT id, email, role, client_id, password_hash, session_epoch FROM users WHERE id = %s", (user_id,))
        row = await cur.fetchone()
    return User(**row) if row else None


async def list_users(pool: AsyncConnectionPool) -> list[User]:
    async with owner_connection(pool) as conn:
        cur = await conn.execute(
            "SELECT id, email, role, client_id, password_hash, session_epoch FROM users ORDER BY id")
        return [User(**r) for r in await cur.fetchall()]


async def end_sessions(pool: AsyncConnectionPool, user_id: int) -> None:
    """Void every session of the user (sessions are signed cookies that carry their epoch)."""
    async with owner_connection(pool) as conn:
        await conn.execute("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = %s", (user_id,))


async def upgrade_password_hash(pool: AsyncConnectionPool, user_id: int, old_hash: str, new_hash: str) -> None:
    """Replace a user's hash made with older parameters, only if it is still `old_hash` (a
    password change in between wins)."""
    async with owner_connection(pool) as conn:
        await conn.execute("UPDATE users SET password_hash = %s WHERE id = %s AND password_hash = %s",
                           (new_hash, user_id, old_hash))
