"""Client spans for every SQL statement an engine runs (OpenTelemetry database conventions).

SQLAlchemy's cursor events start a CLIENT span before the driver executes a statement and end
it after (or when the statement fails), as a child of whatever span is current: the RPC being
served, the relay's publish loop, a consumer's delivery. The async engine runs these sync
events inside its greenlet, which shares the caller's contextvars, so the parent is the
caller's span.

Nothing the database returns or receives as data reaches a span: bind parameters are never
read, `db.query.text` is the statement with every literal replaced by `?` (SQLAlchemy binds
values as parameters, so normally there are none), and a failure records only its SQLSTATE
and the exception's class, never the server's message (whose DETAIL may quote a row).

Why not `opentelemetry-instrumentation-sqlalchemy`: see docs/adr/0018-trace-viewer.md (SQL
spans) and `instrument_engine`.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine, ExceptionContext, ExecutionContext
    from sqlalchemy.engine.interfaces import DBAPICursor

INSTRUMENTATION = "commerce-mesh.chassis.db"
DB_SYSTEM = "postgresql"
MAX_QUERY_TEXT = 2048  # characters of sanitized SQL kept on a span

_SPAN_ATTRIBUTE = "_commerce_otel_span"

# One alternation, scanned left to right, so a quote inside a comment (or a `--` inside a
# string) is consumed by whichever construct starts first.
_LITERALS = re.compile(
    r"""
      (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*.*?\*/)
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$.*?\$(?P=tag)?\$)
    | (?P<string>[EeBbXxNn]?'(?:[^']|'')*')
    | (?P<identifier>"(?:[^"]|"")*")
    | (?P<placeholder>%\([^)]*\)s|%s|\$\d+)
    | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    """,
    re.VERBOSE | re.DOTALL,
)
_WHITESPACE = re.compile(r"\s+")
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z_0-9$]*)'
_QUALIFIED = rf"(?P<target>{_IDENT}(?:\.{_IDENT})?)"
_TARGETS = {
    "INSERT": re.compile(rf"^INSERT\s+INTO\s+{_QUALIFIED}", re.IGNORECASE),
    "UPDATE": re.compile(rf"^UPDATE\s+(?:ONLY\s+)?{_QUALIFIED}", re.IGNORECASE),
    "DELETE": re.compile(rf"^DELETE\s+FROM\s+(?:ONLY\s+)?{_QUALIFIED}", re.IGNORECASE),
    "SELECT": re.compile(rf"\bFROM\s+{_QUALIFIED}", re.IGNORECASE),
}
_FROM = re.compile(r"\bFROM\b", re.IGNORECASE)
# Where a SELECT's FROM list ends; a list holding a join, a comma or a subquery has no one target.
_FROM_END = re.compile(
    r"\b(?:WHERE|GROUP|ORDER|LIMIT|OFFSET|FOR|HAVING|WINDOW|UNION|EXCEPT|INTERSECT)\b",
    re.IGNORECASE,
)
_FROM_MANY = re.compile(r"\bJOIN\b|[,()]", re.IGNORECASE)


def sanitize_sql(statement: str) -> str:
    """The statement with comments dropped, every literal as `?`, whitespace collapsed.

    Placeholders (`%(name)s`, `%s`, `$1`) and quoted identifiers are kept: they carry no
    values. The result is truncated to MAX_QUERY_TEXT characters.
    """

    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind in {"line_comment", "block_comment"}:
            return " "
        if kind in {"dollar", "string", "number"}:
            return "?"
        return match.group(0)

    sanitized = _WHITESPACE.sub(" ", _LITERALS.sub(replace, statement)).strip()
    return sanitized[:MAX_QUERY_TEXT]


def operation_name(sanitized: str) -> str | None:
    """The statement's first keyword, upper-cased (`SELECT`, `INSERT`, `WITH`, ...)."""
    match = re.match(r"[A-Za-z]+", sanitized)
    return match.group(0).upper() if match else None


def collection_name(operation: str | None, sanitized: str) -> str | None:
    """The single table a simple INSERT/UPDATE/DELETE/SELECT targets; None when ambiguous."""
    if operation is None or operation not in _TARGETS:
        return None
    if operation == "SELECT":
        # Exactly one FROM (no subquery) whose list is one table (no join, no comma).
        _, *from_lists = _FROM.split(sanitized)
        if len(from_lists) != 1 or _FROM_MANY.search(_FROM_END.split(from_lists[0], 1)[0]):
            return None
    match = _TARGETS[operation].search(sanitized)
    return match.group("target") if match else None


@functools.lru_cache(maxsize=1024)
def describe(statement: str) -> tuple[str, str | None, str | None]:
    """(sanitized text, operation, collection) of a statement, cached: an application runs a
    few hundred distinct statement texts, and sanitizing a long one costs about a millisecond."""
    sanitized = sanitize_sql(statement)
    operation = operation_name(sanitized)
    return sanitized, operation, collection_name(operation, sanitized)


