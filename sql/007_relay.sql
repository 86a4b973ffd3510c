-- 007_relay: the relay's durable outbox (issue 12).
--
-- Every change the receiver records becomes an event for the user's own
-- services, written in the same transaction as the change: receiver_ingest
-- (message.received, one per new trade_events row) and receiver_apply_order
-- (order.updated for a new stored version, order.status_changed for an
-- order_changes row) insert a relay_events row, holding the exact JSON body
-- that will be sent, and one relay_deliveries row per matching subscriber.
-- So no change commits without its events, and none is sent for a change
-- that rolled back.  The daemon (relay.c) claims deliveries with a lease
-- under FOR UPDATE SKIP LOCKED, as it claims reconcile jobs, and reports
-- each attempt's outcome with the attempt number the claim gave it: an
-- outcome of an attempt whose lease ran out (another receiver claimed the
-- delivery since) changes nothing.
--
-- Subscribers live in relay_subscribers: each receiver upserts those of its
-- configuration at start; whether one is enabled lives only here, so a 410
-- disables it for every receiver and `receiver relay --enable` enables it
-- for all.  A disabled subscriber still gets its deliveries (they wait);
-- only claiming skips it.  A receiver without any subscriber on its
-- database pays one probe of the empty relay_subscribers per ingest batch
-- and per applied record: events are stored only while at least one
-- subscriber row exists, and then all of them, whatever the filters, so
-- that `--replay` can hand a subscriber added later what it missed.
--
-- Bodies are built once, here, with json_build_object (json keeps the key
-- order written): {"type", "timestamp", "data"}, the Standard Webhooks
-- payload shape; every 64-bit id a JSON string; the envelope and the order
-- record the stored jsonb, numbers exact.  Times are UTC with microseconds
-- and a Z.
--
-- Order: per subscriber and order, a delivery is claimed only once every
-- earlier (lower id) delivery of that order is delivered or dead.  The ids
-- of one order's order.* events follow the commits, because
-- receiver_apply_order holds the order's advisory lock until it commits;
-- message.received events of two batches committing at once have no order
-- between them.  Nothing here deletes: events and delivered rows stay, as
-- trade_events do, until the operator removes them (`--replay` can only
-- send events still stored; a delivery whose event is gone is never sent):
--
--   DELETE FROM relay_deliveries WHERE state = 'delivered' AND delivered_at < ...;
--   DELETE FROM relay_events AS e WHERE created_at < ... AND NOT EXISTS
--       (SELECT 1 FROM relay_deliveries AS d
--        WHERE d.event_id = e.event_id AND d.state <> 'delivered');

