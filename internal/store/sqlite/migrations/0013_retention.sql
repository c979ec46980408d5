-- Indexes for bounding what normal operation adds (see provision.Service
-- PurgeOperations and OpenOperation, and the hub's retention sweep).

-- The sweep deletes provisioning operations that ended (expired) more than
-- a retention ago, a batch at a time, and opening an operation counts the
-- pending ones that have not expired: both are ranges of expires_at.
CREATE INDEX provisioning_operations_expires ON provisioning_operations (expires_at);

-- Opening an operation looks for the pending ones that ask for the same
-- device id: one of the same token is replaced, the others are counted.
CREATE INDEX provisioning_operations_pending_device ON provisioning_operations (requested_device_id, expires_at)
	WHERE state = 'pending';
