-- IF NOT EXISTS: the migrator creates "chat" itself first, to hold its own table (migrationsSchema).
CREATE SCHEMA IF NOT EXISTS "chat";
--> statement-breakpoint
CREATE TABLE "chat"."users" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant" text DEFAULT '' NOT NULL,
	"name" text,
	"avatar" text,
	"last_seen" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat"."room_members" (
	"room_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"role" text DEFAULT 'MEMBER' NOT NULL,
	"last_read_seq" integer DEFAULT 0 NOT NULL,
	"joined_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "room_members_room_id_user_id_pk" PRIMARY KEY("room_id","user_id"),
	CONSTRAINT "room_members_role_check" CHECK ("chat"."room_members"."role" in ('OWNER', 'ADMIN', 'MODERATOR', 'MEMBER'))
);
--> statement-breakpoint
CREATE TABLE "chat"."rooms" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant" text DEFAULT '' NOT NULL,
	"type" text NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"avatar" text,
	"is_private" boolean DEFAULT false NOT NULL,
	"max_members" integer,
	"member_count" integer DEFAULT 0 NOT NULL,
	"last_seq" integer DEFAULT 0 NOT NULL,
	"direct_key" text,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rooms_type_check" CHECK ("chat"."rooms"."type" in ('DIRECT', 'GROUP', 'CHANNEL', 'SUPPORT')),
	CONSTRAINT "rooms_member_count_check" CHECK ("chat"."rooms"."max_members" is null or "chat"."rooms"."member_count" <= "chat"."rooms"."max_members")
);
--> statement-breakpoint
CREATE TABLE "chat"."messages" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"room_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"sender_id" text NOT NULL,
	"type" text DEFAULT 'TEXT' NOT NULL,
	"content" text NOT NULL,
	"reply_to_id" uuid,
	"attachments" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"client_msg_id" text,
	"edited_at" timestamp with time zone,
	"deleted_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "messages_type_check" CHECK ("chat"."messages"."type" in ('TEXT', 'IMAGE', 'FILE', 'VOICE', 'VIDEO', 'SYSTEM'))
);
--> statement-breakpoint
CREATE TABLE "chat"."reactions" (
	"message_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"emoji" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "reactions_message_id_user_id_emoji_pk" PRIMARY KEY("message_id","user_id","emoji")
);
--> statement-breakpoint
CREATE TABLE "chat"."room_events" (
	"room_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"event" text NOT NULL,
	"data" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "room_events_room_id_seq_pk" PRIMARY KEY("room_id","seq")
);
--> statement-breakpoint
CREATE TABLE "chat"."favorites" (
	"user_id" text NOT NULL,
	"type" text NOT NULL,
	"target_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "favorites_user_id_type_target_id_pk" PRIMARY KEY("user_id","type","target_id"),
	CONSTRAINT "favorites_type_check" CHECK ("chat"."favorites"."type" in ('ROOM', 'USER'))
);
--> statement-breakpoint
ALTER TABLE "chat"."room_members" ADD CONSTRAINT "room_members_room_id_rooms_id_fk" FOREIGN KEY ("room_id") REFERENCES "chat"."rooms"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat"."messages" ADD CONSTRAINT "messages_room_id_rooms_id_fk" FOREIGN KEY ("room_id") REFERENCES "chat"."rooms"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat"."reactions" ADD CONSTRAINT "reactions_message_id_messages_id_fk" FOREIGN KEY ("message_id") REFERENCES "chat"."messages"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat"."room_events" ADD CONSTRAINT "room_events_room_id_rooms_id_fk" FOREIGN KEY ("room_id") REFERENCES "chat"."rooms"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "room_members_user_idx" ON "chat"."room_members" USING btree ("user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "rooms_direct_key_idx" ON "chat"."rooms" USING btree ("direct_key");--> statement-breakpoint
CREATE INDEX "rooms_tenant_idx" ON "chat"."rooms" USING btree ("tenant");--> statement-breakpoint
CREATE UNIQUE INDEX "messages_room_seq_idx" ON "chat"."messages" USING btree ("room_id","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "messages_client_msg_idx" ON "chat"."messages" USING btree ("room_id","sender_id","client_msg_id");--> statement-breakpoint
CREATE INDEX "reactions_message_idx" ON "chat"."reactions" USING btree ("message_id");