-- Ledger rules the database enforces whatever the application does, version 1.

-- Journal tables are append-only: corrections are reversing entries, never UPDATE or DELETE.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'restrict_violation',
        MESSAGE = format('%s on %s is refused: the journal is append-only', TG_OP, TG_TABLE_NAME),
        HINT = 'post a reversing entry instead';
END
$$;

CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entry_chain_append_only BEFORE UPDATE OR DELETE ON entry_chain
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entry_chain_no_truncate BEFORE TRUNCATE ON entry_chain
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER idempotency_keys_append_only BEFORE UPDATE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- Checked at commit (deferred): the postings of an entry sum to zero per currency, and an
-- entry has at least two postings. Fired once per new posting and once per new entry.
CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    leg record;
    posting_count bigint := 0;
BEGIN
    -- One pass over the entry's postings: the net per currency, and how many there are.
    FOR leg IN
        SELECT p.currency_code, sum(p.amount_minor::numeric) AS imbalance, count(*) AS n
          FROM postings p
         WHERE p.tenant_id = NEW.tenant_id AND p.entry_id = NEW.entry_id
         GROUP BY p.currency_code
         ORDER BY p.currency_code
    LOOP
        IF leg.imbalance <> 0 THEN
            RAISE EXCEPTION USING
                ERRCODE = 'check_violation',
                CONSTRAINT = 'postings_balanced',
                MESSAGE = format('journal entry %s does not balance in %s: off by %s',
                                 NEW.entry_id, leg.currency_code, leg.imbalance);
        END IF;
        posting_count := posting_count + leg.n;
    END LOOP;
    IF posting_count < 2 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'postings_at_least_two',
            MESSAGE = format('journal entry %s has %s posting(s); at least two are required',
                             NEW.entry_id, posting_count);
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
CREATE CONSTRAINT TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();

-- Accounts: identity, currency, type and flags never change; a closed account stays closed.
CREATE FUNCTION ledger_guard_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = 'accounts are closed, never deleted';
    END IF;
    IF (NEW.tenant_id, NEW.account_id, NEW.code, NEW.currency_code, NEW.account_type,
        NEW.debits_must_not_exceed_credits, NEW.credits_must_not_exceed_debits, NEW.create_time)
       IS DISTINCT FROM
       (OLD.tenant_id, OLD.account_id, OLD.code, OLD.currency_code, OLD.account_type,
        OLD.debits_must_not_exceed_credits, OLD.credits_must_not_exceed_debits, OLD.create_time)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = format('immutable fields of account %s cannot change', OLD.account_id);
    END IF;
    IF OLD.state = 'closed' AND NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = format('account %s is closed', OLD.account_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER accounts_guard BEFORE UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_account();

-- Holds: the reservation never changes, and a hold leaves PENDING exactly once.
CREATE FUNCTION ledger_guard_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = 'holds are finalized, never deleted';
    END IF;
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = format('hold %s is already %s', OLD.hold_id, OLD.state);
    END IF;
    IF (NEW.tenant_id, NEW.hold_id, NEW.debit_account_id, NEW.credit_account_id,
        NEW.currency_code, NEW.amount_minor, NEW.expire_time, NEW.create_time,
        NEW.trace_id, NEW.span_id)
       IS DISTINCT FROM
       (OLD.tenant_id, OLD.hold_id, OLD.debit_account_id, OLD.credit_account_id,
        OLD.currency_code, OLD.amount_minor, OLD.expire_time, OLD.create_time,
        OLD.trace_id, OLD.span_id)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = format('immutable fields of hold %s cannot change', OLD.hold_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER holds_guard BEFORE UPDATE OR DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_hold();

-- The chain head only moves forward: rewinding it would let sequences be reused.
CREATE FUNCTION ledger_guard_chain_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.sequence < OLD.sequence OR NEW.tenant_id <> OLD.tenant_id THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = 'the chain head of a tenant only moves forward';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER chain_heads_forward_only BEFORE UPDATE OR DELETE ON chain_heads
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_chain_head();

-- Extends the tenant's hash chain by the given entries, in order, and returns their links.
-- link hash = sha256(previous_hash || int8(sequence) || int8(create_time in µs) || content),
-- where `content` is the canonical encoding the service computes (ADR 0007). The head row's
-- lock is taken last in the transaction and held only until commit, so it is the one short
-- per-tenant critical section; a batch of N entries takes it once.
CREATE FUNCTION ledger_chain_append(p_tenant text, p_entry_ids text[], p_contents bytea[])
RETURNS TABLE (o_entry_id text, o_sequence bigint, o_previous_hash bytea, o_hash bytea,
               o_create_time timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    head_sequence bigint;
    head_hash bytea;
    head_time timestamptz;
    link_time timestamptz;
    link_micros bigint;
    previous_hashes bytea[] := '{}';
    hashes bytea[] := '{}';
    i integer;
    n integer := coalesce(array_length(p_entry_ids, 1), 0);
BEGIN
    IF n = 0 OR n <> coalesce(array_length(p_contents, 1), 0) THEN
        RAISE EXCEPTION 'ledger_chain_append needs as many contents as entry ids (at least one)';
    END IF;
    -- Run the deferred balance checks now, before the tenant's chain lock is taken.
    SET CONSTRAINTS ALL IMMEDIATE;
    INSERT INTO chain_heads AS h (tenant_id, sequence, hash, create_time)
    VALUES (p_tenant, 0, decode(repeat('00', 32), 'hex'), '-infinity')
    ON CONFLICT (tenant_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id
    RETURNING h.sequence, h.hash, h.create_time INTO head_sequence, head_hash, head_time;
    -- Never earlier than the previous link: create_time follows the sequence.
    link_time := greatest(clock_timestamp(), head_time);
    link_micros := (extract(epoch FROM link_time) * 1000000)::bigint;
    FOR i IN 1 .. n LOOP
        previous_hashes := previous_hashes || head_hash;
        head_hash := sha256(head_hash || int8send(head_sequence + i) || int8send(link_micros)
                            || p_contents[i]);
        hashes := hashes || head_hash;
    END LOOP;
    INSERT INTO entry_chain (tenant_id, sequence, entry_id, previous_hash, hash, create_time)
    SELECT p_tenant, head_sequence + l.i, p_entry_ids[l.i], previous_hashes[l.i], hashes[l.i],
           link_time
      FROM generate_series(1, n) AS l (i);
    UPDATE chain_heads
       SET sequence = head_sequence + n, hash = head_hash, create_time = link_time
     WHERE tenant_id = p_tenant;
    RETURN QUERY
        SELECT p_entry_ids[l.i], head_sequence + l.i, previous_hashes[l.i], hashes[l.i], link_time
          FROM generate_series(1, n) AS l (i);
END
$$;
