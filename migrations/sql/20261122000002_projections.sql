-- bookkeeping of the projection runner. read models themselves live in their own schemas: a projection's
-- serving tables are in the schema named after it, and a rebuild writes into "<name>__build" until it swaps.

create table projections (
    name                text not null,
    -- 'live' serves queries; 'build' is a rebuild in progress beside it
    slot                text not null check (slot in ('live', 'build')),
    -- the projection's code version this slot was built by; a new version triggers a rebuild
    version             integer not null,
    -- the schema holding this slot's tables
    schema_name         text not null,
    status              text not null check (status in ('building', 'running', 'failed', 'stopped')),
    -- everything up to (checkpoint_xid, checkpoint_position) in commit-safe order has been applied
    checkpoint_xid      bigint not null default 0,
    checkpoint_position bigint not null default 0,
    events_applied      bigint not null default 0,
    -- set when an event failed to apply; the projection stops there until restarted or rebuilt
    error               text,
    error_position      bigint,
    error_event_id      uuid,
    started_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    primary key (name, slot)
);

-- who runs a projection slot. the owner also holds a session advisory lock on hashtextextended(name/slot); the
-- lease row makes ownership visible and is re-checked on every checkpoint write, so a runner that lost its lock
-- connection (or stalled past expires_at) cannot keep writing.
create table projection_leases (
    name        text not null,
    slot        text not null,
    owner       uuid not null,
    -- a description of the owning process, for operators
    holder      text not null,
    acquired_at timestamptz not null default now(),
    expires_at  timestamptz not null,
    primary key (name, slot)
);
