-- 008_member_tokens: the OAuth grants of the members of 1688 apps (issue 13).
--
-- A 1688 app fetches a buyer's orders with that buyer's (member's) access
-- token; one row per (app, member_id), member_id being the memberId a
-- message names in userInfo.  Both tokens are stored sealed by the
-- receiver (receiver/tokens.h: AES-256-GCM under `[tokens] key`, bound to
-- this row and column), never in the clear: the CHECKs below refuse a
-- value that is not of the sealed format (version byte 0x01, then nonce,
-- ciphertext and tag), so a token written here by mistake as text cast to
-- bytea is refused, not stored.  Expiry times come from each answer of the
-- platform (expires_in, refresh_token_timeout), NULL where none said.
--
-- The refresher (the daemon, later) claims a row under FOR UPDATE SKIP
-- LOCKED when refresh_due_at has come, with a lease (claimed_until), as
-- reconcile jobs are claimed; every write of a new grant bumps generation,
-- so a refresh that began before `receiver token set` replaced the grant
-- can tell, and drop its answer.  state 'needs_authorization': the grant
-- is dead (the refresh token expired or was refused) and a human must
-- authorize again; last_error says why, never with a token in it.
--
-- receiver_token_put() is the one writer of a new grant (the command line
-- now, the code exchange later); member_token_status is what may be shown.

CREATE TABLE member_tokens (
    app                 text NOT NULL,
    member_id           text NOT NULL CHECK (member_id <> ''),
    access_token        bytea,                -- sealed; NULL until one is known
    access_expires_at   timestamptz,
    refresh_token       bytea NOT NULL,       -- sealed
    refresh_expires_at  timestamptz,          -- NULL: not known
    state               text NOT NULL DEFAULT 'active'
                        CHECK (state IN ('active', 'needs_authorization')),
    source              text NOT NULL,        -- what wrote the grant: 'set', 'exchange', 'refresh'
    generation          bigint NOT NULL DEFAULT 1,
    refresh_due_at      timestamptz NOT NULL DEFAULT now(),
    claimed_until       timestamptz,          -- a refresher's lease; NULL: none
    attempts            integer NOT NULL DEFAULT 0,  -- failed refreshes since the last success
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, member_id),
    CHECK ((access_token IS NULL) = (access_expires_at IS NULL)),
    -- 29 bytes: the version, a 12-byte nonce and a 16-byte tag, around at least one byte.
    CHECK (access_token IS NULL OR (length(access_token) >= 30 AND get_byte(access_token, 0) = 1)),
    CHECK (length(refresh_token) >= 30 AND get_byte(refresh_token, 0) = 1)
);

-- The refresher's question: which grants are due?
CREATE INDEX member_tokens_due ON member_tokens (refresh_due_at) WHERE state = 'active';

-- Store a new grant of P_MEMBER_ID for P_APP, replacing any earlier one
-- whole (a new grant: tokens, expiry times, state 'active', no error, no
-- lease, attempts 0, generation + 1).  Its refresh is due at once when it
-- brings no access token, else 15 minutes before the access token expires
-- (a 1688 access token lives 10 hours).  Returns the row's expiry times,
-- its generation and whether it replaced a grant.
CREATE FUNCTION receiver_token_put(p_app text, p_member_id text, p_access_token bytea,
                                   p_access_expires_at timestamptz, p_refresh_token bytea,
                                   p_refresh_expires_at timestamptz, p_source text)
RETURNS TABLE (access_expires_at timestamptz, refresh_expires_at timestamptz,
               generation bigint, replaced boolean)
LANGUAGE sql AS $fn$
    INSERT INTO member_tokens AS t (app, member_id, access_token, access_expires_at,
                                    refresh_token, refresh_expires_at, source, refresh_due_at)
    VALUES (p_app, p_member_id, p_access_token, p_access_expires_at, p_refresh_token,
            p_refresh_expires_at, p_source,
            CASE WHEN p_access_token IS NULL THEN now()
                 ELSE greatest(now(), p_access_expires_at - interval '15 minutes') END)
    ON CONFLICT (app, member_id) DO UPDATE
        SET access_token = EXCLUDED.access_token,
            access_expires_at = EXCLUDED.access_expires_at,
            refresh_token = EXCLUDED.refresh_token,
            refresh_expires_at = EXCLUDED.refresh_expires_at,
            state = 'active',
            source = EXCLUDED.source,
            generation = t.generation + 1,
            refresh_due_at = EXCLUDED.refresh_due_at,
            claimed_until = NULL,
            attempts = 0,
            last_error = NULL,
            updated_at = now()
    RETURNING t.access_expires_at, t.refresh_expires_at, t.generation, t.generation > 1
$fn$;

-- What `receiver token list` prints, and what an operator may look at:
-- everything but the tokens.  attention says when a human must act: the
-- grant is dead, or its refresh token expires within 7 days.
CREATE VIEW member_token_status AS
    SELECT app, member_id, state, access_expires_at, refresh_expires_at, updated_at,
           CASE WHEN state = 'needs_authorization' OR refresh_expires_at <= now()
                    THEN 'authorize again'
                WHEN refresh_expires_at <= now() + interval '7 days'
                    THEN 'refresh token expires within 7 days'
           END AS attention,
           last_error
    FROM member_tokens;
