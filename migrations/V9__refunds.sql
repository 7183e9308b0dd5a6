-- A refunded purchase's outcome (design §10): the points clawed back from its lot and
-- those that had been spent already (shown to admins).
ALTER TABLE read.purchases ADD COLUMN clawed_back bigint;
ALTER TABLE read.purchases ADD COLUMN unrecovered bigint;
