-- Reconciliation reports, version 2 (ADR 0013). A report is stored as the serialized FULL
-- commerce.payments.v1.ReconciliationReport; the columns beside it are what List filters and
-- orders by and what the database checks. RUNNING -> SUCCEEDED | FAILED, once.

CREATE TABLE reconciliation_reports (
    tenant_id text NOT NULL CHECK (tenant_id ~ '^[a-z][a-z0-9-]{2,62}$'),
    report_id text NOT NULL CHECK (report_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    psp text NOT NULL CHECK (psp ~ '^[a-z][a-z0-9_-]{1,31}$'),
    state text NOT NULL CHECK (state IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    -- The RunReconciliation request that started it (SHA-256 without its request_id).
    request_id uuid NOT NULL,
    request_fingerprint bytea NOT NULL CHECK (octet_length(request_fingerprint) = 32),
    create_time timestamptz NOT NULL,
    complete_time timestamptz,
    report bytea NOT NULL,
    PRIMARY KEY (tenant_id, report_id),
    CONSTRAINT reconciliation_reports_complete_time
        CHECK ((state = 'RUNNING') = (complete_time IS NULL))
);
CREATE INDEX reconciliation_reports_newest_first
    ON reconciliation_reports (tenant_id, psp, create_time DESC, report_id DESC);
CREATE INDEX reconciliation_reports_all_newest_first
    ON reconciliation_reports (tenant_id, create_time DESC, report_id DESC);

-- A finished report is final: it never changes again and is never deleted.
CREATE FUNCTION reconciliation_reports_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.state <> 'RUNNING' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'restrict_violation',
            MESSAGE = format('reconciliation report %s is %s: it never changes',
                             OLD.report_id, OLD.state);
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.report_id <> OLD.report_id OR NEW.psp <> OLD.psp
       OR NEW.request_id <> OLD.request_id OR NEW.create_time <> OLD.create_time
       OR NEW.request_fingerprint <> OLD.request_fingerprint THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'reconciliation_reports_immutable',
            MESSAGE = format('reconciliation report %s: what it was started with is fixed',
                             OLD.report_id);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER reconciliation_reports_final BEFORE UPDATE OR DELETE ON reconciliation_reports
    FOR EACH ROW EXECUTE FUNCTION reconciliation_reports_guard();

-- Runs not finished yet, for the background worker: a run whose lease ran out (its process
-- stopped or crashed) is resumed. Service-wide, like unresolved_outcomes: ids and times only.
CREATE TABLE reconciliation_runs (
    tenant_id text NOT NULL,
    report_id text NOT NULL,
    lease_until timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    PRIMARY KEY (tenant_id, report_id)
);
CREATE INDEX reconciliation_runs_due ON reconciliation_runs (lease_until);
