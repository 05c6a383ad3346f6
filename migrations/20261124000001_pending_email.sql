-- An email change waits here until the new address confirms it; the account
-- keeps signing in and receiving mail at the old one until then.
ALTER TABLE users ADD COLUMN pending_email text;