@dataclass(slots=True)
class EngineTracing:
    """The listeners installed on one engine; `uninstrument` removes them."""

    engine: Engine
    tracer: trace.Tracer
    base_attributes: dict[str, str | int]
    _listeners: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listeners = [
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
            ("handle_error", self._error),
        ]
        for name, listener in self._listeners:
            event.listen(self.engine, name, listener)

    def uninstrument(self) -> None:
        """Stop tracing this engine's statements."""
        for name, listener in self._listeners:
            event.remove(self.engine, name, listener)
        self._listeners = []
        _INSTRUMENTED.pop(self.engine, None)

    def _before(
        self,
        _conn: SyncConnection,
        _cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,  # noqa: FBT001 - SQLAlchemy's event signature
    ) -> None:
        if context is None:
            return
        batch = len(parameters) if executemany and isinstance(parameters, (list, tuple)) else 1
        setattr(context, _SPAN_ATTRIBUTE, self.start_span(statement, batch_size=batch))

    def start_span(self, statement: str, *, batch_size: int = 1) -> trace.Span:
        """A started CLIENT span for `statement` (current span as parent); the caller ends it."""
        sanitized, operation, collection = describe(statement)
        attributes: dict[str, str | int] = dict(self.base_attributes)
        attributes["db.query.text"] = sanitized
        if operation:
            attributes["db.operation.name"] = operation
        if collection:
            attributes["db.collection.name"] = collection
        if batch_size > 1:
            attributes["db.operation.batch.size"] = batch_size
        return self.tracer.start_span(
            _span_name(operation, collection, self.base_attributes),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )

    def _after(
        self,
        _conn: SyncConnection,
        _cursor: DBAPICursor,
        _statement: str,
        _parameters: Any,
        context: ExecutionContext | None,
        _executemany: bool,  # noqa: FBT001 - SQLAlchemy's event signature
    ) -> None:
        span = _take_span(context)
        if span is not None:
            span.end()

    def _error(self, exception_context: ExceptionContext) -> None:
        span = _take_span(exception_context.execution_context)
        if span is not None:
            record_failure(span, exception_context.original_exception)
            span.end()


def record_failure(span: trace.Span, error: BaseException) -> None:
    """Mark `span` failed with the SQLSTATE (or the exception's class), never the message."""
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        span.set_attribute("db.response.status_code", sqlstate)
        span.set_attribute("error.type", sqlstate)
    else:
        span.set_attribute("error.type", f"{type(error).__module__}.{type(error).__qualname__}")
    # No description: the server's message may quote the offending row (a DETAIL line).
    span.set_status(Status(StatusCode.ERROR))


_INSTRUMENTED: weakref.WeakKeyDictionary[Engine, EngineTracing] = weakref.WeakKeyDictionary()


def _take_span(context: ExecutionContext | None) -> trace.Span | None:
    if context is None:
        return None
    span: trace.Span | None = getattr(context, _SPAN_ATTRIBUTE, None)
    if span is not None:
        setattr(context, _SPAN_ATTRIBUTE, None)
    return span


def _span_name(operation: str | None, collection: str | None, base: dict[str, str | int]) -> str:
    # `{db.operation.name} {target}`, target = collection, else namespace; else the system.
    target = collection or base.get("db.namespace")
    if operation and target:
        return f"{operation} {target}"
    return operation or str(target or DB_SYSTEM)


def instrument_engine(
    engine: AsyncEngine | Engine,
    *,
    tracer_provider: trace.TracerProvider | None = None,
) -> EngineTracing:
    """Trace every statement `engine` runs; idempotent per engine (`Database.connect` already
    instruments every engine it builds; a later call with a `tracer_provider` switches the
    engine's spans to it, as tests with an in-memory exporter do).

    With no `tracer_provider` the process-wide one is used, resolved at each span, so an
    engine created before `telemetry.configure` still exports once it has run. Written on
    SQLAlchemy's cursor events rather than `opentelemetry-instrumentation-sqlalchemy`, whose
    newest release (0.66b1) requires an older `opentelemetry-instrumentation` than the gRPC
    instrumentation we pin, and which records the raw statement and the user name.
    """
    sync_engine = _sync_engine(engine)
    existing = _INSTRUMENTED.get(sync_engine)
    if existing is not None:
        if tracer_provider is not None:
            existing.tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider)
        return existing
    url = sync_engine.url
    base: dict[str, str | int] = {"db.system.name": DB_SYSTEM}
    if url.database:
        base["db.namespace"] = url.database
    if url.host:  # a TCP server; a Unix socket (embedded PostgreSQL) has no address to name
        base["server.address"] = url.host
        base["server.port"] = url.port or 5432
    tracing = EngineTracing(
        engine=sync_engine,
        tracer=trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider),
        base_attributes=base,
    )
    _INSTRUMENTED[sync_engine] = tracing
    return tracing


def _sync_engine(bind: AsyncEngine | AsyncConnection | Engine | SyncConnection) -> Engine:
    if isinstance(bind, AsyncEngine | AsyncConnection):
        return bind.sync_engine
    if isinstance(bind, SyncConnection):
        return bind.engine
    return bind


@contextmanager
def statement_span(
    bind: AsyncEngine | AsyncConnection | Engine | SyncConnection | None,
    statement: str,
    *,
    batch_size: int = 1,
) -> Iterator[trace.Span]:
    """A span for a statement run on the driver connection directly, bypassing SQLAlchemy's
    execution layer (and so its events), like the ledger's hot path. Same name, attributes
    and sanitization as the engine's own spans; a no-op when `bind`'s engine is not
    instrumented. `bind` may be an engine or a connection (e.g. `AsyncSession.bind`).
    """
    tracing = _INSTRUMENTED.get(_sync_engine(bind)) if bind is not None else None
    if tracing is None:
        yield trace.INVALID_SPAN
        return
    span = tracing.start_span(statement, batch_size=batch_size)
    try:
        yield span
    except BaseException as error:
        record_failure(span, error)
        raise
    finally:
        span.end()
