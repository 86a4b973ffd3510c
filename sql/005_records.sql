-- 005_records: the reconciler hands PostgreSQL order records, not answers.
--
-- The trade-API module (receiver/tradeapi.c) now cuts the order record (or
-- a page's array of records) out of the API's answer, exactly as the API
-- wrote it, so these functions never need to know an answer's shape: the
-- 1688 gateway's answers are shaped differently.  The last two writes the
-- daemon and the command line made to tables directly (a sweep's outcome;
-- retrying dead jobs, with its NOTIFY) become functions beside the others.
-- The functions of 002 stay, for receivers of the previous version still
-- running against this database.

-- A job's fetch came back with P_RECORD: apply it and retire the job, in
-- one transaction.  A record that cannot be applied raises; the job counts
-- as failed.
CREATE FUNCTION receiver_finish_job(p_order_id bigint, p_app text, p_generation bigint,
                                    p_record jsonb, p_source text,
                                    OUT outcome text, OUT old_status text,
                                    OUT new_status text)
LANGUAGE plpgsql AS $fn$
BEGIN
    SELECT a.outcome, a.old_status, a.new_status INTO outcome, old_status, new_status
    FROM receiver_apply_order(p_order_id, p_app, p_record, p_source) AS a;
    PERFORM receiver_job_done(p_order_id, p_generation);
END
$fn$;

-- Apply every record of P_RECORDS (a JSON array; anything else is an empty
-- page).  Returns how many were applied, unchanged, stale, or unusable.
CREATE FUNCTION receiver_apply_records(p_app text, p_records jsonb, p_source text,
                                       OUT applied integer, OUT unchanged integer,
                                       OUT stale integer, OUT unusable integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    rec jsonb;
    r record;
BEGIN
    applied := 0; unchanged := 0; stale := 0; unusable := 0;
    FOR rec IN SELECT value FROM jsonb_array_elements(
                   CASE WHEN jsonb_typeof(p_records) = 'array' THEN p_records
                        ELSE '[]'::jsonb END)
    LOOP
        BEGIN
            SELECT * INTO r FROM receiver_apply_order(
                (rec->'baseInfo'->>'id')::bigint, p_app, rec, p_source);
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

-- A sweep of P_APP ended, having seen P_ORDERS orders; P_ERROR is why it
-- stopped early ('' when it did not).
CREATE FUNCTION receiver_finish_sweep(p_app text, p_orders integer, p_error text)
RETURNS void LANGUAGE sql AS $fn$
    UPDATE sweep_state
    SET last_finished_at = now(), last_orders = p_orders, last_error = nullif(p_error, '')
    WHERE app = p_app
$fn$;

-- Every dead job back to pending, due now, its attempts counted afresh;
-- the receivers hear of it at once.  Returns how many.
CREATE FUNCTION receiver_retry_dead_jobs() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    WITH r AS (UPDATE reconcile_jobs SET state = 'pending', attempts = 0, due_at = now()
               WHERE state = 'dead' RETURNING 1)
    SELECT count(*) INTO n FROM r;
    PERFORM pg_notify('reconcile_jobs', '');
    RETURN n;
END
$fn$;
