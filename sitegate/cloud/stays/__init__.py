"""Stay settlements (holiday parks, campsites, furnished lets): pure rules over Decimal.
The store is ``sitegate.cloud.store.stays``; the documents are billing invoices."""
