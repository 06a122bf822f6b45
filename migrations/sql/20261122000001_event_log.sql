-- the event log: the only source of truth. every other table is derived from it.

-- one row per stream: its current version. appends compare-and-set this row, so a version check costs one
-- statement per stream, and concurrent writers to one stream serialise on this row lock.
create table streams (
    stream_id   text primary key,
    -- the part of stream_id before the first '-', e.g. 'track' for 'track-0190...'
    category    text not null,
    -- version of the last event in the stream (events are numbered 1, 2, 3, ...)
    version     bigint not null check (version > 0)
);

create table events (
    -- global position: unique and increasing in insertion order, but NOT in commit order. never read
    -- "position > n" alone; readers order and checkpoint by (transaction_id, position).
    position        bigint generated always as identity primary key,
    stream_id       text not null,
    stream_category text not null,
    -- 1-based version of this event within its stream
    version         bigint not null check (version > 0),
    event_id        uuid not null,
    -- stable past-tense name, e.g. 'LearnerEnrolled'
    event_type      text not null,
    -- version of the data's shape for this event type; older shapes are upcast when read
    schema_version  integer not null default 1 check (schema_version > 0),
    data            jsonb not null,
    -- the whole metadata object as written (may hold more than the columns below)
    metadata        jsonb not null default '{}'::jsonb,
    -- who caused the event: a user id, 'system', a worker name...
    actor_id        text,
    actor_role      text,
    -- which door the command came through
    source          text not null check (source in ('graphql', 'telegram', 'worker', 'cli')),
    -- the command that produced this event; the same command id never appends twice
    command_id      uuid,
    -- the user-visible operation this belongs to, shared across commands it triggers
    correlation_id  uuid,
    -- the event or command that directly caused this one
    causation_id    uuid,
    recorded_at     timestamptz not null default now(),
    -- the writing transaction (epoch-extended, never wraps). events become readable in the global order only
    -- once every transaction below pg_snapshot_xmin has finished, which makes (transaction_id, position) a
    -- commit-safe order: a transaction that commits late can never slip in behind a reader's checkpoint.
    transaction_id  xid8 not null default pg_current_xact_id(),
    constraint events_stream_version_key unique (stream_id, version),
    constraint events_event_id_key unique (event_id)
);

-- the commit-safe global order used by every subscriber and projection
create index events_commit_order_idx on events (transaction_id, position);
-- finding the first result of an already-used command id
create index events_command_id_idx on events (command_id) where command_id is not null;
-- projections that only need a few event types
create index events_type_commit_order_idx on events (event_type, transaction_id, position);

-- command ids already appended. its primary key is the idempotency guard: a second append with the same id
-- waits for the first to commit, then finds its row here and returns the first append's events instead.
create table appended_commands (
    command_id  uuid primary key,
    recorded_at timestamptz not null default now()
);

-- the log is append-only: these triggers refuse UPDATE, DELETE and TRUNCATE for every role (a superuser could
-- still disable triggers, so a shared server should give the application a role that is not one).
create function events_are_immutable() returns trigger language plpgsql as $$
begin
    raise exception 'the event log is append-only: % on events is not allowed', tg_op
        using errcode = 'raise_exception', hint = 'correct history by appending a compensating event';
end;
$$;

create trigger events_no_update_or_delete
    before update or delete on events
    for each row execute function events_are_immutable();

create trigger events_no_truncate
    before truncate on events
    for each statement execute function events_are_immutable();

-- append events to one or several streams atomically, in one round trip.
--
-- p_streams must be sorted (so concurrent multi-stream appends lock rows in one order and cannot deadlock).
-- p_expected[i] is null for "any version", 0 for "no stream yet", n for "exactly version n"; p_counts[i] is how many
-- events stream i receives (at least 1).
-- event arrays are parallel; p_stream_index[j] (1-based) says which stream event j goes to and p_offsets[j] its
-- place within that stream's events of this append (1, 2, ...), so its version is the stream's old version plus
-- p_offsets[j].
--
-- returns one row per appended event. when p_command_id was already used, nothing is written and the rows of the
-- first append are returned with duplicate = true. a version mismatch raises sqlstate 'AC409' with
-- detail 'stream_id<TAB>actual_version'.
create function append_events(
    p_command_id     uuid,
    p_streams        text[],
    p_categories     text[],
    p_expected       bigint[],
    p_counts         bigint[],
    p_stream_index   integer[],
    p_offsets        bigint[],
    p_event_ids      uuid[],
    p_event_types    text[],
    p_schema_vers    integer[],
    p_data           jsonb[],
    p_metadata       jsonb,
    p_actor_id       text,
    p_actor_role     text,
    p_source         text,
    p_correlation_id uuid,
    p_causation_id   uuid
) returns table (out_position bigint, out_stream_id text, out_version bigint, out_transaction_id bigint,
                 out_duplicate boolean)
language plpgsql as $$
declare
    v_base   bigint[] := '{}';
    v_new    bigint;
    v_actual bigint;
    i        integer;
begin
    if p_command_id is not null then
        insert into appended_commands (command_id) values (p_command_id) on conflict (command_id) do nothing;
        if not found then
            -- already appended (possibly by a transaction that committed while we waited on its row):
            -- answer with what that first append wrote.
            return query
                select e.position, e.stream_id, e.version, e.transaction_id::text::bigint, true
                from events e where e.command_id = p_command_id order by e.position;
            return;
        end if;
    end if;

    for i in 1 .. coalesce(array_length(p_streams, 1), 0) loop
        -- compare-and-set of the stream row, one statement per stream
        if p_expected[i] is null or p_expected[i] = 0 then
            -- any version, or no stream yet: create the row, or (any) bump it
            insert into streams as s (stream_id, category, version)
                values (p_streams[i], p_categories[i], p_counts[i])
                on conflict (stream_id) do update set version = s.version + excluded.version
                where p_expected[i] is null
                returning s.version into v_new;
        else
            -- exactly n: bump only a row at version n (a missing stream is a conflict too)
            update streams as s set version = s.version + p_counts[i]
             where s.stream_id = p_streams[i] and s.version = p_expected[i]
            returning s.version into v_new;
        end if;
        if v_new is null then
            select s.version into v_actual from streams s where s.stream_id = p_streams[i];
            raise exception 'wrong expected version for stream %', p_streams[i]
                using errcode = 'AC409', detail = p_streams[i] || chr(9) || coalesce(v_actual, 0)::text;
        end if;
        v_base := v_base || (v_new - p_counts[i]);
        v_new := null;
    end loop;

    return query
        insert into events as e (stream_id, stream_category, version, event_id, event_type, schema_version, data,
                                 metadata, actor_id, actor_role, source, command_id, correlation_id, causation_id)
        select p_streams[x.idx], p_categories[x.idx], v_base[x.idx] + x.off,
               x.event_id, x.event_type, x.schema_ver, x.data,
               p_metadata, p_actor_id, p_actor_role, p_source, p_command_id, p_correlation_id, p_causation_id
          from unnest(p_stream_index, p_offsets, p_event_ids, p_event_types, p_schema_vers, p_data)
               as x(idx, off, event_id, event_type, schema_ver, data)
        returning e.position, e.stream_id, e.version, e.transaction_id::text::bigint, false;
end;
$$;
