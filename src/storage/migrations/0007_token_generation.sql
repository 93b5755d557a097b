-- Tokens issued before a password change must stop working. Each user has a
-- generation, carried in every token issued to them (claim `gen`); changing
-- the password moves it on, and a token whose generation is not the user's
-- current one is refused (api::auth).
ALTER TABLE users ADD COLUMN token_generation integer NOT NULL DEFAULT 0;
