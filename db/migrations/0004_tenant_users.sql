-- A user is the pair (tenant, sub) (protocol 11.1): the same sub in two tenants gets two users rows and
-- two favorites lists. Existing rows keep their data: a users row keeps the tenant it already names, and a
-- favorite belongs to its user's tenant (the default tenant "" where its user has no row).
ALTER TABLE "chat"."users" DROP CONSTRAINT "users_pkey";--> statement-breakpoint
ALTER TABLE "chat"."users" ADD CONSTRAINT "users_tenant_id_pk" PRIMARY KEY("tenant","id");--> statement-breakpoint
ALTER TABLE "chat"."favorites" ADD COLUMN "tenant" text DEFAULT '' NOT NULL;--> statement-breakpoint
UPDATE "chat"."favorites" AS "f" SET "tenant" = "u"."tenant" FROM "chat"."users" AS "u" WHERE "u"."id" = "f"."user_id";--> statement-breakpoint
ALTER TABLE "chat"."favorites" DROP CONSTRAINT "favorites_user_id_type_target_id_pk";--> statement-breakpoint
ALTER TABLE "chat"."favorites" ADD CONSTRAINT "favorites_tenant_user_id_type_target_id_pk" PRIMARY KEY("tenant","user_id","type","target_id");
