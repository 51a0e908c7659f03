-- The checkout database: checkouts, orders (with their saga record), the order history,
-- idempotency keys and the tenant registry. Domain documents live in `body` (jsonb); the
-- columns beside it are what queries, constraints and leases need.

CREATE TABLE tenants (
    tenant_id text PRIMARY KEY
);

CREATE TABLE checkouts (
    tenant_id     text        NOT NULL,
    checkout_id   text        NOT NULL,
    customer_id   text        NOT NULL,
    currency_code text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    state         text        NOT NULL
        CHECK (state IN ('OPEN', 'PLACED', 'EXPIRED', 'CANCELLED', 'COMPLETED')),
    version       bigint      NOT NULL CHECK (version > 0),
    expire_time   timestamptz NOT NULL,
    create_time   timestamptz NOT NULL,
    update_time   timestamptz NOT NULL,
    body          jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, checkout_id)
);

CREATE TABLE orders (
    tenant_id     text        NOT NULL,
    order_id      text        NOT NULL,
    checkout_id   text        NOT NULL,
    customer_id   text        NOT NULL,
    request_id    uuid        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('PENDING', 'AUTHORIZING', 'CAPTURING',
        'CONFIRMED', 'FAILED', 'COMPENSATING', 'VOIDED', 'REFUNDED', 'ATTENTION_REQUIRED')),
    version       bigint      NOT NULL CHECK (version > 0),
    currency_code text        NOT NULL,
    total_minor   bigint      NOT NULL CHECK (total_minor >= 0),
    payment       text        NOT NULL DEFAULT '',
    create_time   timestamptz NOT NULL,
    update_time   timestamptz NOT NULL,
    -- The driver holding the saga; a lapsed lease lets the recovery worker take over.
    lease_owner   text,
    lease_until   timestamptz,
    body          jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, order_id),
    FOREIGN KEY (tenant_id, checkout_id) REFERENCES checkouts (tenant_id, checkout_id),
    -- A confirmed order was paid exactly the total it was placed for.
    CONSTRAINT orders_confirmed_captured_total CHECK (
        state <> 'CONFIRMED'
        OR (body ->> 'captured_amount')::bigint = total_minor
    )
);

-- At most one order per checkout is in flight: a second PlaceOrder cannot start another saga.
CREATE UNIQUE INDEX orders_one_in_flight_per_checkout ON orders (tenant_id, checkout_id)
    WHERE state IN ('PENDING', 'AUTHORIZING', 'CAPTURING', 'COMPENSATING');
CREATE INDEX orders_newest_first ON orders (tenant_id, create_time DESC, order_id DESC);
CREATE INDEX orders_by_customer ON orders (tenant_id, customer_id, create_time DESC, order_id DESC);
CREATE INDEX orders_in_flight ON orders (tenant_id, lease_until)
    WHERE state IN ('PENDING', 'AUTHORIZING', 'CAPTURING', 'COMPENSATING');

-- Every persisted saga transition, append-only: the audit trail behind `saga_steps`.
CREATE TABLE order_history (
    tenant_id   text        NOT NULL,
    order_id    text        NOT NULL,
    version     bigint      NOT NULL,
    state       text        NOT NULL,
    step        jsonb,
    record_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, order_id, version),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, order_id)
);

CREATE FUNCTION checkout_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'check_violation',
        CONSTRAINT = 'order_history_append_only';
END $$;

CREATE TRIGGER order_history_append_only BEFORE UPDATE OR DELETE ON order_history
    FOR EACH ROW EXECUTE FUNCTION checkout_refuse_change();

CREATE TABLE idempotency_keys (
    tenant_id   text        NOT NULL,
    request_id  uuid        NOT NULL,
    method      text        NOT NULL,
    fingerprint bytea       NOT NULL,
    result      jsonb       NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
