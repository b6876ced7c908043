CREATE TABLE "chat"."room_bans" (
	"room_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"banned_by" text NOT NULL,
	"reason" text,
	"until" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "room_bans_room_id_user_id_pk" PRIMARY KEY("room_id","user_id")
);
--> statement-breakpoint
ALTER TABLE "chat"."room_members" ADD COLUMN "muted_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "chat"."rooms" ADD COLUMN "frozen" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "chat"."rooms" ADD COLUMN "slow_mode_sec" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "chat"."room_bans" ADD CONSTRAINT "room_bans_room_id_rooms_id_fk" FOREIGN KEY ("room_id") REFERENCES "chat"."rooms"("id") ON DELETE cascade ON UPDATE no action;