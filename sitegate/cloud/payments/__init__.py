"""Payments coming in: bank statements (ISO 20022 camt.054 / camt.053) read with bounds,
each credit matched to an invoice by its reference. Pure rules; the store is
``sitegate.cloud.store.payments``; payments become the billing ledger's payment events."""
