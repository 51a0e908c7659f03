-- Journals invoicing owes the ledger (ADR 0015): written in the transaction that issues, pays,
-- voids or credits a document; the ledger poster worker sends them and marks them posted.
-- A journal's id derives from (tenant, document, movement), so it is recorded once however
-- often the change is retried, and its ledger request id makes a re-post a ledger replay.
CREATE TABLE ledger_postings_due (
    tenant_id text NOT NULL CHECK (tenant_id ~ '^[a-z][a-z0-9-]{2,62}$'),
    journal_id uuid NOT NULL,
    movement text NOT NULL,
    document text NOT NULL,
    currency_code text NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    journal jsonb NOT NULL CHECK (jsonb_typeof(journal) = 'object'),
    create_time timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_time timestamptz NOT NULL DEFAULT now(),
    last_error text NOT NULL DEFAULT '',
    ledger_entry text,
    posted_time timestamptz,
    PRIMARY KEY (tenant_id, journal_id),
    CONSTRAINT ledger_postings_due_posted CHECK ((ledger_entry IS NULL) = (posted_time IS NULL))
);
CREATE INDEX ledger_postings_due_pending ON ledger_postings_due (next_attempt_time, create_time)
    WHERE posted_time IS NULL;
-- Pruning posted journals after the retention period.
CREATE INDEX ledger_postings_due_posted ON ledger_postings_due (posted_time)
    WHERE posted_time IS NOT NULL;

-- A journal's content never changes once recorded.
CREATE FUNCTION invoicing_guard_ledger_posting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.journal IS DISTINCT FROM OLD.journal OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id
       OR NEW.journal_id IS DISTINCT FROM OLD.journal_id THEN
        RAISE EXCEPTION 'a ledger journal is immutable' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.posted_time IS NOT NULL AND NEW.posted_time IS DISTINCT FROM OLD.posted_time THEN
        RAISE EXCEPTION 'a posted ledger journal stays posted' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_postings_due_guard BEFORE UPDATE ON ledger_postings_due
    FOR EACH ROW EXECUTE FUNCTION invoicing_guard_ledger_posting();
