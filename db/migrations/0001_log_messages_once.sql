-- A room's message.new entries are its messages rows: sync merges them with room_events by seq, so
-- copies written before this change would be replayed twice.
DELETE FROM "chat"."room_events" WHERE "event" = 'message.new';
