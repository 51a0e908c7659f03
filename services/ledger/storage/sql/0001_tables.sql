-- Ledger tables, version 1. Invariants live here, not only in Python: CHECKs, keys, FKs.
-- Amounts are bigint minor units; a posting's sign says debit (+) or credit (-).

-- Tenants known to the ledger; lets the hold-expiry sweeper find work without seeing rows.
CREATE TABLE tenants (
    tenant_id text PRIMARY KEY CHECK (tenant_id ~ '^[a-z][a-z0-9-]{2,62}$'),
    create_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    tenant_id text NOT NULL REFERENCES tenants (tenant_id),
    account_id text NOT NULL CHECK (account_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    code text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 256),
    currency_code text NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    account_type text NOT NULL
        CHECK (account_type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    debits_must_not_exceed_credits boolean NOT NULL DEFAULT false,
    credits_must_not_exceed_debits boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    version bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    close_time timestamptz,
    PRIMARY KEY (tenant_id, account_id),
    CONSTRAINT accounts_code_unique UNIQUE (tenant_id, code),
    -- Target of the postings' and holds' foreign keys: a posting names the account's currency.
    CONSTRAINT accounts_currency_key UNIQUE (tenant_id, account_id, currency_code),
    CONSTRAINT accounts_flags_exclusive
        CHECK (NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)),
    CONSTRAINT accounts_debits_within_credits
        CHECK (NOT debits_must_not_exceed_credits
               OR debits_posted + debits_pending <= credits_posted),
    CONSTRAINT accounts_credits_within_debits
        CHECK (NOT credits_must_not_exceed_debits
               OR credits_posted + credits_pending <= debits_posted),
    CONSTRAINT accounts_closed_when_close_time CHECK ((state = 'closed') = (close_time IS NOT NULL)),
    CONSTRAINT accounts_closed_empty
        CHECK (state = 'open'
               OR (debits_posted = credits_posted AND debits_pending = 0 AND credits_pending = 0))
);

CREATE TABLE holds (
    tenant_id text NOT NULL,
    hold_id text NOT NULL CHECK (hold_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    debit_account_id text NOT NULL,
    credit_account_id text NOT NULL,
    currency_code text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    posted_amount_minor bigint NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'posted', 'voided', 'expired')),
    description text NOT NULL DEFAULT '',
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    expire_time timestamptz NOT NULL,
    journal_entry_id text,
    void_reason text NOT NULL DEFAULT '',
    trace_id text NOT NULL DEFAULT '' CHECK (trace_id ~ '^([0-9a-f]{32})?$'),
    span_id text NOT NULL DEFAULT '' CHECK (span_id ~ '^([0-9a-f]{16})?$'),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    finalize_time timestamptz,
    PRIMARY KEY (tenant_id, hold_id),
    FOREIGN KEY (tenant_id, debit_account_id, currency_code)
        REFERENCES accounts (tenant_id, account_id, currency_code),
    FOREIGN KEY (tenant_id, credit_account_id, currency_code)
        REFERENCES accounts (tenant_id, account_id, currency_code),
    CONSTRAINT holds_distinct_accounts CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT holds_posted_within_amount
        CHECK (posted_amount_minor >= 0 AND posted_amount_minor <= amount_minor),
    CONSTRAINT holds_final_when_finalized CHECK ((state = 'pending') = (finalize_time IS NULL)),
    CONSTRAINT holds_posted_has_entry CHECK ((state = 'posted') = (journal_entry_id IS NOT NULL)),
    CONSTRAINT holds_only_posted_moves CHECK ((state = 'posted') = (posted_amount_minor > 0))
);
CREATE INDEX holds_pending_by_expiry ON holds (tenant_id, expire_time) WHERE state = 'pending';
CREATE INDEX holds_by_debit_account ON holds (tenant_id, debit_account_id);
CREATE INDEX holds_by_credit_account ON holds (tenant_id, credit_account_id);
CREATE INDEX holds_newest_first ON holds (tenant_id, create_time DESC, hold_id DESC);

