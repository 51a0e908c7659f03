"""The tenant's routing configuration: one JSON document, versioned for etags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from services.payments.domain.methods import PaymentMethodType
from services.payments.domain.routing import RoutingConfig, RoutingRule
from services.payments.storage.sql import Sql, query

_GET = query("SELECT config, version, update_time FROM routing_configs WHERE tenant_id = :tenant")
_UPSERT = query(
    "INSERT INTO routing_configs (tenant_id, config, version, update_time)"
    " VALUES (:tenant, :config, 1, :now)"
    " ON CONFLICT (tenant_id) DO UPDATE SET config = EXCLUDED.config,"
    " version = routing_configs.version + 1, update_time = EXCLUDED.update_time"
    " WHERE routing_configs.version = :version"
    " RETURNING version, update_time"
)


@dataclass(frozen=True, slots=True)
class StoredRouting:
    config: RoutingConfig
    descriptions: dict[str, str]
    """Rule id -> the rule's description (kept for operators, not used by routing)."""
    version: int
    """0 before the first update."""
    update_time: datetime | None


def _to_json(config: RoutingConfig, descriptions: dict[str, str]) -> dict[str, Any]:
    return {
        "rules": [
            {
                "rule_id": r.rule_id,
                "psps": list(r.psps),
                "currency_code": r.currency_code,
                "min_amount_minor": r.min_amount_minor,
                "max_amount_minor": r.max_amount_minor,
                "payment_method_types": sorted(t.value for t in r.payment_method_types),
                "description": descriptions.get(r.rule_id, ""),
            }
            for r in config.rules
        ],
        "default_psps": list(config.default_psps),
    }


def _from_json(data: dict[str, Any]) -> tuple[RoutingConfig, dict[str, str]]:
    rules = tuple(
        RoutingRule(
            rule_id=r["rule_id"],
            psps=tuple(r["psps"]),
            currency_code=r["currency_code"],
            min_amount_minor=int(r["min_amount_minor"]),
            max_amount_minor=int(r["max_amount_minor"]),
            payment_method_types=frozenset(PaymentMethodType(t) for t in r["payment_method_types"]),
        )
        for r in data.get("rules", [])
    )
    descriptions = {r["rule_id"]: r.get("description", "") for r in data.get("rules", [])}
    return RoutingConfig(rules, tuple(data.get("default_psps", []))), descriptions


class SqlRouting:
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def get(self) -> StoredRouting:
        row = await self._sql.first(_GET, {"tenant": self._tenant})
        if row is None:
            return StoredRouting(RoutingConfig(), {}, 0, None)
        config, descriptions = _from_json(row.config)
        return StoredRouting(config, descriptions, row.version, row.update_time)

    async def put(
        self, config: RoutingConfig, descriptions: dict[str, str], version: int, now: datetime
    ) -> StoredRouting | None:
        """Store `config` if the stored version is still `version`; None when it moved on."""
        row = await self._sql.first(
            _UPSERT,
            {
                "tenant": self._tenant,
                "config": Jsonb(_to_json(config, descriptions)),
                "version": version,
                "now": now,
            },
        )
        if row is None or (version == 0 and row.version != 1):
            return None
        return StoredRouting(config, descriptions, row.version, row.update_time)
