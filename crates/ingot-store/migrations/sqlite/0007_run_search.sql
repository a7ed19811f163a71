-- Run lists page by id (a keyset on the ULIDs) under each filter the API
-- offers: status (runs_by_status), function (runs_by_function), and both
-- together here. Event lists page by internal_id under name (events_by_name).
CREATE INDEX runs_by_function_status ON runs (function, status, id);
-- An event that started no run says why (a paused function, a rate limit).
CREATE INDEX skips_by_event ON skips (event_id);
