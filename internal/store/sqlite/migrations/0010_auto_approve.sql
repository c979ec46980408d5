-- Provisioning tokens that approve their operations at once (lab use).
ALTER TABLE provisioning_tokens ADD COLUMN auto_approve INTEGER NOT NULL DEFAULT 0 CHECK (auto_approve IN (0, 1));
