"""``sitegate demo``: the whole product on one machine (see ``run.run_demo``).

site.py      the demo building as data: gateway site file, billing model
broker.py    the embedded MQTT 5 broker
chargers.py  charge points running sessions
cloud.py     ingest, HTTP API, billing at the end
output.py    what the terminal shows
"""
