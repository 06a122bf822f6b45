-- a lean event table: every index of `events` serves a read path (ARCHITECTURE.md, "The log's indexes").
-- the unique index on event_id served none: event ids are fresh v7 uuids written once, nothing looks an event
-- up by its id, and appends are idempotent by command id (appended_commands), so it only cost every append
-- one more index insert.
alter table events drop constraint events_event_id_key;
