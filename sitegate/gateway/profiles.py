"""The gateway's profile lookup for the site-file checks (``sitecheck.ProfileLookup``):
the drivers' loaders, which check every register and mapping of the profile too."""

from __future__ import annotations

from sitegate.common.sitecheck import ProfileProblem


def driver_quantities(protocol: str, name: str) -> frozenset[str]:
    if protocol == "relays":  # a relay device: its channels (sitefile_relays)
        from sitegate.drivers.relays.profile import RelayProfileError, load_relay_profile

        try:
            return frozenset(f"channel:{c.channel}" for c in load_relay_profile(name).channels)
        except RelayProfileError as exc:
            raise ProfileProblem(str(exc)) from exc
    if protocol == "mbus":
        from sitegate.drivers.mbus.profile import ProfileError as MbusProfileError
        from sitegate.drivers.mbus.profile import load_profile as load_mbus

        try:
            return frozenset(mp.name for mp in load_mbus(name).maps)
        except MbusProfileError as exc:
            raise ProfileProblem(str(exc)) from exc
    from sitegate.drivers.modbus.profile import ProfileError, load_profile

    try:
        return frozenset(r.quantity for r in load_profile(name).registers)
    except ProfileError as exc:
        raise ProfileProblem(str(exc)) from exc
