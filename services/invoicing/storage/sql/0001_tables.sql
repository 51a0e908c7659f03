-- Invoicing tables, version 1. Amounts are bigint minor units. A document's full content is
-- kept as jsonb (the domain's own shape); the columns beside it are what keys, constraints,
-- filters and the tie-out need.

CREATE TABLE invoices (
    tenant_id text NOT NULL CHECK (tenant_id ~ '^[a-z][a-z0-9-]{2,62}$'),
    invoice_id text NOT NULL CHECK (invoice_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    state text NOT NULL CHECK (state IN ('DRAFT', 'ISSUED', 'PAID', 'VOID', 'UNCOLLECTIBLE')),
    source text NOT NULL CHECK (source IN ('CHECKOUT', 'MANUAL')),
    currency_code text NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    customer_id text NOT NULL,
    order_name text,
    number text,
    series text,
    sequence bigint CHECK (sequence >= 0),
    document jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
    version bigint NOT NULL CHECK (version >= 1),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    issue_time timestamptz,
    PRIMARY KEY (tenant_id, invoice_id),
    -- Exactly one invoice per order, however often CheckoutCompleted is delivered.
    CONSTRAINT invoices_one_per_order UNIQUE (tenant_id, order_name),
    CONSTRAINT invoices_number_unique UNIQUE (tenant_id, number),
    CONSTRAINT invoices_sequence_unique UNIQUE (tenant_id, series, sequence),
    CONSTRAINT invoices_numbered_when_issued CHECK (
        (number IS NULL) = (issue_time IS NULL)
        AND (number IS NULL) = (series IS NULL)
        AND (number IS NULL) = (sequence IS NULL)),
    CONSTRAINT invoices_drafts_unnumbered CHECK (state <> 'DRAFT' OR number IS NULL),
    CONSTRAINT invoices_checkout_names_order CHECK ((source = 'CHECKOUT') = (order_name IS NOT NULL))
);
CREATE INDEX invoices_newest_first ON invoices (tenant_id, create_time DESC, invoice_id DESC);
CREATE INDEX invoices_by_issue_time ON invoices (tenant_id, issue_time) WHERE issue_time IS NOT NULL;

-- A payment is recorded on at most one invoice (PAYMENT_ALREADY_INVOICED).
CREATE TABLE invoice_payments (
    tenant_id text NOT NULL,
    payment text NOT NULL,
    invoice_id text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    paid_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, payment),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, invoice_id)
        ON DELETE CASCADE
);
CREATE INDEX invoice_payments_by_invoice ON invoice_payments (tenant_id, invoice_id);

CREATE TABLE credit_notes (
    tenant_id text NOT NULL,
    credit_note_id text NOT NULL CHECK (credit_note_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    invoice_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('ISSUED', 'VOID')),
    number text NOT NULL,
    series text NOT NULL,
    sequence bigint NOT NULL CHECK (sequence >= 0),
    refund text,
    total_minor bigint NOT NULL CHECK (total_minor > 0),
    document jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
    version bigint NOT NULL CHECK (version >= 1),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, credit_note_id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, invoice_id)
        ON DELETE CASCADE,
    -- At most one credit note per refund (REFUND_ALREADY_CREDITED).
    CONSTRAINT credit_notes_one_per_refund UNIQUE (tenant_id, refund),
    CONSTRAINT credit_notes_number_unique UNIQUE (tenant_id, number),
    CONSTRAINT credit_notes_sequence_unique UNIQUE (tenant_id, series, sequence)
);
CREATE INDEX credit_notes_newest_first
    ON credit_notes (tenant_id, invoice_id, create_time DESC, credit_note_id DESC);
CREATE INDEX credit_notes_by_create_time ON credit_notes (tenant_id, create_time);

-- Gapless counters: the issuing transaction takes the next value under this row's lock, so a
-- rollback gives it back and two issues never share one. Never a SEQUENCE (they have gaps).
CREATE TABLE number_counters (
    tenant_id text NOT NULL,
    series text NOT NULL CHECK (length(series) BETWEEN 1 AND 64),
    next_sequence bigint NOT NULL CHECK (next_sequence >= 1),
    PRIMARY KEY (tenant_id, series)
);

CREATE TABLE numbering_configs (
    tenant_id text PRIMARY KEY,
    document jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
    version bigint NOT NULL CHECK (version >= 1),
    update_time timestamptz NOT NULL
);

CREATE TABLE idempotency_keys (
    tenant_id text NOT NULL,
    request_id uuid NOT NULL,
    method text NOT NULL,
    fingerprint bytea NOT NULL,
    response bytea,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
