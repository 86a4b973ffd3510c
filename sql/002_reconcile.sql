-- 002_reconcile: what the reconciler needs to keep `orders` true.
--
-- Jobs are claimed with a lease: claiming moves due_at past the time the
-- fetch can take, under FOR UPDATE SKIP LOCKED, so several receivers on one
-- database never fetch the same job at once and a receiver that dies only
-- delays its jobs until the lease ends.  All status logic lives in
-- receiver_apply_order(), which every path (job, sweep, command line) uses.

ALTER TABLE orders
    ADD COLUMN total_amount        numeric,
    ADD COLUMN shipping_fee        numeric,
    ADD COLUMN sum_product_payment numeric,
    ADD COLUMN buyer_id            text,
    ADD COLUMN seller_id           text,
    ADD COLUMN create_time         timestamptz,
    ADD COLUMN pay_time            timestamptz,
    ADD COLUMN first_seen_at       timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_at          timestamptz NOT NULL DEFAULT now();
CREATE INDEX orders_status ON orders (status);

ALTER TABLE order_changes
    ADD COLUMN modify_time timestamptz,
    ADD COLUMN source      text;

-- One row per distinct version of an order record ever fetched.
CREATE TABLE order_snapshots (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    modify_time timestamptz,
    status      text,
    record      jsonb NOT NULL,
    record_md5  text NOT NULL,
    source      text NOT NULL,            -- 'buyerView', 'list' or 'command'
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, record_md5)
);

-- One row per app: when its next sweep is due, and how the last one went.
CREATE TABLE sweep_state (
    app              text PRIMARY KEY,
    next_run_at      timestamptz NOT NULL DEFAULT now(),
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_orders      integer,
    last_error       text
);

