-- 006_first_delivery_wins: one msgId twice in a batch stores the first delivery, whole.
--
-- A batch may hold the same msgId twice (a pusher's retry landing while the
-- first attempt waits), and the two deliveries may name different orders (a
-- platform bug, or two apps whose ids collide).  001's receiver_ingest kept
-- one trade_events payload, either one (the sort by msgId breaks no ties),
-- yet wrote the orders and jobs of both, and marked the first delivery new
-- whichever payload it kept.  Now the first delivery of a msgId in batch
-- order is the one stored: its payload, its orders, its jobs, and it alone
-- is not marked duplicate.  A msgId an earlier batch stored adds nothing
-- but its deliveries rows, all marked duplicate, as before.
--
-- Same signature, same input (see 001 and store.c), same cost: the batch is
-- sorted once by (msgId, position) to pick each msgId's first delivery, in
-- place of the sort by msgId the insert did and the window over msgId the
-- deliveries did; the later statements then test positions instead of
-- msgIds.  No table is read.
CREATE OR REPLACE FUNCTION receiver_ingest(batch jsonb) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    -- Batch positions (1-based) of the deliveries whose event was stored.
    stored bigint[];
BEGIN
    WITH firsts AS (
        -- The first delivery of each msgId in the batch.
        SELECT DISTINCT ON ((d->'ev'->>'msg_id')::bigint)
               (d->'ev'->>'msg_id')::bigint AS msg_id, i, d, d->'ev' AS e
        FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(d, i)
        WHERE jsonb_typeof(d->'ev') = 'object'
        ORDER BY (d->'ev'->>'msg_id')::bigint, i
    ), ins AS (
        INSERT INTO trade_events (msg_id, type, order_id, current_status, gmt_born,
                                  msg_send_time, user_info, topic_group, topic_name,
                                  app, received_at, payload)
        SELECT msg_id, e->>'type', (e->>'order_id')::bigint, e->>'status',
               to_timestamp((e->>'gmt_born_ms')::numeric / 1000),
               (e->>'send_time')::timestamptz,
               e->>'user_info', e->>'group', e->>'name',
               d->>'app', to_timestamp((d->>'at')::numeric / 1000000),
               e->'payload'
        FROM firsts
        -- In key order, so that receivers inserting the same msgIds (a
        -- retried push landing on two of them) cannot deadlock.
        ORDER BY msg_id
        ON CONFLICT (msg_id) DO NOTHING
        RETURNING msg_id
    )
    SELECT coalesce(array_agg(f.i), '{}') INTO stored
    FROM firsts AS f JOIN ins USING (msg_id);

    IF cardinality(stored) > 0 THEN
        -- The stored delivery's orders only.
        INSERT INTO trade_event_orders (msg_id, order_id, position)
        SELECT (d->'ev'->>'msg_id')::bigint, o.id::bigint, o.pos
        FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(d, i),
             jsonb_array_elements_text(d->'ev'->'orders') WITH ORDINALITY AS o(id, pos)
        WHERE i = ANY (stored)
        ON CONFLICT DO NOTHING;

        -- One job per order, however many messages named it; a job that
        -- already waits counts one more request; a dead one comes back.
        -- From the batch itself, not a join: nothing here may read more
        -- than the batch, however large the tables grow.  DISTINCT ON
        -- sorts by order id: the upserts too go in key order.
        INSERT INTO reconcile_jobs AS j (order_id, app)
        SELECT DISTINCT ON (o.id::bigint) o.id::bigint, d->>'app'
        FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(d, i),
             jsonb_array_elements_text(d->'ev'->'orders') AS o(id)
        WHERE i = ANY (stored)
        ON CONFLICT (order_id) DO UPDATE
            SET generation = j.generation + 1,
                requested_at = now(),
                state = 'pending',
                attempts = CASE WHEN j.state = 'dead' THEN 0 ELSE j.attempts END,
                due_at = CASE WHEN j.state = 'dead' OR j.attempts = 0 THEN now()
                              ELSE j.due_at END;
        PERFORM pg_notify('reconcile_jobs', '');
    END IF;

    INSERT INTO deliveries (received_at, request_id, app, method, path, remote_addr,
                            http_status, signature_ok, signature_field, msg_id,
                            duplicate, error, body_bytes, body)
    SELECT to_timestamp((d->>'at')::numeric / 1000000), d->>'rid', d->>'app',
           d->>'method', d->>'path', d->>'remote', (d->>'status')::integer,
           (d->>'sig_ok')::boolean, d->>'sig_field', (d->>'msg_id')::bigint,
           -- New only for the delivery whose event was stored.
           CASE WHEN jsonb_typeof(d->'ev') = 'object' THEN NOT (i = ANY (stored)) END,
           d->>'error', (d->>'body_bytes')::bigint, decode(d->>'body', 'hex')
    FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(d, i);

    RETURN cardinality(stored);
END
$fn$;
