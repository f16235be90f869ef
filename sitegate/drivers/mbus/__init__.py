"""Wired M-Bus (EN 13757-2/-3): heat, water and electricity meters.

frames    link-layer frames: build requests, cut and check replies, the standard's timing
decode    RSP_UD telegram -> identity and records (pymbusparser, exact decimals)
records   our fixes where pymbusparser gives up (record walk, plain-text units, error BCD,
          fixed data structure)
units     pymbusparser's units -> SI-style units
profile   M-Bus profiles (data in drivers/profiles/mbus/) -> gateway quantity names
readings  telegrams -> readings (quality, flags) and events
link      serial (pyserial) and TCP transports; request/reply with collision detection
client    MbusBusClient: the gateway's BusClient (SND_NKE, REQ_UD2 + FCB, secondary select)
scan      primary scan and secondary wildcard tree search
emulator  a slave emulator answering recorded frames (tests, demo)
cli       ``sitegate mbus decode|scan|read|set-address|profiles``
"""