CREATE TABLE relay_subscribers (
    name            text PRIMARY KEY,
    events          text[] NOT NULL DEFAULT '{}',   -- types to send; {} means all
    apps            text[] NOT NULL DEFAULT '{}',   -- apps whose events to send; {} means all
    enabled         boolean NOT NULL DEFAULT true,
    disabled_at     timestamptz,                    -- since when (a 410), NULL while enabled
    disabled_reason text,
    last_error      text,                           -- the latest failure any receiver reported
    last_error_at   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE relay_events (
    id         bigserial PRIMARY KEY,
    -- The webhook-id: the same on every attempt and for every subscriber.
    event_id   text GENERATED ALWAYS AS ('evt_' || id) STORED UNIQUE NOT NULL,
    type       text NOT NULL,
    app        text,
    order_id   bigint,                   -- the order it is about, NULL for none
    created_at timestamptz NOT NULL DEFAULT now(),
    body       text NOT NULL             -- the exact JSON sent
);
CREATE INDEX relay_events_created_at ON relay_events (created_at);

-- No foreign keys: the functions below are the only writers, and write a
-- delivery only for an event and a subscriber they just read or inserted;
-- a key would cost a probe per row on the ingest path (see 004).
CREATE TABLE relay_deliveries (
    id              bigserial PRIMARY KEY,
    subscriber      text NOT NULL,
    event_id        text NOT NULL,
    event_type      text NOT NULL,
    order_id        bigint,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL DEFAULT now(),
    last_status     integer,                       -- HTTP status, NULL when there was none
    last_error      text,
    last_attempt_at timestamptz,                   -- the latest claim
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- Claiming: one subscriber's due rows, earliest first.
CREATE INDEX relay_deliveries_due ON relay_deliveries (subscriber, due_at, id)
    WHERE state = 'pending';
-- Per-order order: is there an earlier pending delivery of this order?
CREATE INDEX relay_deliveries_order ON relay_deliveries (subscriber, order_id, id)
    WHERE state = 'pending';
CREATE INDEX relay_deliveries_dead ON relay_deliveries (subscriber, id)
    WHERE state = 'dead';

-- --- building events ---------------------------------------------------------

-- T as the bodies write times: UTC, microseconds, Z.
CREATE FUNCTION receiver_relay_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $fn$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$fn$;

-- The body of an event of type P_TYPE with P_DATA, stamped with the
-- transaction's time (its created_at).
CREATE FUNCTION receiver_relay_body(p_type text, p_data json) RETURNS text
LANGUAGE sql STABLE AS $fn$
    SELECT json_build_object('type', p_type, 'timestamp', receiver_relay_time(now()),
                             'data', p_data)::text
$fn$;

-- Does a subscriber with these filters want an event of P_TYPE from P_APP?
CREATE FUNCTION receiver_relay_wants(p_events text[], p_apps text[], p_type text, p_app text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $fn$
    SELECT (cardinality(p_events) = 0 OR p_type = ANY (p_events))
       AND (cardinality(p_apps) = 0 OR p_app = ANY (p_apps))
$fn$;

-- One delivery per matching subscriber for each of the events P_IDS
-- (relay_events.id), in event order; wakes the receivers.  Returns how many.
CREATE FUNCTION receiver_relay_fan_out(p_ids bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    INSERT INTO relay_deliveries (subscriber, event_id, event_type, order_id)
    SELECT s.name, e.event_id, e.type, e.order_id
    FROM relay_events AS e
    JOIN relay_subscribers AS s ON receiver_relay_wants(s.events, s.apps, e.type, e.app)
    WHERE e.id = ANY (p_ids)
    ORDER BY e.id, s.name;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('relay_deliveries', '');
    END IF;
    RETURN n;
END
$fn$;

-- Record one event and its deliveries, if any subscriber exists.  Returns
-- its event_id, NULL when nothing was stored.
CREATE FUNCTION receiver_relay_enqueue(p_type text, p_app text, p_order_id bigint, p_data json)
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    ev relay_events%ROWTYPE;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM relay_subscribers) THEN
        RETURN NULL;
    END IF;
    INSERT INTO relay_events (type, app, order_id, body)
    VALUES (p_type, p_app, p_order_id, receiver_relay_body(p_type, p_data))
    RETURNING * INTO ev;
    PERFORM receiver_relay_fan_out(ARRAY[ev.id]);
    RETURN ev.event_id;
END
$fn$;

-- --- the event sources -----------------------------------------------------------

-- receiver_ingest: sql/006's, unchanged but for the relay step at its end
-- (message.received).  Without a subscriber that step is one probe of an
-- empty table per batch; with one, two set-based inserts from the batch.
CREATE OR REPLACE FUNCTION receiver_ingest(batch jsonb) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    -- Batch positions (1-based) of the deliveries whose event was stored.
    stored bigint[];
    -- relay_events.id of the message.received events this batch recorded.
    relayed bigint[];
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

    -- The relay: a message.received event per stored delivery, in batch
    -- order, from the batch itself (the stored delivery's orders and
    -- envelope, as trade_events and trade_event_orders hold them).
    IF cardinality(stored) > 0 AND EXISTS (SELECT 1 FROM relay_subscribers) THEN
        WITH ev AS (
            INSERT INTO relay_events (type, app, order_id, body)
            SELECT 'message.received', d->>'app', (d->'ev'->>'order_id')::bigint,
                   receiver_relay_body('message.received', json_build_object(
                       'app', d->>'app',
                       'msg_id', (d->'ev'->>'msg_id')::bigint::text,
                       'type', d->'ev'->>'type',
                       'order_ids', (SELECT coalesce(json_agg(o.id::bigint::text ORDER BY o.pos),
                                                     '[]'::json)
                                     FROM jsonb_array_elements_text(d->'ev'->'orders')
                                          WITH ORDINALITY AS o(id, pos)),
                       'message', d->'ev'->'payload'))
            FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(d, i)
            WHERE i = ANY (stored)
            ORDER BY i
            RETURNING id
        )
        SELECT array_agg(id) INTO relayed FROM ev;
        PERFORM receiver_relay_fan_out(relayed);
    END IF;

    RETURN cardinality(stored);
END
$fn$;

-- receiver_apply_order: sql/002's, unchanged but for two relay hooks: a new
-- stored version applied (not stale) is an order.updated event; an
-- order_changes row is an order.status_changed event, after it.  data:
-- {app, order_id, status, modify_time, record} and {app, order_id,
-- old_status, new_status, modify_time, record}; modify_time is the
-- record's modifyTime in UTC (NULL when it is not a time).
CREATE OR REPLACE FUNCTION receiver_apply_order(p_order_id bigint, p_app text, p_record jsonb,
                                                p_source text,
                                                OUT outcome text, OUT old_status text,
                                                OUT new_status text)
LANGUAGE plpgsql AS $fn$
DECLARE
    base jsonb := p_record->'baseInfo';
    rec_id text := coalesce(p_record->'baseInfo'->>'id', p_record->'baseInfo'->>'idOfStr');
    mt timestamptz := receiver_ts(p_record->'baseInfo'->>'modifyTime');
    cur orders%ROWTYPE;
    new_version boolean;
    relay boolean;
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
    new_version := FOUND;

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

    relay := EXISTS (SELECT 1 FROM relay_subscribers);
    IF relay AND new_version THEN
        PERFORM receiver_relay_enqueue('order.updated', p_app, p_order_id, json_build_object(
            'app', p_app, 'order_id', p_order_id::text, 'status', new_status,
            'modify_time', receiver_relay_time(mt), 'record', p_record));
    END IF;

    IF cur.order_id IS NULL OR cur.status IS DISTINCT FROM new_status THEN
        INSERT INTO order_changes (order_id, old_status, new_status, modify_time, source)
        VALUES (p_order_id, old_status, new_status, mt, p_source);
        PERFORM pg_notify('order_status_changed',
                          json_build_object('order_id', p_order_id::text,
                                            'old_status', old_status,
                                            'new_status', new_status)::text);
        IF relay THEN
            PERFORM receiver_relay_enqueue('order.status_changed', p_app, p_order_id,
                json_build_object('app', p_app, 'order_id', p_order_id::text,
                                  'old_status', old_status, 'new_status', new_status,
                                  'modify_time', receiver_relay_time(mt),
                                  'record', p_record));
        END IF;
        outcome := 'applied';
    ELSE
        outcome := 'unchanged';
    END IF;
END
$fn$;

-- --- subscribers -------------------------------------------------------------------

-- A receiver's configuration names subscriber P_NAME with these filters
-- (NULL: none).  Whether it is enabled is kept.
CREATE FUNCTION receiver_relay_sync_subscriber(p_name text, p_events text[], p_apps text[])
RETURNS void LANGUAGE sql AS $fn$
    INSERT INTO relay_subscribers AS s (name, events, apps)
    VALUES (p_name, coalesce(p_events, '{}'), coalesce(p_apps, '{}'))
    ON CONFLICT (name) DO UPDATE
        SET events = EXCLUDED.events, apps = EXCLUDED.apps, updated_at = now()
        WHERE s.events IS DISTINCT FROM EXCLUDED.events
           OR s.apps IS DISTINCT FROM EXCLUDED.apps
$fn$;

-- Enable P_SUBSCRIBER (after a 410); its waiting deliveries are due as they
-- were, and the receivers hear of it.  False when no subscriber has that
-- name.
CREATE FUNCTION receiver_relay_enable(p_subscriber text) RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE relay_subscribers
    SET enabled = true, disabled_at = NULL, disabled_reason = NULL, updated_at = now()
    WHERE name = p_subscriber;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('relay_deliveries', '');
    RETURN true;
END
$fn$;

-- --- claiming and outcomes -----------------------------------------------------------

-- Claim up to P_LIMIT due deliveries of P_SUBSCRIBER, if it is enabled, for
-- P_LEASE_MS, earliest due first.  A delivery with an earlier pending
-- delivery of the same order for this subscriber is not due, leased or not:
-- at most one delivery per order is ever out.  A row another session has
-- locked (claiming it, or reporting on it) is skipped, never waited for.
CREATE FUNCTION receiver_relay_claim(p_subscriber text, p_limit integer, p_lease_ms integer)
RETURNS TABLE (id bigint, event_id text, event_type text, order_id bigint, attempts integer,
               body text)
LANGUAGE sql AS $fn$
    WITH c AS (
        SELECT d.id FROM relay_deliveries AS d
        WHERE d.subscriber = p_subscriber AND d.state = 'pending' AND d.due_at <= now()
          AND EXISTS (SELECT 1 FROM relay_subscribers AS s
                      WHERE s.name = p_subscriber AND s.enabled)
          AND (d.order_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM relay_deliveries AS p
                   WHERE p.subscriber = d.subscriber AND p.order_id = d.order_id
                     AND p.state = 'pending' AND p.id < d.id))
        ORDER BY d.due_at, d.id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), u AS (
        UPDATE relay_deliveries AS d
        SET due_at = now() + p_lease_ms * interval '1 millisecond',
            attempts = d.attempts + 1, last_attempt_at = now()
        FROM c
        WHERE d.id = c.id
        RETURNING d.id, d.event_id, d.event_type, d.order_id, d.attempts
    )
    SELECT u.id, u.event_id, u.event_type, u.order_id, u.attempts, e.body
    FROM u JOIN relay_events AS e ON e.event_id = u.event_id
    ORDER BY u.id
$fn$;

-- Attempt P_ATTEMPTS of delivery P_ID got a 2xx (P_STATUS).
CREATE FUNCTION receiver_relay_delivered(p_id bigint, p_attempts integer, p_status integer)
RETURNS void LANGUAGE sql AS $fn$
    UPDATE relay_deliveries
    SET state = 'delivered', delivered_at = now(), last_status = p_status
    WHERE id = p_id AND attempts = p_attempts AND state = 'pending'
$fn$;

-- Attempt P_ATTEMPTS of delivery P_ID failed (P_STATUS NULL: no HTTP
-- answer): due again after P_RETRY_MS, or dead once it used
-- P_MAX_ATTEMPTS.  Returns the new state, NULL for a stale attempt (nothing
-- changed).
CREATE FUNCTION receiver_relay_failed(p_id bigint, p_attempts integer, p_status integer,
                                      p_error text, p_retry_ms integer,
                                      p_max_attempts integer)
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    who text;
    result text;
BEGIN
    UPDATE relay_deliveries
    SET state = CASE WHEN attempts >= p_max_attempts THEN 'dead' ELSE 'pending' END,
        due_at = now() + p_retry_ms * interval '1 millisecond',
        last_status = p_status, last_error = p_error
    WHERE id = p_id AND attempts = p_attempts AND state = 'pending'
    RETURNING subscriber, state INTO who, result;
    IF FOUND THEN
        UPDATE relay_subscribers SET last_error = p_error, last_error_at = now()
        WHERE name = who;
    END IF;
    RETURN result;
END
$fn$;

-- Attempt P_ATTEMPTS of delivery P_ID got 410 Gone: P_SUBSCRIBER is
-- disabled, with P_REASON, for every receiver (a late 410 too: the
-- consumer said it); the delivery waits, due now, its attempts as they
-- are, for the subscriber to be enabled.  The delivery row is written
-- before the subscriber row, as receiver_relay_failed writes them, so the
-- two cannot deadlock.
CREATE FUNCTION receiver_relay_gone(p_id bigint, p_attempts integer, p_subscriber text,
                                    p_reason text)
RETURNS void LANGUAGE sql AS $fn$
    UPDATE relay_deliveries
    SET due_at = now(), last_status = 410, last_error = p_reason
    WHERE id = p_id AND attempts = p_attempts AND state = 'pending'
      AND subscriber = p_subscriber;
    UPDATE relay_subscribers
    SET enabled = false, disabled_at = CASE WHEN enabled THEN now() ELSE disabled_at END,
        disabled_reason = p_reason, last_error = p_reason, last_error_at = now(),
        updated_at = now()
    WHERE name = p_subscriber;
$fn$;

-- Every dead delivery of P_SUBSCRIBER (NULL: of every subscriber) back to
-- pending, due now, its attempts counted afresh; the receivers hear of it.
-- Returns how many.
CREATE FUNCTION receiver_relay_retry_dead(p_subscriber text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    UPDATE relay_deliveries SET state = 'pending', attempts = 0, due_at = now()
    WHERE state = 'dead' AND (p_subscriber IS NULL OR subscriber = p_subscriber);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pg_notify('relay_deliveries', '');
    RETURN n;
END
$fn$;

-- Enqueue again, for P_SUBSCRIBER, every stored event created in
-- [P_SINCE, P_UNTIL) (NULL: open) that its filters want, same event_id, in
-- event order.  Returns how many; an unknown subscriber is an error.
CREATE FUNCTION receiver_relay_replay(p_subscriber text, p_since timestamptz,
                                      p_until timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    PERFORM 1 FROM relay_subscribers WHERE name = p_subscriber;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no relay subscriber named "%"', p_subscriber;
    END IF;
    INSERT INTO relay_deliveries (subscriber, event_id, event_type, order_id)
    SELECT s.name, e.event_id, e.type, e.order_id
    FROM relay_events AS e
    JOIN relay_subscribers AS s ON s.name = p_subscriber
                               AND receiver_relay_wants(s.events, s.apps, e.type, e.app)
    WHERE e.created_at >= coalesce(p_since, '-infinity')
      AND e.created_at < coalesce(p_until, 'infinity')
    ORDER BY e.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pg_notify('relay_deliveries', '');
    RETURN n;
END
$fn$;

-- --- views ---------------------------------------------------------------------------

--   SELECT * FROM relay_lag;
--   SELECT * FROM relay_dead WHERE subscriber = 'erp';

-- Dead deliveries (`receiver relay --retry-dead` once the consumer is fixed).
CREATE VIEW relay_dead AS
    SELECT d.id, d.subscriber, d.event_id, d.event_type AS type, d.order_id, d.attempts,
           d.last_status, d.last_error, d.last_attempt_at, d.created_at
    FROM relay_deliveries AS d
    WHERE d.state = 'dead'
    ORDER BY d.subscriber, d.id;

-- Per subscriber: enabled or not (and why), pending and dead deliveries, how
-- long the oldest pending one has waited, the latest failure.
CREATE VIEW relay_lag AS
    SELECT s.name AS subscriber, s.enabled, s.disabled_at, s.disabled_reason,
           p.pending, x.dead, now() - p.oldest AS oldest_pending_age,
           s.last_error, s.last_error_at
    FROM relay_subscribers AS s
    CROSS JOIN LATERAL (SELECT count(*) AS pending, min(d.created_at) AS oldest
                        FROM relay_deliveries AS d
                        WHERE d.subscriber = s.name AND d.state = 'pending') AS p
    CROSS JOIN LATERAL (SELECT count(*) AS dead FROM relay_deliveries AS d
                        WHERE d.subscriber = s.name AND d.state = 'dead') AS x
    ORDER BY s.name;
