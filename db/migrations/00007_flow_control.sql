-- +goose Up
-- Flow control (docs/flow-control.md): concurrency keys, rate limits,
-- priority and debounce. Every table here is empty for a deployment that
-- declares no limit, and the statements of the hot path read none of them.

-- queued: a run waiting for room under its workflow's concurrency limits.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN (
    'queued', 'pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled',
    'timed_out', 'compensating', 'compensated', 'compensation_failed'));

-- priority orders due work (see flow_head_start); blocked says why the run
-- is not moving: {"reason": "queued" | "concurrency" | "throttled", "key",
-- "since", "until"}, NULL while nothing holds it up.
ALTER TABLE runs
    ADD COLUMN priority smallint NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    ADD COLUMN blocked  jsonb;
CREATE INDEX runs_blocked_idx ON runs ((blocked ->> 'reason')) WHERE blocked IS NOT NULL;

-- flow_slots are the places taken under concurrency limits: a run's under
-- its workflow's limits (holder = the run, no expiry: held until the run
-- ends), or an attempt's under its step's (holder = the step execution,
-- expiring with the attempt's lease, so a dead worker's place comes back).
CREATE TABLE flow_slots (
    key        text NOT NULL,
    holder     uuid NOT NULL,
    run_id     uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    expires_at timestamptz,
    PRIMARY KEY (key, holder)
);
CREATE INDEX flow_slots_run_idx ON flow_slots (run_id);

-- flow_queue holds the queued runs, one row for each of their keys, in the
-- order they are admitted: rank is when the run was queued less its
-- priority's head start.
CREATE TABLE flow_queue (
    key        text NOT NULL,
    run_id     uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    max_active integer NOT NULL,
    rank       timestamptz NOT NULL,
    PRIMARY KEY (key, run_id)
);
CREATE INDEX flow_queue_rank_idx ON flow_queue (key, rank, run_id);
CREATE INDEX flow_queue_run_idx ON flow_queue (run_id);

-- flow_buckets are the rate limits' token buckets, refilled lazily when a
-- token is taken; paused_until is set by an endpoint's 429 Retry-After.
CREATE TABLE flow_buckets (
    key          text PRIMARY KEY,
    tokens       double precision NOT NULL,
    refilled_at  timestamptz NOT NULL,
    paused_until timestamptz
);

-- flow_debounce is, for each debounce key of a workflow, the run that
-- later starts with the same key may still fold into.
CREATE TABLE flow_debounce (
    workflow_name text NOT NULL,
    key           text NOT NULL,
    run_id        uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    first_at      timestamptz NOT NULL,
    PRIMARY KEY (workflow_name, key)
);
CREATE INDEX flow_debounce_run_idx ON flow_debounce (run_id);

-- +goose StatementBegin
-- flow_head_start is how much earlier than now work of a priority is due:
-- 100 ms for each point above 50 (later for each point below), so that
-- work of a higher priority is claimed first, and work that has waited
-- longer than the difference goes first all the same (aging).
CREATE FUNCTION flow_head_start(p_priority smallint) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT (p_priority - 50) * interval '100 milliseconds' $$;
-- +goose StatementEnd

-- +goose StatementBegin
-- flow_lock takes a flow key's lock for the transaction. Keys are always
-- locked in sorted order, so two transactions never wait for each other.
CREATE FUNCTION flow_lock(p_keys text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k text;
BEGIN
    FOR k IN SELECT DISTINCT u FROM unnest(p_keys) u ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('flow:' || k, 0));
    END LOOP;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
