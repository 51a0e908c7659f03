-- Issued documents are records: their numbers never change or come back, and they are never
-- deleted (a voided one keeps its number). Counters only move forward.

CREATE FUNCTION invoicing_guard_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.number IS NOT NULL THEN
            RAISE EXCEPTION 'issued invoice % cannot be deleted', OLD.number
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.number IS NOT NULL AND (
        NEW.number IS DISTINCT FROM OLD.number
        OR NEW.series IS DISTINCT FROM OLD.series
        OR NEW.sequence IS DISTINCT FROM OLD.sequence
        OR NEW.currency_code IS DISTINCT FROM OLD.currency_code
        OR NEW.document -> 'content' IS DISTINCT FROM OLD.document -> 'content') THEN
        RAISE EXCEPTION 'issued invoice % is frozen', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoicing_guard_invoice();

CREATE FUNCTION invoicing_guard_credit_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credit note % cannot be deleted', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.number IS DISTINCT FROM OLD.number OR NEW.sequence IS DISTINCT FROM OLD.sequence
        OR NEW.total_minor IS DISTINCT FROM OLD.total_minor
        OR NEW.refund IS DISTINCT FROM OLD.refund THEN
        RAISE EXCEPTION 'credit note % is frozen', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER credit_notes_guard BEFORE UPDATE OR DELETE ON credit_notes
    FOR EACH ROW EXECUTE FUNCTION invoicing_guard_credit_note();

CREATE FUNCTION invoicing_guard_counter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.next_sequence < OLD.next_sequence THEN
        RAISE EXCEPTION 'counter % never moves backwards', OLD.series
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER number_counters_forward_only BEFORE UPDATE OR DELETE ON number_counters
    FOR EACH ROW EXECUTE FUNCTION invoicing_guard_counter();
