-- Indexes for bounding what normal operation adds (see provision.Service
-- PurgeOperations and OpenOperation, and the hub's retention sweep).

-- The sweep deletes provisioning operations that ended (expired) more than
-- a retention ago, a batch at a time: a range of expires_at.
CREATE INDEX provisioning_operations_expires ON provisioning_operations (expires_at);

-- Opening an operation counts the pending ones that have not expired, a
-- range of this index that skips the expired ones still kept...
CREATE INDEX provisioning_operations_pending ON provisioning_operations (expires_at)
	WHERE state = 'pending';

-- ...and looks for the pending ones that ask for the same device id: one of
-- the same token is replaced, the others are counted.
CREATE INDEX provisioning_operations_pending_device ON provisioning_operations (requested_device_id, expires_at)
	WHERE state = 'pending';
