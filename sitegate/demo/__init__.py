"""``sitegate demo``: the whole product on one machine (see ``run.run_demo``).

site.py      the demo building as data: gateway site file, billing model
broker.py    the embedded MQTT 5 broker
chargers.py  charge points running sessions, cars following the gateway's limits
building.py  what the main meter measures: base load plus what the chargers draw
loadwatch.py load management decisions: a line per limit change, loadmgmt.jsonl
cloud.py     ingest, HTTP API, billing at the end
output.py    what the terminal shows
"""
