-- AlterTable
-- A plain ADD COLUMN rather than Prisma's table rebuild: one statement, no copy of the User table, and no
-- DROP TABLE that could cascade into Session and ApiToken. Existing accounts start at version 0.
ALTER TABLE "User" ADD COLUMN "credentialsVersion" INTEGER NOT NULL DEFAULT 0;
