"""Live chat over WebSocket: the endpoint, the frame protocol, per-connection writers, the room
registry and the broker that fans room events out across processes."""
