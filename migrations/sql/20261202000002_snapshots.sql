-- snapshots of long streams' folded state: a cache, never a source of truth. one row per stream, the latest;
-- a snapshot whose schema is not the aggregate's current one is ignored and replaced by the next one stored.
-- (not part of the log: rows are replaced, and deleting them all only makes loading slower.)
create table snapshots (
    stream_id   text primary key,
    -- the state's schema, e.g. 'track-state/1'
    schema      text not null,
    -- the stream version the state was folded up to
    version     bigint not null check (version > 0),
    state       jsonb not null,
    recorded_at timestamptz not null default now()
);