-- Text to timestamptz or numeric, NULL when it is not one: a record with a
-- strange field must not make the whole apply fail.
CREATE FUNCTION receiver_ts(t text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN t::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;

CREATE FUNCTION receiver_numeric(t text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    RETURN t::numeric;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;

-- Claim up to p_limit due jobs for p_lease_ms.
CREATE FUNCTION receiver_claim_jobs(p_limit integer, p_lease_ms integer)
RETURNS TABLE (order_id bigint, app text, generation bigint, attempts integer)
LANGUAGE sql AS $fn$
    UPDATE reconcile_jobs AS j
    SET due_at = now() + p_lease_ms * interval '1 millisecond',
        attempts = j.attempts + 1
    FROM (SELECT r.order_id FROM reconcile_jobs AS r
          WHERE r.state = 'pending' AND r.due_at <= now()
          ORDER BY r.due_at
          LIMIT p_limit
          FOR UPDATE SKIP LOCKED) AS c
    WHERE j.order_id = c.order_id
    RETURNING j.order_id, j.app, j.generation, j.attempts
$fn$;

-- Apply one order record (the API's `data`, or one element of a list's
-- `result`).  A record older than the stored one (by its own modifyTime) is
-- kept as a snapshot but does not replace the row.  A status change is an
-- order_changes row and a NOTIFY, in this same transaction.  Returns
-- 'applied', 'unchanged' or 'stale', with the old and new status.
CREATE FUNCTION receiver_apply_order(p_order_id bigint, p_app text, p_record jsonb,
                                     p_source text,
                                     OUT outcome text, OUT old_status text,
                                     OUT new_status text)
LANGUAGE plpgsql AS $fn$
DECLARE
    base jsonb := p_record->'baseInfo';
    rec_id text := coalesce(p_record->'baseInfo'->>'id', p_record->'baseInfo'->>'idOfStr');
    mt timestamptz := receiver_ts(p_record->'baseInfo'->>'modifyTime');
    cur orders%ROWTYPE;
BEGIN
    IF jsonb_typeof(base) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'the record has no baseInfo';
    END IF;
    IF rec_id IS DISTINCT FROM p_order_id::text THEN
        RAISE EXCEPTION 'the record is for order %, not %', coalesce(rec_id, 'null'), p_order_id;
    END IF;
    -- Serialise appliers of one order (several receivers, sweep and jobs).
    PERFORM pg_advisory_xact_lock(p_order_id);
    SELECT * INTO cur FROM orders WHERE order_id = p_order_id;

    INSERT INTO order_snapshots (order_id, modify_time, status, record, record_md5, source)
    VALUES (p_order_id, mt, base->>'status', p_record, md5(p_record::text), p_source)
    ON CONFLICT (order_id, record_md5) DO NOTHING;

    old_status := cur.status;
    IF cur.order_id IS NOT NULL AND cur.modify_time IS NOT NULL
       AND (mt IS NULL OR mt < cur.modify_time) THEN
        outcome := 'stale';
        new_status := cur.status;
        RETURN;
    END IF;
    new_status := base->>'status';

    INSERT INTO orders AS o (order_id, app, status, modify_time, record, reconciled_at,
                             total_amount, shipping_fee, sum_product_payment,
                             buyer_id, seller_id, create_time, pay_time, updated_at)
    VALUES (p_order_id, p_app, new_status, mt, p_record, now(),
            receiver_numeric(base->>'totalAmount'), receiver_numeric(base->>'shippingFee'),
            receiver_numeric(base->>'sumProductPayment'),
            base->>'buyerID', base->>'sellerID',
            receiver_ts(base->>'createTime'), receiver_ts(base->>'payTime'), now())
    ON CONFLICT (order_id) DO UPDATE
        SET status = EXCLUDED.status, modify_time = EXCLUDED.modify_time,
            record = EXCLUDED.record, reconciled_at = EXCLUDED.reconciled_at,
            total_amount = EXCLUDED.total_amount, shipping_fee = EXCLUDED.shipping_fee,
            sum_product_payment = EXCLUDED.sum_product_payment,
            buyer_id = EXCLUDED.buyer_id, seller_id = EXCLUDED.seller_id,
            create_time = EXCLUDED.create_time, pay_time = EXCLUDED.pay_time,
            updated_at = CASE WHEN o.record = EXCLUDED.record THEN o.updated_at
                              ELSE now() END;

    IF cur.order_id IS NULL OR cur.status IS DISTINCT FROM new_status THEN
        INSERT INTO order_changes (order_id, old_status, new_status, modify_time, source)
        VALUES (p_order_id, old_status, new_status, mt, p_source);
        PERFORM pg_notify('order_status_changed',
                          json_build_object('order_id', p_order_id::text,
                                            'old_status', old_status,
                                            'new_status', new_status)::text);
        outcome := 'applied';
    ELSE
        outcome := 'unchanged';
    END IF;
END
$fn$;

-- A job's fetch succeeded: retire it, unless a message asked again while it
-- ran (generation moved on): then it is due once more, at once.
CREATE FUNCTION receiver_job_done(p_order_id bigint, p_generation bigint)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM reconcile_jobs WHERE order_id = p_order_id AND generation = p_generation;
    IF NOT FOUND THEN
        UPDATE reconcile_jobs
        SET attempts = 0, due_at = now(), last_error = NULL
        WHERE order_id = p_order_id AND state = 'pending';
    END IF;
END
$fn$;

-- A job's fetch failed: due again after p_retry_ms, or dead once it used
-- p_max_attempts (or at once when retrying cannot help).  A message that
-- asked again while the fetch ran (generation moved on) wins: the job is
-- due at once, with its attempts counted afresh.
CREATE FUNCTION receiver_job_failed(p_order_id bigint, p_generation bigint, p_error text,
                                    p_retry_ms integer, p_max_attempts integer,
                                    p_permanent boolean)
RETURNS text LANGUAGE sql AS $fn$
    UPDATE reconcile_jobs
    SET last_error = p_error,
        state = CASE WHEN generation = p_generation
                          AND (p_permanent OR attempts >= p_max_attempts)
                     THEN 'dead' ELSE 'pending' END,
        attempts = CASE WHEN generation = p_generation THEN attempts ELSE 0 END,
        due_at = CASE WHEN generation = p_generation
                      THEN now() + p_retry_ms * interval '1 millisecond'
                      ELSE now() END
    WHERE order_id = p_order_id
    RETURNING state
$fn$;

-- Claim the sweep of p_app if it is due; returns true when this caller won.
CREATE FUNCTION receiver_claim_sweep(p_app text, p_interval_s integer) RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO sweep_state (app) VALUES (p_app) ON CONFLICT DO NOTHING;
    UPDATE sweep_state
    SET next_run_at = now() + p_interval_s * interval '1 second', last_started_at = now()
    WHERE app = p_app AND next_run_at <= now();
    RETURN FOUND;
END
$fn$;

-- Apply every record of one getBuyerOrderList answer (the whole answer).
-- Returns how many were applied, unchanged, stale, or unusable.
CREATE FUNCTION receiver_apply_list(p_app text, p_answer jsonb,
                                    OUT applied integer, OUT unchanged integer,
                                    OUT stale integer, OUT unusable integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    rec jsonb;
    r record;
BEGIN
    applied := 0; unchanged := 0; stale := 0; unusable := 0;
    FOR rec IN SELECT value FROM jsonb_array_elements(
                   CASE WHEN jsonb_typeof(p_answer->'data'->'result') = 'array'
                        THEN p_answer->'data'->'result' ELSE '[]'::jsonb END)
    LOOP
        BEGIN
            SELECT * INTO r FROM receiver_apply_order(
                (rec->'baseInfo'->>'id')::bigint, p_app, rec, 'list');
            CASE r.outcome
                WHEN 'applied' THEN applied := applied + 1;
                WHEN 'unchanged' THEN unchanged := unchanged + 1;
                ELSE stale := stale + 1;
            END CASE;
        EXCEPTION WHEN others THEN
            unusable := unusable + 1;
        END;
    END LOOP;
END
$fn$;

-- A job's fetch came back: apply the answer's record and retire the job, in
-- one transaction.  A record that cannot be applied (wrong order, no
-- baseInfo) raises, and the job counts as failed.
CREATE FUNCTION receiver_finish_job(p_order_id bigint, p_app text, p_generation bigint,
                                    p_answer jsonb,
                                    OUT outcome text, OUT old_status text,
                                    OUT new_status text)
LANGUAGE plpgsql AS $fn$
BEGIN
    SELECT a.outcome, a.old_status, a.new_status INTO outcome, old_status, new_status
    FROM receiver_apply_order(p_order_id, p_app, p_answer->'data', 'buyerView') AS a;
    PERFORM receiver_job_done(p_order_id, p_generation);
END
$fn$;
