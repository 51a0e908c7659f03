-- Ledger rules, version 2 (ADR 0019): the balance check runs once per statement, set-based;
-- the chain append locks its head with SELECT … FOR UPDATE and writes it once.
--
-- Version 1 fired a deferred plpgsql trigger per posting AND per entry, each re-summing its
-- entry: ~300 calls, ~25 ms, for a 100-entry batch. The guarantee stays exactly the same —
-- at commit, every entry that a statement of the transaction inserted, or inserted postings
-- for, has at least two postings and sums to zero per currency, whichever statement wrote
-- it (entries and postings may still come in separate statements: the check is deferred).
-- What changes is the bookkeeping:
--   1. statement-level AFTER INSERT triggers on journal_entries and on postings read the
--      statement's transition table and queue ONE row: the tenant and the entry ids touched;
--   2. a deferred constraint trigger on that queue row checks all of its entries in one
--      query at commit (or at `SET CONSTRAINTS ALL IMMEDIATE`, as ledger_chain_append does)
--      and deletes the row. A batch statement costs two queue rows and two checks.
-- The queue is UNLOGGED: its rows live only inside their own transaction (every row is
-- deleted by its check before the commit; a rolled-back row is dead), so nothing in it ever
-- needs to survive a crash. Row-level security applies to it like every ledger table.

DROP TRIGGER postings_balanced ON postings;
DROP TRIGGER journal_entries_balanced ON journal_entries;
DROP FUNCTION ledger_check_entry_balanced();

CREATE UNLOGGED TABLE entry_checks (
    check_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    entry_ids text[] NOT NULL
);

-- Statement-level: one queue row per tenant the statement wrote entries or postings for.
CREATE FUNCTION ledger_queue_entry_checks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entry_checks (tenant_id, entry_ids)
    SELECT n.tenant_id, array_agg(DISTINCT n.entry_id)
      FROM new_rows n
     GROUP BY n.tenant_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER journal_entries_balance_queued AFTER INSERT ON journal_entries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_queue_entry_checks();
CREATE TRIGGER postings_balance_queued AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_queue_entry_checks();

-- Deferred, once per queue row: every listed entry has >= 2 postings summing to zero per
-- currency. Errors name the same constraints (and SQLSTATE) as version 1. The check uses a
-- generic plan: the custom plan PostgreSQL would otherwise build for every call (the array
-- parameter makes the generic one look dearer) cost more than the check itself.
CREATE FUNCTION ledger_check_queued_entries() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    bad record;
    leg record;
BEGIN
    DELETE FROM entry_checks WHERE check_id = NEW.check_id;
    -- Per listed entry, one index scan of its postings (the primary key's prefix).
    SELECT e.entry_id, x.postings, coalesce(x.unbalanced, false) AS unbalanced
      INTO bad
      FROM unnest(NEW.entry_ids) AS e (entry_id)
     CROSS JOIN LATERAL (
           SELECT coalesce(sum(c.n), 0) AS postings, bool_or(c.imbalance <> 0) AS unbalanced
             FROM (SELECT count(*) AS n, sum(p.amount_minor::numeric) AS imbalance
                     FROM postings p
                    WHERE p.tenant_id = NEW.tenant_id AND p.entry_id = e.entry_id
                    GROUP BY p.currency_code) AS c) AS x
     WHERE x.unbalanced OR x.postings < 2
     ORDER BY coalesce(x.unbalanced, false) DESC, e.entry_id
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF bad.unbalanced THEN
        SELECT p.currency_code, sum(p.amount_minor::numeric) AS imbalance
          INTO leg
          FROM postings p
         WHERE p.tenant_id = NEW.tenant_id AND p.entry_id = bad.entry_id
         GROUP BY p.currency_code
        HAVING sum(p.amount_minor::numeric) <> 0
         ORDER BY p.currency_code
         LIMIT 1;
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'postings_balanced',
            MESSAGE = format('journal entry %s does not balance in %s: off by %s',
                             bad.entry_id, leg.currency_code, leg.imbalance);
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'check_violation',
        CONSTRAINT = 'postings_at_least_two',
        MESSAGE = format('journal entry %s has %s posting(s); at least two are required',
                         bad.entry_id, bad.postings);
END
$$;

CREATE CONSTRAINT TRIGGER entry_checks_balanced AFTER INSERT ON entry_checks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_queued_entries();

-- The queue is written only by the triggers above and emptied by the check: refuse anything
-- else that could drop a pending check (an UPDATE rewriting its ids, a TRUNCATE).
CREATE TRIGGER entry_checks_no_update BEFORE UPDATE ON entry_checks
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entry_checks_no_truncate BEFORE TRUNCATE ON entry_checks
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- The chain head: locked with SELECT … FOR UPDATE and written once per append. Version 1 took
-- the lock with an upsert (`ON CONFLICT DO UPDATE SET tenant_id = tenant_id`, a new row
-- version and a guard-trigger call) and then updated the row again. Same links, same lock,
-- same order; the head row is created (once per tenant) only when missing.
CREATE OR REPLACE FUNCTION ledger_chain_append(p_tenant text, p_entry_ids text[], p_contents bytea[])
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
    SELECT h.sequence, h.hash, h.create_time INTO head_sequence, head_hash, head_time
      FROM chain_heads h WHERE h.tenant_id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        -- The tenant's first entry: create the head (a concurrent first append waits here,
        -- then finds the other's row), then lock it.
        INSERT INTO chain_heads (tenant_id, sequence, hash, create_time)
        VALUES (p_tenant, 0, decode(repeat('00', 32), 'hex'), '-infinity')
        ON CONFLICT (tenant_id) DO NOTHING;
        SELECT h.sequence, h.hash, h.create_time INTO STRICT head_sequence, head_hash, head_time
          FROM chain_heads h WHERE h.tenant_id = p_tenant FOR UPDATE;
    END IF;
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
