ALTER TABLE "chat"."message_search" DROP CONSTRAINT "message_search_message_id_messages_id_fk";
--> statement-breakpoint
-- What the foreign key's cascade did, without its check on every entry the indexer writes: the entries
-- of deleted messages (a room's deletion deletes its messages) go with them, one statement per DELETE.
CREATE FUNCTION "chat"."unindex_deleted_messages"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "chat"."message_search" s USING "deleted" d WHERE s."message_id" = d."id";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "messages_unindex_deleted" AFTER DELETE ON "chat"."messages"
REFERENCING OLD TABLE AS "deleted"
FOR EACH STATEMENT EXECUTE FUNCTION "chat"."unindex_deleted_messages"();
