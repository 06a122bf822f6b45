-- group commit: several commands' appends in one statement, so one transaction and one WAL flush serve many
-- commands. each command runs append_events in a block of its own (a subtransaction), so one that conflicts or
-- fails is rolled back alone and reported in its rows, while the others commit.
--
-- per command c (1-based): p_command_ids[c], p_stream_counts[c] streams and p_event_counts[c] events, and its
-- metadata columns. the per-stream and per-event arrays are append_events' arrays of every command, concatenated
-- in command order (p_stream_index stays relative to its command's streams).
--
-- returns append_events' rows tagged with their command; a failed command has one row with its sqlstate,
-- message and detail instead (out_position null).
create function append_batch(
    p_command_ids     uuid[],
    p_stream_counts   integer[],
    p_event_counts    integer[],
    p_metadata        jsonb[],
    p_actor_ids       text[],
    p_actor_roles     text[],
    p_sources         text[],
    p_correlation_ids uuid[],
    p_causation_ids   uuid[],
    p_streams         text[],
    p_categories      text[],
    p_expected        bigint[],
    p_counts          bigint[],
    p_stream_index    integer[],
    p_offsets         bigint[],
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_vers     integer[],
    p_data            jsonb[]
) returns table (out_command integer, out_position bigint, out_stream_id text, out_version bigint,
                 out_transaction_id bigint, out_duplicate boolean, out_error_code text, out_error_message text,
                 out_error_detail text)
language plpgsql as $$
declare
    s       integer := 0;  -- streams of earlier commands
    e       integer := 0;  -- events of earlier commands
    ns      integer;
    ne      integer;
    v_code  text;
    v_msg   text;
    v_detail text;
begin
    for c in 1 .. coalesce(array_length(p_command_ids, 1), 0) loop
        ns := p_stream_counts[c];
        ne := p_event_counts[c];
        begin
            return query
                select c, a.out_position, a.out_stream_id, a.out_version, a.out_transaction_id, a.out_duplicate,
                       null::text, null::text, null::text
                  from append_events(p_command_ids[c], p_streams[s + 1 : s + ns], p_categories[s + 1 : s + ns],
                                     p_expected[s + 1 : s + ns], p_counts[s + 1 : s + ns],
                                     p_stream_index[e + 1 : e + ne], p_offsets[e + 1 : e + ne],
                                     p_event_ids[e + 1 : e + ne], p_event_types[e + 1 : e + ne],
                                     p_schema_vers[e + 1 : e + ne], p_data[e + 1 : e + ne],
                                     p_metadata[c], p_actor_ids[c], p_actor_roles[c], p_sources[c],
                                     p_correlation_ids[c], p_causation_ids[c]) a;
        exception when others then
            get stacked diagnostics v_code = returned_sqlstate, v_msg = message_text, v_detail = pg_exception_detail;
            return query select c, null::bigint, null::text, null::bigint, null::bigint, false, v_code, v_msg, v_detail;
        end;
        s := s + ns;
        e := e + ne;
    end loop;
end;
$$;
