"""Quote-to-invoice jobs (connection work, meter work for a customer): pure rules over
Decimal. The store is ``sitegate.cloud.store.jobs``; invoices are billing invoices."""
