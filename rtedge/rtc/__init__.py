"""WebRTC seams the daemon and the peer share: ICE host addresses and consent, the Opus buffer."""
