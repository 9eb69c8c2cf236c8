-- +goose Up
-- The whole schema of Durable's first release. Statuses are text with CHECK
-- constraints rather than enum types so that later migrations can add a state
-- without ALTER TYPE's transaction restrictions.

-- settings holds process-independent values the engine generates once, such
-- as the development signing secret.
CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- workflows is one row per workflow name; latest_version is bumped under the
-- row lock when a new version is posted, which serialises concurrent posts.
CREATE TABLE workflows (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,127}$'),
    latest_version integer NOT NULL CHECK (latest_version >= 1),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- workflow_versions are immutable. content_hash is the SHA-256 of the
-- canonical JSON of the definition, so posting an identical document finds
-- the existing version instead of creating a new one.
CREATE TABLE workflow_versions (
    workflow_name text NOT NULL REFERENCES workflows (name),
    version       integer NOT NULL CHECK (version >= 1),
    definition    jsonb NOT NULL,
    content_hash  bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_name, version),
    UNIQUE (workflow_name, content_hash)
);

CREATE TABLE runs (
    id                       uuid PRIMARY KEY,
    workflow_name            text NOT NULL,
    workflow_version         integer NOT NULL,
    status                   text NOT NULL CHECK (status IN (
        'pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled',
        'timed_out', 'compensating', 'compensated', 'compensation_failed')),
    input                    jsonb NOT NULL,
    context                  jsonb NOT NULL DEFAULT '{}',
    output                   jsonb,
    error                    jsonb,
    -- attempt counts how often the run was (re)started by POST /runs/{id}/retry.
    attempt                  integer NOT NULL DEFAULT 1,
    parent_run_id            uuid REFERENCES runs (id),
    parent_step_execution_id uuid,
    -- depth counts the call_workflow steps above the run: a limit stops
    -- runaway recursion.
    depth                    integer NOT NULL DEFAULT 0,
    idempotency_key          text,
    -- request_hash fingerprints the start request so a reused Idempotency-Key
    -- with a different body is recognised and refused.
    request_hash             bytea,
    schedule_id              uuid,
    -- deadline is the run-level timeout, if the definition sets one.
    deadline                 timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    started_at               timestamptz,
    finished_at              timestamptz,
    FOREIGN KEY (workflow_name, workflow_version) REFERENCES workflow_versions (workflow_name, version)
) WITH (fillfactor = 80);

