-- Payments rules the database enforces whatever the application does, version 1.

CREATE FUNCTION payments_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'restrict_violation',
        MESSAGE = format('%s on %s is refused: the history is append-only', TG_OP, TG_TABLE_NAME);
END
$$;

CREATE TRIGGER payment_transitions_append_only BEFORE UPDATE OR DELETE ON payment_transitions
    FOR EACH ROW EXECUTE FUNCTION payments_refuse_change();
CREATE TRIGGER payment_attempts_append_only BEFORE UPDATE OR DELETE ON payment_attempts
    FOR EACH ROW EXECUTE FUNCTION payments_refuse_change();

-- What a payment was created with never changes: currency, amount, order, method, request.
CREATE FUNCTION payments_guard_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.currency_code <> OLD.currency_code OR NEW.amount_minor <> OLD.amount_minor
       OR NEW.order_name <> OLD.order_name OR NEW.method_token <> OLD.method_token
       OR NEW.method_type <> OLD.method_type OR NEW.capture_method <> OLD.capture_method
       OR NEW.request_id <> OLD.request_id OR NEW.create_time <> OLD.create_time THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'payments_immutable',
            MESSAGE = format('payment %s: currency, amount, order, method and request are fixed',
                             OLD.payment_id);
    END IF;
    -- Money only moves forward: captures and refunds are never undone by an update.
    IF NEW.amount_captured_minor < OLD.amount_captured_minor
       OR NEW.amount_refunded_minor < OLD.amount_refunded_minor THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'payments_amounts_monotonic',
            MESSAGE = format('payment %s: captured and refunded amounts never decrease',
                             OLD.payment_id);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER payments_immutable BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_guard_immutable();
CREATE TRIGGER payments_no_delete BEFORE DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_refuse_change();

-- Refunds that succeeded or are pending never exceed what was captured, and the payment's
-- amount_refunded is exactly the sum of its succeeded refunds. Checked at commit, when the
-- refund and the payment row have both been written.
CREATE FUNCTION payments_check_refunds() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    captured bigint;
    refunded bigint;
    committed numeric;
    succeeded numeric;
BEGIN
    SELECT p.amount_captured_minor, p.amount_refunded_minor INTO captured, refunded
      FROM payments p WHERE p.tenant_id = NEW.tenant_id AND p.payment_id = NEW.payment_id;
    SELECT coalesce(sum(r.amount_minor) FILTER (WHERE r.state IN ('PENDING', 'SUCCEEDED')), 0),
           coalesce(sum(r.amount_minor) FILTER (WHERE r.state = 'SUCCEEDED'), 0)
      INTO committed, succeeded
      FROM refunds r WHERE r.tenant_id = NEW.tenant_id AND r.payment_id = NEW.payment_id;
    IF committed > captured THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'refunds_within_captured',
            MESSAGE = format('refunds of payment %s (%s) exceed the captured %s',
                             NEW.payment_id, committed, captured);
    END IF;
    IF succeeded <> refunded THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'refunds_sum_matches_payment',
            MESSAGE = format('payment %s records %s refunded, its refunds sum to %s',
                             NEW.payment_id, refunded, succeeded);
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER refunds_within_captured AFTER INSERT OR UPDATE ON refunds
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION payments_check_refunds();
CREATE CONSTRAINT TRIGGER payments_refunds_match AFTER UPDATE OF amount_refunded_minor ON payments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION payments_check_refunds();

-- A finished idempotency record is the first response, for good.
CREATE FUNCTION payments_guard_idempotency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'DONE' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'restrict_violation',
            MESSAGE = 'a completed idempotency record is never changed';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER idempotency_records_final BEFORE UPDATE OR DELETE ON idempotency_records
    FOR EACH ROW EXECUTE FUNCTION payments_guard_idempotency();
