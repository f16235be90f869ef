"""``sitegate demo``: the whole product on one machine (see ``run.run_demo``).

site.py      the demo building as data: gateway site file, billing model
broker.py    the embedded MQTT 5 broker
chargers.py  charge points running sessions, cars following the gateway's limits
building.py  what the main meter measures: base load plus what the chargers draw
loadwatch.py load management decisions: a line per limit change, loadmgmt.jsonl
cloud.py     ingest, HTTP API, billing at the end
history.py   the electricity meters' simulated month before the live part
heat_water.py  the heat and water meters' simulated hours since the accounting period began
sessions_history.py  the tenants' simulated charging and washing sessions of the month
mbus_meters.py the M-Bus meters: recorded telegrams with registers the demo sets
expense.py   heating and water settled at the end: one statement per tenant
output.py    what the terminal shows
"""
