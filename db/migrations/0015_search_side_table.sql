CREATE TABLE "chat"."message_search" (
	"message_id" uuid PRIMARY KEY NOT NULL,
	"room_id" uuid NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"edited_at" timestamp with time zone,
	"search" "tsvector",
	"version" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat"."message_search_queue" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"message_id" uuid NOT NULL
);
--> statement-breakpoint
ALTER TABLE "chat"."message_search" ADD CONSTRAINT "message_search_message_id_messages_id_fk" FOREIGN KEY ("message_id") REFERENCES "chat"."messages"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
-- The messages stored so far are indexed here, from the generated column about to go (version 0: any
-- change queued from now on takes a larger id and wins), and the GIN index is built once, after them.
INSERT INTO "chat"."message_search" ("message_id", "room_id", "created_at", "edited_at", "search", "version")
SELECT "id", "room_id", "created_at", "edited_at", "search", 0 FROM "chat"."messages" WHERE "deleted_at" IS NULL;--> statement-breakpoint
CREATE INDEX "message_search_idx" ON "chat"."message_search" USING gin ("search");--> statement-breakpoint
DROP INDEX "chat"."messages_search_idx";--> statement-breakpoint
ALTER TABLE "chat"."messages" DROP COLUMN "search";--> statement-breakpoint
-- Every message written, however it is written (a send batch, the server's sends, a host's own INSERT),
-- is queued for the search indexer in its own transaction: one statement per INSERT statement, not per row.
CREATE FUNCTION "chat"."queue_search_inserted"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "chat"."message_search_queue" ("message_id") SELECT "id" FROM "inserted";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "messages_queue_search_insert" AFTER INSERT ON "chat"."messages"
REFERENCING NEW TABLE AS "inserted"
FOR EACH STATEMENT EXECUTE FUNCTION "chat"."queue_search_inserted"();
--> statement-breakpoint
-- An edit, a delete and retention's erasure change what a message is found by: queued again.
CREATE FUNCTION "chat"."queue_search_changed"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "chat"."message_search_queue" ("message_id") VALUES (NEW."id");
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "messages_queue_search_update" AFTER UPDATE OF "content", "deleted_at" ON "chat"."messages"
FOR EACH ROW WHEN (OLD."content" IS DISTINCT FROM NEW."content" OR OLD."deleted_at" IS DISTINCT FROM NEW."deleted_at")
EXECUTE FUNCTION "chat"."queue_search_changed"();
