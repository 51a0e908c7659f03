-- Payments tables, version 1. Amounts are bigint minor units. The invariants that matter for
-- money live here as well as in Python: captured <= authorized <= requested, refunded <=
-- captured, refunds in the payment's currency and within what was captured, the currency
-- and the requested amount never change, and every state change follows the state machine.
-- No column ever holds card data: payment methods are PSP tokens (`pm_...`), checked below.

CREATE TABLE payments (
    tenant_id text NOT NULL CHECK (tenant_id ~ '^[a-z][a-z0-9-]{2,62}$'),
    payment_id text NOT NULL CHECK (payment_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    -- The request that created the payment: authorization retries resume it.
    request_id uuid NOT NULL,
    order_name text NOT NULL,
    customer jsonb CHECK (customer IS NULL OR jsonb_typeof(customer) = 'object'),
    currency_code text NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    amount_authorized_minor bigint NOT NULL DEFAULT 0,
    amount_captured_minor bigint NOT NULL DEFAULT 0,
    amount_refunded_minor bigint NOT NULL DEFAULT 0,
    capture_method text NOT NULL CHECK (capture_method IN ('AUTOMATIC', 'MANUAL')),
    method_token text NOT NULL
        CHECK (method_token ~ '^pm_[A-Za-z0-9_-]{4,200}$' AND method_token !~ '[0-9]{13,}'),
    method_type text NOT NULL
        CHECK (method_type IN ('CARD', 'WALLET', 'BANK_DEBIT', 'BUY_NOW_PAY_LATER')),
    state text NOT NULL CHECK (state IN ('REQUIRES_AUTHORIZATION', 'AUTHORIZED',
        'PARTIALLY_CAPTURED', 'CAPTURED', 'PARTIALLY_REFUNDED', 'REFUNDED', 'VOIDED', 'FAILED',
        'EXPIRED')),
    psp text NOT NULL DEFAULT '',
    psp_reference text NOT NULL DEFAULT '',
    failure jsonb CHECK (failure IS NULL OR jsonb_typeof(failure) = 'object'),
    ambiguous jsonb CHECK (ambiguous IS NULL OR jsonb_typeof(ambiguous) = 'object'),
    routing_hints jsonb NOT NULL DEFAULT '{}'::jsonb,
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 256),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- The ledger hold that currently reserves the uncaptured authorization, if any.
    ledger_hold_id text NOT NULL DEFAULT '',
    ledger_hold_count integer NOT NULL DEFAULT 0 CHECK (ledger_hold_count >= 0),
    -- Ledger movements owed to the ledger (it was unavailable), performed before anything else.
    ledger_pending jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(ledger_pending) = 'array'),
    -- The mutating request working on the payment (PSP call in flight), until its lease ends.
    busy_request_id uuid,
    busy_until timestamptz,
    version bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    expire_time timestamptz,
    PRIMARY KEY (tenant_id, payment_id),
    CONSTRAINT payments_currency_key UNIQUE (tenant_id, payment_id, currency_code),
    CONSTRAINT payments_request_once UNIQUE (tenant_id, request_id),
    CONSTRAINT payments_authorized_within_amount
        CHECK (amount_authorized_minor BETWEEN 0 AND amount_minor),
    CONSTRAINT payments_captured_within_authorized
        CHECK (amount_captured_minor BETWEEN 0 AND amount_authorized_minor),
    CONSTRAINT payments_refunded_within_captured
        CHECK (amount_refunded_minor BETWEEN 0 AND amount_captured_minor),
    CONSTRAINT payments_failed_has_failure CHECK ((state = 'FAILED') = (failure IS NOT NULL)),
    CONSTRAINT payments_authorized_has_psp
        CHECK (state IN ('REQUIRES_AUTHORIZATION', 'FAILED') OR (psp <> '' AND psp_reference <> '')),
    CONSTRAINT payments_busy_pair CHECK ((busy_request_id IS NULL) = (busy_until IS NULL))
);
CREATE INDEX payments_newest_first ON payments (tenant_id, create_time DESC, payment_id DESC);
CREATE INDEX payments_by_order ON payments (tenant_id, order_name, create_time DESC);
CREATE INDEX payments_outcome_unknown ON payments (tenant_id) WHERE ambiguous IS NOT NULL;

-- Every state change of every payment, in order; append-only. The CHECK is the state machine
-- of payments/v1/resources.proto (NULL -> REQUIRES_AUTHORIZATION is the creation).
CREATE TABLE payment_transitions (
    tenant_id text NOT NULL,
    payment_id text NOT NULL,
    sequence integer NOT NULL CHECK (sequence >= 1),
    from_state text,
    to_state text NOT NULL,
    operation text NOT NULL,
    request_id uuid,
    amount_minor bigint NOT NULL DEFAULT 0 CHECK (amount_minor >= 0),
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, payment_id, sequence),
    FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, payment_id),
    CONSTRAINT payment_transitions_legal CHECK (
        (from_state IS NULL AND to_state = 'REQUIRES_AUTHORIZATION')
        OR (from_state = 'REQUIRES_AUTHORIZATION' AND to_state IN ('AUTHORIZED', 'CAPTURED', 'FAILED'))
        OR (from_state = 'AUTHORIZED'
            AND to_state IN ('PARTIALLY_CAPTURED', 'CAPTURED', 'VOIDED', 'EXPIRED'))
        OR (from_state = 'PARTIALLY_CAPTURED' AND to_state IN ('PARTIALLY_CAPTURED', 'CAPTURED'))
        OR (from_state IN ('CAPTURED', 'PARTIALLY_REFUNDED')
            AND to_state IN ('PARTIALLY_REFUNDED', 'REFUNDED'))
    )
);