CREATE UNIQUE INDEX runs_idempotency_key_idx ON runs (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The list endpoint pages by (created_at, id) descending, optionally filtered.
CREATE INDEX runs_created_idx ON runs (created_at DESC, id DESC);
CREATE INDEX runs_workflow_created_idx ON runs (workflow_name, created_at DESC, id DESC);
CREATE INDEX runs_status_created_idx ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_parent_created_idx ON runs (parent_run_id, created_at DESC, id DESC) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_schedule_idx ON runs (schedule_id, created_at DESC) WHERE schedule_id IS NOT NULL;

-- step_executions is one logical execution of one step of a run. step_key
-- names it uniquely within the run: the step's name, qualified by the
-- iteration for steps inside foreach (for example "ship[3].label").
-- webhook_id is the endpoint's idempotency key: the same on every attempt.
CREATE TABLE step_executions (
    id           uuid PRIMARY KEY,
    run_id       uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    parent_id    uuid REFERENCES step_executions (id) ON DELETE CASCADE,
    step_key     text NOT NULL,
    step_name    text NOT NULL,
    step_type    text NOT NULL,
    status       text NOT NULL CHECK (status IN (
        'pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled',
        'timed_out', 'skipped', 'compensating', 'compensated', 'compensation_failed')),
    attempt      integer NOT NULL DEFAULT 0,
    -- abandoned counts attempts cut short by the engine (a lost or stopped
    -- worker); they do not count against the step's retry policy.
    abandoned    integer NOT NULL DEFAULT 0,
    webhook_id   text NOT NULL,
    input        jsonb,
    output       jsonb,
    error        jsonb,
    deadline     timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    UNIQUE (run_id, step_key)
) WITH (fillfactor = 80);

CREATE INDEX step_executions_parent_idx ON step_executions (parent_id) WHERE parent_id IS NOT NULL;

-- step_attempts keeps every attempt of a step execution: timing, outcome,
-- HTTP status, error and the logs the endpoint returned.
CREATE TABLE step_attempts (
    step_execution_id uuid NOT NULL REFERENCES step_executions (id) ON DELETE CASCADE,
    attempt           integer NOT NULL CHECK (attempt >= 1),
    run_id            uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    status            text NOT NULL CHECK (status IN (
        'running', 'succeeded', 'failed', 'accepted', 'timed_out', 'abandoned', 'cancelled')),
    worker_id         text,
    http_status       integer,
    error             jsonb,
    logs              jsonb,
    -- callback_hash is the SHA-256 of the random part of the attempt's
    -- callback token: the token itself is handed to the step endpoint and
    -- never stored.
    callback_hash     bytea,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    PRIMARY KEY (step_execution_id, attempt)
) WITH (fillfactor = 80);

CREATE INDEX step_attempts_run_idx ON step_attempts (run_id);

-- history_events is append-only: every transition of a run, in order.
CREATE TABLE history_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id            uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    type              text NOT NULL,
    step_key          text,
    attempt           integer,
    data              jsonb,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX history_events_run_idx ON history_events (run_id, id);

-- work_items is the queue workers claim from. A claim sets visible_at to the
-- end of the lease, so one index on visible_at finds both new work and work
-- whose lease expired; completing work deletes the row under its lease token.
CREATE TABLE work_items (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id            uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- Deferred: a transition points the work item at a step execution before
    -- it inserts that execution, because it locks work items first.
    step_execution_id uuid REFERENCES step_executions (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    -- advance: start the run's next step (after after_step, or its first);
    -- invoke: make attempt number attempt of a step execution;
    -- step_timeout: a parked step's deadline; run_timeout: the run's deadline;
    -- timer: a sleep's wake-up; wait_timeout: a wait's deadline; child_done: a
    -- child run that its parent's call_workflow step waits for has ended.
    kind              text NOT NULL CHECK (kind IN (
        'advance', 'invoke', 'step_timeout', 'run_timeout', 'timer', 'wait_timeout', 'child_done', 'compensate')),
    -- attempt fences the work to one attempt of its step execution.
    attempt           integer,
    after_step        text,
    visible_at        timestamptz NOT NULL DEFAULT now(),
    lease_owner       text,
    lease_token       uuid,
    claims            integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

CREATE INDEX work_items_visible_idx ON work_items (visible_at, id);
CREATE INDEX work_items_run_idx ON work_items (run_id);

-- waits are the open conditions a waiting step is blocked on: an event (one
-- row per event of an any/all wait), a person's input, a callback, a timer or
-- a child run.
CREATE TABLE waits (
    id                uuid PRIMARY KEY,
    run_id            uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_execution_id uuid NOT NULL REFERENCES step_executions (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('event', 'input', 'callback', 'timer', 'child')),
    event_name        text,
    event_key         text,
    condition_index   integer NOT NULL DEFAULT 0,
    lookback_from     timestamptz,
    deadline          timestamptz,
    status            text NOT NULL CHECK (status IN ('open', 'resolved', 'timed_out', 'cancelled')),
    resolution        jsonb,
    -- event_id is the event that resolved the wait: an event resumes each
    -- run once, so a later wait of the run does not see it again.
    event_id          uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz
);

CREATE INDEX waits_event_open_idx ON waits (event_name, event_key) WHERE status = 'open' AND kind = 'event';
CREATE INDEX waits_step_idx ON waits (step_execution_id);

-- events are kept for a look-back window so an event that arrives shortly
-- before a run reaches its wait still resumes it.
CREATE TABLE events (
    id          uuid PRIMARY KEY,
    dedup_id    text,
    name        text NOT NULL,
    key         text NOT NULL,
    payload     jsonb,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX events_dedup_idx ON events (dedup_id) WHERE dedup_id IS NOT NULL;
CREATE INDEX events_name_key_idx ON events (name, key, received_at DESC);
CREATE INDEX events_received_idx ON events (received_at);

CREATE TABLE schedules (
    id               uuid PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    workflow_name    text NOT NULL REFERENCES workflows (name),
    workflow_version integer,
    cron             text NOT NULL,
    timezone         text NOT NULL,
    input            jsonb NOT NULL DEFAULT '{}',
    overlap_policy   text NOT NULL CHECK (overlap_policy IN ('allow', 'skip', 'buffer_one', 'cancel_other')),
    catchup_window_ms bigint NOT NULL DEFAULT 0 CHECK (catchup_window_ms >= 0),
    paused           boolean NOT NULL DEFAULT false,
    next_fire_at     timestamptz,
    -- buffered_fire_time is a firing held back by the buffer_one policy
    -- until the schedule's active run ends.
    buffered_fire_time timestamptz,
    -- source is 'api' or 'definition' (declared in a workflow definition).
    source           text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'definition')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX schedules_due_idx ON schedules (next_fire_at) WHERE NOT paused;
CREATE INDEX schedules_buffered_idx ON schedules (id) WHERE buffered_fire_time IS NOT NULL AND NOT paused;

-- schedule_fires records every firing under its (schedule, fire time) key in
-- the transaction that starts its run: the primary key makes firing exactly once.
CREATE TABLE schedule_fires (
    schedule_id uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_time   timestamptz NOT NULL,
    run_id      uuid REFERENCES runs (id) ON DELETE SET NULL,
    -- started; skipped (overlap policy skip); buffered (buffer_one, started
    -- later: run_id is set then); cancelled_other (started after cancelling
    -- the schedule's active runs).
    outcome     text NOT NULL CHECK (outcome IN ('started', 'skipped', 'buffered', 'cancelled_other')),
    -- manual marks a firing asked for through the API ("trigger now").
    manual      boolean NOT NULL DEFAULT false,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, fire_time)
);

-- +goose Down
DROP TABLE schedule_fires;
DROP TABLE schedules;
DROP TABLE events;
DROP TABLE waits;
DROP TABLE work_items;
DROP TABLE history_events;
DROP TABLE step_attempts;
DROP TABLE step_executions;
DROP TABLE runs;
DROP TABLE workflow_versions;
DROP TABLE workflows;
DROP TABLE settings;
