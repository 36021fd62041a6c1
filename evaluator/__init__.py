"""The real-time evaluation room (评标室): Socket.IO namespace, room state, scoring engine,
evaluation report.

Not built yet: the room arrives with its own issue. The Socket.IO server it will use is
already wired by ``bidding.core.realtime``; ``bidding.app.create_app`` will be the one place
that registers the room's namespace.
"""
