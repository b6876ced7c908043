ALTER TABLE "chat"."rooms" ADD COLUMN "member_removals" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Every removed membership, however it is removed (a kick, a leave, a host's own DELETE), counts on its
-- room's row in the same transaction. A send batch reads the senders' membership rows at its snapshot
-- and compares this count at that snapshot with the row it then locks: equal, no member left meanwhile
-- and the snapshot's rows are the truth; different, it reads them again under row locks.
CREATE FUNCTION "chat"."count_member_removal"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "chat"."rooms" SET "member_removals" = "member_removals" + 1 WHERE "id" = OLD."room_id";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "room_members_count_removal" AFTER DELETE ON "chat"."room_members"
FOR EACH ROW EXECUTE FUNCTION "chat"."count_member_removal"();
