-- Golden-hour offers live in their product's stream (design §11). Cancelling one names
-- only the offer, so the command side finds the product through this index over the
-- events themselves: no second source of truth beside the store.
CREATE INDEX events_offer_created_idx ON es.events ((data->>'offer_id'))
    WHERE event_type = 'OfferCreated';
