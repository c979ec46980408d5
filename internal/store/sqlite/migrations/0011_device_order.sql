-- Indexes that let the query language page through devices in the order of
-- a registry column (ORDER BY status, connectionState, lastActivityTime or
-- modelId, ascending or descending): the device id completes each key, as
-- it breaks ties in the query's order, so a page is a seek and a short
-- scan whichever page it is. The console's device list sorts by these.
--
-- connection_state and last_activity_at change when a device connects or
-- disconnects (the hub writes them in batches), so those two indexes add an
-- index write to each such change; telemetry does not touch them.
CREATE INDEX devices_status ON devices (status, id);
CREATE INDEX devices_connection_state ON devices (connection_state, id);
CREATE INDEX devices_last_activity ON devices (last_activity_at, id);
CREATE INDEX devices_model ON devices (model_id, id);
