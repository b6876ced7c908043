CREATE TABLE "chat"."feed" (
	"id" bigint PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"tenant" text NOT NULL,
	"room_id" uuid,
	"seq" integer,
	"actor_id" text,
	"data" jsonb NOT NULL,
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat"."feed_lease" (
	"name" text PRIMARY KEY NOT NULL,
	"holder" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat"."feed_outbox" (
	"staged_id" bigserial PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"tenant" text NOT NULL,
	"room_id" uuid,
	"seq" integer,
	"actor_id" text,
	"data" jsonb NOT NULL,
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat"."feed_positions" (
	"sink" text PRIMARY KEY NOT NULL,
	"position" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "feed_occurred_at_idx" ON "chat"."feed" USING btree ("occurred_at");