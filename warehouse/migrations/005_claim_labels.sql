-- 005: pair labels. A label may carry a claim (target) and its text's stance toward it
-- (agree | disagree | discuss | unrelated); such a label needs no topic.
ALTER TABLE labels ADD COLUMN target VARCHAR;
ALTER TABLE labels ALTER COLUMN topic DROP NOT NULL;