CREATE TABLE journal_entries (
    tenant_id text NOT NULL,
    entry_id text NOT NULL CHECK (entry_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    description text NOT NULL DEFAULT '',
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    effective_time timestamptz,
    reverses_entry_id text,
    hold_id text,
    trace_id text NOT NULL DEFAULT '' CHECK (trace_id ~ '^([0-9a-f]{32})?$'),
    span_id text NOT NULL DEFAULT '' CHECK (span_id ~ '^([0-9a-f]{16})?$'),
    PRIMARY KEY (tenant_id, entry_id),
    FOREIGN KEY (tenant_id, reverses_entry_id) REFERENCES journal_entries (tenant_id, entry_id),
    FOREIGN KEY (tenant_id, hold_id) REFERENCES holds (tenant_id, hold_id),
    CONSTRAINT journal_entries_not_self_reversing CHECK (reverses_entry_id <> entry_id)
);
-- An entry is reversed at most once; a hold is posted by at most one entry.
CREATE UNIQUE INDEX journal_entries_reversed_once
    ON journal_entries (tenant_id, reverses_entry_id) WHERE reverses_entry_id IS NOT NULL;
CREATE UNIQUE INDEX journal_entries_hold_posted_once
    ON journal_entries (tenant_id, hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX journal_entries_metadata ON journal_entries USING gin (metadata jsonb_path_ops);

ALTER TABLE holds ADD CONSTRAINT holds_journal_entry_fkey
    FOREIGN KEY (tenant_id, journal_entry_id) REFERENCES journal_entries (tenant_id, entry_id);

CREATE TABLE postings (
    tenant_id text NOT NULL,
    entry_id text NOT NULL,
    posting_index smallint NOT NULL CHECK (posting_index BETWEEN 0 AND 99),
    account_id text NOT NULL,
    currency_code text NOT NULL,
    -- Non-zero, and never -2^63: its magnitude would not fit a bigint counter.
    amount_minor bigint NOT NULL
        CHECK (amount_minor <> 0 AND amount_minor <> -9223372036854775808),
    memo text NOT NULL DEFAULT '' CHECK (length(memo) <= 256),
    PRIMARY KEY (tenant_id, entry_id, posting_index),
    FOREIGN KEY (tenant_id, entry_id) REFERENCES journal_entries (tenant_id, entry_id),
    FOREIGN KEY (tenant_id, account_id, currency_code)
        REFERENCES accounts (tenant_id, account_id, currency_code)
);
CREATE INDEX postings_by_account ON postings (tenant_id, account_id, entry_id);

-- The tenant's hash chain: one link per entry, in commit order, without gaps.
CREATE TABLE entry_chain (
    tenant_id text NOT NULL,
    sequence bigint NOT NULL CHECK (sequence >= 1),
    entry_id text NOT NULL,
    previous_hash bytea NOT NULL CHECK (octet_length(previous_hash) = 32),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32),
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, sequence),
    CONSTRAINT entry_chain_entry_once UNIQUE (tenant_id, entry_id),
    FOREIGN KEY (tenant_id, entry_id) REFERENCES journal_entries (tenant_id, entry_id)
);
CREATE INDEX entry_chain_by_time ON entry_chain (tenant_id, create_time, sequence);

-- The chain's head per tenant; its row lock is the only per-tenant serialisation point.
CREATE TABLE chain_heads (
    tenant_id text PRIMARY KEY,
    sequence bigint NOT NULL CHECK (sequence >= 0),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32),
    create_time timestamptz NOT NULL
);

-- Idempotency keys (AIP-155): one row per request_id, naming what the first request made.
CREATE TABLE idempotency_keys (
    tenant_id text NOT NULL,
    request_id uuid NOT NULL,
    method text NOT NULL,
    fingerprint bytea NOT NULL CHECK (octet_length(fingerprint) = 32),
    result jsonb NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
