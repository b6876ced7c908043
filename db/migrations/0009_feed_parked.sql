CREATE TABLE "chat"."feed_parked" (
	"sink" text NOT NULL,
	"entry_id" bigint NOT NULL,
	"entry" jsonb NOT NULL,
	"parked_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_error" text NOT NULL,
	CONSTRAINT "feed_parked_sink_entry_id_pk" PRIMARY KEY("sink","entry_id")
);
