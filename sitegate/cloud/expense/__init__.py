"""Expense statements (heating, hot water, water, ancillary costs) and cost allocation.

Pure rules over typed values (Decimal, Fraction); no SQL here (the store is
``sitegate.cloud.store.expense``). Money rules are the billing core's: ``lines.Line``,
``invoice.totals`` (VAT per rate, cash rounding), the ledger's lifecycle.
"""
