-- Signing out ends every session of the user: sessions carry the epoch they were issued in.
ALTER TABLE users ADD COLUMN session_epoch integer NOT NULL DEFAULT 0;