-- Every PSP call, in the order made; append-only.
CREATE TABLE payment_attempts (
    tenant_id text NOT NULL,
    payment_id text NOT NULL,
    attempt_number integer NOT NULL CHECK (attempt_number >= 1),
    operation text NOT NULL
        CHECK (operation IN ('AUTHORIZE', 'CAPTURE', 'VOID', 'REFUND', 'STATUS_INQUIRY')),
    psp text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('SUCCEEDED', 'DECLINED', 'ERROR', 'UNKNOWN', 'SKIPPED')),
    error_class text NOT NULL CHECK (error_class IN ('NONE', 'RETRYABLE', 'NON_RETRYABLE', 'AMBIGUOUS')),
    failure_code text,
    psp_code text NOT NULL DEFAULT '',
    psp_reference text NOT NULL DEFAULT '',
    currency_code text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    refund_id text NOT NULL DEFAULT '',
    psp_idempotency_key text NOT NULL,
    start_time timestamptz NOT NULL,
    end_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, payment_id, attempt_number),
    FOREIGN KEY (tenant_id, payment_id, currency_code)
        REFERENCES payments (tenant_id, payment_id, currency_code)
);

CREATE TABLE refunds (
    tenant_id text NOT NULL,
    payment_id text NOT NULL,
    refund_id text NOT NULL CHECK (refund_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    request_id uuid NOT NULL,
    currency_code text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    reason text NOT NULL CHECK (reason IN ('REQUESTED_BY_CUSTOMER', 'DUPLICATE', 'FRAUDULENT',
        'ORDER_CANCELED', 'PRODUCT_RETURNED', 'OTHER')),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    state text NOT NULL CHECK (state IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    psp text NOT NULL DEFAULT '',
    psp_reference text NOT NULL DEFAULT '',
    failure jsonb,
    outcome_unknown boolean NOT NULL DEFAULT false,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, payment_id, refund_id),
    -- A refund is in its payment's currency: the FK names the payment's currency.
    FOREIGN KEY (tenant_id, payment_id, currency_code)
        REFERENCES payments (tenant_id, payment_id, currency_code),
    CONSTRAINT refunds_failed_has_failure CHECK ((state = 'FAILED') = (failure IS NOT NULL))
);

-- Idempotency records (AIP-155): request_id -> fingerprint of the request -> first response.
-- PENDING while the first request works (its lease), DONE with the response bytes.
CREATE TABLE idempotency_records (
    tenant_id text NOT NULL,
    request_id uuid NOT NULL,
    method text NOT NULL,
    fingerprint bytea NOT NULL CHECK (octet_length(fingerprint) = 32),
    state text NOT NULL CHECK (state IN ('PENDING', 'DONE')),
    response bytea,
    lease_until timestamptz NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    complete_time timestamptz,
    PRIMARY KEY (tenant_id, request_id),
    CONSTRAINT idempotency_records_done_has_response
        CHECK ((state = 'DONE') = (response IS NOT NULL AND complete_time IS NOT NULL))
);

-- The routing configuration per tenant (a singleton; absent = empty).
CREATE TABLE routing_configs (
    tenant_id text PRIMARY KEY,
    config jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    version bigint NOT NULL CHECK (version >= 1),
    update_time timestamptz NOT NULL
);

-- Which tenant's payment a PSP reference belongs to: webhooks carry no tenant. Service-wide.
CREATE TABLE psp_references (
    psp text NOT NULL,
    psp_reference text NOT NULL,
    tenant_id text NOT NULL,
    payment_id text NOT NULL,
    PRIMARY KEY (psp, psp_reference)
);

-- Webhook deliveries, deduplicated by the PSP's event id. Service-wide (no tenant yet).
CREATE TABLE webhook_events (
    psp text NOT NULL,
    event_id text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    event_type text NOT NULL,
    psp_reference text NOT NULL DEFAULT '',
    tenant_id text,
    payment_id text,
    ignored boolean NOT NULL,
    receive_time timestamptz NOT NULL,
    PRIMARY KEY (psp, event_id)
);

-- HandlePspWebhook calls that carried a request_id (PSPs send none; a gateway may): the first
-- response per request_id. Service-wide, like the deliveries themselves.
CREATE TABLE webhook_requests (
    request_id uuid PRIMARY KEY,
    fingerprint bytea NOT NULL CHECK (octet_length(fingerprint) = 32),
    response bytea NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now()
);

-- PSP calls whose outcome is unknown, due for a status inquiry. Service-wide so the resolver
-- finds them without a tenant; the payment row (tenant-isolated) holds the details.
CREATE TABLE unresolved_outcomes (
    tenant_id text NOT NULL,
    payment_id text NOT NULL,
    psp text NOT NULL,
    operation text NOT NULL,
    attempt_number integer NOT NULL,
    next_resolution_time timestamptz NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, payment_id)
);
CREATE INDEX unresolved_outcomes_due ON unresolved_outcomes (next_resolution_time);

-- Authorizations that lapse unless captured or voided first (the expiry sweeper's queue).
-- Kept in step with the payment row by every save. Service-wide: ids and times only.
CREATE TABLE expiring_authorizations (
    tenant_id text NOT NULL,
    payment_id text NOT NULL,
    expire_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, payment_id)
);
CREATE INDEX expiring_authorizations_due ON expiring_authorizations (expire_time);
