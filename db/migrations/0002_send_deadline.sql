-- A send batch is one statement in a transaction of its own (no BEGIN/COMMIT round trips). It carries
-- the time at which its senders are answered UNAVAILABLE, and this check, run after the batch holds its
-- rooms' locks, refuses to write it past that time: a batch held up in transit (a partition) or behind
-- another batch's locks is never committed after its senders were told it failed.
CREATE FUNCTION "chat"."send_batch_past_deadline"(deadline timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RAISE EXCEPTION 'send batch past its deadline (%): nothing written', deadline USING ERRCODE = '57014';
END
$$;