-- flow_live counts the places taken under a key that still hold.
CREATE FUNCTION flow_live(p_key text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM flow_slots s WHERE s.key = p_key AND (s.expires_at IS NULL OR s.expires_at > now())
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- flow_run_enter gives a new run its places under its workflow's limits,
-- or queues it: when a key is full, or runs are queued on it already (first
-- in, first out). It returns whether the run may begin.
CREATE FUNCTION flow_run_enter(p_run uuid, p_keys text[], p_limits integer[], p_priority smallint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    full_key text;
BEGIN
    PERFORM flow_lock(p_keys);
    SELECT k INTO full_key FROM unnest(p_keys, p_limits) AS u(k, l)
    WHERE EXISTS (SELECT 1 FROM flow_queue q WHERE q.key = u.k) OR flow_live(u.k) >= u.l
    LIMIT 1;
    IF full_key IS NULL THEN
        INSERT INTO flow_slots (key, holder, run_id) SELECT DISTINCT k, p_run, p_run FROM unnest(p_keys) k;
        RETURN true;
    END IF;
    INSERT INTO flow_queue (key, run_id, max_active, rank)
    SELECT u.k, p_run, min(u.l), now() - flow_head_start(p_priority) FROM unnest(p_keys, p_limits) AS u(k, l) GROUP BY u.k;
    UPDATE runs SET status = 'queued', blocked = jsonb_build_object('reason', 'queued', 'key', full_key, 'since', now())
    WHERE id = p_run;
    RETURN false;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
-- flow_admit begins the queued runs that the places freed under keys make
-- room for, best rank first, each given an advance work item due by its
-- priority. A queued run with other keys is admitted only when they all
-- have room; one whose row another transaction holds (a cancellation) is
-- passed over. It returns the runs admitted.
CREATE FUNCTION flow_admit(p_keys text[]) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    k text;
    cand uuid;
    lim integer;
    passed uuid[] := '{}';
    admitted boolean;
BEGIN
    PERFORM flow_lock(p_keys);
    FOR k IN SELECT DISTINCT u FROM unnest(p_keys) u ORDER BY 1 LOOP
        LOOP
            admitted := false;
            FOR cand, lim IN SELECT q.run_id, q.max_active FROM flow_queue q
                             WHERE q.key = k AND q.run_id <> ALL (passed)
                             ORDER BY q.rank, q.run_id LIMIT 100 LOOP
                EXIT WHEN flow_live(k) >= lim;
                -- Room under every other key of the candidate; a key that
                -- another transaction holds is taken as full (that
                -- transaction admits by it on its own).
                CONTINUE WHEN EXISTS (
                    SELECT 1 FROM flow_queue o WHERE o.run_id = cand AND o.key <> k AND (
                        NOT pg_try_advisory_xact_lock(hashtextextended('flow:' || o.key, 0))
                        OR flow_live(o.key) >= o.max_active));
                PERFORM 1 FROM runs r WHERE r.id = cand AND r.status = 'queued' FOR UPDATE SKIP LOCKED;
                IF NOT FOUND THEN
                    passed := passed || cand;
                    CONTINUE;
                END IF;
                INSERT INTO flow_slots (key, holder, run_id) SELECT q.key, cand, cand FROM flow_queue q WHERE q.run_id = cand;
                DELETE FROM flow_queue q WHERE q.run_id = cand;
                UPDATE runs SET status = 'pending', blocked = NULL, updated_at = now() WHERE id = cand;
                INSERT INTO work_items (run_id, kind, visible_at)
                SELECT cand, 'advance', now() - flow_head_start(r.priority) FROM runs r WHERE r.id = cand;
                RETURN NEXT cand;
                admitted := true;
                EXIT;
            END LOOP;
            EXIT WHEN NOT admitted;
        END LOOP;
    END LOOP;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
-- flow_step_enter takes an attempt's places under its step's limits, until
-- the attempt's lease ends, and returns NULL; or, when a key is full,
-- takes nothing and returns that key. Places whose lease ended (their
-- worker died) are deleted as they are met.
CREATE FUNCTION flow_step_enter(p_holder uuid, p_run uuid, p_keys text[], p_limits integer[], p_lease_ms bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    full_key text;
BEGIN
    PERFORM flow_lock(p_keys);
    DELETE FROM flow_slots s WHERE s.key = ANY (p_keys) AND s.expires_at <= now();
    DELETE FROM flow_slots s WHERE s.holder = p_holder AND s.expires_at IS NOT NULL;
    SELECT k INTO full_key FROM unnest(p_keys, p_limits) AS u(k, l) WHERE flow_live(u.k) >= u.l LIMIT 1;
    IF full_key IS NOT NULL THEN
        RETURN full_key;
    END IF;
    INSERT INTO flow_slots (key, holder, run_id, expires_at)
    SELECT DISTINCT k, p_holder, p_run, now() + p_lease_ms * interval '1 millisecond' FROM unnest(p_keys) k;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
-- flow_take takes a token from a bucket of p_limit tokens refilled over
-- p_period_ms, and returns 0; or, when none is left (or the bucket is
-- paused by a 429), takes nothing and returns how many milliseconds until
-- one is.
CREATE FUNCTION flow_take(p_key text, p_limit integer, p_period_ms bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    b flow_buckets;
    t double precision;
BEGIN
    INSERT INTO flow_buckets (key, tokens, refilled_at) VALUES (p_key, p_limit, clock_timestamp())
    ON CONFLICT (key) DO NOTHING;
    SELECT * INTO b FROM flow_buckets WHERE key = p_key FOR UPDATE;
    IF b.paused_until > clock_timestamp() THEN
        RETURN ceil(EXTRACT(EPOCH FROM b.paused_until - clock_timestamp()) * 1000)::bigint;
    END IF;
    -- The clock of the statement, not of the transaction: the row lock
    -- may have been waited for.
    t := LEAST(p_limit, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at) * 1000 * p_limit / p_period_ms);
    IF t >= 1 THEN
        UPDATE flow_buckets SET tokens = t - 1, refilled_at = clock_timestamp(), paused_until = NULL WHERE key = p_key;
        RETURN 0;
    END IF;
    UPDATE flow_buckets SET tokens = t, refilled_at = clock_timestamp() WHERE key = p_key;
    RETURN GREATEST(ceil((1 - t) * p_period_ms / p_limit), 1)::bigint;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
-- flow_debounce folds a start into the run pending under a debounce key,
-- when that run has not begun: its input is replaced and its start moved
-- p_period_ms on, but not past p_max_wait_ms after the first start. It
-- returns that run, or NULL when there is none to fold into (a new run is
-- then started and recorded with flow_debounce_record).
CREATE FUNCTION flow_debounce(p_workflow text, p_key text, p_input jsonb, p_period_ms bigint, p_max_wait_ms bigint) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    d flow_debounce;
    wid bigint;
    tok uuid;
    st text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('debounce:' || p_workflow || ':' || p_key, 0));
    SELECT * INTO d FROM flow_debounce WHERE workflow_name = p_workflow AND key = p_key;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- Work items before the run, as every transition locks them.
    SELECT w.id, w.lease_token INTO wid, tok FROM work_items w
    WHERE w.run_id = d.run_id AND w.kind = 'advance' AND w.after_step IS NULL FOR UPDATE;
    SELECT r.status INTO st FROM runs r WHERE r.id = d.run_id FOR UPDATE;
    IF st = 'queued' OR (st = 'pending' AND wid IS NOT NULL AND tok IS NULL) THEN
        UPDATE runs SET input = p_input, updated_at = now() WHERE id = d.run_id;
        UPDATE work_items SET visible_at = LEAST(now() + p_period_ms * interval '1 millisecond',
                                                 d.first_at + p_max_wait_ms * interval '1 millisecond')
        WHERE id = wid;
        RETURN d.run_id;
    END IF;
    DELETE FROM flow_debounce WHERE workflow_name = p_workflow AND key = p_key;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION flow_debounce(text, text, jsonb, bigint, bigint);
DROP FUNCTION flow_take(text, integer, bigint);
DROP FUNCTION flow_step_enter(uuid, uuid, text[], integer[], bigint);
DROP FUNCTION flow_admit(text[]);
DROP FUNCTION flow_run_enter(uuid, text[], integer[], smallint);
DROP FUNCTION flow_live(text);
DROP FUNCTION flow_lock(text[]);
DROP FUNCTION flow_head_start(smallint);
DROP TABLE flow_debounce;
DROP TABLE flow_buckets;
DROP TABLE flow_queue;
DROP TABLE flow_slots;
DROP INDEX runs_blocked_idx;
ALTER TABLE runs DROP COLUMN blocked, DROP COLUMN priority;
DELETE FROM runs WHERE status = 'queued';
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN (
    'pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled',
    'timed_out', 'compensating', 'compensated', 'compensation_failed'));
