"""One tenant transaction over checkouts, orders, keys and the outbox; the runner; leases."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from services.chassis.db.database import Database
from services.chassis.events.outbox import stage
from services.checkout.domain.checkouts import Checkout
from services.checkout.domain.events import CheckoutEvent
from services.checkout.domain.orders import Order
from services.checkout.domain.ports import (
    Lease,
    OrderFilter,
    StoredKey,
    TransactionRunner,
    UnitOfWork,
    VersionConflictError,
)
from services.checkout.events import SOURCE, outgoing
from services.checkout.storage.codec import dump_checkout, dump_order, load_checkout, load_order
from services.checkout.storage.failures import as_domain_error, is_transient

T = TypeVar("T")
log = logging.getLogger(__name__)

IN_FLIGHT = ("PENDING", "AUTHORIZING", "CAPTURING", "COMPENSATING")

# The claim registers the tenant (for the recovery worker's scan) in the same statement, only
# when the key is new: a replay writes nothing.
_CLAIM = text(
    "WITH claimed AS (INSERT INTO idempotency_keys"
    " (tenant_id, request_id, method, fingerprint, result)"
    " VALUES (:tenant, :request_id, :method, :fingerprint, CAST(:result AS jsonb))"
    " ON CONFLICT (tenant_id, request_id) DO NOTHING RETURNING request_id),"
    " registered AS (INSERT INTO tenants (tenant_id) SELECT :tenant"
    " WHERE EXISTS (SELECT FROM claimed) ON CONFLICT (tenant_id) DO NOTHING)"
    " SELECT request_id FROM claimed"
)
# A new statement, hence a new snapshot: it sees the row a conflicting claim committed.
_STORED = text(
    "SELECT method, fingerprint, result FROM idempotency_keys"
    " WHERE tenant_id = :tenant AND request_id = :request_id"
)
_GET_CHECKOUT = "SELECT body FROM checkouts WHERE tenant_id = :tenant AND checkout_id = :id"
_ADD_CHECKOUT = text(
    "INSERT INTO checkouts (tenant_id, checkout_id, customer_id, currency_code, state, version,"
    " expire_time, create_time, update_time, body) VALUES (:tenant, :id, :customer, :currency,"
    " :state, :version, :expire_time, :create_time, :update_time, CAST(:body AS jsonb))"
)
_SAVE_CHECKOUT = text(
    "UPDATE checkouts SET customer_id = :customer, state = :state, version = :version,"
    " expire_time = :expire_time, update_time = :update_time, body = CAST(:body AS jsonb)"
    " WHERE tenant_id = :tenant AND checkout_id = :id"
)
_GET_ORDER = "SELECT body FROM orders WHERE tenant_id = :tenant AND order_id = :id"
# Each order write is one statement with its history row (the history's foreign key is
# checked at the statement's end, when the order row exists) and, when the same transition
# changes the order's checkout, with that checkout's new state (`c_*`; all NULL: none, the
# update then matches no row). With a lease (PlaceOrder's own drive), the order is born held
# by its driver.
_ADD_ORDER = text(
    "WITH written AS (INSERT INTO orders (tenant_id, order_id, checkout_id, customer_id,"
    " request_id, state, version, currency_code, total_minor, payment, create_time,"
    " update_time, lease_owner, lease_until, body)"
    " VALUES (:tenant, :id, :checkout, :customer, :request_id, :state, :version, :currency,"
    " :total, :payment, :create_time, :update_time, CAST(:lease_owner AS text),"
    " CASE WHEN CAST(:lease_owner AS text) IS NULL THEN NULL"
    " ELSE clock_timestamp() + make_interval(secs => :lease_seconds) END,"
    " CAST(:body AS jsonb)) RETURNING order_id),"
    " checkout AS (UPDATE checkouts SET customer_id = :c_customer, state = :c_state,"
    " version = :c_version, expire_time = :c_expire_time, update_time = :c_update_time,"
    " body = CAST(:c_body AS jsonb) WHERE tenant_id = :tenant"
    " AND checkout_id = CAST(:c_id AS text) AND EXISTS (SELECT FROM written))"
    " INSERT INTO order_history (tenant_id, order_id, version, state, step)"
    " SELECT :tenant, :id, :version, :state, CAST(:step AS jsonb) FROM written"
    " RETURNING version"
)
# A terminal order is nobody's to drive: its lease goes in the write that ends it.
_SAVE_ORDER = text(
    "WITH written AS (UPDATE orders SET state = :state, version = :version,"
    " payment = :payment, update_time = :update_time, body = CAST(:body AS jsonb),"
    " lease_owner = CASE WHEN :done THEN NULL ELSE lease_owner END,"
    " lease_until = CASE WHEN :done THEN NULL ELSE lease_until END"
    " WHERE tenant_id = :tenant AND order_id = :id AND version = :expected"
    " RETURNING order_id),"
    " checkout AS (UPDATE checkouts SET customer_id = :c_customer, state = :c_state,"
    " version = :c_version, expire_time = :c_expire_time, update_time = :c_update_time,"
    " body = CAST(:c_body AS jsonb) WHERE tenant_id = :tenant"
    " AND checkout_id = CAST(:c_id AS text) AND EXISTS (SELECT FROM written))"
    " INSERT INTO order_history (tenant_id, order_id, version, state, step)"
    " SELECT :tenant, :id, :version, :state, CAST(:step AS jsonb) FROM written"
    " RETURNING version"
)
_NO_CHECKOUT = dict.fromkeys(
    ("c_id", "c_customer", "c_state", "c_version", "c_expire_time", "c_update_time", "c_body")
)


class SqlUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, tenant: str) -> None:
        self.tenant = tenant
        self._session = session

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def _all(self, statement: Any, **params: Any) -> list[Any]:
        result = await self._session.execute(statement, {"tenant": self.tenant, **params})
        return list(result.all()) if result.returns_rows else []  # type: ignore[attr-defined]

    async def claim_request(
        self, request_id: str, method: str, fingerprint: bytes, result: dict[str, str]
    ) -> StoredKey | None:
        claimed = await self._all(
            _CLAIM,
            request_id=request_id,
            method=method,
            fingerprint=fingerprint,
            result=json.dumps(result),
        )
        if claimed:
            return None
        (row,) = await self._all(_STORED, request_id=request_id)
        return StoredKey(row.method, bytes(row.fingerprint), dict(row.result))

    async def get_checkout(self, checkout_id: str, *, lock: bool = False) -> Checkout | None:
        statement = text(_GET_CHECKOUT + (" FOR UPDATE" if lock else ""))
        rows = await self._all(statement, id=checkout_id)
        return load_checkout(rows[0].body) if rows else None

    def _checkout_row(self, checkout: Checkout) -> dict[str, Any]:
        return {
            "id": checkout.checkout_id,
            "customer": checkout.customer.customer_id,
            "currency": checkout.currency,
            "state": checkout.state.value,
            "version": checkout.version,
            "expire_time": checkout.expire_time,
            "create_time": checkout.create_time,
            "update_time": checkout.update_time,
            "body": dump_checkout(checkout),
        }

    async def add_checkout(self, checkout: Checkout) -> None:
        await self._all(_ADD_CHECKOUT, **self._checkout_row(checkout))

    async def save_checkout(self, checkout: Checkout) -> None:
        row = self._checkout_row(checkout)
        del row["create_time"]
        await self._all(_SAVE_CHECKOUT, **row)

    async def get_order(self, order_id: str, *, lock: bool = False) -> Order | None:
        statement = text(_GET_ORDER + (" FOR UPDATE" if lock else ""))
        rows = await self._all(statement, id=order_id)
        return load_order(rows[0].body) if rows else None

    async def add_order(
        self, order: Order, lease: Lease | None = None, checkout: Checkout | None = None
    ) -> None:
        await self._all(
            _ADD_ORDER,
            **self._history(order),
            **self._changed(checkout),
            checkout=order.checkout_id,
            customer=order.customer.customer_id,
            request_id=order.request_id,
            currency=order.quote.currency,
            total=order.quote.total,
            payment=order.payment,
            create_time=order.create_time,
            update_time=order.update_time,
            body=dump_order(order),
            lease_owner=None if lease is None else lease.owner,
            lease_seconds=0.0 if lease is None else lease.seconds,
        )

    async def save_order(
        self, order: Order, expected_version: int, checkout: Checkout | None = None
    ) -> None:
        written = await self._all(
            _SAVE_ORDER,
            **self._history(order),
            **self._changed(checkout),
            payment=order.payment,
            update_time=order.update_time,
            body=dump_order(order),
            done=order.done,
            expected=expected_version,
        )
        if len(written) != 1:
            raise VersionConflictError(order.name)

    def _changed(self, checkout: Checkout | None) -> dict[str, Any]:
        """The `c_*` parameters of an order write: the checkout's new state, or all NULL."""
        if checkout is None:
            return _NO_CHECKOUT
        row = self._checkout_row(checkout)
        return {f"c_{name}": value for name, value in row.items() if name != "create_time"}

    @staticmethod
    def _history(order: Order) -> dict[str, Any]:
        """The order's key, version and state, and its current step as the history keeps it."""
        step = order.current_step
        body = None
        if step is not None:
            body = json.dumps(
                {
                    "type": step.type.value,
                    "state": step.state.value,
                    "attempt_count": step.attempt_count,
                    "request_id": step.request_id,
                    "error_reason": step.error_reason,
                }
            )
        return {
            "id": order.order_id,
            "version": order.version,
            "state": order.state.value,
            "step": body,
        }

    async def list_orders(
        self, where: OrderFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[Order]:
        clauses = ["tenant_id = :tenant"]
        params: dict[str, Any] = {"limit": limit}
        if where.customer_id is not None:
            clauses.append("customer_id = :customer")
            params["customer"] = where.customer_id
        if where.state is not None:
            clauses.append("state = :state")
            params["state"] = where.state.value
        if where.checkout_id is not None:
            clauses.append("checkout_id = :checkout")
            params["checkout"] = where.checkout_id
        if after is not None:
            clauses.append("(create_time, order_id) < (:after_time, :after_id)")
            params["after_time"], params["after_id"] = after
        statement = text(
            f"SELECT body FROM orders WHERE {' AND '.join(clauses)}"  # noqa: S608 - fixed clauses
            " ORDER BY create_time DESC, order_id DESC LIMIT :limit"
        )
        return [load_order(row.body) for row in await self._all(statement, **params)]

    async def stage(self, events: Sequence[CheckoutEvent]) -> None:
        # Staging locks each subject until commit: a stable order avoids deadlocks.
        for message, subject in sorted((outgoing(e) for e in events), key=lambda p: p[1]):
            await stage(self._session, message, subject=subject, source=SOURCE)


class SqlTransactionRunner(TransactionRunner):
    """Runs each use case in its own tenant transaction; lost races run it again."""

    def __init__(self, database: Database, *, attempts: int = 10) -> None:
        self._database = database
        self._attempts = attempts

    async def run(self, tenant: str, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=0.002, max=0.2),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._database.tenant_transaction(tenant) as session:
                        return await work(SqlUnitOfWork(session, tenant))
        except (DBAPIError, psycopg.Error) as error:
            mapped = as_domain_error(error)
            if mapped is None:
                raise
            raise mapped from error
        raise AssertionError("unreachable: tenacity reraises the last failure")


_ACQUIRE = text(
    "UPDATE orders SET lease_owner = :owner,"
    " lease_until = clock_timestamp() + make_interval(secs => :seconds)"
    " WHERE tenant_id = :tenant AND order_id = :id AND (lease_owner IS NULL"
    " OR lease_owner = :owner OR lease_until < clock_timestamp()) RETURNING order_id"
)
# Acquires an in-flight order's lease and reads the order in one statement. The fallback read
# (lease not taken) sees the statement's snapshot: the body as of then, which the lease
# update would not have changed anyway.
_TAKE = text(
    "WITH taken AS (UPDATE orders SET lease_owner = :owner,"
    " lease_until = clock_timestamp() + make_interval(secs => :seconds)"
    " WHERE tenant_id = :tenant AND order_id = :id"
    " AND state IN ('PENDING', 'AUTHORIZING', 'CAPTURING', 'COMPENSATING')"
    " AND (lease_owner IS NULL OR lease_owner = :owner OR lease_until < clock_timestamp())"
    " RETURNING body)"
    " SELECT true AS taken, body FROM taken"
    " UNION ALL SELECT false, body FROM orders WHERE tenant_id = :tenant AND order_id = :id"
    " AND NOT EXISTS (SELECT FROM taken)"
)
_RELEASE = text(
    "UPDATE orders SET lease_owner = NULL, lease_until = NULL"
    " WHERE tenant_id = :tenant AND order_id = :id AND lease_owner = :owner"
)
_TENANTS = text("SELECT tenant_id FROM tenants ORDER BY tenant_id")
_STALLED = text(
    "SELECT order_id FROM orders WHERE tenant_id = :tenant"
    " AND state IN ('PENDING', 'AUTHORIZING', 'CAPTURING', 'COMPENSATING')"
    " AND (lease_until IS NULL OR lease_until < clock_timestamp())"
    " AND update_time < clock_timestamp() - make_interval(secs => :quiet)"
    " ORDER BY update_time LIMIT :limit"
)


class SqlLeases:
    """Order leases in the orders table: one driver per order; a lapsed lease is free."""

    def __init__(self, database: Database, *, quiet_seconds: float = 1.0) -> None:
        self._database = database
        self._quiet = quiet_seconds  # a fresh order is left to the call that placed it

    async def acquire(self, tenant: str, order_id: str, owner: str, seconds: float) -> bool:
        async with self._database.tenant_transaction(tenant) as session:
            params = {"tenant": tenant, "id": order_id, "owner": owner, "seconds": seconds}
            return (await session.execute(_ACQUIRE, params)).first() is not None

    async def take(self, tenant: str, order_id: str, lease: Lease) -> tuple[bool, Order | None]:
        async with self._database.tenant_transaction(tenant) as session:
            params = {"tenant": tenant, "id": order_id, "owner": lease.owner}
            row = (await session.execute(_TAKE, {**params, "seconds": lease.seconds})).first()
        if row is None:
            return False, None
        return bool(row.taken), load_order(row.body)

    async def release(self, tenant: str, order_id: str, owner: str) -> None:
        async with self._database.tenant_transaction(tenant) as session:
            await session.execute(_RELEASE, {"tenant": tenant, "id": order_id, "owner": owner})

    async def stalled(self, limit: int) -> list[tuple[str, str]]:
        async with self._database.transaction() as session:
            tenants = list((await session.execute(_TENANTS)).scalars())
        found: list[tuple[str, str]] = []
        for tenant in tenants:
            async with self._database.tenant_transaction(tenant) as session:
                params = {"tenant": tenant, "limit": limit - len(found), "quiet": self._quiet}
                rows = (await session.execute(_STALLED, params)).scalars()
                found += [(tenant, order_id) for order_id in rows]
            if len(found) >= limit:
                break
        return found
